package redisbroker_test

import (
	"context"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks/internal/driver/drivertest"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/redisbroker"
	"github.com/otjhelper/otj/platform/testsupport"
)

// TestContract runs the driver suite with the jobs on the test Redis
// (keys under each subtest's own prefix) and the events on an embedded
// JetStream server, the web side and the workers on separate
// connections and separate Redis brokers, each running its relay, as
// app web and app worker would.
func TestContract(t *testing.T) {
	drivertest.Run(t, func(t *testing.T, o drivertest.Options) drivertest.Driver {
		rdb, prefix := testsupport.Redis(t)
		srv := testsupport.NATS(t)
		open := func(name string) *redisbroker.Broker {
			t.Helper()
			b, err := redisbroker.New(redisbroker.Config{
				Client: rdb, Events: jetstreamtest.Broker(t, testsupport.Connect(t, srv, name)), Prefix: prefix,
				Lease: o.Lease, Poll: 100 * time.Millisecond, Name: name, Logger: testsupport.Logger(t),
			})
			if err != nil {
				t.Fatal(err)
			}
			testsupport.Go(t, func(ctx context.Context) { b.Relay(ctx) })
			return b
		}
		web, worker := open("web"), open("worker")
		events := jetstreamtest.Broker(t, testsupport.Connect(t, srv, "events"))
		return drivertest.Driver{Transport: web, Log: events, Queue: worker.Queue}
	})
}
