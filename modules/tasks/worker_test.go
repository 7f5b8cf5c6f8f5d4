package tasks_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/platform/testsupport"
)

// Hand-written fakes of the worker's ports, for the paths a real broker
// cannot be made to take on demand.

type fakeDelivery struct {
	job                       tasks.Job
	attempt                   int
	extended, acked, released atomic.Int32
}

func (d *fakeDelivery) Job() tasks.Job                    { return d.job }
func (d *fakeDelivery) Attempt() int                      { return d.attempt }
func (d *fakeDelivery) Extend(context.Context) error      { d.extended.Add(1); return nil }
func (d *fakeDelivery) Ack(context.Context) error         { d.acked.Add(1); return nil }
func (d *fakeDelivery) Release(ctx context.Context) error { d.released.Add(1); return nil }

type fakeQueue struct{ ch chan tasks.Delivery }

func (q *fakeQueue) Next(ctx context.Context) (tasks.Delivery, error) {
	select {
	case d := <-q.ch:
		return d, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type fakeEvents struct {
	mu      sync.Mutex
	events  []tasks.Event
	failFor tasks.EventKind // Append of this kind fails
}

func (f *fakeEvents) Append(_ context.Context, e tasks.Event) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e.Kind == f.failFor {
		return 0, errors.New("stream unavailable")
	}
	f.events = append(f.events, e)
	return uint64(len(f.events)), nil
}

func (f *fakeEvents) Outcome(_ context.Context, j tasks.Job) (*tasks.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.events {
		if e := f.events[i]; e.JobID == j.ID && (e.Kind == tasks.EventSucceeded || e.Kind == tasks.EventFailed) {
			return &e, nil
		}
	}
	return nil, nil
}

func (f *fakeEvents) kinds(jobID string) []tasks.EventKind {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ks []tasks.EventKind
	for _, e := range f.events {
		if e.JobID == jobID {
			ks = append(ks, e.Kind)
		}
	}
	return ks
}

type memResults struct {
	mu    sync.Mutex
	files map[string][]byte
}

func (m *memResults) Put(_ context.Context, object, name, ct string, r io.Reader) (tasks.ResultRef, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return tasks.ResultRef{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[object] = b
	return tasks.ResultRef{Object: object, Name: name, ContentType: ct, Size: uint64(len(b))}, nil
}

func (m *memResults) Open(_ context.Context, object string) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return io.NopCloser(bytes.NewReader(m.files[object])), nil
}

type rig struct {
	queue   *fakeQueue
	events  *fakeEvents
	results *memResults
	reg     *tasks.Registry
	stop    context.CancelFunc
	done    chan struct{}
}

func newRig(t *testing.T, cfg tasks.WorkerConfig) *rig {
	t.Helper()
	r := &rig{queue: &fakeQueue{ch: make(chan tasks.Delivery)}, events: &fakeEvents{}, results: &memResults{files: map[string][]byte{}}, reg: tasks.NewRegistry()}
	if cfg.Events == nil {
		cfg.Events = r.events
	} else {
		r.events = cfg.Events.(*fakeEvents)
	}
	cfg.Queue, cfg.Results, cfg.Registry, cfg.Logger = r.queue, r.results, r.reg, testsupport.Logger(t)
	w, err := tasks.NewWorker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.stop, r.done = cancel, make(chan struct{})
	go func() { defer close(r.done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

func (r *rig) deliver(t *testing.T, d *fakeDelivery) {
	t.Helper()
	select {
	case r.queue.ch <- d:
	case <-time.After(10 * time.Second):
		t.Fatal("worker did not take the job")
	}
}

func job(id string) tasks.Job { return tasks.Job{ID: id, Type: "work", UserID: 1} }

func TestRedeliveredJobWithOutcomeIsNotRunAgain(t *testing.T) {
	r := newRig(t, tasks.WorkerConfig{})
	var runs atomic.Int32
	r.reg.Register("work", func(context.Context, tasks.Job, tasks.Output) (tasks.Result, error) {
		runs.Add(1)
		return tasks.Result{}, nil
	})
	first := &fakeDelivery{job: job("j1"), attempt: 1}
	r.deliver(t, first)
	testsupport.Eventually(t, 10*time.Second, "first delivery not acked", func() bool { return first.acked.Load() == 1 })
	// The ack was lost: the broker delivers the job again.
	second := &fakeDelivery{job: job("j1"), attempt: 2}
	r.deliver(t, second)
	testsupport.Eventually(t, 10*time.Second, "redelivery not acked", func() bool { return second.acked.Load() == 1 })
	if runs.Load() != 1 {
		t.Fatalf("handler ran %d times, want 1", runs.Load())
	}
	if got := r.events.kinds("j1"); len(got) != 2 || got[0] != tasks.EventStarted || got[1] != tasks.EventSucceeded {
		t.Fatalf("events %v, want [started succeeded]", got)
	}
}

func TestJobIsNotAckedUntilItsOutcomeIsStored(t *testing.T) {
	events := &fakeEvents{failFor: tasks.EventSucceeded}
	r := newRig(t, tasks.WorkerConfig{Events: events})
	ran := make(chan struct{})
	r.reg.Register("work", func(context.Context, tasks.Job, tasks.Output) (tasks.Result, error) {
		close(ran)
		return tasks.Result{}, nil
	})
	d := &fakeDelivery{job: job("j2"), attempt: 1}
	r.deliver(t, d)
	<-ran
	r.stop()
	<-r.done
	if d.acked.Load() != 0 || d.released.Load() != 0 {
		t.Fatalf("acked %d released %d: a job whose outcome was not stored must stay with the broker", d.acked.Load(), d.released.Load())
	}
}

func TestLongJobKeepsItsLease(t *testing.T) {
	r := newRig(t, tasks.WorkerConfig{ExtendEvery: 10 * time.Millisecond})
	d := &fakeDelivery{job: job("j3"), attempt: 1}
	r.reg.Register("work", func(ctx context.Context, _ tasks.Job, _ tasks.Output) (tasks.Result, error) {
		deadline := time.Now().Add(10 * time.Second)
		for d.extended.Load() < 3 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		return tasks.Result{}, nil
	})
	r.deliver(t, d)
	testsupport.Eventually(t, 15*time.Second, "job not acked", func() bool { return d.acked.Load() == 1 })
	if d.extended.Load() < 3 {
		t.Fatalf("lease renewed %d times during the job, want at least 3", d.extended.Load())
	}
}

func TestShutdownFinishesWithinGraceAndHandsBackTheRest(t *testing.T) {
	r := newRig(t, tasks.WorkerConfig{Concurrency: 2, ShutdownGrace: 200 * time.Millisecond})
	stopping := make(chan struct{})
	r.reg.Register("work", func(ctx context.Context, j tasks.Job, _ tasks.Output) (tasks.Result, error) {
		if j.ID == "quick" {
			<-stopping // still running when the stop comes, done within grace
			return tasks.Result{Summary: "finished during shutdown"}, nil
		}
		<-ctx.Done() // never finishes by itself
		return tasks.Result{}, ctx.Err()
	})
	quick := &fakeDelivery{job: job("quick"), attempt: 1}
	stuck := &fakeDelivery{job: job("stuck"), attempt: 1}
	r.deliver(t, quick)
	r.deliver(t, stuck)
	testsupport.Eventually(t, 10*time.Second, "jobs not started", func() bool {
		return len(r.events.kinds("quick")) == 1 && len(r.events.kinds("stuck")) == 1
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
	if stuck.released.Load() != 1 || stuck.acked.Load() != 0 {
		t.Errorf("job still running after grace: released %d acked %d, want handed back", stuck.released.Load(), stuck.acked.Load())
	}
	if got := r.events.kinds("stuck"); len(got) != 1 {
		t.Errorf("job handed back has events %v, want only started (no failure)", got)
	}
}

func TestPanicFailsTheJobNotTheWorker(t *testing.T) {
	r := newRig(t, tasks.WorkerConfig{})
	r.reg.Register("work", func(_ context.Context, j tasks.Job, out tasks.Output) (tasks.Result, error) {
		if j.ID == "bad" {
			w, _ := out.Create("x.txt", "text/plain")
			io.WriteString(w, "partial")
			panic("handler bug")
		}
		w, _ := out.Create("x.txt", "text/plain")
		io.WriteString(w, "whole")
		return tasks.Result{}, nil
	})
	bad := &fakeDelivery{job: job("bad"), attempt: 1}
	good := &fakeDelivery{job: job("good"), attempt: 1}
	r.deliver(t, bad)
	r.deliver(t, good)
	testsupport.Eventually(t, 10*time.Second, "jobs not acked", func() bool { return bad.acked.Load() == 1 && good.acked.Load() == 1 })
	out, _ := r.events.Outcome(context.Background(), job("bad"))
	if out == nil || out.Kind != tasks.EventFailed || out.Error != "panic: handler bug" || out.Result != nil {
		t.Fatalf("outcome of the panicking job: %+v", out)
	}
	if _, stored := r.results.files["bad"]; stored {
		t.Error("the panicking job's partial file was stored")
	}
	if string(r.results.files["good"]) != "whole" {
		t.Errorf("next job's file %q", r.results.files["good"])
	}
}

// deadlineEvents fails any write whose context has already ended, as a
// real broker would.
type deadlineEvents struct{ fakeEvents }

func (f *deadlineEvents) Append(ctx context.Context, e tasks.Event) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return f.fakeEvents.Append(ctx, e)
}

func TestJobLongerThanStoreTimeoutStillRecordsItsOutcome(t *testing.T) {
	events := &deadlineEvents{}
	q := &fakeQueue{ch: make(chan tasks.Delivery)}
	reg := tasks.NewRegistry()
	reg.Register("work", func(context.Context, tasks.Job, tasks.Output) (tasks.Result, error) {
		time.Sleep(200 * time.Millisecond) // four store timeouts
		return tasks.Result{}, nil
	})
	w, err := tasks.NewWorker(tasks.WorkerConfig{Queue: q, Events: events, Results: &memResults{files: map[string][]byte{}},
		Registry: reg, StoreTimeout: 50 * time.Millisecond, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	testsupport.Go(t, func(ctx context.Context) { w.Run(ctx) })
	d := &fakeDelivery{job: job("long"), attempt: 1}
	q.ch <- d
	testsupport.Eventually(t, 10*time.Second, "long job never acked", func() bool { return d.acked.Load() == 1 })
	if got := events.kinds("long"); len(got) != 2 || got[1] != tasks.EventSucceeded {
		t.Fatalf("events %v, want [started succeeded]", got)
	}
}
