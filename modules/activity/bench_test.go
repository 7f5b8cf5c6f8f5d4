package activity

import (
	"testing"

	"github.com/uptrace/bun"
)

// benchActivities is the size of the benchmarks' logs: big enough that
// per-row costs dominate, small enough for a quick run. (`app demo` is
// meant to handle a million in seconds; see the package report.)
const benchActivities = 100_000

// fillOnce fills a demo user with n activities and returns it.
func fillOnce(tb testing.TB, db *bun.DB, n int) User {
	tb.Helper()
	u, err := Fill(tb.Context(), db, DemoOptions{Email: "bench@example.org", Activities: n, Now: demoNow, Seed: 1})
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// reportOnce streams the user's report and returns how many rows it saw.
func reportOnce(tb testing.TB, s *Store, userID int64) int {
	tb.Helper()
	rows := 0
	if err := s.EachReportRow(tb.Context(), userID, func(r *ReportRow) error {
		rows++
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return rows
}

// BenchmarkFill fills a fresh database with benchActivities activities
// per iteration.
func BenchmarkFill(b *testing.B) {
	for range b.N {
		b.StopTimer()
		db := newDB(b)
		b.StartTimer()
		fillOnce(b, db, benchActivities)
	}
	b.ReportMetric(float64(benchActivities)*float64(b.N)/b.Elapsed().Seconds(), "activities/s")
}

// BenchmarkEachReportRow streams a benchActivities-row report per
// iteration.
func BenchmarkEachReportRow(b *testing.B) {
	db := newDB(b)
	u := fillOnce(b, db, benchActivities)
	s := NewStore(db)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if n := reportOnce(b, s, u.ID); n != benchActivities {
			b.Fatalf("%d rows, want %d", n, benchActivities)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(benchActivities*b.N), "ns/row")
}

// TestBenchmarkBodies runs what the benchmarks run, at a small size, so
// that a plain `go test` keeps them working. It checks results, never
// times.
func TestBenchmarkBodies(t *testing.T) {
	t.Parallel()
	const n = 1000
	eachDB(t, func(t *testing.T, db *bun.DB) {
		u := fillOnce(t, db, n)
		if got := reportOnce(t, NewStore(db), u.ID); got != n {
			t.Errorf("%d report rows, want %d", got, n)
		}
		u = fillOnce(t, db, n) // a refill, as a repeated `app demo` does
		if got := reportOnce(t, NewStore(db), u.ID); got != n {
			t.Errorf("after a refill: %d report rows, want %d", got, n)
		}
	})
}
