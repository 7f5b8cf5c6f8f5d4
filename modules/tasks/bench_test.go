package tasks_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/platform/testsupport"
)

// BenchmarkNoopJobs measures whole job lifecycles on the embedded server
// (file storage) with a worker of concurrency 10 and the live
// projection: enqueue one at a time, then wait until the projection shows
// every job completed. ns/op is per job, end to end.
//
//	go test -run XXX -bench NoopJobs -benchtime 2000x ./modules/tasks
func BenchmarkNoopJobs(b *testing.B) {
	var done atomic.Int64
	s := setupWith(b, func(r *tasks.Registry) {
		r.Register("noop", func(context.Context, tasks.Job, tasks.Output) (tasks.Result, error) {
			done.Add(1)
			return tasks.Result{}, nil
		}, tasks.Policy{})
	}, tasks.WorkerConfig{Concurrency: 10, Logger: slog.New(slog.DiscardHandler)}) // a log line per job would be measured too
	ctx := testsupport.Context(b)
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	for range b.N {
		if _, err := s.web.Enqueue(ctx, tasks.EnqueueRequest{Type: "noop", UserID: 1}); err != nil {
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
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/job")
	b.ReportMetric(float64(b.N)/enqueued.Seconds(), "enqueued/s")
	b.ReportMetric(float64(b.N)/ran.Seconds(), "handled/s")
	b.ReportMetric(float64(b.N)/projected.Seconds(), "projected/s")
}

// cpuTime is the user and system CPU this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
