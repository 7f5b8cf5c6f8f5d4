package testsupport

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/otjhelper/otj/platform/natsserver"
)

// Cluster is a JetStream cluster of embedded servers in the test's
// process, on loopback, each node with its own temp store: what an
// operator's three-node NATS is to the app, for tests that kill and
// restart nodes under load. Every node requires NATSToken from clients,
// or the credentials NATSClusterWith was given.
type Cluster struct {
	t     testing.TB
	mu    sync.Mutex
	cfgs  []natsserver.Config
	nodes []*natsserver.Server // nil while a node is killed
}

// clusterReady bounds the wait for a JetStream meta leader, after start
// and after a restart: about 3 s on a quiet 2-core machine, far more
// with other tests running.
const clusterReady = 3 * time.Minute

// NATSCluster starts a cluster of n nodes and waits until JetStream has
// elected a meta leader, so that the first stream made on it does not
// time out. The nodes are shut down when the test ends.
//
// Every port, for clients and for routes, is picked before the first
// node starts and kept for good, so that a node restarted on its store
// comes back where the others and the clients look for it.
func NATSCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return NATSClusterWith(t, n, natsserver.Auth{Token: NATSToken})
}

// NATSClusterWith is NATSCluster with the credentials every node
// requires: users with their roles' permissions, say.
func NATSClusterWith(t testing.TB, n int, auth natsserver.Auth) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("NATSCluster: %d nodes", n)
	}
	ports := freePorts(t, 2*n)
	var routes []string
	for i := range n {
		routes = append(routes, "127.0.0.1:"+strconv.Itoa(ports[n+i]))
	}
	c := &Cluster{t: t, nodes: make([]*natsserver.Server, n)}
	dir := t.TempDir()
	for i := range n {
		c.cfgs = append(c.cfgs, natsserver.Config{
			Name:     fmt.Sprintf("otj-test-%d", i),
			StoreDir: filepath.Join(dir, strconv.Itoa(i)),
			Listen:   "127.0.0.1:" + strconv.Itoa(ports[i]),
			Auth:     auth,
			Cluster:  &natsserver.ClusterConfig{Name: "otj-test", Listen: routes[i], Routes: routes},
			// A node's start waits for its listeners only, not for the
			// others, so the nodes start one after another.
			ReadyTimeout: clusterReady,
		})
	}
	t.Cleanup(c.shutdown)
	for i := range n {
		c.start(i)
	}
	c.waitMeta(-1)
	return c
}

// freePorts finds n free loopback ports, holding each until all are
// found so that no two are the same.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}

func (c *Cluster) start(i int) {
	c.t.Helper()
	s, err := natsserver.Start(c.cfgs[i])
	if err != nil {
		c.t.Fatalf("start cluster node %d: %v", i, err)
	}
	c.mu.Lock()
	c.nodes[i] = s
	c.mu.Unlock()
}

// waitMeta waits until the running nodes agree on a meta leader, node i
// (every running node when i is -1) is current with it, and the leader
// sees every running node online: until then a stream with a replica on
// each node is refused ("no suitable peers for placement").
func (c *Cluster) waitMeta(i int) {
	c.t.Helper()
	Eventually(c.t, clusterReady, "the cluster has no JetStream meta leader that sees every node", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		var leader *server.Server
		running := 0
		for j, s := range c.nodes {
			if s == nil {
				continue
			}
			running++
			ns := s.Server()
			if ns.JetStreamIsLeader() {
				leader = ns
			}
			if (i < 0 || i == j) && !ns.JetStreamIsCurrent() {
				return false
			}
		}
		if leader == nil {
			return false
		}
		info, err := leader.Jsz(&server.JSzOptions{})
		if err != nil || info.Meta == nil {
			return false
		}
		online := 0
		for _, p := range info.Meta.Replicas {
			if p.Current && !p.Offline {
				online++
			}
		}
		return online >= running-1
	})
}

// URLs is the client URLs of every node, comma-separated, as NATS_URL
// takes them: a client connected to a killed node reconnects to another.
func (c *Cluster) URLs() string {
	var urls []string
	for _, cfg := range c.cfgs {
		urls = append(urls, "nats://"+cfg.Listen)
	}
	return strings.Join(urls, ",")
}

// Kill shuts node i down at once, without draining its clients, as near
// to a crash as an in-process server gets: its clients see the connection
// drop and its raft groups lose a member. Its store stays for Restart.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	c.mu.Lock()
	s := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if s == nil {
		c.t.Fatalf("kill cluster node %d: not running", i)
	}
	s.Shutdown()
}

// Restart starts node i again on its store and ports, and waits until it
// is current with the cluster's meta leader.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.mu.Lock()
	running := c.nodes[i] != nil
	c.mu.Unlock()
	if running {
		c.t.Fatalf("restart cluster node %d: still running", i)
	}
	c.start(i)
	c.waitMeta(i)
}

// Node is node i's server, or nil while it is killed.
func (c *Cluster) Node(i int) *natsserver.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i]
}

// StreamLeader is the index of the running node that leads stream (in
// the global account, the one token clients use), or -1 while none does.
func (c *Cluster) StreamLeader(stream string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, s := range c.nodes {
		if s != nil && s.Server().JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// NodeOf is the index of the node whose client port is that of addr, a
// connection's ConnectedAddr, or -1.
func (c *Cluster) NodeOf(addr string) int {
	for i, cfg := range c.cfgs {
		if cfg.Listen == addr {
			return i
		}
	}
	return -1
}

func (c *Cluster) shutdown() {
	c.mu.Lock()
	nodes := c.nodes
	c.nodes = make([]*natsserver.Server, len(nodes))
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range nodes {
		if s != nil {
			wg.Go(s.Shutdown)
		}
	}
	wg.Wait()
}
