package web

import (
	"log/slog"
	"net/http"
	"time"
)

// The server's bounds on a client. A request, body included, must arrive
// within DefaultReadTimeout of the connection becoming ready for it, and
// a response must be written within DefaultWriteTimeout of its request's
// headers; a long download moves its own deadlines on as it goes
// (streamResponse), so only a client that stops reading is cut off.
const (
	DefaultReadTimeout  = 30 * time.Second
	DefaultWriteTimeout = 60 * time.Second
	readHeaderTimeout   = 10 * time.Second
	idleTimeout         = 2 * time.Minute
)

// NewServer returns the app's HTTP server: New's handler behind the
// timeouts that keep a slow or stalled client from holding a connection
// (Config.ReadTimeout and WriteTimeout).
func NewServer(cfg Config) (*http.Server, error) {
	cfg.defaultTimeouts()
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	h := s.routes()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(readHeaderTimeout, cfg.ReadTimeout),
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// Shutdown waits for active requests without cancelling them: the
	// event streams are told to end.
	srv.RegisterOnShutdown(s.stop)
	return srv, nil
}

func (c *Config) defaultTimeouts() {
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
}
