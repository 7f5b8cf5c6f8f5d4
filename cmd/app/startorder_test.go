package main

import (
	"regexp"
	"strings"
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
	w.waitStderr(t, regexp.MustCompile(`msg="worker started"`))
	lines := waitingRE.FindAllString(w.stderr.String(), -1)
	t.Logf("%d waiting lines before the server came", len(lines))
	if len(lines) > 20 {
		t.Errorf("%d waiting lines: a flood, not a growing interval", len(lines))
	}

	b := openBroker(t, &natsNode{addr: addr, s: s}, defaultLease)
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
