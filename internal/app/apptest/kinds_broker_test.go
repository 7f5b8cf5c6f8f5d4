package apptest

import (
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/platform/testsupport"
)

// The digest and analytics run on each broker, and in the request when
// Redis is down, with the same events: queued, attempt 1 started,
// attempt 1 succeeded, and a result page for the owner.
func TestDigestAndAnalyticsOnEveryBroker(t *testing.T) {
	brokers := map[string]func(t *testing.T) map[string]string{
		"jetstream": func(*testing.T) map[string]string { return map[string]string{} },
		"redis":     redisSettings,
		"redis down": func(t *testing.T) map[string]string {
			return map[string]string{"TASKS_BROKER": "redis", "REDIS_URL": "redis://" + closedPort(t) + "/0", "REDIS_TIMEOUT": "300ms"}
		},
	}
	for name, broker := range brokers {
		t.Run(name, func(t *testing.T) {
			env := baseEnv(t)
			maps.Copy(env, broker(t))
			app := startApp(t, env, "all")
			base := app.waitOutput(t, runningRE)
			user := ensureUser(t, env["OTJ_DATA_DIR"], "apprentice@example.org")
			today := time.Now().In(mustLondon(t)).Format(time.DateOnly)
			insertActivities(t, env["OTJ_DATA_DIR"], user.ID, []activityFixture{{date: today, title: "Broker workshop", typ: "workshop", quality: "good", hours: 2}})
			c := testsupport.Client(t, base, testsupport.Signer(t), user.ID)
			for _, kind := range []struct{ start, view, wait string }{
				{"send-digest", "digest", "Broker workshop"},
				{"run-analytics", "analytics", "<svg"},
			} {
				_, page := testsupport.Get(t, c, base+"/tasks/")
				resp, _ := testsupport.PostForm(t, c, base+"/tasks/"+kind.start, url.Values{"key": {keyRE.FindStringSubmatch(page)[1]}})
				if resp.StatusCode != http.StatusSeeOther {
					t.Fatalf("POST %s = %d", kind.start, resp.StatusCode)
				}
				loc, _ := url.Parse(resp.Header.Get("Location"))
				id := loc.Query().Get("queued")
				var body string
				testsupport.Eventually(t, 30*time.Second, kind.start+" never completed", func() bool {
					var r *http.Response
					r, body = testsupport.Get(t, c, base+"/tasks/"+id+"/"+kind.view)
					return r.StatusCode == http.StatusOK
				})
				if !strings.Contains(body, kind.wait) {
					t.Errorf("%s page lacks %q:\n%s", kind.view, kind.wait, body)
				}
				_, detail := testsupport.Get(t, c, base+"/tasks/"+id)
				for _, want := range []string{"Queued", "Attempt 1 of ", "Attempt 1 succeeded"} {
					if !strings.Contains(detail, want) {
						t.Errorf("%s task page lacks %q:\n%s", kind.start, want, detail)
					}
				}
				if name == "redis down" && !strings.Contains(detail, "started on web-request@") {
					t.Errorf("%s did not run in the request with Redis down:\n%s", kind.start, detail)
				}
			}
			// The list of one kind: every digest the user was sent, to read.
			_, digests := testsupport.Get(t, c, base+"/tasks/?type=weekly_digest")
			if !strings.Contains(digests, `/digest"`) || strings.Contains(digests, `/analytics"`) {
				t.Errorf("the digests' list:\n%s", digests)
			}
			if r, _ := testsupport.Get(t, c, base+"/tasks/?type=no_such_kind"); r.StatusCode != http.StatusBadRequest {
				t.Errorf("the list of an unknown kind = %d, want 400", r.StatusCode)
			}
			other := testsupport.Client(t, base, testsupport.Signer(t), ensureUser(t, env["OTJ_DATA_DIR"], "other@example.org").ID)
			if _, theirs := testsupport.Get(t, other, base+"/tasks/?type=weekly_digest"); strings.Contains(theirs, `/digest"`) {
				t.Errorf("another user's list of digests shows this user's:\n%s", theirs)
			}
			app.shutdown(t)
		})
	}
}
