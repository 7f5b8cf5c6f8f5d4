// Package taskmetrics turns what the task system reports into
// Prometheus metrics: Jobs counts and times this process's jobs as the
// Client's tasks.Observer, and Collector asks the driver and the
// projection for their state at scrape time. The engine itself knows
// nothing of Prometheus.
package taskmetrics

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// durationBuckets suit both a no-op job (milliseconds) and a report of a
// million activities (seconds to minutes).
var durationBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// maxTypes bounds the job types that get series of their own; any more
// count under otherType, so that a caller making up types cannot make
// series without end.
const (
	maxTypes  = 64
	otherType = "other"
)

// Jobs counts this process's jobs by type. It is a tasks.Observer: give
// it to tasks.Config.Observer. Each call looks up its type's
// pre-resolved counters in a map read without locks, so the worker pays
// a few atomic adds per job.
type Jobs struct {
	enqueued, started, succeeded, failed, rejected, retried, cancelled *prometheus.CounterVec
	run, wait                                                          *prometheus.HistogramVec
	inFlight                                                           prometheus.Gauge

	types sync.Map // job type -> *typeMetrics
	mu    sync.Mutex
	n     int // types with series of their own
}

var _ tasks.Observer = (*Jobs)(nil)

// typeMetrics are one job type's series.
type typeMetrics struct {
	enqueued, started, succeeded, failed, rejected, retried, cancelled prometheus.Counter
	run, wait                                                          prometheus.Observer
}

// NewJobs registers the job metrics on reg, with series at zero for
// each of types, so that rates over them are defined before the first
// job.
func NewJobs(reg prometheus.Registerer, types ...string) (*Jobs, error) {
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"type"})
	}
	histogram := func(name, help string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: durationBuckets}, []string{"type"})
	}
	j := &Jobs{
		enqueued:  counter("otj_jobs_enqueued_total", "Jobs stored by this process's enqueues, by type."),
		started:   counter("otj_jobs_started_total", "Attempts this process's workers started, by type."),
		succeeded: counter("otj_jobs_succeeded_total", "Attempts this process's workers recorded as succeeded, by type."),
		failed:    counter("otj_jobs_failed_total", "Jobs this process's workers recorded as failed for good, by type; not those rejected for their input."),
		rejected:  counter("otj_jobs_rejected_total", "Jobs this process's workers recorded as failed for good because their input was at fault (an import's bad rows), by type."),
		retried:   counter("otj_jobs_retried_total", "Failed attempts this process's workers scheduled to run again, and jobs retried by hand through this process, by type."),
		cancelled: counter("otj_jobs_cancelled_total", "Jobs cancelled through this process, by type."),
		run:       histogram("otj_job_run_seconds", "How long an attempt's handler ran in this process, by type."),
		wait:      histogram("otj_job_wait_seconds", "How long a work item waited from falling due (enqueued, retry time, retried by hand) to its attempt's start, by type."),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "otj_jobs_in_flight", Help: "Attempts this process's workers are running now.",
		}),
	}
	for _, c := range []prometheus.Collector{j.enqueued, j.started, j.succeeded, j.failed, j.rejected, j.retried, j.cancelled, j.run, j.wait, j.inFlight} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, t := range types {
		j.of(t)
	}
	return j, nil
}

// of returns jobType's series, making them on first use.
func (j *Jobs) of(jobType string) *typeMetrics {
	if m, ok := j.types.Load(jobType); ok {
		return m.(*typeMetrics)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if m, ok := j.types.Load(jobType); ok {
		return m.(*typeMetrics)
	}
	label := jobType
	if j.n >= maxTypes {
		label = otherType
	} else {
		j.n++
	}
	m := &typeMetrics{
		enqueued: j.enqueued.WithLabelValues(label), started: j.started.WithLabelValues(label),
		succeeded: j.succeeded.WithLabelValues(label), failed: j.failed.WithLabelValues(label),
		rejected: j.rejected.WithLabelValues(label),
		retried:  j.retried.WithLabelValues(label), cancelled: j.cancelled.WithLabelValues(label),
		run: j.run.WithLabelValues(label), wait: j.wait.WithLabelValues(label),
	}
	j.types.Store(jobType, m)
	return m
}

// Enqueued implements tasks.Observer.
func (j *Jobs) Enqueued(jobType string, n int) { j.of(jobType).enqueued.Add(float64(n)) }

// Cancelled implements tasks.Observer.
func (j *Jobs) Cancelled(jobType string) { j.of(jobType).cancelled.Inc() }

// Retried implements tasks.Observer.
func (j *Jobs) Retried(jobType string) { j.of(jobType).retried.Inc() }

// AttemptStarted implements tasks.Observer.
func (j *Jobs) AttemptStarted(jobType string, waited time.Duration) {
	m := j.of(jobType)
	m.started.Inc()
	m.wait.Observe(max(waited, 0).Seconds())
	j.inFlight.Inc()
}

// AttemptEnded implements tasks.Observer.
func (j *Jobs) AttemptEnded(jobType string, outcome tasktype.EventKind, ran time.Duration) {
	j.inFlight.Dec()
	m := j.of(jobType)
	m.run.Observe(ran.Seconds())
	switch outcome {
	case tasktype.EventSucceeded:
		m.succeeded.Inc()
	case tasktype.EventFailed:
		m.failed.Inc()
	case tasktype.OutcomeRejected:
		m.rejected.Inc()
	case tasktype.EventRetrying:
		m.retried.Inc()
	}
}

// Source is what Collector asks at scrape time: the tasks.Client.
type Source interface {
	QueueStats(ctx context.Context) (tasktype.QueueStats, error)
	ProjectionLag(ctx context.Context) (tasks.ProjectionLag, error)
	WaitingJobs(ctx context.Context) (uint64, error)
}

// CollectorConfig says what a Collector reports.
type CollectorConfig struct {
	Source Source // required
	// Queue reports the work queue's state; Projection the projection's
	// lag (in a process that runs the projection, as it reads the
	// shared position, any one will do).
	Queue, Projection bool
	// Timeout bounds each scrape's questions. Default 2s.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Collector is a prometheus.Collector that asks the task system for the
// queue's and the projection's state when it is scraped: one request to
// the driver for the queue, a database read and one or two requests for
// the lag, each bounded by Timeout. Nothing polls between scrapes.
type Collector struct {
	cfg CollectorConfig

	pending, ackPending, waiting, lastPull, relay, lagEvents, lagSeconds, jobsWaiting, up *prometheus.Desc

	queueFailing, lagFailing atomic.Bool // logged once per outage
}

// NewCollector returns a Collector; register it on the process's
// registry.
func NewCollector(cfg CollectorConfig) *Collector {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &Collector{
		cfg:         cfg,
		pending:     d("otj_queue_pending_jobs", "Work items waiting for a worker, not yet handed out (the work consumer's NumPending; Redis: stream entries not yet read)."),
		ackPending:  d("otj_queue_ack_pending_jobs", "Work items handed out and not yet acked: running, or held back until their retry time."),
		waiting:     d("otj_queue_worker_requests", "Requests for work the server holds from workers now (JetStream pull requests waiting); a free worker always has one."),
		lastPull:    d("otj_queue_last_pull_timestamp_seconds", "When a worker last asked for work, as Unix time; 0 if none ever has."),
		relay:       d("otj_redis_relay_backlog_jobs", "Work items in the event log the Redis relay has not yet passed on to Redis."),
		lagEvents:   d("otj_projection_lag_events", "Events stored in the stream and not yet applied to task_result."),
		lagSeconds:  d("otj_projection_lag_seconds", "How long the oldest event not yet applied to task_result has been stored; 0 when caught up."),
		jobsWaiting: d("otj_jobs_waiting", "Jobs waiting for a worker in the task list (pending or retrying): each job once, unlike the queue's work items."),
		up:          d("otj_task_stats_up", "1 if the last scrape could read the source's state, 0 if not.", "source"),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.pending, c.ackPending, c.waiting, c.lastPull, c.relay, c.lagEvents, c.lagSeconds, c.jobsWaiting, c.up} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if c.cfg.Queue {
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
		st, err := c.cfg.Source.QueueStats(ctx)
		cancel()
		if c.report(&c.queueFailing, "queue", err) {
			gauge(c.up, 1, "queue")
			gauge(c.pending, float64(st.Pending))
			gauge(c.ackPending, float64(st.AckPending))
			gauge(c.waiting, float64(st.Waiting))
			// 0, not absent, when no worker ever asked: an alert on
			// how long ago that was must fire when none ever joined.
			lastPull := 0.0
			if !st.LastPull.IsZero() {
				lastPull = float64(st.LastPull.UnixNano()) / 1e9
			}
			gauge(c.lastPull, lastPull)
			if st.Relay != nil {
				gauge(c.relay, float64(st.Relay.Backlog))
			}
		} else {
			gauge(c.up, 0, "queue")
		}
	}
	if c.cfg.Projection {
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
		lag, err := c.cfg.Source.ProjectionLag(ctx)
		var waiting uint64
		if err == nil {
			waiting, err = c.cfg.Source.WaitingJobs(ctx)
		}
		cancel()
		if c.report(&c.lagFailing, "projection", err) {
			gauge(c.up, 1, "projection")
			gauge(c.lagEvents, float64(lag.Events))
			gauge(c.lagSeconds, lag.Behind.Seconds())
			gauge(c.jobsWaiting, float64(waiting))
		} else {
			gauge(c.up, 0, "projection")
		}
	}
}

// report logs a source's failure when it starts and its recovery, not
// every scrape, and says whether the read worked.
func (c *Collector) report(failing *atomic.Bool, source string, err error) bool {
	if err != nil {
		if !failing.Swap(true) {
			c.cfg.Logger.Warn("metrics: cannot read the task system's state; reporting otj_task_stats_up 0 until it can", "source", source, "err", err)
		}
		return false
	}
	if failing.Swap(false) {
		c.cfg.Logger.Info("metrics: reading the task system's state again", "source", source)
	}
	return true
}
