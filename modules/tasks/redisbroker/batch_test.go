package redisbroker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks/internal/driver"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/redisbroker"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// A batch stores its jobs in order, sends each new job's item once (more
// than one script's worth, so in several chunks of one pipeline), sends
// nothing for a repeated key, and its items reach a worker.
func TestEnqueueBatch(t *testing.T) {
	for _, tt := range []struct {
		name string
		log  func(*jetstream.Broker) driver.Log
	}{
		{"events stored in one call", func(b *jetstream.Broker) driver.Log { return b }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, redisbroker.Config{})
			e.makeGroup(t)
			b := e.open(t, redisbroker.Config{}, tt.log(e.events))
			testsupport.Go(t, func(ctx context.Context) { b.Relay(ctx) })
			ctx := testsupport.Context(t)
			first, err := b.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 1, Key: "k1"})
			if err != nil {
				t.Fatal(err)
			}
			const n = 300
			rs := make([]tasktype.EnqueueRequest, n)
			for i := range rs {
				rs[i] = tasktype.EnqueueRequest{Type: "full_report", UserID: 1, Payload: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}
			}
			rs[0].Key, rs[1].Key, rs[2].Key = "k1", "k2", "k2" // a repeat of the earlier job, then one within the batch
			jobs, err := b.EnqueueBatch(ctx, rs)
			if err != nil {
				t.Fatal(err)
			}
			if len(jobs) != n {
				t.Fatalf("%d jobs for %d requests", len(jobs), n)
			}
			if jobs[0].ID != first.ID || jobs[2].ID != jobs[1].ID || jobs[1].ID == first.ID {
				t.Fatalf("keys: jobs %s %s %s after %s, want the first repeat the earlier job and the third the second", jobs[0].ID, jobs[1].ID, jobs[2].ID, first.ID)
			}
			want := map[string]bool{first.ID: true}
			for i, j := range jobs[3:] {
				if string(j.Payload) != string(rs[i+3].Payload) || want[j.ID] || j.EventSeq == 0 {
					t.Fatalf("job %d: %+v, want a new job with payload %s", i+3, j, rs[i+3].Payload)
				}
				want[j.ID] = true
			}
			want[jobs[1].ID] = true
			if got := e.streamLen(t); got != int64(len(want)) {
				t.Fatalf("stream holds %d items, want one per job: %d", got, len(want))
			}

			q, _ := b.Queue(ctx)
			got := map[string]int{}
			for len(got) < len(want) {
				ds := nextBatch(t, q, 50, 5*time.Second)
				for _, d := range ds {
					got[d.Item().JobID]++
				}
				ackAll(t, ds)
			}
			for id := range want {
				if got[id] != 1 {
					t.Fatalf("job %s delivered %d times, want once", id, got[id])
				}
			}
			if len(got) != len(want) {
				t.Fatalf("delivered %d jobs, want %d", len(got), len(want))
			}
			testsupport.Eventually(t, 10*time.Second, "sent markers left after the relay saw every item", func() bool { return len(e.markers(t)) == 0 })
			if n := e.streamLen(t); n != 0 {
				t.Fatalf("stream holds %d more items", n)
			}
		})
	}
}

// A batch accepted while Redis cannot be reached is not run inline: its
// jobs wait in the event log, and the relay sends them once Redis is back
// (here: the relay of a process that reaches it).
func TestEnqueueBatchWithRedisDownLeavesJobsToTheRelay(t *testing.T) {
	e := newEnv(t, redisbroker.Config{})
	ctx := testsupport.Context(t)
	down, err := redisbroker.New(redisbroker.Config{Client: deadRedis(t), Events: e.events, Logger: testsupport.Logger(t),
		RunInline: func(context.Context, tasktype.Event) { t.Error("a job of a batch ran inline") }})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	jobs, err := down.EnqueueBatch(ctx, []tasktype.EnqueueRequest{{Type: "full_report", UserID: 1}, {Type: "full_report", UserID: 2}})
	if err != nil || len(jobs) != 2 {
		t.Fatalf("batch with redis down: %d jobs, err %v; want both accepted", len(jobs), err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("batch took %s to give up on redis", took)
	}
	testsupport.Go(t, func(ctx context.Context) { e.broker.Relay(ctx) })
	q, _ := e.broker.Queue(ctx)
	got := map[string]bool{}
	for len(got) < 2 {
		for _, d := range nextBatch(t, q, 2, 20*time.Second) { // the first worker rebuilds the queue (see recheckAfter)
			got[d.Item().JobID] = true
		}
	}
	if !got[jobs[0].ID] || !got[jobs[1].ID] {
		t.Fatalf("delivered %v, want the batch's jobs %s and %s", got, jobs[0].ID, jobs[1].ID)
	}
}

// A batch with one bad request stores nothing.
func TestEnqueueBatchChecksEveryRequestFirst(t *testing.T) {
	e := newEnv(t, redisbroker.Config{})
	ctx := testsupport.Context(t)
	for _, log := range []driver.Log{e.events} {
		b := e.open(t, redisbroker.Config{}, log)
		jobs, err := b.EnqueueBatch(ctx, []tasktype.EnqueueRequest{
			{Type: "full_report", UserID: 1},
			{Type: "full_report", UserID: 2},
			{Type: "Full-Report", UserID: 3},
		})
		if !errors.Is(err, tasktype.ErrInvalidJob) || !strings.Contains(err.Error(), "request 2") || len(jobs) != 0 {
			t.Fatalf("batch with a bad third request: jobs %v, err %v; want none and ErrInvalidJob naming request 2", jobs, err)
		}
	}
	if seq, err := e.events.LastSeq(ctx); err != nil || seq != 0 {
		t.Fatalf("event log at sequence %d (err %v) after refused batches, want nothing stored", seq, err)
	}
	if n := e.streamLen(t); n != 0 {
		t.Fatalf("stream holds %d items after refused batches", n)
	}
}

// One read hands out up to the asked number of jobs, in order, and waits
// on an empty queue until the caller's deadline; acks made together all
// count, once.
func TestNextBatch(t *testing.T) {
	e := newEnv(t, redisbroker.Config{})
	ctx := testsupport.Context(t)
	var ids []string
	for range 6 {
		job, err := e.broker.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 1})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, job.ID)
	}
	q, _ := e.broker.Queue(ctx)
	ds := nextBatch(t, q, 4, 20*time.Second) // the first worker rebuilds the queue (see recheckAfter)
	if len(ds) != 4 {
		t.Fatalf("NextBatch(4) with 6 waiting gave %d jobs", len(ds))
	}
	if rest := nextBatch(t, q, 10, 5*time.Second); len(rest) != 2 {
		t.Fatalf("NextBatch(10) with 2 waiting gave %d jobs", len(rest))
	} else {
		ds = append(ds, rest...)
	}
	if _, err := e.broker.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 1}); err != nil {
		t.Fatal(err)
	}
	ds = append(ds, nextBatch(t, q, 0, 5*time.Second)...) // below 1 counts as 1
	for i, d := range ds[:6] {
		if d.Item().JobID != ids[i] {
			t.Fatalf("delivery %d is job %s, want %s: the stream's order", i, d.Item().JobID, ids[i])
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if got, err := q.NextBatch(wctx, 5); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("NextBatch on an empty queue: %d jobs, err %v; want DeadlineExceeded", len(got), err)
	}
	ackAll(t, ds)
	if n := e.streamLen(t); n != 0 {
		t.Fatalf("stream holds %d items after the acks", n)
	}
	for _, d := range ds {
		if err := d.Ack(ctx); !errors.Is(err, redisbroker.ErrNotHeld) {
			t.Fatalf("second ack: %v, want ErrNotHeld", err)
		}
	}
}

// A worker keeps a few pulls in flight on one queue: each job goes to one
// of them, once, and the first pulls, racing to make the consumer group,
// rebuild the queue only once.
func TestNextBatchFromSeveralGoroutines(t *testing.T) {
	e := newEnv(t, redisbroker.Config{})
	ctx := testsupport.Context(t)
	const jobs, pullers = 100, 4
	q, _ := e.broker.Queue(ctx)
	var mu sync.Mutex
	got := map[string]int{}
	var wg sync.WaitGroup
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	for range pullers {
		wg.Go(func() {
			for {
				ds, err := q.NextBatch(pctx, 3)
				if err != nil {
					if pctx.Err() == nil {
						t.Errorf("next batch: %v", err)
					}
					return
				}
				mu.Lock()
				for _, d := range ds {
					got[d.Item().JobID]++
				}
				mu.Unlock()
				for _, d := range ds {
					if err := d.Ack(ctx); err != nil {
						t.Errorf("ack: %v", err)
					}
				}
			}
		})
	}
	rs := make([]tasktype.EnqueueRequest, jobs)
	for i := range rs {
		rs[i] = tasktype.EnqueueRequest{Type: "full_report", UserID: 1}
	}
	enqueued, err := e.broker.EnqueueBatch(ctx, rs)
	if err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, 40*time.Second, "jobs not all delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == jobs
	})
	time.Sleep(200 * time.Millisecond) // room for a second copy to come
	stop()
	wg.Wait()
	for _, j := range enqueued {
		if got[j.ID] != 1 {
			t.Fatalf("job %s delivered %d times, want once", j.ID, got[j.ID])
		}
	}
}

// nextBatch takes up to n jobs from q within the given time.
func nextBatch(t *testing.T, q driver.Queue, n int, within time.Duration) []driver.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(testsupport.Context(t), within)
	defer cancel()
	ds, err := q.NextBatch(ctx, n)
	if err != nil {
		t.Fatalf("next batch of %d within %s: %v", n, within, err)
	}
	if len(ds) == 0 || len(ds) > max(n, 1) {
		t.Fatalf("next batch of %d gave %d jobs", n, len(ds))
	}
	return ds
}

// ackAll acks every delivery at once, as a worker's jobs that end
// together do.
func ackAll(t *testing.T, ds []driver.Delivery) {
	t.Helper()
	ctx := testsupport.Context(t)
	errs := make([]error, len(ds))
	var wg sync.WaitGroup
	for i, d := range ds {
		wg.Go(func() { errs[i] = d.Ack(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("ack: %v", err)
	}
}
