package jetstream_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nuid"

	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/taskdriver"
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
// events=2 leaves out the started event, to show what a lifecycle
// without it would save.
//
//	go test -run XXX -bench LifecycleFloor -benchtime 20000x ./modules/tasks/jetstream
func BenchmarkLifecycleFloor(b *testing.B) {
	for _, events := range []int{3, 2} {
		b.Run(fmt.Sprintf("events=%d", events), func(b *testing.B) { lifecycleFloor(b, events == 3) })
	}
}

func lifecycleFloor(b *testing.B, started bool) {
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
	b.ResetTimer()
	cpu0 := testsupport.CPUTime()
	start := time.Now()
	// The pulls are made as the worker makes them: a few fetchers, each
	// taking as many jobs in one pull as runners are free.
	const concurrency, fetchers = 10, 4
	slots := make(chan struct{}, concurrency)
	work := make(chan taskdriver.Delivery, concurrency)
	bq := q.(taskdriver.BatchQueue)
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
				ds, _ := bq.NextBatch(rctx, n)
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
				var d taskdriver.Delivery
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
				if started {
					if seq, err = br.Append(rctx, ev, seq); err != nil {
						b.Error(err)
						return
					}
				}
				ev.ID, ev.Kind = nuid.Next(), tasktype.EventSucceeded
				if _, err := br.Append(rctx, ev, seq); err != nil {
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
