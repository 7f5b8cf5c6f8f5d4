package apptest

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/reports"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/metrics/metricstest"
	"github.com/otjhelper/otj/platform/testsupport"
)

var metricsRE = regexp.MustCompile(`Metrics at (http://\S+/metrics)`)

// TestMetricsScrapedWithTheTextParser runs app web and app worker with
// METRICS_LISTEN, runs a report that succeeds, a job that fails and one
// that fails once and is retried, scrapes both processes and reads the
// metrics with Prometheus's own text parser.
func TestMetricsScrapedWithTheTextParser(t *testing.T) {
	env := baseEnv(t)
	env["METRICS_LISTEN"] = "127.0.0.1:0"
	webProc := startApp(t, env, "web")
	base := webProc.waitOutput(t, runningRE)
	webMetrics := webProc.waitOutput(t, metricsRE)
	j := webProc.waitJoin(t)
	workerEnv := maps.Clone(env)
	maps.Copy(workerEnv, j.env())
	workerProc := startApp(t, workerEnv, "worker")
	workerMetrics := workerProc.waitOutput(t, metricsRE)
	if webMetrics == workerMetrics {
		t.Fatalf("web and worker serve metrics at the same address %s", webMetrics)
	}

	// A report through the web: enqueued there, run on the worker.
	alice := ensureUser(t, env["OTJ_DATA_DIR"], "alice@example.org")
	c := testsupport.Client(t, base, testsupport.Signer(t), alice.ID)
	_, page := testsupport.Get(t, c, base+"/tasks/")
	key := keyRE.FindStringSubmatch(page)[1]
	resp, _ := testsupport.PostForm(t, c, base+"/tasks/generate-report", url.Values{"key": {key}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST generate-report = %d", resp.StatusCode)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	report := loc.Query().Get("queued")

	// A job that fails for good and one that fails once, then succeeds,
	// enqueued straight into the log as another process would.
	b := jetstreamtest.Broker(t, j.connect(t, "metrics-test"))
	enqueue := func(p testPayload) string {
		payload, _ := json.Marshal(p)
		job, err := b.Enqueue(testsupport.Context(t), tasktype.EnqueueRequest{Type: testFail, UserID: alice.ID, Payload: payload})
		if err != nil {
			t.Fatal(err)
		}
		return job.ID
	}
	failing, retried := enqueue(testPayload{Times: 1, Permanent: true}), enqueue(testPayload{Times: 1})
	for id, want := range map[string]tasktype.EventKind{report: tasktype.EventSucceeded, failing: tasktype.EventFailed, retried: tasktype.EventSucceeded} {
		if e := waitJobDone(t, b, alice.ID, id, 30*time.Second); e.Kind != want {
			t.Fatalf("job %s ended %s, want %s", id, e.Kind, want)
		}
	}
	if r, _ := testsupport.Get(t, c, base+"/tasks/"+report); r.StatusCode != http.StatusOK {
		t.Fatalf("GET the report's page = %d", r.StatusCode)
	}
	// A download streams through the metrics' response writer, which
	// must pass on the deadline the web sets on it.
	if r, body := testsupport.Get(t, c, base+"/tasks/"+report+"/download"); r.StatusCode != http.StatusOK || !strings.HasPrefix(body, reports.BOM+"date,title,") {
		t.Fatalf("GET the report's download = %d %.200q", r.StatusCode, body)
	}
	testsupport.Get(t, c, base+"/no-such-page") // a 404 off every route

	// The worker records an outcome, then acks: its counters catch up
	// with the log a moment after the events are stored.
	var w metricstest.Families
	testsupport.Eventually(t, 10*time.Second, "worker's counters never reached the outcomes", func() bool {
		w = metricstest.Scrape(t, workerMetrics)
		v, _ := w.Get("otj_jobs_succeeded_total", "type", testFail)
		f, _ := w.Get("otj_jobs_failed_total", "type", testFail)
		return v == 1 && f == 1
	})
	for _, tc := range []struct {
		name, typ string
		want      float64
	}{
		{"otj_jobs_started_total", reports.FullReport, 1},
		{"otj_jobs_succeeded_total", reports.FullReport, 1},
		{"otj_jobs_failed_total", reports.FullReport, 0},
		{"otj_jobs_started_total", testFail, 3},
		{"otj_jobs_succeeded_total", testFail, 1},
		{"otj_jobs_failed_total", testFail, 1},
		{"otj_jobs_retried_total", testFail, 1},
		{"otj_jobs_cancelled_total", reports.FullReport, 0},
		{"otj_job_run_seconds", testFail, 3}, // histogram: sample count
		{"otj_job_wait_seconds", testFail, 3},
		{"otj_job_run_seconds", reports.FullReport, 1},
	} {
		if got := w.Value(t, tc.name, "type", tc.typ); got != tc.want {
			t.Errorf("worker %s{type=%q} = %v, want %v", tc.name, tc.typ, got, tc.want)
		}
	}
	if got := w.Value(t, "otj_jobs_in_flight"); got != 0 {
		t.Errorf("worker otj_jobs_in_flight = %v after every job ended", got)
	}
	if got := w.Value(t, "otj_queue_pending_jobs"); got != 0 {
		t.Errorf("worker otj_queue_pending_jobs = %v with every job done", got)
	}
	if got := w.Value(t, "otj_task_stats_up", "source", "queue"); got != 1 {
		t.Errorf("worker otj_task_stats_up{source=queue} = %v", got)
	}
	w.Value(t, "go_goroutines")
	w.Value(t, "process_cpu_seconds_total")
	if _, ok := w.Get("otj_http_requests_total"); ok {
		t.Error("the worker, which serves no HTTP, reports HTTP requests")
	}

	web := metricstest.Scrape(t, webMetrics)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"otj_jobs_enqueued_total", []string{"type", reports.FullReport}, 1},
		{"otj_jobs_started_total", []string{"type", reports.FullReport}, 0},
		{"otj_http_requests_total", []string{"route", "/tasks/generate-report", "code", "303"}, 1},
		{"otj_http_requests_total", []string{"route", "/tasks/{id}", "code", "200"}, 1},
		{"otj_http_requests_total", []string{"route", "/tasks/{id}/download", "code", "200"}, 1},
		{"otj_http_requests_total", []string{"route", "unmatched", "code", "404"}, 1},
		{"otj_http_request_duration_seconds", []string{"route", "/tasks/{id}"}, 1},
		{"otj_task_stats_up", []string{"source", "projection"}, 1},
	} {
		if got := web.Value(t, tc.name, tc.labels...); got != tc.want {
			t.Errorf("web %s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	// Ids never become labels.
	for _, m := range web["otj_http_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if strings.Contains(l.GetValue(), report) {
				t.Errorf("a label holds the job id: %s=%q", l.GetName(), l.GetValue())
			}
		}
	}
	web.Value(t, "otj_projection_lag_events")
	if lag := web.Value(t, "otj_projection_lag_seconds"); lag < 0 || lag > 30 {
		t.Errorf("otj_projection_lag_seconds = %v", lag)
	}
}

// TestHealthzReportsStalledWorkers enqueues jobs with no worker running:
// /healthz stays 200 and says the workers are degraded once
// WORKERS_STALL_AFTER has passed; once a worker runs them, it says ok.
func TestHealthzReportsStalledWorkers(t *testing.T) { eachBroker(t, healthzReportsStalledWorkers) }

func healthzReportsStalledWorkers(t *testing.T, broker map[string]string) {
	env := baseEnv(t)
	maps.Copy(env, broker)
	env["WORKERS_STALL_AFTER"] = "1s"
	webProc := startApp(t, env, "web")
	base := webProc.waitOutput(t, runningRE)
	j := webProc.waitJoin(t)
	b := jetstreamtest.Broker(t, j.connect(t, "healthz-test"))

	health := func() (int, map[string]string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]string
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}
	if code, body := health(); code != http.StatusOK || body["workers"] != "ok" {
		t.Fatalf("healthz with nothing waiting = %d %v", code, body)
	}
	jobs := []tasktype.Job{enqueueSleep(t, b, 1, 0), enqueueSleep(t, b, 1, 0)}
	var body map[string]string
	testsupport.Eventually(t, 15*time.Second, "healthz never reported the waiting jobs", func() bool {
		var code int
		code, body = health()
		if code != http.StatusOK {
			t.Fatalf("healthz = %d %v: stalled workers are degraded, not down", code, body)
		}
		return strings.HasPrefix(body["workers"], "degraded: ")
	})
	if body["status"] != "degraded" || !strings.Contains(body["workers"], "2 jobs waiting") || !strings.Contains(body["workers"], "no worker has joined") {
		t.Errorf("healthz with no worker ever = %v", body)
	}

	workerEnv := maps.Clone(env)
	maps.Copy(workerEnv, j.env())
	workerEnv["OTJ_DATA_DIR"] = t.TempDir()
	workerProc := startApp(t, workerEnv, "worker")
	for _, job := range jobs {
		waitJobDone(t, b, 1, job.ID, 30*time.Second)
	}
	testsupport.Eventually(t, 10*time.Second, "healthz still degraded with a worker running", func() bool {
		_, body = health()
		return body["workers"] == "ok" && body["status"] == "ok"
	})

	// A worker that stops leaves the next jobs waiting: degraded again,
	// now because the joined workers went quiet.
	workerProc.shutdown(t)
	enqueueSleep(t, b, 1, 0)
	testsupport.Eventually(t, 15*time.Second, "healthz never reported the job left waiting", func() bool {
		_, body = health()
		return strings.Contains(body["workers"], "1 job waiting and no worker has asked for work for")
	})
}
