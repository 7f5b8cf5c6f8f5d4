package activity

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/platform/natsconn"
	"github.com/otjhelper/otj/platform/testsupport"
)

// TestEnsureStreamWaitsForAFormingCluster makes the stream, with three
// replicas, on a cluster that answers but cannot place it yet (two of
// three nodes down), as a freshly started cluster does until every node
// is up and it has elected its leaders: EnsureStream waits, saying so,
// instead of failing the process's start, and makes the stream once the
// nodes are up. The meta leader refuses the stream at once while it
// still leads ("no suitable peers for placement, peer offline"); once
// it has stepped down, nobody answers.
func TestEnsureStreamWaitsForAFormingCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster; not in -short")
	}
	for _, tc := range []struct {
		name       string
		leaderless bool
	}{
		{"a node not up", false},
		{"no meta leader", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testsupport.NATSCluster(t, 3)
			c.Kill(1)
			c.Kill(2)
			if tc.leaderless {
				testsupport.Eventually(t, 2*time.Minute, "the last node gives up its meta leadership", func() bool {
					info, err := c.Node(0).Server().Jsz(&server.JSzOptions{})
					return err == nil && info.Meta != nil && info.Meta.Leader == ""
				})
			}
			nc, err := natsconn.Connect(natsconn.Options{URL: c.URLs(), Name: "activity-cluster-test", Token: testsupport.NATSToken, Logger: testsupport.Logger(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			waiting := make(chan struct{})
			log := slog.New(&waitSignal{Handler: testsupport.Logger(t).Handler(), waiting: waiting})
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- EnsureStream(ctx, js, StreamConfig{Replicas: 3, Logger: log}) }()
			select {
			case err := <-done:
				t.Fatalf("EnsureStream ended while the cluster could not place the stream: %v", err)
			case <-waiting:
			}
			c.Restart(1)
			c.Restart(2)
			if err := <-done; err != nil {
				t.Fatalf("EnsureStream once the cluster formed: %v", err)
			}
			s, err := js.Stream(ctx, Stream)
			if err != nil {
				t.Fatal(err)
			}
			if r := s.CachedInfo().Config.Replicas; r != 3 {
				t.Errorf("stream %s has %d replicas, want 3", Stream, r)
			}
		})
	}
}

// waitSignal closes waiting at the first record saying the caller waits
// for something.
type waitSignal struct {
	slog.Handler
	waiting chan struct{}
	once    sync.Once
}

func (h *waitSignal) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "waiting for ") {
		h.once.Do(func() { close(h.waiting) })
	}
	return h.Handler.Handle(ctx, r)
}
