package jetstream_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/platform/testsupport"
)

// openLeased opens a broker on its own connection to srv, as a worker
// process with JOB_LEASE lease (and JOB_LEASE_RESET reset) would.
func openLeased(t *testing.T, nc *nats.Conn, lease time.Duration, reset bool) *jetstream.Broker {
	t.Helper()
	b, err := jetstream.Open(testsupport.Context(t), jetstream.Config{Conn: nc, AckWait: lease, ResetAckWait: reset, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatalf("open broker with lease %s: %v", lease, err)
	}
	return b
}

// leaseOf is the lease a queue reports as in force.
func leaseOf(t *testing.T, q any) time.Duration {
	t.Helper()
	l, ok := q.(interface{ Lease() time.Duration })
	if !ok {
		t.Fatalf("queue %T does not report its lease", q)
	}
	return l.Lease()
}

// TestQueueKeepsTheDeployedLease: the first worker of a deployment makes
// the workers consumer with its lease; a later worker whose lease
// differs is refused, naming both values, and the consumer keeps the
// first; one with the same lease joins.
func TestQueueKeepsTheDeployedLease(t *testing.T) {
	srv := testsupport.NATS(t)
	ctx := testsupport.Context(t)
	probe := testsupport.Connect(t, srv, "probe")

	first := openLeased(t, testsupport.Connect(t, srv, "worker-1"), 5*time.Second, false)
	q, err := first.Queue(ctx)
	if err != nil {
		t.Fatalf("first worker's queue: %v", err)
	}
	if got := jetstreamtest.WorkersAckWait(t, probe); got != 5*time.Second {
		t.Fatalf("fresh deployment: consumer AckWait %s, want the first worker's 5s", got)
	}
	if got := leaseOf(t, q); got != 5*time.Second {
		t.Fatalf("first worker's queue reports lease %s, want 5s", got)
	}

	other := openLeased(t, testsupport.Connect(t, srv, "worker-2"), 10*time.Second, false)
	_, err = other.Queue(ctx)
	if got := jetstreamtest.WorkersAckWait(t, probe); got != 5*time.Second {
		t.Errorf("after a worker with lease 10s: consumer AckWait %s, want 5s unchanged", got)
	}
	var mismatch *jetstream.LeaseMismatchError
	if !errors.As(err, &mismatch) {
		t.Fatalf("worker with lease 10s against a 5s consumer: %v, want a LeaseMismatchError", err)
	}
	if mismatch.Deployed != 5*time.Second || mismatch.Wanted != 10*time.Second {
		t.Fatalf("mismatch says deployed %s, wanted %s; want 5s and 10s", mismatch.Deployed, mismatch.Wanted)
	}

	same := openLeased(t, testsupport.Connect(t, srv, "worker-3"), 5*time.Second, false)
	if q, err := same.Queue(ctx); err != nil || leaseOf(t, q) != 5*time.Second {
		t.Fatalf("worker with the deployed lease: %v", err)
	}
}

// TestQueueResetsTheLeaseWhenAsked: with ResetAckWait a worker changes
// the deployed consumer's AckWait to its own, and its queue reports it.
func TestQueueResetsTheLeaseWhenAsked(t *testing.T) {
	srv := testsupport.NATS(t)
	ctx := testsupport.Context(t)
	probe := testsupport.Connect(t, srv, "probe")
	if _, err := openLeased(t, testsupport.Connect(t, srv, "worker-1"), 5*time.Second, false).Queue(ctx); err != nil {
		t.Fatal(err)
	}

	q, err := openLeased(t, testsupport.Connect(t, srv, "worker-2"), 10*time.Second, true).Queue(ctx)
	if err != nil {
		t.Fatalf("worker resetting the lease to 10s: %v", err)
	}
	if got := jetstreamtest.WorkersAckWait(t, probe); got != 10*time.Second {
		t.Fatalf("after the reset: consumer AckWait %s, want 10s", got)
	}
	if got := leaseOf(t, q); got != 10*time.Second {
		t.Fatalf("resetting worker's queue reports lease %s, want 10s", got)
	}
	// Now the old value is the odd one out.
	if _, err := openLeased(t, testsupport.Connect(t, srv, "worker-3"), 5*time.Second, false).Queue(ctx); !errors.Is(err, jetstream.ErrLeaseMismatch) {
		t.Fatalf("worker with the old 5s after the reset: %v, want ErrLeaseMismatch", err)
	}
}

// TestQueueFreshDeploymentRace: two first workers with different leases
// start at once on a fresh deployment; one makes the consumer, and the
// other is refused with the winner's lease, never changing it.
func TestQueueFreshDeploymentRace(t *testing.T) {
	for round := range 5 {
		srv := testsupport.NATS(t)
		ctx := testsupport.Context(t)
		leases := []time.Duration{5 * time.Second, 7 * time.Second}
		brokers := []*jetstream.Broker{
			openLeased(t, testsupport.Connect(t, srv, "worker-a"), leases[0], false),
			openLeased(t, testsupport.Connect(t, srv, "worker-b"), leases[1], false),
		}
		errs := make(chan error, 2)
		for _, b := range brokers {
			go func() { _, err := b.Queue(ctx); errs <- err }()
		}
		var refused []*jetstream.LeaseMismatchError
		for range brokers {
			err := <-errs
			var m *jetstream.LeaseMismatchError
			switch {
			case errors.As(err, &m):
				refused = append(refused, m)
			case err != nil:
				t.Fatalf("round %d: %v", round, err)
			}
		}
		deployed := jetstreamtest.WorkersAckWait(t, testsupport.Connect(t, srv, "probe"))
		if len(refused) != 1 || refused[0].Deployed != deployed || refused[0].Wanted == deployed {
			t.Fatalf("round %d: consumer has %s; want exactly one worker refused, naming it: %+v", round, deployed, refused)
		}
	}
}
