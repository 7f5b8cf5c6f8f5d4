package apptest

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/url"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// Settings of TestBrokerKilledMidUpload.
const (
	uploadRounds = 4
	uploadMB     = 4
	uploadPause  = 50 // ms after each MB, so that the upload takes a while
	uploadLease  = 2 * time.Second
	// uploadFreeze is how long app web is frozen before it is killed:
	// long enough for the worker's requests of the moment to reach it
	// and wait for answers that never come.
	uploadFreeze = 500 * time.Millisecond
	// uploadBound is the longest a job may take to reach its outcome once
	// app web is back. The promise is about a lease plus a heartbeat, on
	// top of the broker request that was in flight running out; the rest
	// is slack for race-instrumented processes on two cores.
	uploadBound = 30 * time.Second
)

// TestBrokerKilledMidUpload kills app web, which owns the embedded NATS
// store, while a job is uploading a multi-megabyte result to the object
// store, and restarts it on the same data dir and port, several times.
// Each time, the job must reach exactly one outcome, succeeded, within
// uploadBound of app web being back: in the odd rounds with the job's
// worker still alive, which must upload the file again from its spool
// once the server is back, so that attempt 1 succeeds and its handler
// runs once; in the even rounds with that worker SIGKILLed as app web
// comes back, when another worker must take the job over, on a later
// attempt.
//
// Two things make each round hit what a plain kill hits only now and
// then. The server is frozen (SIGSTOP) just after the job starts and then
// killed, so the worker has requests in flight that the dead server never
// answers, as a request sent the instant before a kill has. And jobs of
// no work run all along, so that the server writes its consumer's state
// to disk at its throttled rate (at most every 100ms), as on a busy
// system: the job's delivery, moments old at the kill, is then not yet on
// disk, and the restarted server hands the job out again as a first
// delivery.
func TestBrokerKilledMidUpload(t *testing.T) {
	dir := t.TempDir()
	runs := newRunLog(t)
	env := map[string]string{
		"OTJ_DATA_DIR":       dir,
		"PORT":               "0",
		"NATS_LISTEN":        "127.0.0.1:0",
		"SECRET_KEY":         testsupport.TestSecretKey,
		"JOB_LEASE":          uploadLease.String(),
		"WORKER_CONCURRENCY": "4",
		"LOG_LEVEL":          "warn",
		runLogEnv:            runs.path,
	}
	web := startProcess(t, "web-0", env, "web")
	nj := web.waitJoin(t)
	u, err := url.Parse(nj.URL)
	if err != nil {
		t.Fatal(err)
	}
	env["NATS_LISTEN"] = u.Host // every restart on the same port
	conn := durableConnect(t, nj)
	wenv := maps.Clone(env)
	wenv["NATS_URL"] = nj.URL
	// Not startWorker: it waits for an info line, and a line per job of
	// no work would bury the rounds' logs.
	worker := startProcess(t, "worker-0", wenv, "worker")

	testsupport.Go(t, func(ctx context.Context) { noopTraffic(ctx, conn) })

	payload, _ := json.Marshal(testPayload{MB: uploadMB, MS: uploadPause})
	for round := 1; round <= uploadRounds; round++ {
		holderGone := round%2 == 0
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		job, err := conn.b.Enqueue(ctx, tasktype.EnqueueRequest{Type: testUpload, UserID: 1, Payload: payload})
		cancel()
		if err != nil {
			t.Fatalf("round %d: enqueue: %v", round, err)
		}
		waitStart(t, runs, job)
		if err := web.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(uploadFreeze)
		killProcesses(t, web)
		web = startProcess(t, "web-"+string(rune('0'+round)), env, "web")
		web.waitStdout(t, joinRE)
		back := time.Now()
		if holderGone {
			killProcesses(t, worker)
			worker = startProcess(t, "worker-"+string(rune('0'+round)), wenv, "worker")
		}

		last, done := waitOutcome(conn, job.ID, uploadBound)
		took := time.Since(back)
		if !done {
			info := conn.workers(t)
			t.Fatalf("round %d: job %s reached no outcome within %s of app web being back (workers consumer: %d handed out and not acked, %d redelivered); history:\n%s",
				round, job.ID, uploadBound, info.NumAckPending, info.NumRedelivered, describe(jobHistory(t, conn.b, 1, job.ID)))
		}
		evs := jobHistory(t, conn.b, 1, job.ID)
		outcomes := countKind(evs, tasktype.EventSucceeded) + countKind(evs, tasktype.EventFailed) + countKind(evs, tasktype.EventCancelled)
		t.Logf("round %d (the job's worker %s): outcome %s, attempt %d, %s after app web was back; history:\n%s",
			round, map[bool]string{false: "alive", true: "killed"}[holderGone], last.Kind, last.Attempt, took.Round(time.Millisecond), describe(evs))
		// With its worker killed as well, attempt 1 may have left no trace:
		// its start is recorded at its first heartbeat, which the frozen
		// server never took, and the killed server forgot handing the job
		// out. The job then runs attempt 1 anew, which is all the log can
		// tell. An attempt whose start is on record is always counted.
		untraced := holderGone && !slices.ContainsFunc(evs, func(e tasktype.Event) bool {
			return e.Kind == tasktype.EventStarted && !e.Implied && e.Attempt == 1 && e.Worker != last.Worker
		})
		if last.Kind != tasktype.EventSucceeded || outcomes != 1 {
			t.Errorf("round %d: want one outcome, succeeded; history:\n%s", round, describe(evs))
		}
		retrying, ok := firstKind(evs, tasktype.EventRetrying)
		switch {
		case !holderGone:
			// The live worker kept the file in its spool and uploaded it
			// again once the server was back: nothing to charge, nothing
			// to run again.
			if n := len(matching(runs.lines(t), job.ID, "start", 0)); last.Attempt != 1 || ok || countKind(evs, tasktype.EventReleased) != 0 || n != 1 {
				t.Errorf("round %d: the job's worker was alive: want attempt 1 succeeded, its handler run once (ran %d times), no attempt charged or handed back; history:\n%s", round, n, describe(evs))
			}
		case untraced && last.Attempt == 1:
			t.Logf("round %d: attempt 1 left no trace before its worker and the server were killed, and ran again", round)
		case !ok || retrying.Attempt != 1 || last.Attempt < 2:
			t.Errorf("round %d: want attempt 1 recorded as lost (retrying), and a later attempt succeeded; history:\n%s", round, describe(evs))
		}
		if last.Result == nil {
			t.Fatalf("round %d: succeeded without a result", round)
		}
		checkUpload(t, conn, *last.Result)
	}
}

// checkUpload reads the result on record back from the object store: the
// whole upload, as the event describes it.
func checkUpload(t *testing.T, conn *durableConn, ref tasktype.ResultRef) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := conn.b.Open(ctx, ref.Object)
	if err != nil {
		t.Fatalf("open the result on record: %v", err)
	}
	defer r.Close()
	n, err := io.Copy(io.Discard, r)
	if err != nil || n != uploadMB<<20 || ref.Size != uint64(n) {
		t.Fatalf("result on record %s: read %d bytes (err %v), want %d as its event says (%d)", ref.Object, n, err, uploadMB<<20, ref.Size)
	}
}

// waitOutcome polls the job's newest event until the job has finished,
// and returns that event and whether it did within timeout.
func waitOutcome(conn *durableConn, jobID string, timeout time.Duration) (tasktype.Event, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		e, err := conn.b.Last(ctx, 1, jobID)
		cancel()
		if err == nil && (e.Kind == tasktype.EventSucceeded || e.Kind == tasktype.EventFailed || e.Kind == tasktype.EventCancelled) {
			return e, true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return tasktype.Event{}, false
}

// waitStart waits for the job's first attempt to start, polling far
// more often than testsupport.Eventually: the test acts within
// milliseconds of the start.
func waitStart(t *testing.T, runs runLog, job tasktype.Job) {
	t.Helper()
	first := job
	first.Attempt = 1
	marker := startedMarker(runs.path, first)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(marker); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s never started", job.ID)
		}
		time.Sleep(time.Millisecond)
	}
}

// noopTraffic enqueues a job of no work every 5ms until ctx ends, keeping
// the workers consumer busy. Enqueues that fail while the server is away
// are skipped.
func noopTraffic(ctx context.Context, conn *durableConn) {
	payload, _ := json.Marshal(testPayload{MS: 0})
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		ectx, cancel := context.WithTimeout(ctx, time.Second)
		_, _ = conn.b.Enqueue(ectx, tasktype.EnqueueRequest{Type: testSleep, UserID: 2, Payload: payload})
		cancel()
	}
}
