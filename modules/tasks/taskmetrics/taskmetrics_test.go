package taskmetrics_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/internal/driver"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/redisbroker"
	"github.com/otjhelper/otj/modules/tasks/redisbroker/redisbrokertest"
	"github.com/otjhelper/otj/modules/tasks/taskmetrics"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/metrics"
	"github.com/otjhelper/otj/platform/metrics/metricstest"
	"github.com/otjhelper/otj/platform/testsupport"
)

func TestMain(m *testing.M) { testsupport.VerifyNoLeaks(m) }

// broker is one broker the test runs on: what carries the jobs, and for
// Redis its relay.
type broker struct {
	transport driver.Transport
	queue     func(ctx context.Context) (driver.Queue, error)
	relay     func(ctx context.Context) error // nil: no relay
}

// TestMetricsOnEachBroker scrapes a Client's metrics before any worker
// has joined, and after one has run the jobs, on JetStream and on
// Redis: the job counters, the queue's pending counts, the projection's
// lag and, on Redis, the relay's backlog.
func TestMetricsOnEachBroker(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T, log *jetstream.Broker) broker
	}{
		{"jetstream", func(t *testing.T, log *jetstream.Broker) broker {
			return broker{transport: log, queue: log.Queue}
		}},
		{"redis", func(t *testing.T, log *jetstream.Broker) broker {
			b := redisbrokertest.Broker(t, log, redisbroker.Config{Poll: 100 * time.Millisecond})
			return broker{transport: b, queue: b.Queue, relay: b.Relay}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { metricsOn(t, tc.open) })
	}
}

func metricsOn(t *testing.T, open func(t *testing.T, log *jetstream.Broker) broker) {
	ctx := testsupport.Context(t)
	db, _ := testsupport.DB(t)
	log := jetstreamtest.Broker(t, testsupport.Connect(t, testsupport.NATS(t), "metrics"))
	drv := open(t, log)

	reg := tasks.NewRegistry()
	ok := func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
		time.Sleep(5 * time.Millisecond)
		return tasktype.Result{}, nil
	}
	fail := func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
		return tasktype.Result{}, tasktype.Permanent(errors.New("planned"))
	}
	if err := reg.Register("ok_job", ok, tasktype.Policy{}); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register("fail_job", fail, tasktype.Policy{}); err != nil {
		t.Fatal(err)
	}
	// A job whose input is at fault, as an import of a file with bad
	// rows: failed for good, counted as rejected, not as failed.
	reject := func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
		return tasktype.Result{}, tasktype.Rejected(errors.New("line 3: no date"), tasktype.Fix{})
	}
	if err := reg.Register("reject_job", reject, tasktype.Policy{}); err != nil {
		t.Fatal(err)
	}
	// A worker's queue, opened before the first scrape: the worker has
	// joined (RunWorker below opens its own).
	if _, err := drv.queue(ctx); err != nil {
		t.Fatal(err)
	}
	promReg := metrics.NewRegistry()
	jobs, err := taskmetrics.NewJobs(promReg, "ok_job")
	if err != nil {
		t.Fatal(err)
	}
	c, err := tasks.NewClient(tasks.Config{DB: db, Log: log, Transport: drv.transport, Registry: reg, Observer: jobs, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	promReg.MustRegister(taskmetrics.NewCollector(taskmetrics.CollectorConfig{Source: c, Queue: true, Projection: true, Logger: testsupport.Logger(t)}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := metrics.NewServer(ln, promReg)
	testsupport.Go(t, func(ctx context.Context) {
		if err := srv.Run(ctx, 5*time.Second); err != nil {
			t.Errorf("metrics server: %v", err)
		}
	})
	scrape := func() metricstest.Families { return metricstest.Scrape(t, srv.URL()) }

	if drv.relay != nil {
		// The relay's consumer, made and emptied; then the relay stops,
		// and what follows is its backlog.
		relayCtx, stopRelay := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = drv.relay(relayCtx) }()
		testsupport.Eventually(t, 10*time.Second, "relay consumer never appeared", func() bool {
			v, ok := scrape().Get("otj_redis_relay_backlog_jobs")
			return ok && v == 0
		})
		stopRelay()
		<-done
	}
	enqueue := func(typ string, n int) {
		for range n {
			if _, err := c.Enqueue(ctx, tasktype.EnqueueRequest{Type: typ, UserID: 1}); err != nil {
				t.Fatal(err)
			}
		}
	}
	enqueue("ok_job", 3)
	enqueue("fail_job", 1)
	enqueue("reject_job", 1)

	// Redis's Enqueue may return before its send lands (the relay makes
	// sure of it): the queue shows the jobs a moment later.
	var before metricstest.Families
	testsupport.Eventually(t, 10*time.Second, "the queue never showed the jobs pending", func() bool {
		before = scrape()
		v, _ := before.Get("otj_queue_pending_jobs")
		return v == 5
	})
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"otj_jobs_enqueued_total", []string{"type", "ok_job"}, 3},
		{"otj_jobs_enqueued_total", []string{"type", "fail_job"}, 1},
		{"otj_jobs_started_total", []string{"type", "ok_job"}, 0},
		{"otj_queue_ack_pending_jobs", nil, 0},
		{"otj_projection_lag_events", nil, 5},
		{"otj_task_stats_up", []string{"source", "queue"}, 1},
	} {
		if got := before.Value(t, tt.name, tt.labels...); got != tt.want {
			t.Errorf("before the worker: %s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	if lag := before.Value(t, "otj_projection_lag_seconds"); lag <= 0 || lag > 30 {
		t.Errorf("before the projection: otj_projection_lag_seconds = %v, want a little over 0", lag)
	}
	if drv.relay != nil {
		if got := before.Value(t, "otj_redis_relay_backlog_jobs"); got != 5 {
			t.Errorf("relay backlog with the relay stopped = %v, want 5", got)
		}
	} else if _, ok := before.Get("otj_redis_relay_backlog_jobs"); ok {
		t.Error("JetStream reports a Redis relay backlog")
	}

	testsupport.Go(t, func(ctx context.Context) { _ = c.RunWorker(ctx) })
	testsupport.Go(t, func(ctx context.Context) { _ = c.RunProjection(ctx) })
	var after metricstest.Families
	testsupport.Eventually(t, 20*time.Second, "the worker's counters never reached every job", func() bool {
		after = scrape()
		s, _ := after.Get("otj_jobs_succeeded_total", "type", "ok_job")
		f, _ := after.Get("otj_jobs_failed_total", "type", "fail_job")
		r, _ := after.Get("otj_jobs_rejected_total", "type", "reject_job")
		lag, _ := after.Get("otj_projection_lag_events")
		return s == 3 && f == 1 && r == 1 && lag == 0
	})
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"otj_jobs_started_total", []string{"type", "ok_job"}, 3},
		{"otj_jobs_started_total", []string{"type", "fail_job"}, 1},
		{"otj_jobs_failed_total", []string{"type", "reject_job"}, 0},
		{"otj_jobs_rejected_total", []string{"type", "fail_job"}, 0},
		{"otj_jobs_retried_total", []string{"type", "ok_job"}, 0},
		{"otj_job_run_seconds", []string{"type", "ok_job"}, 3},
		{"otj_job_wait_seconds", []string{"type", "fail_job"}, 1},
		{"otj_jobs_in_flight", nil, 0},
		{"otj_queue_pending_jobs", nil, 0},
		{"otj_projection_lag_seconds", nil, 0},
	} {
		if got := after.Value(t, tt.name, tt.labels...); got != tt.want {
			t.Errorf("after the worker: %s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	last := time.Unix(0, int64(after.Value(t, "otj_queue_last_pull_timestamp_seconds")*1e9))
	if since := time.Since(last); since < -time.Second || since > 10*time.Second {
		t.Errorf("otj_queue_last_pull_timestamp_seconds is %s ago with a worker pulling", since)
	}
	if err := c.CheckWorkers(ctx, time.Second); err != nil {
		t.Errorf("CheckWorkers with a worker running and nothing waiting: %v", err)
	}
}

// TestLastPullBeforeAnyWorker scrapes the queue of a deployment no worker
// ever joined, with jobs waiting, on each broker: the last-pull gauge is
// there, at 0, so that an alert on how long ago it was can fire (an
// absent series compares as nothing, and the alert never would). The
// jobs waiting are counted as jobs: a cancelled one is not.
func TestLastPullBeforeAnyWorker(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T, log *jetstream.Broker) driver.Transport
	}{
		{"jetstream", func(t *testing.T, log *jetstream.Broker) driver.Transport { return log }},
		{"redis", func(t *testing.T, log *jetstream.Broker) driver.Transport {
			return redisbrokertest.Broker(t, log, redisbroker.Config{})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testsupport.Context(t)
			db, _ := testsupport.DB(t)
			log := jetstreamtest.Broker(t, testsupport.Connect(t, testsupport.NATS(t), "metrics"))
			enq := tc.open(t, log)
			c, err := tasks.NewClient(tasks.Config{DB: db, Log: log, Transport: enq, Logger: testsupport.Logger(t)})
			if err != nil {
				t.Fatal(err)
			}
			var first tasktype.Job
			for i := range 2 {
				job, err := c.Enqueue(ctx, tasktype.EnqueueRequest{Type: "ok_job", UserID: 1})
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					first = job
				}
			}
			promReg := metrics.NewRegistry()
			promReg.MustRegister(taskmetrics.NewCollector(taskmetrics.CollectorConfig{Source: c, Queue: true, Projection: true, Logger: testsupport.Logger(t)}))
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := metrics.NewServer(ln, promReg)
			testsupport.Go(t, func(ctx context.Context) { _ = srv.Run(ctx, 5*time.Second) })
			var f metricstest.Families
			testsupport.Eventually(t, 10*time.Second, "the queue never showed the jobs pending", func() bool {
				f = metricstest.Scrape(t, srv.URL())
				v, _ := f.Get("otj_queue_pending_jobs")
				return v == 2
			})
			v, ok := f.Get("otj_queue_last_pull_timestamp_seconds")
			if !ok || v != 0 {
				t.Errorf("otj_queue_last_pull_timestamp_seconds = %v (present: %v), want 0 with no worker ever", v, ok)
			}
			// One of the two cancelled: its item stays in the queue, but
			// one job waits.
			if _, err := c.Cancel(ctx, 1, first.ID, "test"); err != nil {
				t.Fatal(err)
			}
			if err := c.CatchUp(ctx); err != nil {
				t.Fatal(err)
			}
			if v := metricstest.Scrape(t, srv.URL()).Value(t, "otj_jobs_waiting"); v != 1 {
				t.Errorf("otj_jobs_waiting = %v with one of two jobs cancelled, want 1", v)
			}
		})
	}
}
