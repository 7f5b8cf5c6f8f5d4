package jetstream_test

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// BenchmarkFollowUser100 is what 100 open live pages of one user cost:
// 100 followers on the user's subjects, each getting every one of b.N
// new events (with another user's events interleaved, which the server
// filters out). It reports events delivered per second across the
// followers and the heap each open follower holds.
func BenchmarkFollowUser100(b *testing.B) {
	const followers = 100
	srv := testsupport.NATS(b)
	br := jetstreamtest.Broker(b, testsupport.Connect(b, srv, "bench"))
	ctx, cancel := context.WithCancel(testsupport.Context(b))
	defer cancel()

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var got atomic.Int64
	want := int64(followers * b.N)
	all := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for range followers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			br.FollowUser(ctx, 1, 0, func(tasktype.Event) error {
				if got.Add(1) == want {
					once.Do(func() { close(all) })
				}
				return nil
			})
		}()
	}
	// Every follower's consumer is open before the clock starts.
	js, err := natsjs.New(testsupport.Connect(b, srv, "probe"))
	if err != nil {
		b.Fatal(err)
	}
	testsupport.Eventually(b, 30*time.Second, "followers never opened", func() bool {
		st, err := js.Stream(ctx, jetstream.StreamName)
		return err == nil && st.CachedInfo().State.Consumers == followers
	})
	var open runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&open)

	b.ResetTimer()
	for i := range b.N {
		if _, err := br.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 1}); err != nil {
			b.Fatal(err)
		}
		if i%2 == 0 { // someone else's, never delivered
			if _, err := br.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 2}); err != nil {
				b.Fatal(err)
			}
		}
	}
	<-all
	b.StopTimer()
	b.ReportMetric(float64(want)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(int64(open.HeapInuse)-int64(before.HeapInuse))/followers, "heapB/follower")
	cancel()
	wg.Wait()
}
