package natsserver_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/platform/natsconn"
	"github.com/otjhelper/otj/platform/testsupport"
)

// A replicated stream on the test cluster keeps taking writes and keeps
// what it took when its leader is killed, and the killed node comes back
// on its store and catches up.
func TestClusterSurvivesItsStreamLeader(t *testing.T) {
	c := testsupport.NATSCluster(t, 3)
	nc, err := natsconn.Connect(natsconn.Options{URL: c.URLs(), Name: "cluster-test", Token: testsupport.NATSToken, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := natsjs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testsupport.Context(t)
	call := func(fn func(ctx context.Context) error) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return fn(ctx)
	}
	var stream natsjs.Stream
	if err := call(func(ctx context.Context) (err error) {
		stream, err = js.CreateStream(ctx, natsjs.StreamConfig{Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3})
		return err
	}); err != nil {
		t.Fatalf("create R3 stream: %v", err)
	}
	publish := func(n int) {
		t.Helper()
		for range n {
			// A publish during an election may time out: try again, as
			// the app does.
			testsupport.Eventually(t, 30*time.Second, "publish to the R3 stream", func() bool {
				return call(func(ctx context.Context) error { _, err := js.Publish(ctx, "r3.x", []byte("x")); return err }) == nil
			})
		}
	}
	publish(10)
	var leader int
	testsupport.Eventually(t, 30*time.Second, "the R3 stream has a leader", func() bool { leader = c.StreamLeader("R3"); return leader >= 0 })
	if c.Node(leader) == nil {
		t.Fatalf("node %d leads but is not running", leader)
	}

	c.Kill(leader)
	if c.Node(leader) != nil {
		t.Fatalf("node %d still running after Kill", leader)
	}
	start := time.Now()
	testsupport.Eventually(t, 30*time.Second, "a new leader for R3", func() bool { l := c.StreamLeader("R3"); return l >= 0 && l != leader })
	t.Logf("new stream leader after %s", time.Since(start))
	publish(10)

	c.Restart(leader)
	if c.Node(leader) == nil {
		t.Fatalf("node %d not running after Restart", leader)
	}
	testsupport.Eventually(t, 30*time.Second, "the restarted node catches up", func() bool {
		var info *natsjs.StreamInfo
		if err := call(func(ctx context.Context) (err error) { info, err = stream.Info(ctx); return err }); err != nil {
			return false
		}
		current := 0
		for _, p := range info.Cluster.Replicas {
			if p.Current {
				current++
			}
		}
		return info.State.Msgs == 20 && len(info.Cluster.Replicas) == 2 && current == 2
	})
	if got := nc.Status(); got != nats.CONNECTED {
		t.Errorf("client status %s after the leader's restart", got)
	}
}
