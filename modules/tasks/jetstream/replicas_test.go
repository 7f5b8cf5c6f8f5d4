package jetstream_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/platform/natsconn"
	"github.com/otjhelper/otj/platform/testsupport"
)

// clusterConn connects to every node of c, as NATS_URL with the nodes'
// URLs does.
func clusterConn(t *testing.T, c *testsupport.Cluster, name string) *nats.Conn {
	t.Helper()
	nc, err := natsconn.Connect(natsconn.Options{URL: c.URLs(), Name: name, Token: testsupport.NATSToken, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatalf("connect %s: %v", name, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func TestSingleServerRefusesReplicas(t *testing.T) {
	nc := testsupport.Connect(t, testsupport.NATS(t), "web")
	_, err := jetstream.Open(testsupport.Context(t), jetstream.Config{Conn: nc, Replicas: 3, Logger: testsupport.Logger(t)})
	if !errors.Is(err, jetstream.ErrReplicas) {
		t.Fatalf("open with 3 replicas on one server: %v, want ErrReplicas", err)
	}
	for _, n := range []int{-1, jetstream.MaxReplicas + 1} {
		if _, err := jetstream.Open(testsupport.Context(t), jetstream.Config{Conn: nc, Replicas: n}); err == nil {
			t.Errorf("open with %d replicas: no error", n)
		}
	}
}

// Replicas reach the stream, the results bucket and the work consumer,
// on a new deployment and on one made with fewer; zero leaves them as
// deployed.
func TestReplicasAreAppliedToStreamBucketAndConsumer(t *testing.T) {
	c := testsupport.NATSCluster(t, 3)
	nc := clusterConn(t, c, "worker")
	ctx := testsupport.Context(t)
	js, err := natsjs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	open := func(replicas int) *jetstream.Broker {
		t.Helper()
		b, err := jetstream.Open(ctx, jetstream.Config{Conn: nc, Replicas: replicas, Results: &jetstream.ResultBounds{}, Logger: testsupport.Logger(t)})
		if err != nil {
			t.Fatalf("open with %d replicas: %v", replicas, err)
		}
		return b
	}
	check := func(want int) {
		t.Helper()
		testsupport.Eventually(t, 30*time.Second, "replicas as configured", func() bool {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			s, err := js.Stream(rctx, jetstream.StreamName)
			if err != nil || s.CachedInfo().Config.Replicas != want {
				return false
			}
			bucket, err := js.Stream(rctx, "OBJ_"+jetstream.ResultsBucket)
			if err != nil || bucket.CachedInfo().Config.Replicas != want {
				return false
			}
			cons, err := s.Consumer(rctx, jetstream.WorkConsumer)
			if err != nil {
				return false
			}
			ci := cons.CachedInfo()
			return ci.Cluster != nil && len(ci.Cluster.Replicas) == want-1
		})
	}
	b := open(1)
	if _, err := b.Queue(ctx); err != nil {
		t.Fatal(err)
	}
	check(1)
	b = open(3)
	if _, err := b.Queue(ctx); err != nil {
		t.Fatal(err)
	}
	check(3)
	open(0) // an operator command without NATS_REPLICAS
	check(3)
}
