package main

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
// they are the ones that change the log.
func startActivityEvents(ctx context.Context, g *service.Group, cfg Config, be *backend, log *slog.Logger) error {
	js, err := jetstream.New(be.NC)
	if err != nil {
		return fmt.Errorf("activity events: %w", err)
	}
	if err := activity.EnsureStream(ctx, js, activity.StreamConfig{Replicas: cfg.NATSReplicas}); err != nil {
		return fmt.Errorf("activity events: %w", err)
	}
	relay, err := activity.NewRelay(activity.RelayConfig{DB: be.DB, JS: js, Logger: log.With("service", "activity-events")})
	if err != nil {
		return err
	}
	g.Go("activity-events", func() error { return relay.Run(ctx) })
	return nil
}
