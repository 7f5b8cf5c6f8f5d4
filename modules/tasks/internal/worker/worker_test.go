package worker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/internal/driver"
	"github.com/otjhelper/otj/modules/tasks/internal/worker"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// Hand-written fakes of the worker's ports, for the paths a real broker
// cannot be made to take on demand.

type fakeDelivery struct {
	item                      tasktype.Event
	redelivered               bool
	extended, acked, released atomic.Int32
	delayed                   atomic.Int64 // last Delay, in ns
}

func (d *fakeDelivery) Item() tasktype.Event              { return d.item }
func (d *fakeDelivery) Redelivered() bool                 { return d.redelivered }
func (d *fakeDelivery) Extend(context.Context) error      { d.extended.Add(1); return nil }
func (d *fakeDelivery) Ack(context.Context) error         { d.acked.Add(1); return nil }
func (d *fakeDelivery) Release(ctx context.Context) error { d.released.Add(1); return nil }
func (d *fakeDelivery) Delay(_ context.Context, wait time.Duration) error {
	d.delayed.Store(int64(wait))
	return nil
}

type fakeQueue struct{ ch chan driver.Delivery }

func (q *fakeQueue) Next(ctx context.Context) (driver.Delivery, error) {
	select {
	case d := <-q.ch:
		return d, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// NextBatch hands out one delivery: the fake is a queue without
// Capabilities.BatchQueue.
func (q *fakeQueue) NextBatch(ctx context.Context, _ int) ([]driver.Delivery, error) {
	d, err := q.Next(ctx)
	if err != nil {
		return nil, err
	}
	return []driver.Delivery{d}, nil
}

// Lease is 0: each worker's own lease holds.
func (q *fakeQueue) Lease() time.Duration { return 0 }

// fakeEvents is an in-memory event log with the real one's conditional
// appends.
type fakeEvents struct {
	mu      sync.Mutex
	events  []tasktype.Event
	failFor tasktype.EventKind // Append of this kind fails
	// unreachable makes this many appends of failFor fail as if the
	// broker were down, then lets them through; 0 fails them for good.
	unreachable int
}

func (f *fakeEvents) Append(_ context.Context, e tasktype.Event, after uint64) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e.Kind == f.failFor {
		if f.unreachable == 0 {
			return 0, errors.New("stream unavailable")
		}
		if f.unreachable--; f.unreachable > 0 {
			return 0, fmt.Errorf("append: %w", tasktype.ErrUnavailable)
		}
	}
	if last := f.lastLocked(e.JobID); last.Seq != after {
		return 0, fmt.Errorf("append: %w", tasktype.ErrConflict)
	}
	e.Seq = uint64(len(f.events) + 1)
	f.events = append(f.events, e)
	return e.Seq, nil
}

func (f *fakeEvents) base() *fakeEvents { return f }

// put stores e unconditionally, as another process would have.
func (f *fakeEvents) put(e tasktype.Event) tasktype.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	e.Seq = uint64(len(f.events) + 1)
	f.events = append(f.events, e)
	return e
}

func (f *fakeEvents) lastLocked(jobID string) tasktype.Event {
	for i := len(f.events) - 1; i >= 0; i-- {
		if f.events[i].JobID == jobID {
			return f.events[i]
		}
	}
	return tasktype.Event{}
}

func (f *fakeEvents) Last(_ context.Context, _ int64, jobID string) (tasktype.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.lastLocked(jobID); e.Seq != 0 {
		return e, nil
	}
	return tasktype.Event{}, tasktype.ErrNotFound
}

func (f *fakeEvents) History(_ context.Context, _ int64, jobID string) ([]tasktype.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var h []tasktype.Event
	for _, e := range f.events {
		if e.JobID == jobID {
			h = append(h, e)
		}
	}
	if h == nil {
		return nil, tasktype.ErrNotFound
	}
	return h, nil
}

// kinds is the job's history as people are shown it: with the start of
// each attempt, recorded or carried by its outcome (tasktype.WithStarts).
func (f *fakeEvents) kinds(jobID string) []tasktype.EventKind {
	h, _ := f.History(context.Background(), 0, jobID)
	var ks []tasktype.EventKind
	for _, e := range tasktype.WithStarts(h) {
		ks = append(ks, e.Kind)
	}
	return ks
}

// stored is the job's history as stored: no start for an attempt that
// ended before its first heartbeat.
func (f *fakeEvents) stored(jobID string) []tasktype.EventKind {
	h, _ := f.History(context.Background(), 0, jobID)
	var ks []tasktype.EventKind
	for _, e := range h {
		ks = append(ks, e.Kind)
	}
	return ks
}

func (f *fakeEvents) last(jobID string) tasktype.Event {
	e, _ := f.Last(context.Background(), 0, jobID)
	return e
}

type memResults struct {
	mu    sync.Mutex
	files map[string][]byte
}

func (m *memResults) Put(_ context.Context, object, name, ct string, r io.Reader) (tasktype.ResultRef, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return tasktype.ResultRef{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[object] = b
	return tasktype.ResultRef{Object: object, Name: name, ContentType: ct, Size: uint64(len(b))}, nil
}

func (m *memResults) base() *memResults { return m }

func (m *memResults) Open(_ context.Context, object string) (*tasktype.StoredResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.files[object]
	if !ok {
		return nil, tasktype.ErrResultMissing
	}
	return &tasktype.StoredResult{ReadCloser: io.NopCloser(bytes.NewReader(b)), Size: uint64(len(b))}, nil
}

func (m *memResults) Delete(_ context.Context, object string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.files, object)
	return nil
}

func (m *memResults) has(object string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.files[object]
	return ok
}

type rig struct {
	queue   *fakeQueue
	events  *fakeEvents
	results *memResults
	reg     *tasks.Registry
	stop    context.CancelFunc
	done    chan struct{}
}

// newRig runs a worker on fakes. Tests that wait for an attempt's start
// to be its job's newest event give the worker a lease of a minute, so
// that no sign of life (a progress event every third of the lease) comes
// after it while they look.
func newRig(t *testing.T, cfg worker.Config) *rig {
	t.Helper()
	r := &rig{queue: &fakeQueue{ch: make(chan driver.Delivery)}, events: &fakeEvents{}, results: &memResults{files: map[string][]byte{}}, reg: tasks.NewRegistry()}
	if cfg.Events == nil {
		cfg.Events = r.events
	} else {
		r.events = cfg.Events.(interface{ base() *fakeEvents }).base()
	}
	if cfg.Results == nil {
		cfg.Results = r.results
	} else {
		r.results = cfg.Results.(interface{ base() *memResults }).base()
	}
	cfg.Queue, cfg.Registry = r.queue, r.reg
	if cfg.Logger == nil {
		cfg.Logger = testsupport.Logger(t)
	}
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.stop, r.done = cancel, make(chan struct{})
	go func() { defer close(r.done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// countRuns registers the job type "work" with a handler that succeeds
// at once, and returns how many times it has run.
func (r *rig) countRuns(p tasktype.Policy) *atomic.Int32 {
	runs := new(atomic.Int32)
	r.reg.Register("work", func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
		runs.Add(1)
		return tasktype.Result{}, nil
	}, p)
	return runs
}

// enqueue stores a job's enqueued event and returns a delivery of it.
func (r *rig) enqueue(id string) *fakeDelivery {
	e := r.events.put(tasktype.Event{ID: id + "-e", Kind: tasktype.EventEnqueued, JobID: id, JobType: "work", UserID: 1, Time: time.Now()})
	return &fakeDelivery{item: e}
}

func (r *rig) deliver(t *testing.T, d *fakeDelivery) {
	t.Helper()
	select {
	case r.queue.ch <- d:
	case <-time.After(10 * time.Second):
		t.Fatal("worker did not take the job")
	}
}

func assertKinds(t *testing.T, got []tasktype.EventKind, want ...tasktype.EventKind) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

var noRetry = tasktype.Policy{MaxAttempts: 1}

func TestRedeliveredJobWithOutcomeIsNotRunAgain(t *testing.T) {
	r := newRig(t, worker.Config{})
	runs := r.countRuns(tasktype.Policy{})
	first := r.enqueue("j1")
	r.deliver(t, first)
	testsupport.Eventually(t, 10*time.Second, "first delivery not acked", func() bool { return first.acked.Load() == 1 })
	// The ack was lost: the broker delivers the item again.
	second := &fakeDelivery{item: first.item, redelivered: true}
	r.deliver(t, second)
	testsupport.Eventually(t, 10*time.Second, "redelivery not acked", func() bool { return second.acked.Load() == 1 })
	if runs.Load() != 1 {
		t.Fatalf("handler ran %d times, want 1", runs.Load())
	}
	assertKinds(t, r.events.kinds("j1"), tasktype.EventEnqueued, tasktype.EventStarted, tasktype.EventSucceeded)
	// Done long before its first heartbeat: no start stored.
	assertKinds(t, r.events.stored("j1"), tasktype.EventEnqueued, tasktype.EventSucceeded)
}

func TestJobIsNotAckedUntilItsOutcomeIsStored(t *testing.T) {
	events := &fakeEvents{failFor: tasktype.EventSucceeded}
	r := newRig(t, worker.Config{Events: events})
	ran := make(chan struct{})
	r.reg.Register("work", func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
		close(ran)
		return tasktype.Result{}, nil
	}, tasktype.Policy{})
	d := r.enqueue("j2")
	r.deliver(t, d)
	<-ran
	r.stop()
	<-r.done
	if d.acked.Load() != 0 || d.released.Load() != 0 {
		t.Fatalf("acked %d released %d: a job whose outcome was not stored must stay with the broker", d.acked.Load(), d.released.Load())
	}
}

func TestOutcomeIsRecordedOnceTheBrokerIsBack(t *testing.T) {
	events := &fakeEvents{failFor: tasktype.EventSucceeded, unreachable: 3}
	// Renewals every 100 ms, so that the two seconds of outage see many:
	// at the default second, the second renewal raced the ack.
	r := newRig(t, worker.Config{Events: events, ExtendEvery: 100 * time.Millisecond, Lease: time.Minute})
	runs := r.countRuns(tasktype.Policy{})
	d := r.enqueue("outage")
	r.deliver(t, d)
	testsupport.Eventually(t, 20*time.Second, "job not acked after the outage", func() bool { return d.acked.Load() == 1 })
	assertKinds(t, r.events.kinds("outage"), tasktype.EventEnqueued, tasktype.EventStarted, tasktype.EventSucceeded)
	if runs.Load() != 1 || d.extended.Load() < 2 {
		t.Fatalf("ran %d times, lease renewed %d times while waiting for the broker", runs.Load(), d.extended.Load())
	}
}

func TestProgressIsRecordedWithTheHeartbeat(t *testing.T) {
	r := newRig(t, worker.Config{ExtendEvery: 10 * time.Millisecond})
	r.reg.Register("work", func(ctx context.Context, _ tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
		for i := 1; i <= 1000; i++ {
			out.Progress(i/10, "many small steps") // far more often than a heartbeat
		}
		out.Progress(150, strings.Repeat("x", 1000)) // out of range, too long
		deadline := time.Now().Add(10 * time.Second)
		for r.events.last("prog").Kind != tasktype.EventProgress && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		return tasktype.Result{}, nil
	}, tasktype.Policy{})
	d := r.enqueue("prog")
	r.deliver(t, d)
	testsupport.Eventually(t, 15*time.Second, "job not acked", func() bool { return d.acked.Load() == 1 })
	// One progress event for the burst, and the outcome appended after
	// it, on condition that it was still the job's newest event.
	assertKinds(t, r.events.kinds("prog"), tasktype.EventEnqueued, tasktype.EventStarted, tasktype.EventProgress, tasktype.EventSucceeded)
	h, _ := r.events.History(context.Background(), 0, "prog")
	if p := h[2]; p.Percent != 100 || len(p.Message) != 200 || p.Attempt != 1 || p.Worker == "" {
		t.Fatalf("progress event %+v", p)
	}
}

func TestLongJobKeepsItsLease(t *testing.T) {
	// A lease long enough that the job is not due a sign of life (see
	// TestSilentAttemptIsHeardFromEveryThirdOfItsLease): renewals alone
	// write nothing.
	r := newRig(t, worker.Config{ExtendEvery: 10 * time.Millisecond, Lease: time.Minute})
	d := r.enqueue("j3")
	r.reg.Register("work", func(ctx context.Context, _ tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
		deadline := time.Now().Add(10 * time.Second)
		for d.extended.Load() < 3 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		return tasktype.Result{}, ctx.Err()
	}, tasktype.Policy{})
	r.deliver(t, d)
	testsupport.Eventually(t, 15*time.Second, "job not acked", func() bool { return d.acked.Load() == 1 })
	if d.extended.Load() < 3 {
		t.Fatalf("lease renewed %d times during the job, want at least 3", d.extended.Load())
	}
	assertKinds(t, r.events.kinds("j3"), tasktype.EventEnqueued, tasktype.EventStarted, tasktype.EventSucceeded)
}

func TestShutdownFinishesWithinGraceAndHandsBackTheRest(t *testing.T) {
	r := newRig(t, worker.Config{Concurrency: 2, ShutdownGrace: 200 * time.Millisecond, Lease: time.Minute})
	stopping := make(chan struct{})
	r.reg.Register("work", func(ctx context.Context, j tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
		if j.ID == "quick" {
			<-stopping // still running when the stop comes, done within grace
			return tasktype.Result{Summary: "finished during shutdown"}, nil
		}
		<-ctx.Done() // never finishes by itself
		return tasktype.Result{}, ctx.Err()
	}, tasktype.Policy{})
	quick, stuck := r.enqueue("quick"), r.enqueue("stuck")
	r.deliver(t, quick)
	r.deliver(t, stuck)
	testsupport.Eventually(t, 10*time.Second, "jobs not started", func() bool {
		return r.events.last("quick").Kind == tasktype.EventStarted && r.events.last("stuck").Kind == tasktype.EventStarted
	})
	r.stop()
	close(stopping)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		t.Fatal("worker did not stop after its grace period")
	}
	if quick.acked.Load() != 1 {
		t.Errorf("job that finished within grace: acked %d", quick.acked.Load())
	}
	assertKinds(t, r.events.kinds("quick"), tasktype.EventEnqueued, tasktype.EventStarted, tasktype.EventSucceeded)
	if stuck.released.Load() != 1 || stuck.acked.Load() != 0 {
		t.Errorf("job still running after grace: released %d acked %d, want handed back", stuck.released.Load(), stuck.acked.Load())
	}
	assertKinds(t, r.events.kinds("stuck"), tasktype.EventEnqueued, tasktype.EventStarted, tasktype.EventReleased)
}

func TestShutdownDoesNotWaitForeverForAHandlerThatIgnoresCancel(t *testing.T) {
	r := newRig(t, worker.Config{ShutdownGrace: 50 * time.Millisecond, StoreTimeout: 100 * time.Millisecond, Lease: time.Minute})
	unblock := make(chan struct{})
	r.reg.Register("work", func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
		<-unblock // deaf to its context
		return tasktype.Result{}, nil
	}, tasktype.Policy{})
	d := r.enqueue("deaf")
	r.deliver(t, d)
	testsupport.Eventually(t, 10*time.Second, "job not started", func() bool { return r.events.last("deaf").Kind == tasktype.EventStarted })
	r.stop()
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run still waiting for a handler that ignores its context")
	}
	// Let the orphaned handler end, so the test leaves no goroutine; its
	// outcome still counts, since nothing else touched the job.
	close(unblock)
	testsupport.Eventually(t, 10*time.Second, "orphaned job not finished", func() bool { return d.acked.Load() == 1 })
}

func TestReleasedJobRunsTheSameAttemptAgain(t *testing.T) {
	r := newRig(t, worker.Config{})
	var attempts []int
	var mu sync.Mutex
	r.reg.Register("work", func(_ context.Context, j tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, j.Attempt)
		return tasktype.Result{}, nil
	}, tasktype.Policy{})
	d := r.enqueue("rel")
	st := r.events.put(tasktype.Event{Kind: tasktype.EventStarted, JobID: "rel", JobType: "work", UserID: 1, Attempt: 1, MaxAttempts: 3, Worker: "old"})
	r.events.put(tasktype.Event{Kind: tasktype.EventReleased, JobID: "rel", JobType: "work", UserID: 1, Attempt: st.Attempt, Worker: "old"})
	r.deliver(t, d)
	testsupport.Eventually(t, 10*time.Second, "job not acked", func() bool { return d.acked.Load() == 1 })
	assertKinds(t, r.events.kinds("rel"), tasktype.EventEnqueued, tasktype.EventStarted, tasktype.EventReleased, tasktype.EventStarted, tasktype.EventSucceeded)
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(attempts) != "[1]" {
		t.Fatalf("handler saw attempts %v, want [1]: a hand-back is not a failed attempt", attempts)
	}
}

func TestLostWorkerCountsAsAFailedAttempt(t *testing.T) {
	tests := []struct {
		name     string
		policy   tasktype.Policy
		wantKind tasktype.EventKind
	}{
		{"attempts left", tasktype.Policy{MaxAttempts: 3}, tasktype.EventRetrying},
		{"last attempt", noRetry, tasktype.EventFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, worker.Config{})
			runs := r.countRuns(tt.policy)
			d := r.enqueue("lost")
			// Attempt 1 started on a worker that reported progress, then
			// died: the broker delivers the item again once its lease
			// ran out.
			d.redelivered = true
			r.events.put(tasktype.Event{Kind: tasktype.EventStarted, JobID: "lost", JobType: "work", UserID: 1, Attempt: 1, MaxAttempts: tt.policy.MaxAttempts, Worker: "host:99"})
			r.events.put(tasktype.Event{Kind: tasktype.EventProgress, JobID: "lost", JobType: "work", UserID: 1, Attempt: 1, Percent: 40, Worker: "host:99"})
			r.deliver(t, d)
			testsupport.Eventually(t, 10*time.Second, "item not acked", func() bool { return d.acked.Load() == 1 })
			last := r.events.last("lost")
			if last.Kind != tt.wantKind || last.Attempt != 1 || last.Error != "worker host:99 stopped responding during attempt 1" {
				t.Fatalf("after a lost worker: %+v", last)
			}
			// Its owner is told what happened, not that the attempt
			// "did not succeed".
			if last.Message != tasktype.LostWorkerMessage {
				t.Errorf("the owner is told %q, want %q", last.Message, tasktype.LostWorkerMessage)
			}
			if runs.Load() != 0 {
				t.Fatalf("handler ran %d times; the next attempt is a new work item", runs.Load())
			}
		})
	}
}

// A running attempt whose handler reports nothing new is still heard
// from: its worker records its start with its lease, then repeats the
// latest progress report whenever a third of the lease has passed
// without an event of the attempt, so that a task page can tell a
// silent job from a dead worker (tasktype.Task.WorkerLost). It writes no
// more than that: not one event per heartbeat.
func TestSilentAttemptIsHeardFromEveryThirdOfItsLease(t *testing.T) {
	const every, lease = 30 * time.Millisecond, 900 * time.Millisecond
	r := newRig(t, worker.Config{ExtendEvery: every, Lease: lease})
	release := make(chan struct{})
	r.reg.Register("work", func(ctx context.Context, _ tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
		out.Progress(42, "128,000 of 300,000")
		select {
		case <-release:
		case <-ctx.Done():
		}
		return tasktype.Result{}, nil
	}, tasktype.Policy{})
	d := r.enqueue("silent")
	r.deliver(t, d)
	testsupport.Eventually(t, 10*time.Second, "job not started", func() bool { return r.events.last("silent").Kind != tasktype.EventEnqueued })
	// Eight leases of silence from the handler.
	time.Sleep(8 * lease)
	close(release)
	testsupport.Eventually(t, 10*time.Second, "job not done", func() bool { return d.acked.Load() == 1 })

	h, _ := r.events.History(context.Background(), 0, "silent")
	var times []time.Time
	for _, e := range h {
		switch e.Kind {
		case tasktype.EventStarted:
			if e.Lease != lease {
				t.Errorf("started event records lease %s, want %s", e.Lease, lease)
			}
			times = append(times, e.Time)
		case tasktype.EventProgress:
			if e.Percent != 42 || e.Message != "128,000 of 300,000" {
				t.Errorf("progress event %d%% %q, want the latest report repeated", e.Percent, e.Message)
			}
			times = append(times, e.Time)
		case tasktype.EventSucceeded:
			times = append(times, e.Time) // the silence before it counts too
		}
	}
	if len(times) < 3 {
		t.Fatalf("history %v: no sign of life after the start", r.events.stored("silent"))
	}
	// Each gap may pass a third of the lease by a heartbeat, and more on
	// a busy machine: what matters is that it stays well under the lease.
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap > 2*lease/3 {
			t.Errorf("%s without a sign of life (lease %s, heartbeat %s)", gap, lease, every)
		}
	}
	// One every third of a lease, not one per heartbeat.
	if n, beats := len(times), int(8*lease/every); n > beats/3 {
		t.Errorf("%d events in %d heartbeats: one per heartbeat, or near it", n, beats)
	}
	t.Logf("%d signs of life over %s, lease %s", len(times), 8*lease, lease)
}

// A second copy of an item, delivered for the first time while another
// worker runs its attempt (a broker may send one twice), is dropped: the
// attempt is not judged lost, and its worker goes on.
func TestFirstDeliveryOfACopyLeavesTheRunningAttemptAlone(t *testing.T) {
	r := newRig(t, worker.Config{})
	runs := r.countRuns(tasktype.Policy{})
	d := r.enqueue("copy")
	r.events.put(tasktype.Event{Kind: tasktype.EventStarted, JobID: "copy", JobType: "work", UserID: 1, Attempt: 1, Worker: "host:7"})
	r.deliver(t, d)
	testsupport.Eventually(t, 10*time.Second, "copy not acked", func() bool { return d.acked.Load() == 1 })
	assertKinds(t, r.events.kinds("copy"), tasktype.EventEnqueued, tasktype.EventStarted)
	if runs.Load() != 0 {
		t.Fatalf("handler ran %d times for a copy", runs.Load())
	}
}

func TestRetryBeforeItsTimeIsPutOff(t *testing.T) {
	r := newRig(t, worker.Config{})
	runs := r.countRuns(tasktype.Policy{})
	r.enqueue("early")
	r.events.put(tasktype.Event{Kind: tasktype.EventStarted, JobID: "early", JobType: "work", UserID: 1, Attempt: 1, MaxAttempts: 3})
	retry := r.events.put(tasktype.Event{Kind: tasktype.EventRetrying, JobID: "early", JobType: "work", UserID: 1, Attempt: 1, MaxAttempts: 3,
		Error: "boom", RetryAt: time.Now().Add(time.Hour)})
	d := &fakeDelivery{item: retry}
	r.deliver(t, d)
	testsupport.Eventually(t, 10*time.Second, "early retry not put off", func() bool { return d.delayed.Load() != 0 })
	if wait := time.Duration(d.delayed.Load()); wait < 59*time.Minute || wait > time.Hour {
		t.Fatalf("delayed by %s, want the hour until its retry time", wait)
	}
	if runs.Load() != 0 || d.acked.Load() != 0 || r.events.last("early").Seq != retry.Seq {
		t.Fatalf("an early retry ran (%d) or was acked (%d) or changed the job", runs.Load(), d.acked.Load())
	}
}

func TestTakeoverStopsTheRunningAttempt(t *testing.T) {
	r := newRig(t, worker.Config{ExtendEvery: 10 * time.Millisecond, Lease: time.Minute})
	stopped := make(chan error, 1)
	r.reg.Register("work", func(ctx context.Context, _ tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
		w, _ := out.Create("x.txt", "text/plain")
		io.WriteString(w, "x")
		<-ctx.Done()
		stopped <- ctx.Err()
		return tasktype.Result{Summary: "ignored its context"}, nil
	}, tasktype.Policy{})
	d := r.enqueue("taken")
	r.deliver(t, d)
	testsupport.Eventually(t, 10*time.Second, "job not started", func() bool { return r.events.last("taken").Kind == tasktype.EventStarted })
	// Another worker judged this one lost and moved the job on, and its
	// attempt 2 has already stored a result.
	r.events.put(tasktype.Event{Kind: tasktype.EventRetrying, JobID: "taken", JobType: "work", UserID: 1, Attempt: 1, Error: "worker x stopped responding"})
	r.results.Put(context.Background(), "taken-a2", "x.txt", "text/plain", strings.NewReader("attempt 2"))
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the attempt's context was not cancelled after the takeover")
	}
	r.stop()
	<-r.done
	assertKinds(t, r.events.kinds("taken"), tasktype.EventEnqueued, tasktype.EventStarted, tasktype.EventRetrying)
	if r.results.has("taken-a1") {
		t.Error("the superseded attempt's result file was kept")
	}
	if !r.results.has("taken-a2") {
		t.Error("the superseded attempt deleted the result of the attempt that took over")
	}
}

func TestPanicFailsTheJobNotTheWorker(t *testing.T) {
	var logs testsupport.Buffer
	r := newRig(t, worker.Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	r.reg.Register("work", func(_ context.Context, j tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
		if j.ID == "bad" {
			w, _ := out.Create("x.txt", "text/plain")
			io.WriteString(w, "partial")
			panic("handler bug")
		}
		w, _ := out.Create("x.txt", "text/plain")
		io.WriteString(w, "whole")
		return tasktype.Result{}, nil
	}, noRetry)
	bad, good := r.enqueue("bad"), r.enqueue("good")
	r.deliver(t, bad)
	r.deliver(t, good)
	testsupport.Eventually(t, 10*time.Second, "jobs not acked", func() bool { return bad.acked.Load() == 1 && good.acked.Load() == 1 })
	out := r.events.last("bad")
	if out.Kind != tasktype.EventFailed || out.Error != "panic: handler bug" || out.Result != nil {
		t.Fatalf("outcome of the panicking job: %+v", out)
	}
	if r.results.has("bad-a1") {
		t.Error("the panicking job's partial file was stored")
	}
	// The stack goes to the log, down to the handler's own frame.
	if l := logs.String(); !strings.Contains(l, `"msg":"handler panicked"`) || !strings.Contains(l, "TestPanicFailsTheJobNotTheWorker") {
		t.Errorf("no stack of the panic in the log:\n%s", l)
	}
	if string(r.results.files["good-a1"]) != "whole" {
		t.Errorf("next job's file %q", r.results.files["good-a1"])
	}
}

// deadlineEvents fails any write whose context has already ended, as a
// real broker would.
type deadlineEvents struct{ fakeEvents }

func (f *deadlineEvents) Append(ctx context.Context, e tasktype.Event, after uint64) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return f.fakeEvents.Append(ctx, e, after)
}

func TestJobLongerThanStoreTimeoutStillRecordsItsOutcome(t *testing.T) {
	events := &deadlineEvents{}
	q := &fakeQueue{ch: make(chan driver.Delivery)}
	reg := tasks.NewRegistry()
	reg.Register("work", func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
		time.Sleep(200 * time.Millisecond) // four store timeouts
		return tasktype.Result{}, nil
	}, tasktype.Policy{})
	w, err := worker.New(worker.Config{Queue: q, Events: events, Results: &memResults{files: map[string][]byte{}},
		Registry: reg, StoreTimeout: 50 * time.Millisecond, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	testsupport.Go(t, func(ctx context.Context) { w.Run(ctx) })
	item := events.put(tasktype.Event{Kind: tasktype.EventEnqueued, JobID: "long", JobType: "work", UserID: 1, Time: time.Now()})
	d := &fakeDelivery{item: item}
	q.ch <- d
	testsupport.Eventually(t, 10*time.Second, "long job never acked", func() bool { return d.acked.Load() == 1 })
	assertKinds(t, events.kinds("long"), tasktype.EventEnqueued, tasktype.EventStarted, tasktype.EventSucceeded)
}

// quick registers the job type "quick", which succeeds at once, and
// delivers one: with every other slot busy, the worker takes it only once
// the delivery before it is done with.
func (r *rig) quick(t *testing.T) *fakeDelivery {
	t.Helper()
	r.reg.Register("quick", func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
		return tasktype.Result{}, nil
	}, tasktype.Policy{})
	e := r.events.put(tasktype.Event{ID: "quick-e", Kind: tasktype.EventEnqueued, JobID: "quick", JobType: "quick", UserID: 1, Time: time.Now()})
	d := &fakeDelivery{item: e}
	r.deliver(t, d)
	testsupport.Eventually(t, 10*time.Second, "quick job not acked", func() bool { return d.acked.Load() == 1 })
	return d
}

// A broker that keeps one lease per item hands out a first delivery of an
// item whose attempt has started only when it forgot the first (a server
// killed before it wrote its consumer's state down). There is no other
// copy to fall back on, so the worker neither drops nor judges it: it
// leaves it with the broker, where the attempt's worker keeps it or its
// lease runs out and it comes back as a redelivery.
func TestForgottenDeliveryIsLeftWithTheBroker(t *testing.T) {
	// A transport that keeps one lease per work item, as JetStream does.
	r := newRig(t, worker.Config{Concurrency: 1, Capabilities: driver.Capabilities{ItemLease: true}})
	runs := r.countRuns(tasktype.Policy{})
	d := r.enqueue("forgotten")
	r.events.put(tasktype.Event{Kind: tasktype.EventStarted, JobID: "forgotten", JobType: "work", UserID: 1, Attempt: 1, Worker: "host:7"})
	r.deliver(t, d)
	r.quick(t)
	if d.acked.Load() != 0 || d.delayed.Load() != 0 || d.released.Load() != 0 {
		t.Fatalf("forgotten delivery acked %d, delayed %s, released %d times; want it left alone", d.acked.Load(), time.Duration(d.delayed.Load()), d.released.Load())
	}
	assertKinds(t, r.events.kinds("forgotten"), tasktype.EventEnqueued, tasktype.EventStarted)
	if runs.Load() != 0 {
		t.Fatalf("handler ran %d times for a forgotten delivery", runs.Load())
	}
}

// A worker whose lease ran out while the broker was away, and which is
// handed its own running attempt's item again, leaves it: the attempt
// goes on and records its own outcome, instead of the worker recording
// itself as lost.
func TestRedeliveryOfItsOwnRunningAttemptIsLeftAlone(t *testing.T) {
	r := newRig(t, worker.Config{Concurrency: 2, ExtendEvery: 20 * time.Millisecond, Lease: time.Minute})
	release := make(chan struct{})
	r.reg.Register("work", func(ctx context.Context, _ tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
		select {
		case <-release:
			return tasktype.Result{}, nil
		case <-ctx.Done():
			return tasktype.Result{}, ctx.Err()
		}
	}, tasktype.Policy{})
	d := r.enqueue("mine")
	r.deliver(t, d)
	testsupport.Eventually(t, 10*time.Second, "attempt never started", func() bool { return r.events.last("mine").Kind == tasktype.EventStarted })
	again := &fakeDelivery{item: d.item, redelivered: true}
	r.deliver(t, again)
	r.quick(t)
	close(release)
	testsupport.Eventually(t, 10*time.Second, "running attempt not acked", func() bool { return d.acked.Load() == 1 })
	assertKinds(t, r.events.kinds("mine"), tasktype.EventEnqueued, tasktype.EventStarted, tasktype.EventSucceeded)
	if again.acked.Load() != 0 || again.delayed.Load() != 0 || again.released.Load() != 0 {
		t.Fatalf("redelivery of its own attempt acked %d, delayed %s, released %d times; want it left alone", again.acked.Load(), time.Duration(again.delayed.Load()), again.released.Load())
	}
}

// hangingEvents holds every append until open is closed, or the write's
// context ends, as a log whose server is frozen does.
type hangingEvents struct {
	fakeEvents
	open chan struct{}
}

func (f *hangingEvents) Append(ctx context.Context, e tasktype.Event, after uint64) (uint64, error) {
	select {
	case <-f.open:
	case <-ctx.Done():
		return 0, fmt.Errorf("append: %w: %w", tasktype.ErrUnavailable, ctx.Err())
	}
	return f.fakeEvents.Append(ctx, e, after)
}

// A heartbeat's event write that hangs (the log's host frozen) must not
// hold up the lease renewals: where the queue is elsewhere (Redis) the
// lease would run out while the attempt runs, and another worker take it
// over.
func TestLeaseIsRenewedWhileTheLogHangs(t *testing.T) {
	events := &hangingEvents{open: make(chan struct{})}
	q := &fakeQueue{ch: make(chan driver.Delivery)}
	reg := tasks.NewRegistry()
	var d *fakeDelivery
	renewed := make(chan int32, 1)
	reg.Register("work", func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
		deadline := time.Now().Add(5 * time.Second)
		for d.extended.Load() < 10 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		renewed <- d.extended.Load()
		return tasktype.Result{}, nil
	}, tasktype.Policy{})
	w, err := worker.New(worker.Config{Queue: q, Events: events, Results: &memResults{files: map[string][]byte{}},
		Registry: reg, ExtendEvery: 20 * time.Millisecond, StoreTimeout: 10 * time.Second, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	testsupport.Go(t, func(ctx context.Context) { w.Run(ctx) })
	item := events.put(tasktype.Event{Kind: tasktype.EventEnqueued, JobID: "frozen", JobType: "work", UserID: 1, Time: time.Now()})
	d = &fakeDelivery{item: item}
	q.ch <- d
	var n int32
	select {
	case n = <-renewed:
	case <-time.After(10 * time.Second):
		t.Fatal("handler never ran")
	}
	close(events.open)
	testsupport.Eventually(t, 10*time.Second, "job never acked", func() bool { return d.acked.Load() == 1 })
	if n < 10 {
		t.Fatalf("lease renewed %d times while the log hung, want at least 10", n)
	}
	if last := events.last("frozen"); last.Kind != tasktype.EventSucceeded || last.Attempt != 1 {
		t.Errorf("job ended with %+v, want attempt 1 succeeded", last)
	}
}
