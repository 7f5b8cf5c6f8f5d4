package apptest

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/platform/testsupport"
)

// TestSynchronousFallback is the Python app's test_synchronous_fallback:
// with the Redis broker configured and Redis unreachable (nothing
// listening at REDIS_URL, or a server that accepts and never answers),
// the app starts, its health says the broker is degraded (still 200), a
// report request runs the job in the request, and the task list shows it
// completed right away, with the same events a worker records.
func TestSynchronousFallback(t *testing.T) {
	tests := []struct {
		name, cmd string
		redis     func(t *testing.T) string // address of the unreachable Redis
	}{
		{"nothing listening/all", "all", closedPort},
		{"nothing listening/web", "web", closedPort},
		{"not answering/all", "all", silentServer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { synchronousFallback(t, tt.cmd, tt.redis(t)) })
	}
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// silentServer accepts connections and never answers, as a hung Redis
// would; it stops when the test ends.
func silentServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func synchronousFallback(t *testing.T, cmd, redisAddr string) {
	env := baseEnv(t)
	env["TASKS_BROKER"] = "redis"
	env["REDIS_URL"] = "redis://" + redisAddr + "/0"
	env["REDIS_TIMEOUT"] = "300ms"
	app := startApp(t, env, cmd)
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
	start := time.Now()
	resp, _ = testsupport.PostForm(t, c, base+"/tasks/generate-report", url.Values{"key": {key}})
	t.Logf("POST with redis unreachable answered in %s (REDIS_TIMEOUT 300ms)", time.Since(start).Round(time.Millisecond))
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
