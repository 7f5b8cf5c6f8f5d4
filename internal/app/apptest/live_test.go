package apptest

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/platform/testsupport"
)

// The live event stream of app all carries each user's own job events
// only, with the jobs on JetStream and on Redis alike (the events are in
// JetStream either way).
func TestTaskEventsOnEachBroker(t *testing.T) {
	eachBroker(t, func(t *testing.T, broker map[string]string) {
		env := baseEnv(t)
		maps.Copy(env, broker)
		app := startApp(t, env, "all")
		base := strings.TrimSuffix(app.waitOutput(t, runningRE), "/tasks/")
		alice := ensureUser(t, env["OTJ_DATA_DIR"], "alice@example.org")
		bob := ensureUser(t, env["OTJ_DATA_DIR"], "bob@example.org")
		signer := testsupport.Signer(t)
		ca, cb := testsupport.Client(t, base, signer, alice.ID), testsupport.Client(t, base, signer, bob.ID)
		alices := testsupport.SSE(t, ca, base+"/tasks/events?after=0", "")
		bobs := testsupport.SSE(t, cb, base+"/tasks/events?after=0", "")

		start := func(c *http.Client) string {
			t.Helper()
			_, page := testsupport.Get(t, c, base+"/tasks/")
			resp, _ := testsupport.PostForm(t, c, base+"/tasks/generate-report", url.Values{"key": {keyRE.FindStringSubmatch(page)[1]}})
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusSeeOther || loc.Query().Get("queued") == "" {
				t.Fatalf("POST generate-report = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
			}
			return loc.Query().Get("queued")
		}
		// until reads s's task events until job id succeeded, and returns
		// the jobs they were about.
		until := func(s *testsupport.SSEStream, id string) map[string]bool {
			t.Helper()
			jobs := map[string]bool{}
			timeout := time.After(30 * time.Second)
			for {
				select {
				case fr := <-s.Frames:
					if fr.Event != "task" {
						continue
					}
					var e struct{ Task, Kind string }
					if err := json.Unmarshal([]byte(fr.Data), &e); err != nil {
						t.Fatal(err)
					}
					jobs[e.Task] = true
					if e.Task == id && e.Kind == "succeeded" {
						return jobs
					}
				case err := <-s.Done:
					t.Fatalf("stream ended: %v", err)
				case <-timeout:
					t.Fatalf("job %s never succeeded on the stream; saw %v", id, jobs)
				}
			}
		}
		hers := start(ca)
		if got := until(alices, hers); len(got) != 1 {
			t.Errorf("alice's stream carried %v, want only her job %s", got, hers)
		}
		his := start(cb) // stored after all of hers
		if got := until(bobs, his); len(got) != 1 || got[hers] {
			t.Errorf("bob's stream carried %v, want only his job %s", got, his)
		}
		app.shutdown(t)
	})
}
