package main

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/otjhelper/otj/platform/testsupport"
)

// TestSynchronousFallback is the Python app's test_synchronous_fallback:
// with the Redis broker configured and nothing listening at REDIS_URL,
// the app starts, its health says the broker is degraded (still 200), a
// report request runs the job in the request, and the task list shows it
// completed right away, with the same events a worker records.
func TestSynchronousFallback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr().String()
	ln.Close() // nothing listens there now

	env := baseEnv(t)
	env["TASKS_BROKER"] = "redis"
	env["REDIS_URL"] = "redis://" + deadAddr + "/0"
	app := startApp(t, env, "all")
	base := app.waitOutput(t, runningRE)

	resp, health := testsupport.Get(t, http.DefaultClient, base+"/healthz")
	if resp.StatusCode != http.StatusOK || !strings.Contains(health, `"redis":"degraded: `) || !strings.Contains(health, `"status":"degraded"`) {
		t.Fatalf("healthz with redis down: %d %s", resp.StatusCode, health)
	}

	user := ensureUser(t, env["OTJ_DATA_DIR"], "apprentice@example.org")
	insertActivities(t, env["OTJ_DATA_DIR"], user.ID, []activityFixture{{date: "2026-05-01", title: "Pairing on the CSV export", typ: "mentoring", quality: "good", hours: 1.5}})
	c := testsupport.Client(t, base, testsupport.Signer(t), user.ID)
	_, page := testsupport.Get(t, c, base+"/tasks/")
	key := keyRE.FindStringSubmatch(page)[1]
	resp, _ = testsupport.PostForm(t, c, base+"/tasks/generate-report", url.Values{"key": {key}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST generate-report with redis down = %d, want 303", resp.StatusCode)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	jobID := loc.Query().Get("queued")

	// Done before the response: the first page after it shows the result.
	_, page = testsupport.Get(t, c, base+loc.String())
	if b := taskBadge(page, jobID); b != "completed" || !strings.Contains(page, `href="/tasks/`+jobID+`/download"`) || !strings.Contains(page, "1 activity,") {
		t.Fatalf("task %s is %q right after the POST, want completed with its download:\n%s", jobID, b, page)
	}
	resp, body := testsupport.Get(t, c, base+"/tasks/"+jobID+"/download")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Pairing on the CSV export") {
		t.Fatalf("download = %d:\n%s", resp.StatusCode, body)
	}

	// The same events as a worker's, the attempt on the request's runner.
	_, detail := testsupport.Get(t, c, base+"/tasks/"+jobID)
	for _, want := range []string{"Queued", "Attempt 1 of 3 started on web-request@", "Attempt 1 succeeded"} {
		if !strings.Contains(detail, want) {
			t.Errorf("task page lacks %q:\n%s", want, detail)
		}
	}
	if !strings.Contains(app.logs.String(), "redis unreachable; running the job in this request") {
		t.Error("no warning logged for the fallback")
	}
	app.shutdown(t)
}
