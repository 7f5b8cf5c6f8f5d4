package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/platform/testsupport"
)

// TestWorkerWithAnotherLeaseRefusesToStart: a worker whose JOB_LEASE
// differs from the lease the deployed workers consumer has exits with one
// line saying which value is in force and how to change it, and leaves
// the consumer alone; one started with JOB_LEASE_RESET=true changes it,
// and renews its jobs' leases by the new value.
func TestWorkerWithAnotherLeaseRefusesToStart(t *testing.T) {
	n := startNATSNode(t)
	runs := newRunLog(t)
	startWorker(t, "worker-5s", workerEnv(t, n, 5*time.Second, runs))

	odd := startProcess(t, "worker-10s", workerEnv(t, n, 10*time.Second, runs), "worker")
	if _, err := odd.waitExit(t, 30*time.Second); err == nil {
		t.Fatal("worker with JOB_LEASE=10s against a 5s consumer exited with status 0")
	}
	const want = "app: JOB_LEASE 10s: the deployed workers consumer uses 5s; set JOB_LEASE=5s, or JOB_LEASE_RESET=true on one worker to change it for all\n"
	if got := odd.stderr.String(); !strings.HasSuffix(got, want) {
		t.Errorf("refused worker's stderr ends %q, want the line %q", lastLine(got), want)
	}
	if got := workersAckWait(t, n); got != 5*time.Second {
		t.Fatalf("after the refused worker: consumer AckWait %s, want 5s", got)
	}

	env := workerEnv(t, n, 10*time.Second, runs)
	env["JOB_LEASE_RESET"] = "true"
	reset := startWorker(t, "worker-reset", env)
	reset.waitStderr(t, regexp.MustCompile(`msg="job lease in force" .*lease=10s renew_every=2s`))
	if got := workersAckWait(t, n); got != 10*time.Second {
		t.Fatalf("after JOB_LEASE_RESET=true with JOB_LEASE=10s: consumer AckWait %s, want 10s", got)
	}
}

// workersAckWait reads the deployed workers consumer's AckWait from n.
func workersAckWait(t *testing.T, n *natsNode) time.Duration {
	t.Helper()
	js, err := natsjs.New(n.join().connect(t, "probe"))
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(testsupport.Context(t), jetstream.StreamName, jetstream.WorkConsumer)
	if err != nil {
		t.Fatalf("read consumer %s: %v", jetstream.WorkConsumer, err)
	}
	return cons.CachedInfo().Config.AckWait
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}
