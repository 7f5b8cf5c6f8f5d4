// Package redisbrokertest opens Redis brokers for tests, on the tests'
// Redis server from platform/testsupport. It lives beside the driver it
// starts, as jetstreamtest does, so that platform knows nothing of the
// modules.
package redisbrokertest

import (
	"testing"

	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/redisbroker"
	"github.com/otjhelper/otj/platform/testsupport"
)

// Broker opens a Redis broker carrying the jobs of log, under a key
// prefix of the test's own, with cfg's other settings; Client, Events
// and Prefix are set here, and Logger unless cfg sets it.
func Broker(t testing.TB, log *jetstream.Broker, cfg redisbroker.Config) *redisbroker.Broker {
	t.Helper()
	cfg.Client, cfg.Prefix = testsupport.Redis(t)
	cfg.Events = log
	if cfg.Logger == nil {
		cfg.Logger = testsupport.Logger(t)
	}
	b, err := redisbroker.New(cfg)
	if err != nil {
		t.Fatalf("open redis broker: %v", err)
	}
	return b
}
