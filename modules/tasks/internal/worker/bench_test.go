package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nuid"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/internal/projection"
	"github.com/otjhelper/otj/modules/tasks/internal/worker"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// BenchmarkNoopJobs measures whole job lifecycles on the embedded server
// (file storage) with a worker of concurrency 10 and the live
// projection: enqueue one at a time, then wait until the projection shows
// every job completed. ns/op is per job, end to end.
//
//	go test -run XXX -bench NoopJobs -benchtime 2000x ./modules/tasks/internal/worker
func BenchmarkNoopJobs(b *testing.B) {
	var done atomic.Int64
	s := setupWith(b, func(r *tasks.Registry) {
		r.Register("noop", func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
			done.Add(1)
			return tasktype.Result{}, nil
		}, tasktype.Policy{})
	}, worker.Config{Concurrency: 10, Logger: slog.New(slog.DiscardHandler)}) // a log line per job would be measured too
	ctx := testsupport.Context(b)
	b.ResetTimer()
	cpu0 := testsupport.CPUTime()
	start := time.Now()
	for range b.N {
		if _, err := s.web.Enqueue(ctx, tasktype.EnqueueRequest{Type: "noop", UserID: 1}); err != nil {
			b.Fatal(err)
		}
	}
	enqueued := time.Since(start)
	testsupport.Eventually(b, 5*time.Minute, "jobs not all run", func() bool { return done.Load() == int64(b.N) })
	ran := time.Since(start)
	// Every job's outcome is the newest event: wait for the projection
	// to reach the stream's end.
	end, err := s.web.LastSeq(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.proj.WaitFor(ctx, end); err != nil {
		b.Fatal(err)
	}
	projected := time.Since(start)
	b.StopTimer()
	// CPU per job holds still on a busy machine where rates do not.
	b.ReportMetric(float64((testsupport.CPUTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/job")
	b.ReportMetric(float64(b.N)/enqueued.Seconds(), "enqueued/s")
	b.ReportMetric(float64(b.N)/ran.Seconds(), "handled/s")
	b.ReportMetric(float64(b.N)/projected.Seconds(), "projected/s")
}

// BenchmarkProjectionApply measures the projection's apply on a real
// SQLite database: each job's enqueued, started and succeeded events, in
// batches of the given size (a batch is one transaction). ns/op is per
// event.
//
//	go test -run XXX -bench ProjectionApply -benchmem ./modules/tasks/internal/worker
func BenchmarkProjectionApply(b *testing.B) {
	for _, size := range []int{1, 3, 30, 300} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			db, _ := testsupport.DB(b)
			p := projection.New(db, nil, nil)
			ctx := testsupport.Context(b)
			events := lifecycleEvents(b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < len(events); i += size {
				if err := p.ApplyBatch(ctx, events[i:min(i+size, len(events))]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// lifecycleEvents returns n events: whole lifecycles (enqueued, started,
// succeeded) of n/3 jobs, each job's in a row, with stream sequences.
func lifecycleEvents(n int) []tasktype.Event {
	events := make([]tasktype.Event, 0, n+2)
	now := time.Now().UTC()
	for seq := uint64(1); len(events) < n; {
		job := tasktype.Job{ID: nuid.Next(), Type: "noop", UserID: 7, EnqueuedAt: now}
		for _, k := range []tasktype.EventKind{tasktype.EventEnqueued, tasktype.EventStarted, tasktype.EventSucceeded} {
			events = append(events, tasktype.Event{ID: nuid.Next(), Kind: k, JobID: job.ID, JobType: job.Type,
				UserID: job.UserID, Time: now, Attempt: 1, MaxAttempts: 3, Worker: "bench:1", Summary: "done", Seq: seq})
			seq++
		}
	}
	return events[:n]
}
