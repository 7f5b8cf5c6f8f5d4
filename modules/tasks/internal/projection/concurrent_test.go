package projection_test

import (
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/modules/tasks/internal/projection"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/database"
	"github.com/otjhelper/otj/platform/testsupport"
)

// TestTwoProjectionsRacing runs two projections, as two web processes
// would, over one database, each following the same events in the same
// batches at the same time. Every event must be applied once (by one
// of them), and the rows must be those one projection alone makes: a
// projection that read the position without the lock (FOR UPDATE on
// PostgreSQL) would apply batches twice and could write a batch's rows
// over a later one's.
func TestTwoProjectionsRacing(t *testing.T) {
	testsupport.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testsupport.Context(t)
		batches := racingEvents(60, 7)
		total := 0
		for _, b := range batches {
			total += len(b)
		}

		var applied atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for range 2 {
			p := projection.New(db, nil, testsupport.Logger(t))
			p.Observe(func(tasktype.Event) { applied.Add(1) })
			wg.Go(func() {
				for _, b := range batches {
					if err := p.ApplyBatch(ctx, b); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if got := applied.Load(); got != int64(total) {
			t.Errorf("%d events applied in all, want %d (each once)", got, total)
		}

		alone := freshDB(t, db)
		single := projection.New(alone, nil, testsupport.Logger(t))
		for _, b := range batches {
			if err := single.ApplyBatch(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		got, want := allRows(t, db), allRows(t, alone)
		if len(want) != 60 || !reflect.DeepEqual(got, want) {
			t.Errorf("two projections made %d rows, one alone %d; equal %v", len(got), len(want), reflect.DeepEqual(got, want))
		}
		for _, p := range []*bun.DB{db, alone} {
			off, err := projection.New(p, nil, nil).Offset(ctx)
			if err != nil || off != uint64(total) {
				t.Errorf("position %d, %v; want %d", off, err, total)
			}
		}
	})
}

// racingEvents makes the lifecycles of n jobs, interleaved in stream
// order (enqueued, started, progress, then succeeded or a retry and a
// failure), cut into batches of size events.
func racingEvents(n, size int) [][]tasktype.Event {
	t0 := time.Date(2026, 3, 5, 14, 0, 0, 0, time.UTC)
	var all []tasktype.Event
	seq := uint64(0)
	add := func(job int, kind tasktype.EventKind, attempt int) {
		seq++
		id := fmt.Sprintf("job%03d", job)
		e := tasktype.Event{Seq: seq, Kind: kind, JobID: id, JobType: "full_report", UserID: int64(1 + job%3),
			Time: t0.Add(time.Duration(seq) * time.Millisecond), Attempt: attempt, MaxAttempts: 2, Worker: "w1",
			Percent: int(seq % 100), Message: "working"}
		switch kind {
		case tasktype.EventSucceeded:
			e.Summary = "done"
			e.Result = &tasktype.ResultRef{Object: tasktype.ResultObjectName(id, attempt), Name: "r.csv", ContentType: "text/csv", Size: 10, Digest: "d"}
		case tasktype.EventRetrying, tasktype.EventFailed:
			e.Error, e.RetryAt = "boom", e.Time.Add(time.Second)
		}
		all = append(all, e)
	}
	for step := range 5 {
		for j := range n {
			switch {
			case step == 0:
				add(j, tasktype.EventEnqueued, 0)
			case step == 1:
				add(j, tasktype.EventStarted, 1)
			case step == 2:
				add(j, tasktype.EventProgress, 1)
			case step == 3 && j%2 == 0:
				add(j, tasktype.EventSucceeded, 1)
			case step == 3:
				add(j, tasktype.EventRetrying, 1)
			case step == 4 && j%2 == 1:
				add(j, tasktype.EventStarted, 2)
			}
		}
	}
	var out [][]tasktype.Event
	for len(all) > 0 {
		k := min(size, len(all))
		out = append(out, all[:k])
		all = all[k:]
	}
	return out
}

// freshDB is another fresh database of db's dialect.
func freshDB(t *testing.T, db *bun.DB) *bun.DB {
	if database.DialectOf(db) == database.Postgres {
		return testsupport.PostgresDB(t)
	}
	fresh, _ := testsupport.SQLiteDB(t)
	return fresh
}

func allRows(t *testing.T, db *bun.DB) []tasktype.Task {
	rows, err := projection.NewStore(db).All(testsupport.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		rows[i] = inUTC(rows[i])
	}
	return rows
}
