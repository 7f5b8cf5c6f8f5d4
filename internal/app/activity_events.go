package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/platform/service"
)

// startActivityEvents makes the ACTIVITY stream (with NATS_REPLICAS
// copies, as TASKS) and runs the relay that moves the activity log's
// outbox onto it, owned by g and stopped with ctx. Web processes run it:
// they are the ones that change the log. It returns the JetStream handle
// the stream is read through, and the one an account's erasure purges
// it through: the maintenance connection's, when the process has one, as
// the everyday connection may neither make the stream nor purge it.
func startActivityEvents(ctx context.Context, g *service.Group, cfg config, be *backend, log *slog.Logger) (js, maint jetstream.JetStream, err error) {
	if js, err = jetstream.New(be.NC); err != nil {
		return nil, nil, fmt.Errorf("activity events: %w", err)
	}
	maint = js
	if be.Maint != nil {
		if maint, err = jetstream.New(be.Maint); err != nil {
			return nil, nil, fmt.Errorf("activity events: %w", err)
		}
	}
	if err := activity.EnsureStream(ctx, maint, activity.StreamConfig{Replicas: cfg.NATSReplicas, Logger: log}); err != nil {
		return nil, nil, fmt.Errorf("activity events: %w", err)
	}
	relay, err := activity.NewRelay(activity.RelayConfig{DB: be.DB, JS: js, Logger: log.With("service", "activity-events")})
	if err != nil {
		return nil, nil, err
	}
	g.Go("activity-events", func() error { return relay.Run(ctx) })
	return js, maint, nil
}
