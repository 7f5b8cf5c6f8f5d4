package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"

	"github.com/otjhelper/otj/internal/app/operator"
	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/analytics"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/platform/natsserver"
)

// runTasks is app tasks (package operator) on the app's own wiring: args
// are what follows "tasks".
func runTasks(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return operator.Tasks(ctx, args, operatorOpen(getenv, stderr, "tasks"), stdout, stderr)
}

// runProjections is app projections (package operator) on the app's own
// wiring.
func runProjections(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return operator.Projections(ctx, args, operatorOpen(getenv, stderr, "projections"), stdout, stderr)
}

// runAnalytics is app analytics --all (package operator): one batch
// analytics job per user.
func runAnalytics(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return operator.Analytics(ctx, analytics.Type, args, operatorOpen(getenv, stderr, "analytics"), stdout, stderr)
}

// operatorOpen loads the configuration and opens the backend for the
// operator command name. With NATS_URL unset it runs an embedded server on
// the data dir's own store, which works only while no app all or app web
// holds that store.
func operatorOpen(getenv func(string) string, stderr io.Writer, name string) operator.OpenFunc {
	return func(ctx context.Context) (*operator.Backend, error) {
		cfg, err := loadConfig(getenv)
		if err != nil {
			return nil, err
		}
		if getenv("LOG_LEVEL") == "" {
			// Commands print their answer on stdout; the embedded server's
			// start and stop are not news here.
			cfg.LogLevel = slog.LevelWarn
		}
		log := newLogger(stderr, cfg.LogLevel).With("command", name)
		// An operator command never creates a data dir: a mistyped
		// OTJ_DATA_DIR should not yield an empty, freshly migrated one.
		// With DATABASE_URL and NATS_URL it holds nothing the command reads.
		if _, err := os.Stat(cfg.DataDir); err != nil && needsDataDir(cfg) {
			return nil, fmt.Errorf("OTJ_DATA_DIR %s: %w; point it at the app's data dir", cfg.DataDir, err)
		}
		b, err := openBackend(ctx, cfg, log, backendOptions{Name: "otj-" + name})
		if errors.Is(err, natsserver.ErrStoreInUse) {
			// Only one process may run a server on the store; app web's
			// server takes clients, so going through it is the way in.
			addr := cfg.NATSListen
			if _, port, _ := net.SplitHostPort(addr); port == "0" {
				addr = "host:port"
			}
			return nil, fmt.Errorf("OTJ_DATA_DIR %s is in use by a running app (app all or app web); stop it, or run this command with NATS_URL set to its NATS address (app web prints it, e.g. NATS_URL=nats://%s; the token is read from the data dir)",
				cfg.DataDir, addr)
		}
		if err != nil {
			return nil, err
		}
		tc, err := b.client(tasks.Config{Logger: log})
		if err != nil {
			b.Close(ctx)
			return nil, err
		}
		return &operator.Backend{Tasks: tc, Users: activity.NewStore(b.DB), Logger: log, Close: b.Close}, nil
	}
}
