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
// they are the ones that change the log. It returns the JetStream handle
// the stream is reached through, which an account's erasure purges.
func startActivityEvents(ctx context.Context, g *service.Group, cfg Config, be *backend, log *slog.Logger) (jetstream.JetStream, error) {
	js, err := jetstream.New(be.NC)
	if err != nil {
		return nil, fmt.Errorf("activity events: %w", err)
	}
	if err := activity.EnsureStream(ctx, js, activity.StreamConfig{Replicas: cfg.NATSReplicas, Logger: log}); err != nil {
		return nil, fmt.Errorf("activity events: %w", err)
	}
	relay, err := activity.NewRelay(activity.RelayConfig{DB: be.DB, JS: js, Logger: log.With("service", "activity-events")})
	if err != nil {
		return nil, err
	}
	g.Go("activity-events", func() error { return relay.Run(ctx) })
	return js, nil
}
