package jetstream_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/otjhelper/otj/modules/tasks/internal/driver"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/jetstream/internal/codec"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/natsconn"
	"github.com/otjhelper/otj/platform/testsupport"
)

// BenchmarkLifecycleFloor measures what the broker alone costs a job:
// the messages of a whole lifecycle (the enqueued event sent in batches
// of 1,000, pulled for ten runners as the worker pulls, the started and
// succeeded events appended on their conditions, the ack) and a follower
// reading every event, as the projection does, all on one in-process
// connection to the embedded server with file storage, with no worker
// logic, handler or projection. It is the floor under BenchmarkNoopJobs
// and app bench: the whole system cannot go faster than its messages.
// events=2,read is the model the worker runs: a read of the job's newest
// event before the handler, the outcome alone after it; events=3 the one
// before, with a started event appended first; events=2 the outcome with
// no check at all.
//
//	go test -run XXX -bench LifecycleFloor -benchtime 20000x ./modules/tasks/jetstream
func BenchmarkLifecycleFloor(b *testing.B) {
	for _, m := range []struct {
		name                   string
		started, read, batched bool
	}{
		// The event model before the lazy start: started appended on
		// condition before the handler, then the outcome.
		{"events=3", true, false, false},
		// The model the worker runs: the job's newest event read before
		// the handler (a cancelled job must not run), then the outcome
		// appended on condition; no started for a job shorter than a
		// heartbeat.
		{"events=2,read", false, true, false},
		// The same with the outcomes of jobs that finish together sent
		// as one pipelined batch of asynchronous publishes, each with its
		// own condition, their acks awaited together (a group commit):
		// measured no cheaper than events=2,read on 2026-12-03 (177–202
		// against 176–183 µs a job), so the worker does not do it.
		{"events=2,read,batched", false, true, true},
		// The outcome alone: what no check at all would cost.
		{"events=2", false, false, false},
	} {
		b.Run(m.name, func(b *testing.B) { lifecycleFloor(b, m.started, m.read, m.batched) })
	}
}

func lifecycleFloor(b *testing.B, started, read, batched bool) {
	srv := testsupport.NATS(b)
	nc, err := natsconn.Connect(natsconn.Options{Server: srv.Server(), Name: "floor", Token: testsupport.NATSToken})
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	br, err := jetstream.Open(testsupport.Context(b), jetstream.Config{Conn: nc})
	if err != nil {
		b.Fatal(err)
	}
	ctx := testsupport.Context(b)
	q, err := br.Queue(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var followed atomic.Int64
	fctx, stopFollow := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = br.Follow(fctx, 0, func(es []tasktype.Event) error { followed.Add(int64(len(es))); return nil })
	})
	defer func() { stopFollow(); wg.Wait() }()

	rs := make([]tasktype.EnqueueRequest, b.N)
	for i := range rs {
		rs[i] = tasktype.EnqueueRequest{Type: "noop", UserID: 1}
	}
	perJob := int64(2)
	if started {
		perJob = 3
	}
	var ran atomic.Int64
	rctx, stopRunners := context.WithCancel(ctx)
	var runners sync.WaitGroup
	appendOutcome := br.Append
	if batched {
		js, err := natsjs.New(nc)
		if err != nil {
			b.Fatal(err)
		}
		c := &committer{js: js, in: make(chan commitReq, maxCommit)}
		runners.Go(func() { c.run(rctx) })
		appendOutcome = c.append
	}
	b.ResetTimer()
	cpu0 := testsupport.CPUTime()
	start := time.Now()
	// The pulls are made as the worker makes them: a few fetchers, each
	// taking as many jobs in one pull as runners are free.
	const concurrency, fetchers = 10, 4
	slots := make(chan struct{}, concurrency)
	work := make(chan driver.Delivery, concurrency)
	for range fetchers {
		runners.Go(func() {
			for {
				select {
				case slots <- struct{}{}:
				case <-rctx.Done():
					return
				}
				n := 1
				for more := true; more; {
					select {
					case slots <- struct{}{}:
						n++
					default:
						more = false
					}
				}
				ds, _ := q.NextBatch(rctx, n)
				for range n - len(ds) {
					<-slots
				}
				for _, d := range ds {
					work <- d
				}
			}
		})
	}
	for range concurrency {
		runners.Go(func() {
			for {
				var d driver.Delivery
				select {
				case d = <-work:
				case <-rctx.Done():
					return
				}
				item := d.Item()
				ev := tasktype.Event{ID: nuid.Next(), Kind: tasktype.EventStarted, JobID: item.JobID, JobType: item.JobType,
					UserID: item.UserID, Time: time.Now().UTC(), Attempt: 1, MaxAttempts: 3, Worker: "floor:1"}
				seq := item.Seq
				var err error
				if read {
					if _, err := br.Last(rctx, item.UserID, item.JobID); err != nil {
						b.Error(err)
						return
					}
				}
				if started {
					if seq, err = br.Append(rctx, ev, seq); err != nil {
						b.Error(err)
						return
					}
				}
				ev.ID, ev.Kind = nuid.Next(), tasktype.EventSucceeded
				if _, err := appendOutcome(rctx, ev, seq); err != nil {
					b.Error(err)
					return
				}
				_ = d.Ack(rctx)
				<-slots
				ran.Add(1)
			}
		})
	}
	for i := 0; i < len(rs); i += 1000 {
		if _, err := br.EnqueueBatch(ctx, rs[i:min(i+1000, len(rs))]); err != nil {
			b.Fatal(err)
		}
	}
	testsupport.Eventually(b, 5*time.Minute, "jobs not all followed", func() bool {
		return ran.Load() == int64(b.N) && followed.Load() == perJob*int64(b.N)
	})
	took := time.Since(start)
	b.StopTimer()
	stopRunners()
	runners.Wait()
	b.ReportMetric(float64((testsupport.CPUTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/job")
	b.ReportMetric(float64(b.N)/took.Seconds(), "jobs/s")
}

// committer is the group commit events=2,read,batched measures: the
// appends that arrive while a batch waits for its acks go together in the
// next, as asynchronous publishes, each on its own condition.
type committer struct {
	js natsjs.JetStream
	in chan commitReq
}

type commitReq struct {
	e     tasktype.Event
	after uint64
	res   chan error
}

const maxCommit = 256

func (c *committer) run(ctx context.Context) {
	batch := make([]commitReq, 0, maxCommit)
	futures := make([]natsjs.PubAckFuture, 0, maxCommit)
	for {
		batch, futures = batch[:0], futures[:0]
		select {
		case r := <-c.in:
			batch = append(batch, r)
		case <-ctx.Done():
			return
		}
	gather:
		for len(batch) < maxCommit {
			select {
			case r := <-c.in:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		for _, r := range batch {
			f, err := c.js.PublishAsync(jetstream.EventSubject(&r.e), codec.AppendEvent(nil, &r.e),
				natsjs.WithExpectLastSequenceForSubject(r.after, jetstream.JobFilter(r.e.UserID, r.e.JobID)))
			if err != nil {
				r.res <- err
			}
			futures = append(futures, f)
		}
		for i, f := range futures {
			if f == nil {
				continue
			}
			select {
			case <-f.Ok():
				batch[i].res <- nil
			case err := <-f.Err():
				batch[i].res <- err
			case <-ctx.Done():
				return
			}
		}
	}
}

func (c *committer) append(ctx context.Context, e tasktype.Event, after uint64) (uint64, error) {
	r := commitReq{e: e, after: after, res: make(chan error, 1)}
	select {
	case c.in <- r:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case err := <-r.res:
		return 0, err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}
