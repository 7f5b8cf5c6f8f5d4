package redisbroker_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/redisbroker"
	"github.com/otjhelper/otj/platform/testsupport"
)

// BenchmarkNoopJobs measures whole job lifecycles with the jobs on the
// test Redis and the events on an embedded server (file storage): enqueue
// one at a time, a worker of concurrency 10, until every handler has
// returned and its outcome is stored. It compares with the JetStream
// broker's benchmark of the same name in modules/tasks (which also waits
// for the projection, the same on both brokers).
//
//	OTJ_TEST_REDIS_URL=redis://127.0.0.1:6379/0 go test -run XXX -bench NoopJobs -benchtime 3000x ./modules/tasks/redisbroker
func BenchmarkNoopJobs(b *testing.B) {
	quiet := slog.New(slog.DiscardHandler) // a log line per job would be measured too
	e := newEnv(b, redisbroker.Config{Logger: quiet})
	testsupport.Go(b, func(ctx context.Context) { e.broker.Relay(ctx) })
	reg := tasks.NewRegistry()
	var done atomic.Int64
	reg.Register("noop", func(context.Context, tasks.Job, tasks.Output) (tasks.Result, error) {
		done.Add(1)
		return tasks.Result{}, nil
	}, tasks.Policy{})
	ctx := testsupport.Context(b)
	q, _ := e.broker.Queue(ctx)
	w, err := tasks.NewWorker(tasks.WorkerConfig{Queue: q, Events: e.events, Results: e.events, Registry: reg, Concurrency: 10, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	testsupport.Go(b, func(ctx context.Context) { w.Run(ctx) })

	b.ResetTimer()
	start := time.Now()
	var last tasks.Job
	for range b.N {
		if last, err = e.broker.Enqueue(ctx, tasks.EnqueueRequest{Type: "noop", UserID: 1}); err != nil {
			b.Fatal(err)
		}
	}
	enqueued := time.Since(start)
	testsupport.Eventually(b, 5*time.Minute, "jobs not all run", func() bool { return done.Load() == int64(b.N) })
	testsupport.Eventually(b, time.Minute, "last outcome not stored", func() bool {
		ev, err := e.events.Last(ctx, last.UserID, last.ID)
		return err == nil && ev.Kind == tasks.EventSucceeded
	})
	ran := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/enqueued.Seconds(), "enqueued/s")
	b.ReportMetric(float64(b.N)/ran.Seconds(), "handled/s")
}
