package redisbroker_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/internal/worker"
	"github.com/otjhelper/otj/modules/tasks/redisbroker"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
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
	benchmarkNoopJobs(b, 1)
}

// BenchmarkNoopJobsBatch is BenchmarkNoopJobs with the jobs enqueued 100
// at a time through EnqueueBatch.
func BenchmarkNoopJobsBatch(b *testing.B) {
	benchmarkNoopJobs(b, 100)
}

func benchmarkNoopJobs(b *testing.B, batch int) {
	quiet := slog.New(slog.DiscardHandler) // a log line per job would be measured too
	e := newEnv(b, redisbroker.Config{Logger: quiet})
	broker := e.broker
	if batch > 1 {
		broker = e.open(b, redisbroker.Config{Logger: quiet}, e.events)
	}
	testsupport.Go(b, func(ctx context.Context) { broker.Relay(ctx) })
	reg := tasks.NewRegistry()
	var done atomic.Int64
	reg.Register("noop", func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
		done.Add(1)
		return tasktype.Result{}, nil
	}, tasktype.Policy{})
	ctx := testsupport.Context(b)
	q, _ := broker.Queue(ctx)
	w, err := worker.New(worker.Config{Queue: q, Capabilities: broker.Capabilities(), Events: e.events, Results: e.events, Registry: reg, Concurrency: 10, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	testsupport.Go(b, func(ctx context.Context) { w.Run(ctx) })
	trips := countTrips(e.rdb)

	b.ResetTimer()
	before := measure(b, e.rdb, trips)
	start := time.Now()
	last := enqueueAll(b, broker, batch, "noop")
	enqueued := time.Since(start)
	testsupport.Eventually(b, 5*time.Minute, "jobs not all run", func() bool { return done.Load() == int64(b.N) })
	testsupport.Eventually(b, time.Minute, "last outcome not stored", func() bool {
		ev, err := e.events.Last(ctx, last.UserID, last.ID)
		return err == nil && ev.Kind == tasktype.EventSucceeded
	})
	ran := time.Since(start)
	b.StopTimer()
	measure(b, e.rdb, trips).report(b, before)
	b.ReportMetric(float64(b.N)/enqueued.Seconds(), "enqueued/s")
	b.ReportMetric(float64(b.N)/ran.Seconds(), "handled/s")
}

// BenchmarkEnqueue measures enqueues alone, one at a time and 100 at a
// time, with the relay running as in every process; no worker takes the
// jobs, so the stream's bound is raised above what the benchmark adds.
//
//	OTJ_TEST_REDIS_URL=redis://127.0.0.1:6379/0 go test -run XXX -bench Enqueue -benchtime 5000x ./modules/tasks/redisbroker
func BenchmarkEnqueue(b *testing.B) {
	for _, batch := range []int{1, 100} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			quiet := slog.New(slog.DiscardHandler)
			cfg := redisbroker.Config{Logger: quiet, MaxLength: 10_000_000}
			e := newEnv(b, cfg)
			broker := e.broker
			if batch > 1 {
				broker = e.open(b, cfg, e.events)
			}
			testsupport.Go(b, func(ctx context.Context) { broker.Relay(ctx) })
			trips := countTrips(e.rdb)
			b.ResetTimer()
			before := measure(b, e.rdb, trips)
			start := time.Now()
			enqueueAll(b, broker, batch, "noop")
			took := time.Since(start)
			b.StopTimer()
			measure(b, e.rdb, trips).report(b, before)
			b.ReportMetric(float64(b.N)/took.Seconds(), "enqueued/s")
		})
	}
}

// enqueueAll enqueues b.N jobs of type typ, batch at a time, and returns
// the last.
func enqueueAll(b *testing.B, broker *redisbroker.Broker, batch int, typ string) tasktype.Job {
	b.Helper()
	ctx := testsupport.Context(b)
	var last tasktype.Job
	rs := make([]tasktype.EnqueueRequest, batch)
	for i := range rs {
		rs[i] = tasktype.EnqueueRequest{Type: typ, UserID: 1}
	}
	for left := b.N; left > 0; left -= batch {
		if batch == 1 {
			job, err := broker.Enqueue(ctx, rs[0])
			if err != nil {
				b.Fatal(err)
			}
			last = job
			continue
		}
		jobs, err := broker.EnqueueBatch(ctx, rs[:min(batch, left)])
		if err != nil {
			b.Fatal(err)
		}
		last = jobs[len(jobs)-1]
	}
	return last
}

// usage is what the jobs cost so far: CPU time used by this process (the
// code measured and the embedded NATS server) and by the Redis server,
// which the tests have to themselves, and the round trips to Redis. On a
// busy machine these vary less than the rates do.
type usage struct {
	proc, redis time.Duration
	trips       int64
}

// roundTrips counts a Redis client's round trips: commands, and
// pipelines as one.
type roundTrips struct{ n atomic.Int64 }

func (c *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}

func (c *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmds)
	}
}

// countTrips hooks a round trip counter to rdb.
func countTrips(rdb *redis.Client) *roundTrips {
	c := &roundTrips{}
	rdb.AddHook(c)
	return c
}

func measure(b *testing.B, rdb *redis.Client, trips *roundTrips) usage {
	b.Helper()
	u := usage{proc: testsupport.CPUTime(), trips: trips.n.Load()}
	info, err := rdb.Info(testsupport.Context(b), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(info) {
		name, value, _ := strings.Cut(strings.TrimSpace(line), ":")
		if name == "used_cpu_sys" || name == "used_cpu_user" {
			s, _ := strconv.ParseFloat(value, 64)
			u.redis += time.Duration(s * float64(time.Second))
		}
	}
	return u
}

// report reports the CPU time per job used since before.
func (u usage) report(b *testing.B, before usage) {
	b.ReportMetric(float64((u.proc-before.proc).Microseconds())/float64(b.N), "cpu-µs/job")
	b.ReportMetric(float64((u.redis-before.redis).Microseconds())/float64(b.N), "redis-cpu-µs/job")
	b.ReportMetric(float64(u.trips-before.trips)/float64(b.N), "redis-trips/job")
}
