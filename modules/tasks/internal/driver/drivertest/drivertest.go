// Package drivertest is the suite every transport of OTJ Helper
// (driver.Transport) passes. A driver's own tests call Run with a
// function that opens a fresh deployment; the suite drives it through
// the driver ports with real workers, as the engine does, and checks
// what users and operators rely on: delivery, acks, redelivery after a
// crash, retries, cancel, dedupe, shutdown, one outcome per job under
// concurrency, and that the Capabilities it reports are true. A subtest
// of an ability the driver lacks is skipped, saying so.
package drivertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/internal/control"
	"github.com/otjhelper/otj/modules/tasks/internal/driver"
	"github.com/otjhelper/otj/modules/tasks/internal/worker"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// Driver is one driver under test, as the processes of one deployment
// would use it.
type Driver struct {
	// Transport is the web side's: what it enqueues through. Its
	// Capabilities decide which subtests run, and the suite checks them.
	Transport driver.Transport
	// Log is the job event log and result store (JetStream, whichever
	// transport carries the jobs).
	Log driver.Log
	// Queue opens a worker's queue, as a newly started worker process
	// would. Each call stands for a separate worker.
	Queue func(ctx context.Context) (driver.Queue, error)
}

// Options are what a test asks of the driver it opens.
type Options struct {
	// Lease is the visibility timeout: how long a delivered job may go
	// without renewal before another worker gets it.
	Lease time.Duration
}

// Open opens a fresh driver with its own empty storage for one test,
// closed when the test ends.
type Open func(t *testing.T, o Options) Driver

// Run runs the whole suite against drivers made by open. Each subtest
// opens a driver of its own and runs in parallel with the others; the
// subtests of an ability depend on the Capabilities the driver reports.
func Run(t *testing.T, open Open) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, open Open)
	}{
		{"EnqueueAndConsume", testEnqueueAndConsume},
		{"RedeliveryAfterWorkerDied", testRedeliveryAfterWorkerDied},
		{"DroppedDeliveryCostsNoAttempt", testDroppedDeliveryCostsNoAttempt},
		{"UnreadableLogCostsNoAttempt", testUnreadableLogCostsNoAttempt},
		{"FastJobRecordsNoStart", testFastJobRecordsNoStart},
		{"SlowJobShowsRunning", testSlowJobShowsRunning},
		{"LeaseRenewal", testLeaseRenewal},
		{"RetryWithBackoff", testRetryWithBackoff},
		{"PermanentError", testPermanentError},
		{"Timeout", testTimeout},
		{"CancelQueued", testCancelQueued},
		{"CancelRunning", testCancelRunning},
		{"Dedupe", testDedupe},
		{"ShutdownHandsJobsBack", testShutdownHandsJobsBack},
		{"ManyWorkers", testManyWorkers},
		{"PayloadLimit", testPayloadLimit},
		{"RetryByHand", testRetryByHand},
		{"NextEndsWithItsContext", testNextEndsWithItsContext},
		{"Capabilities", testCapabilities},
		{"EnqueueBatch", testEnqueueBatch},
		{"NextBatch", testNextBatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open)
		})
	}
}

// testEnqueueAndConsume: a job runs once with its payload, its result
// file is stored, and once acked it is never delivered again.
func testEnqueueAndConsume(t *testing.T, open Open) {
	h := setup(t, open, time.Second)
	const typ, payload, content = "contract_consume", `{"month":"2024-05"}`, "date,hours\n2024-05-01,7.5\n"
	seen := newCalls()
	stop := h.startWorker("w1", h.registry(typ, func(_ context.Context, job tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
		seen.add(job)
		w, err := out.Create("hours.csv", "text/csv")
		if err != nil {
			return tasktype.Result{}, err
		}
		if _, err := io.WriteString(w, content); err != nil {
			return tasktype.Result{}, err
		}
		return tasktype.Result{Summary: "1 row"}, nil
	}, tasktype.Policy{}), nil)

	job := h.enqueue(typ, 7, "", payload)
	last := h.waitDone(job)
	h.expectStored(job, "enqueued succeeded")
	hist := h.expectHistory(job, "enqueued started succeeded")
	if e := hist[0]; e.Seq != job.EventSeq || e.JobID != job.ID || e.JobType != typ || e.UserID != 7 || string(e.Payload) != payload {
		t.Errorf("enqueued event %+v does not match the job %+v", e, job)
	}
	if e := hist[1]; e.Attempt != 1 || e.Worker != "w1" {
		t.Errorf("started event %+v, want attempt 1 by w1", e)
	}
	if last.Attempt != 1 || last.Summary != "1 row" || last.Result == nil {
		t.Fatalf("succeeded event %+v", last)
	}
	if ref := last.Result; ref.Name != "hours.csv" || ref.ContentType != "text/csv" || ref.Size != uint64(len(content)) {
		t.Errorf("result ref %+v", ref)
	}
	if got := h.readResult(last.Result.Object); got != content {
		t.Errorf("result file %q, want %q", got, content)
	}
	jobs := seen.of(job.ID)
	if len(jobs) != 1 {
		t.Fatalf("handler ran %d times, want 1", len(jobs))
	}
	if j := jobs[0]; j.ID != job.ID || j.Type != typ || j.UserID != 7 || string(j.Payload) != payload ||
		j.Attempt != 1 || !j.EnqueuedAt.Equal(job.EnqueuedAt) {
		t.Errorf("handler saw %+v, want %+v at attempt 1", j, job)
	}

	// Acked for good: past the lease, no worker is handed the job again.
	stop()
	h.expectNoDelivery()
	if n := len(seen.of(job.ID)); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
	h.expectHistory(job, "enqueued started succeeded")
}

// testRedeliveryAfterWorkerDied: a worker takes a job, records its start
// and dies. After the lease another worker gets it, records the lost
// attempt and runs the next one.
func testRedeliveryAfterWorkerDied(t *testing.T, open Open) {
	h := setup(t, open, time.Second)
	const typ = "contract_lost"
	seen := newCalls()
	reg := h.registry(typ, func(_ context.Context, job tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
		seen.add(job)
		return tasktype.Result{Summary: "ok"}, nil
	}, tasktype.Policy{MaxAttempts: 3, BackoffMin: 10 * time.Millisecond, BackoffMax: 10 * time.Millisecond})

	job := h.enqueue(typ, 3, "", `{"n":1}`)
	taken := time.Now()
	item := h.take(job)
	dead := tasktype.Event{
		ID: job.ID + "dead", Kind: tasktype.EventStarted, JobID: job.ID, JobType: typ, UserID: job.UserID,
		Time: time.Now().UTC(), Attempt: 1, MaxAttempts: 3, Worker: "dead-worker",
	}
	if _, err := h.b.Log.Append(h.ctx, dead, item.Seq); err != nil {
		t.Fatalf("record the dead worker's start: %v", err)
	}
	// It stored its result file before it died; no event will name it.
	orphan := tasktype.ResultObjectName(job.ID, 1)
	if _, err := h.b.Log.Put(h.ctx, orphan, "dead.csv", "text/csv", strings.NewReader("a,b\n")); err != nil {
		t.Fatalf("store the dead worker's file: %v", err)
	}
	// The delivery is never renewed, acked or given back.
	h.startWorker("w2", reg, nil)

	last := h.waitDone(job)
	hist := h.expectHistory(job, "enqueued started retrying started succeeded")
	lost := hist[2]
	if lost.Attempt != 1 || !strings.Contains(lost.Error, "stopped responding") || !strings.Contains(lost.Error, "dead-worker") {
		t.Errorf("lost attempt recorded as %+v, want attempt 1 with the dead worker stopped responding", lost)
	}
	if early := taken.Add(h.lease - slack); lost.Time.Before(early) {
		t.Errorf("job taken over %s after its delivery, before the %s lease ran out", lost.Time.Sub(taken), h.lease)
	}
	if e := hist[3]; e.Attempt != 2 || e.Worker != "w2" {
		t.Errorf("second start %+v, want attempt 2 by w2", e)
	}
	if last.Attempt != 2 {
		t.Errorf("succeeded event %+v, want attempt 2", last)
	}
	if jobs := seen.of(job.ID); len(jobs) != 1 || jobs[0].Attempt != 2 {
		t.Errorf("handler calls %+v, want one, at attempt 2", jobs)
	}
	if rc, err := h.b.Log.Open(h.ctx, orphan); !errors.Is(err, tasktype.ErrResultMissing) {
		if err == nil {
			rc.Close()
		}
		t.Errorf("the lost attempt's file %s is still stored (err %v): no event names it", orphan, err)
	}
}

// testDroppedDeliveryCostsNoAttempt: a delivery taken and dropped with
// nothing on record, as by a worker that could not read the log or died
// before its first heartbeat, costs no attempt: nothing proves it ran.
// When it comes back after the lease the next worker records the
// attempt's start before running it (so that its own loss, if it comes,
// is counted), and the job's first attempt runs once and succeeds.
func testDroppedDeliveryCostsNoAttempt(t *testing.T, open Open) {
	h := setup(t, open, time.Second)
	const typ = "contract_abandoned"
	reg, seen := h.counting(typ)

	job := h.enqueue(typ, 3, "", `{"n":2}`)
	taken := time.Now()
	h.take(job)
	h.startWorker("w2", reg, nil)

	h.waitDone(job)
	hist := h.expectStored(job, "enqueued started succeeded")
	if e := hist[1]; e.Attempt != 1 || e.Worker != "w2" {
		t.Errorf("start %+v, want attempt 1 by w2", e)
	}
	if early := taken.Add(h.lease - slack); hist[1].Time.Before(early) {
		t.Errorf("job taken again %s after its delivery, before the %s lease ran out", hist[1].Time.Sub(taken), h.lease)
	}
	if jobs := seen.of(job.ID); len(jobs) != 1 || jobs[0].Attempt != 1 || string(jobs[0].Payload) != `{"n":2}` {
		t.Errorf("handler calls %+v, want one, attempt 1, with the payload", jobs)
	}
}

// testUnreadableLogCostsNoAttempt: a worker that cannot read the event
// log (its host frozen or gone, the queue still there) hands the item
// back without running it and without counting an attempt, however long
// that lasts: once the log answers, the job's first attempt runs, once.
func testUnreadableLogCostsNoAttempt(t *testing.T, open Open) {
	h := setup(t, open, time.Second)
	const typ = "contract_log_down"
	reg, seen := h.counting(typ)
	events := &failingLog{Events: h.b.Log}
	events.down.Store(true)
	h.startWorker("w1", reg, func(c *worker.Config) { c.Events = events })

	job := h.enqueue(typ, 3, "", `{}`)
	// Down for three leases: long enough for any delivery left unrenewed
	// to come back as a redelivery, more than once.
	testsupport.Eventually(t, waitTimeout, "the worker never tried to read the job", func() bool { return events.refused.Load() > 0 })
	time.Sleep(3 * h.lease)
	if jobs := seen.of(job.ID); len(jobs) != 0 {
		t.Fatalf("handler ran %d times while the log could not be read", len(jobs))
	}
	events.down.Store(false)

	last := h.waitDone(job)
	if last.Kind != tasktype.EventSucceeded || last.Attempt != 1 {
		t.Errorf("job ended with %+v, want attempt 1 succeeded", last)
	}
	for _, e := range h.history(job) {
		if e.Kind == tasktype.EventRetrying || e.Kind == tasktype.EventFailed {
			t.Errorf("attempt charged while the log was down: %+v", e)
		}
	}
	if jobs := seen.of(job.ID); len(jobs) != 1 || jobs[0].Attempt != 1 {
		t.Errorf("handler calls %+v, want one, attempt 1", jobs)
	}
	t.Logf("%d reads refused while the log was down", events.refused.Load())
}

// failingLog is an event log that refuses every call, as one whose
// server does not answer, while down is set.
type failingLog struct {
	worker.Events
	down    atomic.Bool
	refused atomic.Int64
}

func (l *failingLog) refuse() error {
	if !l.down.Load() {
		return nil
	}
	l.refused.Add(1)
	return fmt.Errorf("%w: the test's log is down", tasktype.ErrUnavailable)
}

func (l *failingLog) Append(ctx context.Context, e tasktype.Event, after uint64) (uint64, error) {
	if err := l.refuse(); err != nil {
		return 0, err
	}
	return l.Events.Append(ctx, e, after)
}

func (l *failingLog) Last(ctx context.Context, userID int64, jobID string) (tasktype.Event, error) {
	if err := l.refuse(); err != nil {
		return tasktype.Event{}, err
	}
	return l.Events.Last(ctx, userID, jobID)
}

// testFastJobRecordsNoStart: a job done before its first heartbeat
// stores only its enqueue and its outcome, and the outcome carries the
// start: when, on which worker, which attempt of how many.
func testFastJobRecordsNoStart(t *testing.T, open Open) {
	h := setup(t, open, 5*time.Second) // a heartbeat of 1s: the job is far shorter
	const typ = "contract_fast"
	reg, _ := h.counting(typ)
	h.startWorker("w1", reg, nil)

	before := time.Now()
	job := h.enqueue(typ, 4, "", `{}`)
	last := h.waitDone(job)
	stored := h.expectStored(job, "enqueued succeeded")
	if e := stored[1]; e.Worker != "w1" || e.StartedAt.Before(before.Add(-slack)) || e.StartedAt.After(e.Time) || e.MaxAttempts != 3 {
		t.Errorf("succeeded event %+v, want it to carry the start on w1 (between %s and its own time) and 3 attempts", e, before)
	}
	shown := h.expectHistory(job, "enqueued started succeeded")
	if s := shown[1]; s.Attempt != 1 || s.MaxAttempts != 3 || s.Worker != "w1" || !s.Time.Equal(last.StartedAt) {
		t.Errorf("start shown as %+v, want attempt 1 of 3 on w1 at %s", s, last.StartedAt)
	}
}

// testSlowJobShowsRunning: a job still running at its first heartbeat
// records its start then, and shows running until its outcome.
func testSlowJobShowsRunning(t *testing.T, open Open) {
	h := setup(t, open, time.Second)
	const typ = "contract_slow_running"
	release := make(chan struct{})
	h.startWorker("w1", h.registry(typ, func(ctx context.Context, _ tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
		select {
		case <-release:
			return tasktype.Result{Summary: "slow"}, nil
		case <-ctx.Done():
			return tasktype.Result{}, ctx.Err()
		}
	}, tasktype.Policy{}), nil)

	job := h.enqueue(typ, 4, "", `{}`)
	running := h.waitLast(job, "its start recorded", func(e tasktype.Event) bool {
		return e.Kind == tasktype.EventStarted || e.Kind == tasktype.EventProgress // or a sign of life after it
	})
	if st := tasktype.StatusAfter(running.Kind); st != tasktype.StatusRunning || running.Worker != "w1" || running.Attempt != 1 {
		t.Errorf("newest event %+v (%s), want attempt 1 running on w1", running, st)
	}
	close(release)
	h.waitDone(job)
	stored := h.expectStored(job, "enqueued started succeeded")
	if got := stored[len(stored)-1].StartedAt; !got.Equal(stored[1].Time) {
		t.Errorf("outcome carries start %s, want the recorded one, %s", got, stored[1].Time)
	}
	h.expectHistory(job, "enqueued started succeeded")
}

// testLeaseRenewal: a job that runs for several leases keeps its lease
// while its worker renews it: an idle worker next to it never gets it.
// Though it reports nothing, it is heard from: its start records the
// lease, and a progress event follows whenever a third of it has passed
// without an event, so the gaps stay well under the lease (a task page
// tells a live worker from a lost one by them, tasktype.Task.WorkerLost).
func testLeaseRenewal(t *testing.T, open Open) {
	h := setup(t, open, time.Second)
	const typ = "contract_long"
	seen := newCalls()
	reg := h.registry(typ, func(ctx context.Context, job tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
		seen.add(job)
		select {
		case <-ctx.Done():
			return tasktype.Result{}, ctx.Err()
		case <-time.After(h.lease * 5 / 2):
		}
		return tasktype.Result{Summary: "long"}, nil
	}, tasktype.Policy{})
	h.startWorker("w1", reg, nil)
	h.startWorker("w2", reg, nil)

	job := h.enqueue(typ, 2, "", `{"n":1}`)
	last := h.waitDone(job)
	hist := h.expectHistory(job, "enqueued started succeeded")
	if last.Summary != "long" || last.Attempt != 1 {
		t.Errorf("succeeded event %+v", last)
	}
	if took := last.Time.Sub(hist[1].Time); took < h.lease*2 {
		t.Errorf("job ran %s, want over two leases (%s)", took, h.lease)
	}
	stored := h.history(job)
	if stored[1].Lease != h.lease {
		t.Errorf("start records lease %s, want %s", stored[1].Lease, h.lease)
	}
	for i := 2; i < len(stored); i++ {
		if gap := stored[i].Time.Sub(stored[i-1].Time); gap >= h.lease {
			t.Errorf("%s without a sign of life before %s, lease %s: %s", gap, stored[i].Kind, h.lease, kindsOfAll(stored))
		}
	}
	if n := len(seen.of(job.ID)); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
}

// testRetryWithBackoff: failed attempts are retried after a wait within
// the policy's bounds, never before it. The lease is long, so that a
// retry that waited for the lease instead of its own time shows.
func testRetryWithBackoff(t *testing.T, open Open) {
	h := setup(t, open, 5*time.Second)
	const typ = "contract_flaky"
	policy := tasktype.Policy{MaxAttempts: 3, BackoffMin: 200 * time.Millisecond, BackoffMax: time.Second}
	// Policy.Backoff: within [max(min, c/2), c], c = min(max, min·2^(n-1)).
	bounds := map[int][2]time.Duration{
		1: {200 * time.Millisecond, 200 * time.Millisecond},
		2: {200 * time.Millisecond, 400 * time.Millisecond},
	}
	seen := newCalls()
	h.startWorker("w1", h.registry(typ, func(_ context.Context, job tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
		seen.add(job)
		if job.Attempt < 3 {
			return tasktype.Result{}, fmt.Errorf("flake %d", job.Attempt)
		}
		return tasktype.Result{Summary: "third time lucky"}, nil
	}, policy), nil)

	job := h.enqueue(typ, 4, "", `{"n":3}`)
	last := h.waitDone(job)
	hist := h.expectHistory(job, "enqueued started retrying started retrying started succeeded")
	if last.Attempt != 3 || last.Summary != "third time lucky" {
		t.Errorf("succeeded event %+v", last)
	}
	for i, e := range hist {
		if e.Kind != tasktype.EventRetrying {
			continue
		}
		b := bounds[e.Attempt]
		if wait := e.RetryAt.Sub(e.Time); wait < b[0] || wait > b[1] {
			t.Errorf("retry after attempt %d waits %s, want %s..%s", e.Attempt, wait, b[0], b[1])
		}
		if e.Error != fmt.Sprintf("flake %d", e.Attempt) || e.MaxAttempts != 3 {
			t.Errorf("retrying event %+v", e)
		}
		next := hist[i+1]
		if next.Attempt != e.Attempt+1 {
			t.Errorf("start after retry of attempt %d is attempt %d", e.Attempt, next.Attempt)
		}
		late := next.Time.Sub(e.RetryAt)
		if late < -slack || late > 3*time.Second {
			t.Errorf("attempt %d started %s after its retry time, want 0..3s", next.Attempt, late)
		}
		t.Logf("attempt %d: waited %s, attempt %d started %s after its retry time", e.Attempt, e.RetryAt.Sub(e.Time), next.Attempt, late)
	}
	jobs := seen.of(job.ID)
	if len(jobs) != 3 {
		t.Fatalf("handler ran %d times, want 3", len(jobs))
	}
	for i, j := range jobs {
		if j.Attempt != i+1 || string(j.Payload) != `{"n":3}` || !j.EnqueuedAt.Equal(job.EnqueuedAt) {
			t.Errorf("call %d saw %+v", i+1, j)
		}
	}
}

// testPermanentError: a permanent error fails the job at once.
func testPermanentError(t *testing.T, open Open) {
	h := setup(t, open, time.Second)
	const typ = "contract_permanent"
	seen := newCalls()
	stop := h.startWorker("w1", h.registry(typ, func(_ context.Context, job tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
		seen.add(job)
		return tasktype.Result{}, tasktype.Permanent(errors.New("report 42 does not exist"))
	}, tasktype.Policy{MaxAttempts: 3, BackoffMin: 10 * time.Millisecond, BackoffMax: 10 * time.Millisecond}), nil)

	job := h.enqueue(typ, 5, "", `{"report":42}`)
	last := h.waitDone(job)
	h.expectHistory(job, "enqueued started failed")
	if last.Attempt != 1 || last.Error != "report 42 does not exist" {
		t.Errorf("failed event %+v", last)
	}
	stop()
	h.expectNoDelivery()
	if n := len(seen.of(job.ID)); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
}

// testTimeout: an attempt that outlives its timeout has its context
// cancelled and fails, saying so.
func testTimeout(t *testing.T, open Open) {
	h := setup(t, open, time.Second)
	const typ, timeout = "contract_slow", 200 * time.Millisecond
	ended := make(chan error, 1)
	h.startWorker("w1", h.registry(typ, func(ctx context.Context, _ tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
		<-ctx.Done()
		ended <- ctx.Err()
		return tasktype.Result{}, ctx.Err()
	}, tasktype.Policy{MaxAttempts: 1, Timeout: timeout}), nil)

	job := h.enqueue(typ, 6, "", "")
	last := h.waitDone(job)
	hist := h.expectHistory(job, "enqueued started failed")
	if last.Attempt != 1 || !strings.Contains(last.Error, "timed out") || !strings.Contains(last.Error, timeout.String()) {
		t.Errorf("failed event %+v, want an error naming the %s timeout", last, timeout)
	}
	if took := last.Time.Sub(hist[1].Time); took < timeout || took > timeout+3*time.Second {
		t.Errorf("attempt took %s, want about %s", took, timeout)
	}
	if err := <-ended; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("handler's context ended with %v, want DeadlineExceeded", err)
	}
}

// testCancelQueued: a job cancelled before any worker took it never runs,
// and its work item does not linger.
func testCancelQueued(t *testing.T, open Open) {
	h := setup(t, open, time.Second)
	const typ = "contract_cancel_queued"
	reg, seen := h.counting(typ)

	job := h.enqueue(typ, 5, "", `{"n":1}`)
	e, err := control.New(h.b.Log).Cancel(h.ctx, 5, job.ID, tasktype.ByUser)
	if err != nil {
		t.Fatal(err)
	}
	if e.Kind != tasktype.EventCancelled || e.By != tasktype.ByUser || e.Seq <= job.EventSeq {
		t.Fatalf("cancel event %+v", e)
	}
	stop := h.startWorker("w1", reg, nil)
	// A job enqueued after it runs: the worker is taking jobs.
	marker := h.enqueue(typ, 5, "", `{"n":2}`)
	if last := h.waitDone(marker); last.Kind != tasktype.EventSucceeded {
		t.Fatalf("job enqueued after the cancelled one ended %+v", last)
	}
	// Not run: room for a broker that does not deliver in order.
	time.Sleep(h.lease)
	stop()
	if jobs := seen.of(job.ID); len(jobs) != 0 {
		t.Errorf("cancelled job's handler ran %d times", len(jobs))
	}
	h.expectHistory(job, "enqueued cancelled")
	h.expectNoDelivery()
}

// testCancelRunning: cancelling a running job ends its handler's context
// within a few lease renewals, and nothing is recorded after the cancel:
// whether it comes before the job's first heartbeat, with no start on
// record, or after it.
func testCancelRunning(t *testing.T, open Open) {
	for _, tc := range []struct {
		name  string
		lease time.Duration
		wait  bool // for the start to be recorded before cancelling
		want  string
	}{
		// A heartbeat of 1s: the cancel comes well before it.
		{"before the first heartbeat", 5 * time.Second, false, "enqueued cancelled"},
		{"after the first heartbeat", time.Second, true, "enqueued started cancelled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := setup(t, open, tc.lease)
			const typ = "contract_cancel_running"
			started := make(chan string, 1)
			ended := make(chan error, 1)
			stop := h.startWorker("w1", h.registry(typ, func(ctx context.Context, job tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
				started <- job.ID
				<-ctx.Done()
				ended <- ctx.Err()
				return tasktype.Result{}, ctx.Err()
			}, tasktype.Policy{}), nil)

			job := h.enqueue(typ, 5, "", `{"n":1}`)
			receive(h, started, "the handler to start")
			if tc.wait {
				h.waitLast(job, "its start recorded", func(e tasktype.Event) bool { return e.Kind == tasktype.EventStarted })
			}
			asked := time.Now()
			e, err := control.New(h.b.Log).Cancel(h.ctx, 5, job.ID, tasktype.ByUser)
			if err != nil {
				t.Fatal(err)
			}
			heartbeat := h.lease / 5
			err = receive(h, ended, "the handler's context to end")
			took := time.Since(asked)
			t.Logf("handler's context ended %s after the cancel (heartbeat %s): %v", took.Round(time.Millisecond), heartbeat, err)
			if limit := 5*heartbeat + time.Second; took > limit {
				t.Errorf("cancel took %s to reach the handler, want under %s", took, limit)
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("handler's context ended with %v, want Canceled", err)
			}
			stop()
			h.expectStored(job, tc.want)
			hist := h.expectHistory(job, tc.want)
			if c := hist[len(hist)-1]; c.Seq != e.Seq || c.By != tasktype.ByUser {
				t.Errorf("cancelled event %+v, want the one Cancel wrote (%d)", c, e.Seq)
			}
			h.expectNoDelivery()
		})
	}
}

// testDedupe: enqueues with the same key make one job, run once; another
// key or another user makes another.
func testDedupe(t *testing.T, open Open) {
	h := setup(t, open, time.Second)
	const typ, payload = "contract_dedupe", `{"form":"abc"}`
	reg, seen := h.counting(typ)

	first := h.enqueue(typ, 1, "form-abc", payload)
	second := h.enqueue(typ, 1, "form-abc", payload)
	if second.ID != first.ID || second.EventSeq != first.EventSeq || !second.EnqueuedAt.Equal(first.EnqueuedAt) {
		t.Fatalf("same key gave jobs %+v and %+v", first, second)
	}
	otherKey := h.enqueue(typ, 1, "form-def", payload)
	otherUser := h.enqueue(typ, 2, "form-abc", payload)
	if otherKey.ID == first.ID || otherUser.ID == first.ID || otherKey.ID == otherUser.ID {
		t.Fatalf("jobs %s, %s (other key), %s (other user) should differ", first.ID, otherKey.ID, otherUser.ID)
	}

	stop := h.startWorker("w1", reg, func(c *worker.Config) { c.Concurrency = 2 })
	for _, job := range []tasktype.Job{first, otherKey, otherUser} {
		if last := h.waitDone(job); last.Kind != tasktype.EventSucceeded {
			t.Fatalf("job %s ended %+v", job.ID, last)
		}
	}
	stop()
	h.expectNoDelivery()
	for _, job := range []tasktype.Job{first, otherKey, otherUser} {
		h.expectHistory(job, "enqueued started succeeded")
		if n := len(seen.of(job.ID)); n != 1 {
			t.Errorf("job %s ran %d times, want 1", job.ID, n)
		}
	}
}

// testShutdownHandsJobsBack: a worker told to stop gives a running job
// its grace, then hands it back, and another worker picks it up at once
// rather than after the lease.
func testShutdownHandsJobsBack(t *testing.T, open Open) {
	h := setup(t, open, 10*time.Second)
	const typ, grace = "contract_shutdown", 200 * time.Millisecond
	seen := newCalls()
	started := make(chan string, 1)
	reg := h.registry(typ, func(ctx context.Context, job tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
		if seen.add(job) == 1 {
			started <- job.ID
			<-ctx.Done()
			return tasktype.Result{}, ctx.Err()
		}
		return tasktype.Result{Summary: "resumed"}, nil
	}, tasktype.Policy{})
	stopA := h.startWorker("worker-a", reg, func(c *worker.Config) {
		c.Concurrency = 2
		c.ShutdownGrace = grace
	})

	job := h.enqueue(typ, 8, "", `{"n":1}`)
	receive(h, started, "the handler to start")
	asked := time.Now()
	stopA()
	stopped := time.Now()
	if took := stopped.Sub(asked); took < grace || took > grace+5*time.Second {
		t.Errorf("worker took %s to stop, want a little over its %s grace", took, grace)
	}
	hist := h.expectHistory(job, "enqueued started released")
	if e := hist[2]; e.Attempt != 1 || e.Worker != "worker-a" {
		t.Errorf("released event %+v, want attempt 1 by worker-a", e)
	}

	h.startWorker("worker-b", reg, nil)
	last := h.waitDone(job)
	hist = h.expectHistory(job, "enqueued started released started succeeded")
	// A released attempt runs again under the same number.
	again := hist[3]
	if again.Attempt != 1 || again.Worker != "worker-b" || last.Summary != "resumed" {
		t.Errorf("after the release: %+v then %+v, want attempt 1 again by worker-b", again, last)
	}
	wait := again.Time.Sub(stopped)
	t.Logf("handed-back job started again %s after worker-a stopped (lease %s)", wait.Round(time.Millisecond), h.lease)
	if wait > 5*time.Second {
		t.Errorf("handed-back job waited %s for another worker: it waited for its lease instead of being released", wait)
	}
	if n := len(seen.of(job.ID)); n != 2 {
		t.Errorf("handler ran %d times, want 2", n)
	}
}

// testManyWorkers: with many workers on one queue, every job runs once
// and ends with one outcome.
func testManyWorkers(t *testing.T, open Open) {
	h := setup(t, open, 2*time.Second)
	const typ, workers, concurrency, n = "contract_many", 4, 4, 300
	seen := newCalls()
	reg := h.registry(typ, func(ctx context.Context, job tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
		seen.add(job)
		select {
		case <-ctx.Done():
			return tasktype.Result{}, ctx.Err()
		case <-time.After(time.Duration(job.UserID%3) * time.Millisecond):
		}
		return tasktype.Result{Summary: job.ID}, nil
	}, tasktype.Policy{})
	var stops []func()
	for i := range workers {
		stops = append(stops, h.startWorker("w"+strconv.Itoa(i+1), reg, func(c *worker.Config) { c.Concurrency = concurrency }))
	}

	begin := time.Now()
	jobs := make([]tasktype.Job, n)
	ids := make(map[string]bool, n)
	for i := range jobs {
		jobs[i] = h.enqueue(typ, int64(1+i%10), "", fmt.Sprintf(`{"i":%d}`, i))
		if ids[jobs[i].ID] {
			t.Fatalf("job id %s issued twice", jobs[i].ID)
		}
		ids[jobs[i].ID] = true
	}
	for _, job := range jobs {
		if last := h.waitDone(job); last.Kind != tasktype.EventSucceeded || last.Summary != job.ID {
			t.Fatalf("job %s ended %+v", job.ID, last)
		}
	}
	t.Logf("%d jobs on %d workers × %d done in %s", n, workers, concurrency, time.Since(begin).Round(time.Millisecond))
	for _, stop := range stops {
		stop()
	}

	byWorker := map[string]int{}
	for _, job := range jobs {
		if calls := seen.of(job.ID); len(calls) != 1 {
			t.Errorf("job %s ran %d times, want 1", job.ID, len(calls))
		}
		hist := h.expectHistory(job, "enqueued started succeeded")
		byWorker[hist[1].Worker]++
	}
	t.Logf("jobs per worker: %v", byWorker)
	if len(byWorker) < 2 {
		t.Errorf("one worker ran every job (%v): the others got none", byWorker)
	}
	h.expectNoDelivery()
}

// testPayloadLimit: a payload one byte over the limit is refused, saying
// what the limit is; one at the limit arrives intact.
func testPayloadLimit(t *testing.T, open Open) {
	h := setup(t, open, time.Second)
	const typ = "contract_payload"
	tooBig := `"` + strings.Repeat("x", tasktype.MaxPayloadBytes-1) + `"`
	_, err := h.b.Transport.Enqueue(h.ctx, tasktype.EnqueueRequest{Type: typ, UserID: 1, Payload: json.RawMessage(tooBig)})
	if !errors.Is(err, tasktype.ErrPayloadTooLarge) {
		t.Fatalf("enqueue of %d bytes: %v, want ErrPayloadTooLarge", len(tooBig), err)
	}
	if !strings.Contains(err.Error(), strconv.Itoa(tasktype.MaxPayloadBytes)) {
		t.Errorf("error %q does not name the limit %d", err, tasktype.MaxPayloadBytes)
	}

	reg, seen := h.counting(typ)
	h.startWorker("w1", reg, nil)
	atLimit := `"` + strings.Repeat("y", tasktype.MaxPayloadBytes-2) + `"`
	job := h.enqueue(typ, 1, "", atLimit)
	if last := h.waitDone(job); last.Kind != tasktype.EventSucceeded {
		t.Fatalf("job at the payload limit ended %+v", last)
	}
	jobs := seen.of(job.ID)
	if len(jobs) != 1 {
		t.Fatalf("handler ran %d times, want 1", len(jobs))
	}
	if got := jobs[0].Payload; string(got) != atLimit {
		t.Errorf("handler got a payload of %d bytes, not the %d enqueued", len(got), len(atLimit))
	}
}

// testRetryByHand: a failed job retried with Control.Retry runs again,
// with a fresh allowance of attempts and its original payload.
func testRetryByHand(t *testing.T, open Open) {
	h := setup(t, open, time.Second)
	const typ, payload = "contract_fixable", `{"source":"garmin"}`
	var fixed atomic.Bool
	seen := newCalls()
	h.startWorker("w1", h.registry(typ, func(_ context.Context, job tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
		seen.add(job)
		if !fixed.Load() {
			return tasktype.Result{}, errors.New("source offline")
		}
		return tasktype.Result{Summary: "fixed"}, nil
	}, tasktype.Policy{MaxAttempts: 1}), nil)

	job := h.enqueue(typ, 6, "", payload)
	if last := h.waitDone(job); last.Kind != tasktype.EventFailed || last.Error != "source offline" {
		t.Fatalf("before the retry: %+v", last)
	}
	fixed.Store(true)
	retried, err := control.New(h.b.Log).Retry(h.ctx, 6, job.ID, tasktype.ByUser)
	if err != nil {
		t.Fatal(err)
	}
	if retried.Kind != tasktype.EventRetried || retried.By != tasktype.ByUser || string(retried.Payload) != payload {
		t.Fatalf("retried event %+v", retried)
	}
	last := h.waitLast(job, "finish after the retry", func(e tasktype.Event) bool { return e.Seq > retried.Seq && isTerminal(e.Kind) })
	if last.Kind != tasktype.EventSucceeded || last.Summary != "fixed" {
		t.Fatalf("after the retry: %+v", last)
	}
	hist := h.expectHistory(job, "enqueued started failed retried started succeeded")
	if e := hist[4]; e.Attempt != 2 || e.MaxAttempts != 2 {
		t.Errorf("start after the retry %+v, want attempt 2 of 2", e)
	}
	jobs := seen.of(job.ID)
	if len(jobs) != 2 {
		t.Fatalf("handler ran %d times, want 2", len(jobs))
	}
	if j := jobs[1]; j.Attempt != 2 || string(j.Payload) != payload || !j.EnqueuedAt.Equal(job.EnqueuedAt) {
		t.Errorf("retried attempt saw %+v, want attempt 2 of %+v", j, job)
	}
}

// testNextEndsWithItsContext: waiting on an empty queue ends with the
// caller's deadline, reported as such and not as a broker failure, soon
// after it passes.
func testNextEndsWithItsContext(t *testing.T, open Open) {
	h := setup(t, open, time.Second)
	q, err := h.b.Queue(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		ctx, cancel := context.WithTimeout(h.ctx, 100*time.Millisecond)
		start := time.Now()
		_, err := q.Next(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("try %d: Next on an empty queue returned %v, want context.DeadlineExceeded", i, err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("try %d: Next returned %s after a 100ms deadline", i, took)
		}
	}
}

// waitTimeout bounds every wait for a job or a handler.
const waitTimeout = 20 * time.Second

// slack allows for clocks read at slightly different moments.
const slack = 50 * time.Millisecond

// harness is one subtest's broker and the helpers that drive it.
type harness struct {
	t     *testing.T
	b     Driver
	lease time.Duration
	ctx   context.Context
}

func setup(t *testing.T, open Open, lease time.Duration) *harness {
	t.Helper()
	b := open(t, Options{Lease: lease})
	if b.Transport == nil || b.Log == nil || b.Queue == nil {
		t.Fatalf("open returned a driver missing a port: %+v", b)
	}
	return &harness{t: t, b: b, lease: lease, ctx: testsupport.Context(t)}
}

// registry returns a registry with one job type.
func (h *harness) registry(typ string, fn tasktype.HandlerFunc, p tasktype.Policy) *tasks.Registry {
	h.t.Helper()
	reg := tasks.NewRegistry()
	if err := reg.Register(typ, fn, p); err != nil {
		h.t.Fatal(err)
	}
	return reg
}

// counting returns a registry whose one job type succeeds at once, and
// the record of its calls.
func (h *harness) counting(typ string) (*tasks.Registry, *calls) {
	h.t.Helper()
	seen := newCalls()
	return h.registry(typ, func(_ context.Context, job tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
		seen.add(job)
		return tasktype.Result{}, nil
	}, tasktype.Policy{}), seen
}

// startWorker runs a worker on a queue of its own, as a newly started
// worker process would, until stop is called or the test ends. By
// default it runs one job at a time, renews leases five times per lease
// and has a second's shutdown grace; edit may change that.
func (h *harness) startWorker(name string, reg *tasks.Registry, edit func(*worker.Config)) (stop func()) {
	h.t.Helper()
	q, err := h.b.Queue(h.ctx)
	if err != nil {
		h.t.Fatalf("queue for worker %s: %v", name, err)
	}
	cfg := worker.Config{
		Queue:         q,
		Capabilities:  h.b.Transport.Capabilities(),
		Events:        h.b.Log,
		Results:       h.b.Log,
		Registry:      reg,
		Concurrency:   1,
		ExtendEvery:   h.lease / 5,
		ShutdownGrace: time.Second,
		Name:          name,
		Logger:        testsupport.Logger(h.t),
	}
	if edit != nil {
		edit(&cfg)
	}
	w, err := worker.New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil {
			h.t.Errorf("worker %s: %v", name, err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	h.t.Cleanup(stop)
	return stop
}

// enqueue enqueues a job from the web side and checks what it got back.
func (h *harness) enqueue(typ string, userID int64, key, payload string) tasktype.Job {
	h.t.Helper()
	job, err := h.b.Transport.Enqueue(h.ctx, tasktype.EnqueueRequest{Type: typ, UserID: userID, Key: key, Payload: json.RawMessage(payload)})
	if err != nil {
		h.t.Fatalf("enqueue %s: %v", typ, err)
	}
	if !tasktype.ValidID(job.ID) || job.Type != typ || job.UserID != userID || job.EventSeq == 0 || job.EnqueuedAt.IsZero() {
		h.t.Fatalf("enqueue %s returned %+v", typ, job)
	}
	return job
}

// take takes one delivery from a queue of its own, as a worker that then
// dies without a trace would, and checks that it is job's work item.
func (h *harness) take(job tasktype.Job) tasktype.Event {
	h.t.Helper()
	q, err := h.b.Queue(h.ctx)
	if err != nil {
		h.t.Fatalf("queue: %v", err)
	}
	ctx, cancel := context.WithTimeout(h.ctx, waitTimeout)
	defer cancel()
	d, err := q.Next(ctx)
	if err != nil {
		h.t.Fatalf("take job %s: %v", job.ID, err)
	}
	item := d.Item()
	if item.Kind != tasktype.EventEnqueued || item.JobID != job.ID || item.Seq != job.EventSeq || string(item.Payload) != string(job.Payload) {
		h.t.Fatalf("delivered item %+v, want the enqueued event of %+v", item, job)
	}
	return item
}

// expectNoDelivery takes from a queue of its own for a lease and a half,
// longer than any item handed out before could stay invisible, and fails
// if anything comes: every item delivered so far was acked for good.
func (h *harness) expectNoDelivery() {
	h.t.Helper()
	q, err := h.b.Queue(h.ctx)
	if err != nil {
		h.t.Fatalf("queue: %v", err)
	}
	// Stopped by a cancel rather than a deadline, as workers stop their
	// queues.
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	timer := time.AfterFunc(h.lease*3/2, cancel)
	defer timer.Stop()
	d, err := q.Next(ctx)
	if err == nil {
		item := d.Item()
		h.t.Fatalf("%s item of job %s (seq %d) delivered again after its job ended", item.Kind, item.JobID, item.Seq)
	}
	if ctx.Err() == nil {
		h.t.Fatalf("queue next: %v", err)
	}
}

// waitLast polls the job's newest event until cond holds.
func (h *harness) waitLast(job tasktype.Job, what string, cond func(tasktype.Event) bool) tasktype.Event {
	h.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		last, err := h.b.Log.Last(h.ctx, job.UserID, job.ID)
		if err == nil && cond(last) {
			return last
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("job %s (%s) did not %s within %s: last event %q, err %v", job.ID, job.Type, what, waitTimeout, last.Kind, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitDone waits for the job to end, and returns its outcome event.
func (h *harness) waitDone(job tasktype.Job) tasktype.Event {
	h.t.Helper()
	return h.waitLast(job, "finish", func(e tasktype.Event) bool { return isTerminal(e.Kind) })
}

// isTerminal reports whether a job whose newest event is of kind k is
// over, unless someone retries it by hand.
func isTerminal(k tasktype.EventKind) bool {
	return k == tasktype.EventSucceeded || k == tasktype.EventFailed || k == tasktype.EventCancelled
}

// expectHistory fails unless the job's event kinds, as people are shown
// them (tasktype.WithStarts: each attempt's start, whether recorded or
// carried by its outcome), are exactly want (space-separated, oldest
// first), and returns those events.
func (h *harness) expectHistory(job tasktype.Job, want string) []tasktype.Event {
	h.t.Helper()
	shown := tasktype.WithStarts(h.history(job))
	for i, e := range shown {
		if e.Kind == tasktype.EventStarted && (e.Time.IsZero() || e.Worker == "" || e.Attempt == 0) {
			h.t.Fatalf("history of job %s shows start %+v without its time, worker or attempt", job.ID, e)
		}
		if i > 0 && e.Time.Before(shown[i-1].Time) {
			h.t.Fatalf("history of job %s shows %s at %s before %s at %s", job.ID, e.Kind, e.Time, shown[i-1].Kind, shown[i-1].Time)
		}
	}
	if got := kindsOf(shown); got != want {
		h.t.Fatalf("history of job %s: %s, want %s (stored: %s)", job.ID, got, want, kindsOf(h.history(job)))
	}
	return shown
}

// expectStored fails unless the job's stored event kinds are exactly
// want: what the broker keeps, without the starts outcomes carry.
func (h *harness) expectStored(job tasktype.Job, want string) []tasktype.Event {
	h.t.Helper()
	hist := h.history(job)
	if got := kindsOf(hist); got != want {
		h.t.Fatalf("stored history of job %s: %s, want %s", job.ID, got, want)
	}
	return hist
}

// history reads the job's stored events and checks they are its own, in
// stream order.
func (h *harness) history(job tasktype.Job) []tasktype.Event {
	h.t.Helper()
	hist, err := h.b.Log.History(h.ctx, job.UserID, job.ID)
	if err != nil {
		h.t.Fatalf("history of job %s: %v", job.ID, err)
	}
	for i, e := range hist {
		if e.JobID != job.ID || e.UserID != job.UserID || e.JobType != job.Type {
			h.t.Fatalf("history of job %s holds %+v", job.ID, e)
		}
		if i > 0 && e.Seq <= hist[i-1].Seq {
			h.t.Fatalf("history of job %s out of order: %d after %d", job.ID, e.Seq, hist[i-1].Seq)
		}
	}
	return hist
}

// kindsOf names the kinds of events, leaving out progress reports: a
// worker repeats its job's latest one as a sign of life every third of
// its lease (testLeaseRenewal checks them), so how many a job has
// depends on how long it ran.
func kindsOf(events []tasktype.Event) string {
	kinds := make([]string, 0, len(events))
	for _, e := range events {
		if e.Kind != tasktype.EventProgress {
			kinds = append(kinds, string(e.Kind))
		}
	}
	return strings.Join(kinds, " ")
}

// kindsOfAll names the kinds of events, progress reports too.
func kindsOfAll(events []tasktype.Event) string {
	kinds := make([]string, len(events))
	for i, e := range events {
		kinds[i] = string(e.Kind)
	}
	return strings.Join(kinds, " ")
}

// readResult reads a stored result file whole.
func (h *harness) readResult(object string) string {
	h.t.Helper()
	rc, err := h.b.Log.Open(h.ctx, object)
	if err != nil {
		h.t.Fatalf("open result %s: %v", object, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		h.t.Fatalf("read result %s: %v", object, err)
	}
	return string(data)
}

// receive waits for a value on ch.
func receive[T any](h *harness, ch <-chan T, what string) T {
	h.t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		h.t.Fatalf("waited %s for %s", waitTimeout, what)
	}
	var zero T
	return zero
}

// calls records each handler call, by job id.
type calls struct {
	mu   sync.Mutex
	jobs map[string][]tasktype.Job
}

func newCalls() *calls { return &calls{jobs: make(map[string][]tasktype.Job)} }

// add records a call and returns how many calls the job has had.
func (c *calls) add(j tasktype.Job) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.jobs[j.ID] = append(c.jobs[j.ID], j)
	return len(c.jobs[j.ID])
}

// of returns the calls for one job, oldest first.
func (c *calls) of(id string) []tasktype.Job {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]tasktype.Job(nil), c.jobs[id]...)
}
