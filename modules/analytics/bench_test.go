package analytics_test

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/analytics"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// BenchmarkAnalytics100k runs the analytics handler, as a worker would
// (user lookup, the three aggregate queries, the figures, the JSON), on
// a demo log of 100,000 activities (activity.Fill, as app demo
// --activities 100000 builds). SQLite by default; PostgreSQL with
// OTJ_TEST_DIALECT=postgres. Beside time and allocations per run it
// reports peak-heap-MB: the largest live heap seen while it ran, sampled
// every millisecond, over the heap before the first run.
func BenchmarkAnalytics100k(b *testing.B) {
	db, _ := testsupport.DB(b)
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	u, err := activity.Fill(b.Context(), db, activity.DemoOptions{Email: "bench@example.org", Activities: 100_000, Now: now, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	// Other users' logs must not slow one user's analytics.
	if _, err := activity.Fill(b.Context(), db, activity.DemoOptions{Email: "other@example.org", Activities: 100_000, Now: now, Seed: 2}); err != nil {
		b.Fatal(err)
	}
	reg := tasks.NewRegistry()
	if err := analytics.Register(reg, activity.NewStore(db), func() time.Time { return now }); err != nil {
		b.Fatal(err)
	}
	h, _, _ := reg.Lookup(analytics.Type)
	job := tasktype.Job{ID: "bench", Type: analytics.Type, UserID: u.ID}

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	peak := base
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				peak = max(peak, m.HeapAlloc)
			}
		}
	})
	b.ReportAllocs()
	var out *recordingOutput
	for b.Loop() {
		out = &recordingOutput{}
		if _, err := h(b.Context(), job, out); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	if out.buf.Len() == 0 {
		b.Fatal("no result written")
	}
	b.ReportMetric(float64(peak-base)/(1<<20), "peak-heap-MB")
}
