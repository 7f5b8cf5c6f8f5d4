package jetstream_test

import (
	"testing"

	"github.com/otjhelper/otj/modules/tasks/brokertest"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/platform/testsupport"
)

// TestContract runs the broker contract on an embedded server per
// subtest, with the web side and the workers on separate connections as
// app web and app worker would be.
func TestContract(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, o brokertest.Options) brokertest.Broker {
		srv := testsupport.NATS(t)
		open := func(name string) *jetstream.Broker {
			t.Helper()
			b, err := jetstream.Open(testsupport.Context(t), jetstream.Config{
				Conn:    testsupport.Connect(t, srv, name),
				AckWait: o.Lease,
				Logger:  testsupport.Logger(t),
			})
			if err != nil {
				t.Fatalf("open %s broker: %v", name, err)
			}
			return b
		}
		web, worker := open("web"), open("worker")
		return brokertest.Broker{Enqueuer: web, Events: worker, Results: worker, Queue: worker.Queue}
	})
}
