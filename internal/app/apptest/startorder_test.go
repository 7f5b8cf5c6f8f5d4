package apptest

import (
	"io"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/natsserver"
	"github.com/otjhelper/otj/platform/testsupport"
)

var waitingRE = regexp.MustCompile(`(?m)^.*msg="waiting for the NATS server at NATS_URL.*attempt=(\d+).*$`)

// TestWorkerStartedBeforeItsServerWaits starts app worker, a real
// process, with NATS_URL on a port where nothing listens: it waits,
// saying so at a growing interval, and once a server starts there it
// connects and runs a job.
func TestWorkerStartedBeforeItsServerWaits(t *testing.T) {
	t.Parallel()
	addr := "127.0.0.1:" + freePort(t)
	env := map[string]string{"NATS_URL": "nats://" + addr, "NATS_TOKEN": testsupport.NATSToken,
		"OTJ_DATA_DIR": t.TempDir(), "JOB_LEASE": defaultLease.String()}
	w := startProcess(t, "worker", env, "worker")
	testsupport.Eventually(t, 30*time.Second, "the worker never said twice that it waits", func() bool {
		return len(waitingRE.FindAllString(w.stderr.String(), -1)) >= 2
	})
	select {
	case <-w.done:
		t.Fatalf("the worker exited while waiting: %v", w.err)
	default:
	}

	s, err := natsserver.Start(natsserver.Config{StoreDir: t.TempDir(), Listen: addr, Auth: natsserver.Auth{Token: testsupport.NATSToken}})
	if err != nil {
		t.Fatalf("start NATS on %s: %v", addr, err)
	}
	// After the worker has gone (cleanups run last-registered first).
	t.Cleanup(s.Shutdown)
	// Connected, the worker waits for the stream, which the web side
	// makes; the test's broker makes it here.
	w.waitStderr(t, regexp.MustCompile(`msg="waiting for the stream TASKS`))
	b := openBroker(t, &natsNode{addr: addr, s: s}, defaultLease)
	w.waitStderr(t, regexp.MustCompile(`msg="worker started"`))
	lines := waitingRE.FindAllString(w.stderr.String(), -1)
	t.Logf("%d waiting lines before the server came", len(lines))
	if len(lines) > 20 {
		t.Errorf("%d waiting lines: a flood, not a growing interval", len(lines))
	}

	job := opEnqueue(t, b, 1, testSleep, `{"ms":0}`)
	opWaitKind(t, b, job.ID, tasktype.EventSucceeded)
}

// TestSIGTERMWhileWaitingForNATS stops a waiting worker: it exits at once
// with status 0.
func TestSIGTERMWhileWaitingForNATS(t *testing.T) {
	t.Parallel()
	env := map[string]string{"NATS_URL": "nats://127.0.0.1:" + freePort(t), "NATS_TOKEN": testsupport.NATSToken, "OTJ_DATA_DIR": t.TempDir()}
	w := startProcess(t, "worker", env, "worker")
	w.waitStderr(t, waitingRE)
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	took, err := w.waitExit(t, 10*time.Second)
	if err != nil {
		t.Errorf("exited with %v after SIGTERM, want status 0", err)
	}
	if took > 3*time.Second {
		t.Errorf("took %s to stop after SIGTERM", took)
	}
	if strings.Contains(w.stderr.String(), "app: ") {
		t.Errorf("printed an error on a stop: %s", w.stderr.String())
	}
}

var waitingDBRE = regexp.MustCompile(`(?m)^.*msg="waiting for the database at DATABASE_URL.*$`)

// TestWorkerStartedBeforeItsDatabaseWaits starts app worker with
// DATABASE_URL on a port where nothing listens yet: it waits, saying so,
// and once the port forwards to the test's PostgreSQL it starts and runs
// a job. A refused password is not waited on.
func TestWorkerStartedBeforeItsDatabaseWaits(t *testing.T) {
	t.Parallel()
	pg, err := url.Parse(testsupport.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	s := testsupport.NATS(t)
	addr := "127.0.0.1:" + freePort(t)
	late := *pg
	late.Host = addr
	env := map[string]string{"NATS_URL": s.ClientURL(), "NATS_TOKEN": testsupport.NATSToken, "DATABASE_URL": late.String(),
		"OTJ_DATA_DIR": filepath.Join(t.TempDir(), "none"), "JOB_LEASE": defaultLease.String()}
	w := startProcess(t, "worker", env, "worker")
	testsupport.Eventually(t, 30*time.Second, "the worker never said twice that it waits for the database", func() bool {
		return len(waitingDBRE.FindAllString(w.stderr.String(), -1)) >= 2
	})
	select {
	case <-w.done:
		t.Fatalf("the worker exited while waiting: %v", w.err)
	default:
	}
	b := openBroker(t, &natsNode{addr: strings.TrimPrefix(s.ClientURL(), "nats://"), s: s}, defaultLease) // makes the stream
	forward(t, addr, pg.Host)
	w.waitStderr(t, regexp.MustCompile(`msg="worker started"`))

	job := opEnqueue(t, b, 1, testSleep, `{"ms":0}`)
	opWaitKind(t, b, job.ID, tasktype.EventSucceeded)

	wrong := *pg
	wrong.User = url.UserPassword("otj_nobody", "wrong-password")
	env["DATABASE_URL"] = wrong.String()
	refused := startProcess(t, "worker-refused", env, "worker")
	if _, err := refused.waitExit(t, 30*time.Second); err == nil {
		t.Fatal("a worker whose database refuses it exited with status 0")
	}
	if strings.Contains(refused.stderr.String(), "waiting for the database") || !strings.Contains(refused.stderr.String(), "app: DATABASE_URL") {
		t.Errorf("a refused password: want one line naming DATABASE_URL at once, got:\n%s", refused.stderr.String())
	}
}

// forward accepts connections on addr, from now until the test ends, and
// relays each to the server at to.
func forward(t *testing.T, addr, to string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", to)
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(out, in); out.Close() }()
			go func() { defer wg.Done(); io.Copy(in, out); in.Close() }()
		}
	}()
}

// TestWebWaitsForJetStream starts app web against a cluster that answers
// but has no JetStream quorum (two of three nodes down), as a cluster
// does for a moment after it starts: the web process waits, saying so,
// and serves once the nodes are back.
func TestWebWaitsForJetStream(t *testing.T) {
	t.Parallel()
	cluster := testsupport.NATSCluster(t, 3)
	cluster.Kill(1)
	cluster.Kill(2)
	env := baseEnv(t)
	env["NATS_URL"], env["NATS_TOKEN"] = cluster.URLs(), testsupport.NATSToken
	web := startProcess(t, "web", env, "web")
	web.waitStderr(t, regexp.MustCompile(`msg="waiting for JetStream at NATS_URL`))
	select {
	case <-web.done:
		t.Fatalf("app web exited while JetStream had no quorum: %v", web.err)
	default:
	}
	cluster.Restart(1)
	cluster.Restart(2)
	web.waitStdout(t, runningRE)
}
