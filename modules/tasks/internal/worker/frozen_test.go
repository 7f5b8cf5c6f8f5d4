package worker_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks/internal/worker"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// What a worker sees while the broker's host is frozen and resumes, and
// must not take for a worker that died.

// A redelivery whose attempt's newest event is older than a lease is
// what a broker frozen for longer than the lease hands out when it
// resumes, though the attempt's worker is alive: the worker given it
// waits for a sign of life before judging, and leaves the attempt alone
// when one comes, whether the attempt's start is on record or not.
func TestRedeliveryOfAnAttemptStillHeardFromIsLeftAlone(t *testing.T) {
	tests := []struct {
		name  string
		prior []tasktype.EventKind // the attempt's events on record before the redelivery
		sign  tasktype.EventKind   // what the attempt's worker writes once the broker resumes
	}{
		{"start on record", []tasktype.EventKind{tasktype.EventStarted}, tasktype.EventProgress},
		{"progress on record", []tasktype.EventKind{tasktype.EventStarted, tasktype.EventProgress}, tasktype.EventProgress},
		{"nothing on record yet", nil, tasktype.EventStarted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const lease = 400 * time.Millisecond
			r := newRig(t, worker.Config{ExtendEvery: lease / 5, Lease: lease})
			runs := r.countRuns(tasktype.Policy{MaxAttempts: 3})
			d := r.enqueue("alive")
			// Due, and handed out first, two leases ago.
			d.item.Time = time.Now().Add(-2 * lease)
			d.redelivered = true
			old := time.Now().Add(-2 * lease)
			for _, k := range tt.prior {
				r.events.put(tasktype.Event{Kind: k, JobID: "alive", JobType: "work", UserID: 1, Attempt: 1, MaxAttempts: 3, Worker: "host:99", Time: old, Lease: lease})
			}
			r.deliver(t, d)
			// The attempt's worker is heard from once the broker is
			// back: a heartbeat behind, as after a freeze.
			time.Sleep(lease / 5)
			r.events.put(tasktype.Event{Kind: tt.sign, JobID: "alive", JobType: "work", UserID: 1, Attempt: 1, MaxAttempts: 3, Worker: "host:99", Time: time.Now(), Lease: lease})
			r.quickAfter(t, 3*lease)
			want := append([]tasktype.EventKind{tasktype.EventEnqueued}, tt.prior...)
			assertKinds(t, r.events.stored("alive"), append(want, tt.sign)...)
			if runs.Load() != 0 || d.acked.Load() != 0 || d.released.Load() != 0 || d.delayed.Load() != 0 {
				t.Fatalf("handler ran %d times, item acked %d, released %d, delayed %s: want it left with the attempt's worker",
					runs.Load(), d.acked.Load(), d.released.Load(), time.Duration(d.delayed.Load()))
			}
			if d.extended.Load() == 0 {
				t.Error("the item's lease was not renewed while the worker listened for the attempt")
			}
		})
	}
}

// quickAfter waits for, then runs, a job that succeeds at once, so that
// the delivery before it has been decided by the time it returns (the
// rig's worker runs one job at a time).
func (r *rig) quickAfter(t *testing.T, wait time.Duration) {
	t.Helper()
	time.Sleep(wait)
	r.quick(t)
}

// An attempt's start or progress write whose reply was lost (the log's
// host froze after storing it) is still the attempt's own: the attempt
// goes on and records its outcome, rather than taking itself for one
// taken over and throwing its work away.
func TestEventStoredWithoutAReplyIsStillTheAttempts(t *testing.T) {
	for _, kind := range []tasktype.EventKind{tasktype.EventStarted, tasktype.EventProgress} {
		t.Run(string(kind), func(t *testing.T) {
			events := &lostReplyEvents{kind: kind}
			rr := newRig(t, worker.Config{Events: events, ExtendEvery: 20 * time.Millisecond, Lease: time.Minute})
			var runs atomic.Int32
			rr.reg.Register("work", func(ctx context.Context, _ tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
				runs.Add(1)
				out.Progress(50, "half")
				deadline := time.Now().Add(10 * time.Second)
				for events.lost.Load() == 0 && time.Now().Before(deadline) && ctx.Err() == nil {
					time.Sleep(5 * time.Millisecond)
				}
				time.Sleep(100 * time.Millisecond) // a few heartbeats after the lost reply
				return tasktype.Result{}, ctx.Err()
			}, tasktype.Policy{})
			e := events.put(tasktype.Event{ID: "kept-e", Kind: tasktype.EventEnqueued, JobID: "kept", JobType: "work", UserID: 1, Time: time.Now()})
			d := &fakeDelivery{item: e}
			rr.deliver(t, d)
			testsupport.Eventually(t, 10*time.Second, "job never acked", func() bool { return d.acked.Load() == 1 })
			if events.lost.Load() == 0 {
				t.Fatalf("no %s reply was lost: the test tested nothing", kind)
			}
			if last := events.last("kept"); last.Kind != tasktype.EventSucceeded || runs.Load() != 1 {
				t.Fatalf("job ended %s after %d runs, history %v: want succeeded, run once", last.Kind, runs.Load(), events.stored("kept"))
			}
		})
	}
}

// lostReplyEvents stores the first append of kind but answers it as a
// log whose host stopped answering does.
type lostReplyEvents struct {
	fakeEvents
	kind tasktype.EventKind
	lost atomic.Int32
}

func (f *lostReplyEvents) Append(ctx context.Context, e tasktype.Event, after uint64) (uint64, error) {
	seq, err := f.fakeEvents.Append(ctx, e, after)
	if err == nil && e.Kind == f.kind && f.lost.CompareAndSwap(0, 1) {
		return 0, fmt.Errorf("append: %w: no reply", tasktype.ErrUnavailable)
	}
	return seq, err
}

// A result upload the store leaves unanswered, mid-file, is made again
// from the worker's spool once the store answers: the handler runs once,
// never sees the outage, and the file stored is whole.
func TestUnansweredUploadIsRetriedFromTheSpool(t *testing.T) {
	results := &flakyResults{memResults: memResults{files: map[string][]byte{}}, failures: 2}
	r := newRig(t, worker.Config{Results: results, Lease: time.Minute})
	var runs atomic.Int32
	want := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB, many pipe writes
	r.reg.Register("work", func(_ context.Context, _ tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
		runs.Add(1)
		w, err := out.Create("report.csv", "text/csv")
		if err != nil {
			return tasktype.Result{}, err
		}
		for i := 0; i < len(want); i += 4096 {
			if _, err := io.WriteString(w, want[i:i+4096]); err != nil {
				return tasktype.Result{}, fmt.Errorf("write: %w", err)
			}
		}
		return tasktype.Result{Summary: "done"}, nil
	}, tasktype.Policy{MaxAttempts: 3})
	d := r.enqueue("upload")
	r.deliver(t, d)
	testsupport.Eventually(t, 20*time.Second, "job never acked", func() bool { return d.acked.Load() == 1 })
	assertKinds(t, r.events.stored("upload"), tasktype.EventEnqueued, tasktype.EventStarted, tasktype.EventSucceeded)
	if runs.Load() != 1 {
		t.Fatalf("handler ran %d times, want once", runs.Load())
	}
	if n := results.puts.Load(); n != 3 {
		t.Errorf("%d uploads, want 3: two unanswered, then the spool's", n)
	}
	results.mu.Lock()
	got := results.files["upload-a1"]
	results.mu.Unlock()

	if !bytes.Equal(got, []byte(want)) {
		t.Fatalf("stored %d bytes, want the whole %d-byte file", len(got), len(want))
	}
}

// flakyResults is a result store whose first uploads read part of the
// file and then fail as an unreachable store does.
type flakyResults struct {
	memResults
	failures int32
	puts     atomic.Int32
}

func (f *flakyResults) Put(ctx context.Context, object, name, ct string, r io.Reader) (tasktype.ResultRef, error) {
	if f.puts.Add(1) <= f.failures {
		_, _ = io.CopyN(io.Discard, r, 100<<10)
		return tasktype.ResultRef{}, fmt.Errorf("put %s: %w: no reply", object, tasktype.ErrUnavailable)
	}
	return f.memResults.Put(ctx, object, name, ct, r)
}

// A second delivery of an item reaches the worker that runs its attempt
// (a restarted server handing out again what it had handed out before it
// died, and forgot). Its read of the job's state is slow: it answers
// "waiting for a worker" only once the first delivery's attempt has
// recorded its outcome and let the job go. It must not run the handler
// again on that stale answer: the worker leaves a delivery of an attempt
// it already handles with the broker, before reading anything.
func TestSecondDeliveryToTheSameWorkerIsLeftAlone(t *testing.T) {
	events := &slowSecondRead{gate: make(chan struct{})}
	r := newRig(t, worker.Config{Events: events, Concurrency: 2, Lease: time.Minute})
	var runs atomic.Int32
	running := make(chan struct{})
	release := make(chan struct{})
	r.reg.Register("work", func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
		if runs.Add(1) == 1 {
			close(running)
			<-release
		}
		return tasktype.Result{}, nil
	}, tasktype.Policy{})
	first := r.enqueue("twice")
	r.deliver(t, first)
	<-running
	again := &fakeDelivery{item: first.item}
	r.deliver(t, again)
	time.Sleep(50 * time.Millisecond) // the second delivery's claim reads, if it reads
	close(release)
	testsupport.Eventually(t, 10*time.Second, "the first delivery never acked", func() bool { return first.acked.Load() == 1 })
	time.Sleep(50 * time.Millisecond) // the first delivery's attempt has let the job go
	close(events.gate)
	time.Sleep(200 * time.Millisecond)
	if n := runs.Load(); n != 1 {
		t.Fatalf("handler ran %d times for two deliveries of one item to one worker, want once", n)
	}
}

// slowSecondRead answers every read of a job's state after the first
// with the state as it was when asked, once gate is closed.
type slowSecondRead struct {
	fakeEvents
	gate  chan struct{}
	reads atomic.Int32
}

func (f *slowSecondRead) Last(ctx context.Context, user int64, jobID string) (tasktype.Event, error) {
	e, err := f.fakeEvents.Last(ctx, user, jobID)
	if f.reads.Add(1) > 1 {
		<-f.gate
	}
	return e, err
}
