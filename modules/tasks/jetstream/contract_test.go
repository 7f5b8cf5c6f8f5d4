package jetstream_test

import (
	"testing"

	"github.com/otjhelper/otj/modules/tasks/internal/driver/drivertest"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/platform/testsupport"
)

// TestContract runs the driver suite on an embedded server per
// subtest, with the web side and the workers on separate connections as
// app web and app worker would be.
func TestContract(t *testing.T) {
	drivertest.Run(t, func(t *testing.T, o drivertest.Options) drivertest.Driver {
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
		return drivertest.Driver{Transport: web, Log: worker, Queue: worker.Queue}
	})
}
