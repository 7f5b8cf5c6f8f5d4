// Package metrics is the Prometheus side every process shares: a
// registry of its own per process (no global state, so in-process test
// runs do not see each other's counts), the Go and process collectors,
// the HTTP server that answers GET /metrics on its own listener, and the
// HTTP request metrics of the web, labelled by chi's route pattern.
// What the task system reports lives in modules/tasks/taskmetrics.
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a registry holding the Go runtime's and the
// process's collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Server answers GET /metrics from a registry, on a listener of its own
// (not the app's port, so that the metrics need not be exposed where
// users reach the app).
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// scrapeTimeout bounds one scrape: the collectors that ask a server have
// shorter deadlines of their own.
const scrapeTimeout = 10 * time.Second

// NewServer serves reg's metrics on ln.
func NewServer(ln net.Listener, reg *prometheus.Registry) *Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError, Registry: reg, Timeout: scrapeTimeout,
	}))
	return &Server{ln: ln, srv: &http.Server{
		Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: scrapeTimeout + 5*time.Second,
	}}
}

// URL is where the metrics are served.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() + "/metrics" }

// Close gives back the listener of a server that was never Run.
func (s *Server) Close() error { return s.ln.Close() }

// Run serves until ctx ends, then shuts the server down within
// shutdownTimeout.
func (s *Server) Run(ctx context.Context, shutdownTimeout time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// HTTP counts the web's requests by route and status code and times
// them.
type HTTP struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewHTTP registers the HTTP metrics on reg.
func NewHTTP(reg prometheus.Registerer) (*HTTP, error) {
	h := &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "otj_http_requests_total",
			Help: "HTTP requests served, by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "otj_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route pattern.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
	}
	for _, c := range []prometheus.Collector{h.requests, h.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// unmatched is the route label of a request no route took (a 404), so
// that unknown paths do not each make a series.
const unmatched = "unmatched"

// routePattern is the pattern of the route that served a request, as
// written: a mounted router's patterns joined, its "/*" mount points
// dropped. chi's own RoutePattern also drops a trailing slash, which
// would label GET /tasks/ as the route /tasks, another route.
func routePattern(rc *chi.Context) string {
	if rc == nil {
		return ""
	}
	p := strings.Join(rc.RoutePatterns, "")
	for strings.Contains(p, "/*/") {
		p = strings.ReplaceAll(p, "/*/", "/")
	}
	return strings.ReplaceAll(p, "//", "/")
}

// Middleware measures every request. It must run inside a chi router
// (web.Config.Middleware), where the route pattern is known once the
// request has been served.
func (h *HTTP) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		defer func() {
			route := unmatched
			if p := routePattern(chi.RouteContext(r.Context())); p != "" {
				route = p
			}
			status := ww.Status()
			if status == 0 {
				status = http.StatusOK // nothing written: net/http sends 200
			}
			h.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
			h.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}()
		next.ServeHTTP(ww, r)
	})
}
