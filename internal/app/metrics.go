package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/otjhelper/otj/modules/reports"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/taskmetrics"
	"github.com/otjhelper/otj/modules/web"
	"github.com/otjhelper/otj/platform/metrics"
	"github.com/otjhelper/otj/platform/service"
)

// defaultWorkersStallAfter is WORKERS_STALL_AFTER's default: how long jobs may wait with no worker
// asking for work before /healthz calls the workers degraded. A free
// JetStream worker renews its pull request every 5 seconds (and always
// holds one), a Redis worker reads again every second: 30 seconds is six
// missed pulls, no hiccup, and still well inside the minute after which
// a user would think a report lost. Workers busy with long jobs leave
// new ones waiting too, which is worth seeing as well.
const defaultWorkersStallAfter = 30 * time.Second

// metricsSetting checks METRICS_LISTEN: unset (metrics off) or
// host:port.
func metricsSetting(getenv func(string) string) (string, error) {
	v := getenv("METRICS_LISTEN")
	if v == "" {
		return "", nil
	}
	host, port, err := net.SplitHostPort(v)
	if p, perr := strconv.Atoi(port); err != nil || perr != nil || p < 0 || p > 65535 || (host != "" && host != "localhost" && net.ParseIP(host) == nil) {
		return "", fmt.Errorf("METRICS_LISTEN %q: want host:port, such as 127.0.0.1:9090", v)
	}
	return v, nil
}

// appMetrics is a process's Prometheus metrics (METRICS_LISTEN): its own
// registry, the job counters the Client reports to, the web's request
// metrics, and the server GET /metrics is answered by. A nil
// *appMetrics is metrics off, and its methods do nothing.
type appMetrics struct {
	reg  *prometheus.Registry
	srv  *metrics.Server
	jobs *taskmetrics.Jobs
	http *metrics.HTTP // web modes only
}

// listenMetrics takes METRICS_LISTEN's port, first, so that a clash fails
// before anything starts, and registers the process's metrics. It
// returns nil when METRICS_LISTEN is unset.
func listenMetrics(cfg config, m mode) (*appMetrics, error) {
	if cfg.MetricsListen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.MetricsListen)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("METRICS_LISTEN %s: already in use; set METRICS_LISTEN to a free port", cfg.MetricsListen)
		}
		return nil, fmt.Errorf("METRICS_LISTEN %s: %w", cfg.MetricsListen, err)
	}
	a := &appMetrics{reg: metrics.NewRegistry()}
	// The report's type has series from the start; others on first use.
	if a.jobs, err = taskmetrics.NewJobs(a.reg, reports.FullReport); err == nil && m.web() {
		a.http, err = metrics.NewHTTP(a.reg)
	}
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("metrics: %w", err)
	}
	a.srv = metrics.NewServer(ln, a.reg)
	return a, nil
}

// close gives back the listener of metrics that never started serving.
func (a *appMetrics) close() {
	if a != nil {
		a.srv.Close()
	}
}

// observer is what the Client reports its jobs to; nil when off.
func (a *appMetrics) observer() tasks.Observer {
	if a == nil {
		return nil
	}
	return a.jobs
}

// middleware measures the web's requests; nil when off or not a web.
func (a *appMetrics) middleware() func(http.Handler) http.Handler {
	if a == nil || a.http == nil {
		return nil
	}
	return a.http.Middleware
}

// start registers the collector that asks client for the queue's state
// (and, where the projection runs, its lag) at scrape time, serves the
// metrics as one of g's services until ctx ends, and says where.
func (a *appMetrics) start(ctx context.Context, g *service.Group, client *tasks.Client, m mode, log *slog.Logger, stdout io.Writer) error {
	if a == nil {
		return nil
	}
	err := a.reg.Register(taskmetrics.NewCollector(taskmetrics.CollectorConfig{
		Source: client, Queue: true, Projection: m.web(), Logger: log,
	}))
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	g.Go("metrics", func() error { return a.srv.Run(ctx, shutdownTimeout) })
	fmt.Fprintf(stdout, "Metrics at %s\n", a.srv.URL())
	return nil
}

// workersHealth is /healthz's "workers": degraded while jobs wait and no
// worker has asked for work for after (WORKERS_STALL_AFTER).
func workersHealth(client *tasks.Client, after time.Duration) web.HealthCheck {
	return web.HealthCheck{Name: "workers", Degraded: true,
		Check: func(ctx context.Context) error { return client.CheckWorkers(ctx, after) }}
}
