package app

import (
	"context"
	"io"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/internal/app/bench"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/taskmetrics"
)

// runBench runs app bench and app bench report (package bench) on the
// app's own wiring: args are the flags after "bench".
func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return bench.Run(ctx, args, func() (bench.Env, error) { return benchEnv(getenv, stderr) }, stdout, stderr)
}

// dialectName is the database cfg selects, as bench reports name it.
func dialectName(cfg config) string {
	if cfg.DatabaseURL != "" {
		return "postgres"
	}
	return "sqlite"
}

// benchEnv is the settings the bench measures under, and how it opens the
// backend on each run's own data dir.
func benchEnv(getenv func(string) string, stderr io.Writer) (bench.Env, error) {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return bench.Env{}, err
	}
	// The backend's own warnings are worth seeing; its start-up lines
	// would only clutter the progress.
	log := newLogger(stderr, max(cfg.LogLevel, slog.LevelWarn))
	open := func(ctx context.Context, o bench.OpenOptions) (*bench.Backend, error) {
		run := cfg
		run.DataDir, run.Broker = o.DataDir, o.Broker
		if o.RedisKeyPrefix != "" {
			run.RedisKeyPrefix = o.RedisKeyPrefix
		}
		if o.Embedded {
			run.NATSURL = ""
		}
		if o.NATSURL != "" {
			run.NATSURL = o.NATSURL
		}
		be, err := openBackend(ctx, run, log, backendOptions{Name: o.Name, Listen: o.Listen, JoinOnly: o.JoinOnly})
		if err != nil {
			return nil, err
		}
		b := &bench.Backend{DB: be.DB, NewClient: be.client, Close: be.Close}
		if be.Embedded != nil {
			b.ClientURL = be.Embedded.ClientURL()
		}
		if be.Redis != nil {
			b.Redis, b.Ping, b.Relay = be.rdb, be.Redis.Ping, be.Redis.Relay
		}
		return b, nil
	}
	return bench.Env{
		Broker: cfg.Broker, External: cfg.NATSURL != "", Database: dialectName(cfg), NATSSync: cfg.NATSSync.String(), JobLease: cfg.JobLease,
		Logger: log, Open: open,
		// The bench runs reports only: no analytics page asks whether
		// the log has changed.
		Registry: func(db *bun.DB) (*tasks.Registry, error) { return newRegistry(db, cfg, nil) },
		// The job metrics every app process keeps with METRICS_LISTEN,
		// on a registry of each run's own.
		Observer: func() tasks.Observer {
			jobs, err := taskmetrics.NewJobs(prometheus.NewRegistry())
			if err != nil {
				panic(err) // a fresh registry holds nothing to clash with
			}
			return jobs
		},
	}, nil
}
