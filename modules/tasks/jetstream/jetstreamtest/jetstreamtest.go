// Package jetstreamtest opens JetStream brokers for tests, on a server
// from platform/testsupport. It lives beside the driver it starts, so that
// platform knows nothing of the modules.
package jetstreamtest

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/platform/testsupport"
)

// Broker opens a JetStream broker on nc with a short visibility timeout.
func Broker(t testing.TB, nc *nats.Conn) *jetstream.Broker {
	t.Helper()
	return BrokerWith(t, nc, jetstream.Config{})
}

// BrokerWith is Broker with settings of the test's own (the results
// bucket's bounds, say); Conn is set to nc, and AckWait and Logger are
// Broker's unless cfg sets them.
func BrokerWith(t testing.TB, nc *nats.Conn, cfg jetstream.Config) *jetstream.Broker {
	t.Helper()
	cfg.Conn = nc
	if cfg.AckWait == 0 {
		cfg.AckWait = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = testsupport.Logger(t)
	}
	b, err := jetstream.Open(testsupport.Context(t), cfg)
	if err != nil {
		t.Fatalf("open broker: %v", err)
	}
	return b
}
