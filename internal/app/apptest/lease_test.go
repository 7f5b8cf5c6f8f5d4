package apptest

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
)

// TestWorkerWithAnotherLeaseRefusesToStart: a worker whose JOB_LEASE
// differs from the lease the deployed workers consumer has exits with one
// line saying which value is in force and how to change it, and leaves
// the consumer alone; one started with JOB_LEASE_RESET=true changes it,
// and renews its jobs' leases by the new value.
func TestWorkerWithAnotherLeaseRefusesToStart(t *testing.T) {
	n := startNATSNode(t)
	runs := newRunLog(t)
	openBroker(t, n, 5*time.Second) // the web side's part: it makes the stream
	startWorker(t, "worker-5s", workerEnv(t, n, 5*time.Second, runs))

	odd := startProcess(t, "worker-10s", workerEnv(t, n, 10*time.Second, runs), "worker")
	if _, err := odd.waitExit(t, 30*time.Second); err == nil {
		t.Fatal("worker with JOB_LEASE=10s against a 5s consumer exited with status 0")
	}
	const want = "app: JOB_LEASE 10s: the deployed workers consumer uses 5s; set JOB_LEASE=5s, or JOB_LEASE_RESET=true on one worker to change it for all\n"
	if got := odd.stderr.String(); !strings.HasSuffix(got, want) {
		t.Errorf("refused worker's stderr ends %q, want the line %q", lastLine(got), want)
	}
	if got := jetstreamtest.WorkersAckWait(t, n.join().connect(t, "probe")); got != 5*time.Second {
		t.Fatalf("after the refused worker: consumer AckWait %s, want 5s", got)
	}

	env := workerEnv(t, n, 10*time.Second, runs)
	env["JOB_LEASE_RESET"] = "true"
	reset := startWorker(t, "worker-reset", env)
	reset.waitStderr(t, regexp.MustCompile(`msg="job lease in force" .*lease=10s renew_every=2s`))
	if got := jetstreamtest.WorkersAckWait(t, n.join().connect(t, "probe")); got != 10*time.Second {
		t.Fatalf("after JOB_LEASE_RESET=true with JOB_LEASE=10s: consumer AckWait %s, want 10s", got)
	}
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}
