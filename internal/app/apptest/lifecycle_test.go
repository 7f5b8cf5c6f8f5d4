package apptest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/natsserver"
	"github.com/otjhelper/otj/platform/testsupport"
)

// The job lifecycle through the real path: a NATS server run by the test,
// app worker and app web as separate OS processes (the test binary
// re-exec'd, as in signal_test.go), killed and signalled for real, the
// test job types of testjobs_test.go counting handler runs across
// processes in a run log, and each job's event history read back from
// JetStream.
//
// Not parallel: the leases are short (down to 1s) and each test runs two
// or three race-instrumented processes; on a small machine several such
// tests at once would test the scheduler, not the lifecycle.

// TestWorkerCrashJobRunsElsewhere kills the worker running a job with
// SIGKILL: once the lease runs out, the other worker records the lost
// attempt and runs the job to completion, once.
func TestWorkerCrashJobRunsElsewhere(t *testing.T) { eachBroker(t, workerCrashJobRunsElsewhere) }

func workerCrashJobRunsElsewhere(t *testing.T, broker map[string]string) {
	const lease = 2 * time.Second
	n := startNATSNode(t)
	b := openBroker(t, n, lease)
	runs := newRunLog(t)
	env := workerEnv(t, n, lease, runs)
	maps.Copy(env, broker)
	workers := []*appProcess{startWorker(t, "worker-1", env), startWorker(t, "worker-2", env)}

	job := enqueueSleep(t, b, 1, 4000)
	first := runs.waitFor(t, 30*time.Second, "job never started", func(rs []runLine) bool {
		return len(matching(rs, job.ID, "start", 0)) > 0
	})
	// Killed after its first heartbeat, when its start is on record (a
	// kill before it is TestCrashLoopEndsFailed's).
	testsupport.Eventually(t, 10*time.Second, "the job's start was never recorded", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		e, err := b.Last(ctx, 1, job.ID)
		// The start, or a sign of life after it (see worker.watch).
		return err == nil && (e.Kind == tasktype.EventStarted || e.Kind == tasktype.EventProgress)
	})
	victim, survivor := workers[0], workers[1]
	if pid := matching(first, job.ID, "start", 0)[0].pid; pid == survivor.pid() {
		victim, survivor = survivor, victim
	} else if pid != victim.pid() {
		t.Fatalf("job started in pid %d, which is neither worker (%d, %d)", pid, victim.pid(), survivor.pid())
	}
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if _, err := victim.waitExit(t, 10*time.Second); err == nil {
		t.Fatal("killed worker exited with status 0")
	}

	last := waitJobDone(t, b, 1, job.ID, 30*time.Second)
	evs := jobHistory(t, b, 1, job.ID)
	if last.Kind != tasktype.EventSucceeded || countKind(evs, tasktype.EventSucceeded) != 1 {
		t.Fatalf("want one succeeded event, the last; history:\n%s", describe(evs))
	}
	lost := fmt.Sprintf("worker %s stopped responding during attempt 1", victim.workerName())
	retrying, ok := firstKind(evs, tasktype.EventRetrying)
	if !ok || retrying.Attempt != 1 || !strings.Contains(retrying.Error, lost) {
		t.Errorf("want a retrying event for attempt 1 saying %q; history:\n%s", lost, describe(evs))
	}
	starts := kinds(evs, tasktype.EventStarted)
	if len(starts) != 2 || starts[0].Worker != victim.workerName() || starts[1].Worker != survivor.workerName() || starts[1].Attempt != 2 {
		t.Errorf("want attempt 1 started on %s, attempt 2 on %s; history:\n%s", victim.workerName(), survivor.workerName(), describe(evs))
	}
	if len(starts) == 2 {
		t.Logf("attempt 2 started %s after the kill (lease %s)", starts[1].Time.Sub(killed).Round(time.Millisecond), lease)
	}
	rs := runs.lines(t)
	if ends := matching(rs, job.ID, "end", 0); len(ends) != 1 || ends[0].pid != survivor.pid() || ends[0].attempt != 2 {
		t.Errorf("want one end line, attempt 2 in pid %d; run log:\n%s", survivor.pid(), runs.text(t))
	}
	if got := len(matching(rs, job.ID, "start", survivor.pid())); got != 1 {
		t.Errorf("job started %d times on the survivor, want 1; run log:\n%s", got, runs.text(t))
	}
}

// TestCrashLoopEndsFailed runs a job that kills its worker within a
// millisecond of starting, every time, with a worker started again each
// time it dies. No run lives to its first heartbeat, so a redelivery
// finds nothing on record, which proves nothing ran: it runs the attempt
// again with its start recorded first, and that run's crash is counted.
// Each attempt thus costs two runs, and the job ends failed after its
// three allowed attempts.
func TestCrashLoopEndsFailed(t *testing.T) { eachBroker(t, crashLoopEndsFailed) }

func crashLoopEndsFailed(t *testing.T, broker map[string]string) {
	const lease = 2 * time.Second
	n := startNATSNode(t)
	b := openBroker(t, n, lease)
	runs := newRunLog(t)
	env := workerEnv(t, n, lease, runs)
	maps.Copy(env, broker)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	job, err := b.Enqueue(ctx, tasktype.EnqueueRequest{Type: testCrash, UserID: 1, Payload: json.RawMessage(`{}`)})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	crashes := 0
	var last tasktype.Event
	for finished := false; !finished; {
		if time.Now().After(deadline) {
			t.Fatalf("job not finished after %d crashes; run log:\n%s", crashes, runs.text(t))
		}
		w := startWorker(t, fmt.Sprintf("worker-%d", crashes+1), env)
		for alive := true; alive && !finished; {
			select {
			case <-w.done:
				alive = false
				var exit *exec.ExitError
				if !errors.As(w.err, &exit) || exit.ExitCode() != 3 {
					t.Fatalf("worker ended with %v, want the job's exit status 3", w.err)
				}
				crashes++
			case <-time.After(100 * time.Millisecond):
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				e, err := b.Last(ctx, 1, job.ID)
				cancel()
				if err == nil && (e.Kind == tasktype.EventFailed || e.Kind == tasktype.EventSucceeded) {
					last, finished = e, true
				}
			case <-time.After(time.Until(deadline)):
			}
		}
	}
	evs := jobHistory(t, b, 1, job.ID)
	if last.Kind != tasktype.EventFailed || last.Attempt != 3 || countKind(evs, tasktype.EventStarted) != 3 {
		t.Fatalf("want the job failed after attempt 3, each attempt's start on record; history:\n%s", describe(evs))
	}
	for _, e := range kinds(evs, tasktype.EventRetrying) {
		if !strings.Contains(e.Error, "stopped") {
			t.Errorf("retrying event %+v does not say its worker stopped", e)
		}
	}
	// Two runs an attempt, one per crash (see worker.decide).
	starts := len(matching(runs.lines(t), job.ID, "start", 0))
	t.Logf("%d crashes, %d runs; history:\n%s", crashes, starts, describe(evs))
	if starts != 6 || starts != crashes {
		t.Errorf("%d runs and %d crashes, want 6 of each; run log:\n%s", starts, crashes, runs.text(t))
	}
}

// TestLongJobKeepsItsLease runs a job four leases long while another
// worker waits for work: the heartbeats keep the job with its worker, so
// it starts once and succeeds once.
func TestLongJobKeepsItsLease(t *testing.T) {
	const lease = time.Second
	n := startNATSNode(t)
	b := openBroker(t, n, lease)
	runs := newRunLog(t)
	env := workerEnv(t, n, lease, runs)
	startWorker(t, "worker-1", env)
	startWorker(t, "worker-2", env)

	job := enqueueSleep(t, b, 1, 4000)
	last := waitJobDone(t, b, 1, job.ID, 30*time.Second)
	evs := jobHistory(t, b, 1, job.ID)
	if last.Kind != tasktype.EventSucceeded || countKind(evs, tasktype.EventSucceeded) != 1 || countKind(evs, tasktype.EventStarted) != 1 ||
		countKind(evs, tasktype.EventRetrying) != 0 || countKind(evs, tasktype.EventReleased) != 0 {
		t.Errorf("want enqueued, one started, one succeeded; history:\n%s", describe(evs))
	}
	rs := runs.lines(t)
	if len(matching(rs, job.ID, "start", 0)) != 1 || len(matching(rs, job.ID, "end", 0)) != 1 || len(matching(rs, job.ID, "cancelled", 0)) != 0 {
		t.Errorf("want one start and one end line; run log:\n%s", runs.text(t))
	}
}

// TestShutdownHandsBackUnfinishedJob stops a worker with SIGTERM while a
// job longer than its grace period runs: the worker exits 0 having
// recorded the hand-back, and another worker runs the same attempt at
// once, not after the 30s lease.
func TestShutdownHandsBackUnfinishedJob(t *testing.T) { eachBroker(t, shutdownHandsBackUnfinishedJob) }

func shutdownHandsBackUnfinishedJob(t *testing.T, broker map[string]string) {
	const lease, grace = 30 * time.Second, time.Second
	n := startNATSNode(t)
	b := openBroker(t, n, lease)
	runs := newRunLog(t)
	envA := workerEnv(t, n, lease, runs)
	maps.Copy(envA, broker)
	envA["WORKER_SHUTDOWN_GRACE"] = grace.String()
	a := startWorker(t, "worker-a", envA)

	job := enqueueSleep(t, b, 1, 60000)
	runs.waitFor(t, 30*time.Second, "job never started on worker A", func(rs []runLine) bool {
		return len(matching(rs, job.ID, "start", a.pid())) > 0
	})
	envB := maps.Clone(envA)
	envB["OTJ_TEST_FAST"] = "1"
	wb := startWorker(t, "worker-b", envB)

	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	took, err := a.waitExit(t, grace+5*time.Second)
	if err != nil {
		t.Fatalf("worker A exited with %v after SIGTERM, want status 0", err)
	}
	t.Logf("worker A exited %s after SIGTERM (grace %s)", took.Round(time.Millisecond), grace)

	last := waitJobDone(t, b, 1, job.ID, 20*time.Second)
	evs := jobHistory(t, b, 1, job.ID)
	if last.Kind != tasktype.EventSucceeded || countKind(evs, tasktype.EventSucceeded) != 1 || countKind(evs, tasktype.EventRetrying) != 0 {
		t.Fatalf("want one succeeded event, the last, and no failed attempt; history:\n%s", describe(evs))
	}
	rel, ok := firstKind(evs, tasktype.EventReleased)
	if !ok || rel.Worker != a.workerName() || rel.Attempt != 1 {
		t.Fatalf("want attempt 1 released by %s; history:\n%s", a.workerName(), describe(evs))
	}
	var again tasktype.Event
	for _, e := range evs {
		if e.Kind == tasktype.EventStarted && e.Seq > rel.Seq {
			again = e
			break
		}
	}
	if again.Worker != wb.workerName() || again.Attempt != 1 {
		t.Fatalf("want attempt 1 started again on %s after the release; history:\n%s", wb.workerName(), describe(evs))
	}
	gap := again.Time.Sub(rel.Time)
	t.Logf("worker B started the job %s after worker A released it (lease %s)", gap.Round(time.Millisecond), lease)
	if gap >= 10*time.Second {
		t.Errorf("worker B started the job %s after the release: redelivered by lease timeout, not handed back", gap)
	}
	rs := runs.lines(t)
	if len(matching(rs, job.ID, "cancelled", a.pid())) != 1 || len(matching(rs, job.ID, "end", 0)) != 1 || len(matching(rs, job.ID, "end", wb.pid())) != 1 {
		t.Errorf("want A cancelled and B's one end line; run log:\n%s", runs.text(t))
	}
}

// TestShutdownFinishesJobWithinGrace stops a worker with SIGTERM just
// after a short job started: the job finishes and is recorded before the
// process exits 0, and nothing is handed back.
func TestShutdownFinishesJobWithinGrace(t *testing.T) {
	const lease = 2 * time.Second
	n := startNATSNode(t)
	b := openBroker(t, n, lease)
	runs := newRunLog(t)
	env := workerEnv(t, n, lease, runs)
	env["WORKER_SHUTDOWN_GRACE"] = "20s"
	w := startWorker(t, "worker", env)

	job := enqueueSleep(t, b, 1, 1500)
	runs.waitFor(t, 30*time.Second, "job never started", func(rs []runLine) bool {
		return len(matching(rs, job.ID, "start", w.pid())) > 0
	})
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	took, err := w.waitExit(t, 10*time.Second)
	if err != nil {
		t.Fatalf("worker exited with %v after SIGTERM, want status 0", err)
	}
	t.Logf("worker exited %s after SIGTERM, its 1.5s job done", took.Round(time.Millisecond))

	// No polling: all of this must be on record once the process is gone.
	rs := runs.lines(t)
	if len(matching(rs, job.ID, "end", w.pid())) != 1 || len(matching(rs, job.ID, "cancelled", 0)) != 0 {
		t.Errorf("want the job's end line, no cancel; run log:\n%s", runs.text(t))
	}
	evs := jobHistory(t, b, 1, job.ID)
	started, _ := firstKind(evs, tasktype.EventStarted)
	if evs[len(evs)-1].Kind != tasktype.EventSucceeded || countKind(evs, tasktype.EventSucceeded) != 1 ||
		countKind(evs, tasktype.EventReleased) != 0 || countKind(evs, tasktype.EventStarted) != 1 || started.Worker != w.workerName() {
		t.Errorf("want started on %s and succeeded, nothing released; history:\n%s", w.workerName(), describe(evs))
	}
}

// TestBrokerRestartLosesNoAcceptedJob stops the NATS server under app web
// and app worker while a job runs and others wait, and starts it again on
// the same store and port: a report asked for meanwhile is refused at
// once with 503, every job accepted before completes, and both processes
// reconnect by themselves.
func TestBrokerRestartLosesNoAcceptedJob(t *testing.T) {
	const lease = 2 * time.Second
	n := startNATSNode(t)
	b := openBroker(t, n, lease)
	runs := newRunLog(t)
	env := workerEnv(t, n, lease, runs)
	env["PORT"] = "0"
	env["SECRET_KEY"] = testsupport.TestSecretKey
	web := startProcess(t, "web", env, "web")
	base := web.waitStdout(t, runningRE)
	wenv := maps.Clone(env)
	wenv["WORKER_CONCURRENCY"] = "1" // the other jobs wait behind the running one
	worker := startWorker(t, "worker", wenv)
	user := ensureUser(t, env["OTJ_DATA_DIR"], "alice@example.org")
	c := testsupport.Client(t, base, testsupport.Signer(t), user.ID)

	// Long enough to run through the steps before the outage and end
	// during it.
	running := enqueueSleep(t, b, user.ID, 4000)
	runs.waitFor(t, 30*time.Second, "first job never started", func(rs []runLine) bool {
		return len(matching(rs, running.ID, "start", worker.pid())) > 0
	})
	queued := enqueueSleep(t, b, user.ID, 200)
	report, status := postReport(t, c, base)
	if status != http.StatusSeeOther {
		t.Fatalf("POST generate-report before the outage = %d", status)
	}
	accepted := []string{running.ID, queued.ID, report}

	if len(matching(runs.lines(t), running.ID, "end", 0)) > 0 {
		t.Log("the first job ended before the outage: its outcome was stored normally and the outage path for it is not exercised")
	}
	n.stop()
	key := formKey(t, c, base) // the list is read from SQLite: still there
	start := time.Now()
	resp, body := testsupport.PostForm(t, c, base+"/tasks/generate-report", url.Values{"key": {key}})
	took := time.Since(start)
	t.Logf("POST generate-report with NATS down: %d in %s", resp.StatusCode, took.Round(time.Millisecond))
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "no report was started") {
		t.Errorf("POST with NATS down = %d, want 503 saying no report was started:\n%s", resp.StatusCode, body)
	}
	if took > 10*time.Second {
		t.Errorf("POST with NATS down took %s, want under 10s", took)
	}
	if resp, health := testsupport.Get(t, http.DefaultClient, base+"/healthz"); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(health, `"nats":"down`) {
		t.Errorf("healthz with NATS down: %d %s", resp.StatusCode, health)
	}
	// The running job ends while the server is away, so its outcome
	// cannot be stored until it is back.
	runs.waitFor(t, 30*time.Second, "running job did not end during the outage", func(rs []runLine) bool {
		return len(matching(rs, running.ID, "end", 0)) > 0
	})
	n.restart(t)

	for _, id := range accepted {
		last := waitJobDone(t, b, user.ID, id, 60*time.Second)
		if last.Kind != tasktype.EventSucceeded {
			t.Errorf("job %s accepted before the outage ended %s; history:\n%s", id, last.Kind, describe(jobHistory(t, b, user.ID, id)))
		}
		t.Logf("job %s history:\n%s", id, describe(jobHistory(t, b, user.ID, id)))
	}
	// The job that finished during the outage kept its work: the worker
	// held on to the outcome until the server was back, rather than
	// letting the job be redelivered and run again.
	if ends := matching(runs.lines(t), running.ID, "end", 0); len(ends) != 1 {
		t.Errorf("the job that ended during the outage ran to the end %d times, want 1", len(ends))
	}
	if e, retried := firstKind(jobHistory(t, b, user.ID, running.ID), tasktype.EventRetrying); retried {
		t.Errorf("the job that ended during the outage was retried: %+v", e)
	}
	after, status := postReport(t, c, base)
	if status != http.StatusSeeOther {
		t.Fatalf("POST generate-report after the restart = %d", status)
	}
	if last := waitJobDone(t, b, user.ID, after, 30*time.Second); last.Kind != tasktype.EventSucceeded {
		t.Errorf("report asked for after the restart ended %s", last.Kind)
	}

	all := append(accepted, after)
	var page string
	testsupport.Eventually(t, 30*time.Second, "the list never showed every task completed", func() bool {
		_, page = testsupport.Get(t, c, base+"/tasks/")
		for _, id := range all {
			if taskBadge(page, id) != "completed" {
				return false
			}
		}
		return true
	})
	if got := strings.Count(page, `<tr id="task-`); got != len(all) {
		t.Errorf("list has %d tasks, want %d (the refused POST must not have made one):\n%s", got, len(all), page)
	}
	testsupport.Eventually(t, 30*time.Second, "healthz never reported nats ok again", func() bool {
		resp, health := testsupport.Get(t, http.DefaultClient, base+"/healthz")
		return resp.StatusCode == http.StatusOK && strings.Contains(health, `"nats":"ok"`)
	})

	for _, p := range []*appProcess{worker, web} {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if took, err := p.waitExit(t, 30*time.Second); err != nil {
			t.Errorf("%s exited with %v after SIGTERM, want status 0 (after %s)", p.name, err, took)
		}
	}
}

// natsNode is the NATS server the processes of a test share, on a store
// dir and a loopback port that survive a stop, so it can start again
// where it was.
type natsNode struct {
	dir  string
	addr string // 127.0.0.1:port, fixed at the first start
	s    *natsserver.Server
}

func startNATSNode(t *testing.T) *natsNode {
	t.Helper()
	dir := t.TempDir()
	s := testsupport.NATSAt(t, dir)
	u, err := url.Parse(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	n := &natsNode{dir: dir, addr: u.Host, s: s}
	// Registered before any client or process of the test, so it runs
	// after they have all gone, whichever server is current by then.
	t.Cleanup(func() { n.s.Shutdown() })
	return n
}

func (n *natsNode) url() string { return "nats://" + n.addr }

// join is where processes and clients find n, and its token.
func (n *natsNode) join() natsJoin { return natsJoin{URL: n.url(), Token: testsupport.NATSToken} }

// stop shuts the server down as a crash of the NATS host would look to
// its clients: connections drop, nothing is drained.
func (n *natsNode) stop() { n.s.Shutdown() }

// restart starts the server again on the same store and port.
func (n *natsNode) restart(t *testing.T) {
	t.Helper()
	s, err := natsserver.Start(natsserver.Config{StoreDir: n.dir, Listen: n.addr, Auth: natsserver.Auth{Token: testsupport.NATSToken}})
	if err != nil {
		t.Fatalf("restart NATS on %s (store %s): %v; was the port taken by something else while the server was down?", n.addr, n.dir, err)
	}
	n.s = s
}

// openBroker connects the test to n as another process would, with the
// processes' lease: the broker sets the worker consumer's AckWait, so
// every party must agree on it.
func openBroker(t *testing.T, n *natsNode, lease time.Duration) *jetstream.Broker {
	t.Helper()
	nc := n.join().connect(t, "test")
	b, err := jetstream.Open(testsupport.Context(t), jetstream.Config{Conn: nc, AckWait: lease, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// workerEnv is the environment of an app worker on n: a data dir of the
// test's, the lease, and the run log.
func workerEnv(t *testing.T, n *natsNode, lease time.Duration, runs runLog) map[string]string {
	return map[string]string{
		"NATS_URL":     n.url(),
		"NATS_TOKEN":   testsupport.NATSToken,
		"OTJ_DATA_DIR": t.TempDir(),
		"JOB_LEASE":    lease.String(),
		runLogEnv:      runs.path,
	}
}

// appSettings are cleared in every process started, so the environment of
// whoever runs the tests does not leak into the app.
var appSettings = append(settingNames(), "OTJ_TEST_FAST", runLogEnv)

// appProcess is one app command running as its own OS process.
type appProcess struct {
	name   string
	cmd    *exec.Cmd
	stdout *testsupport.Buffer
	stderr *testsupport.Buffer
	done   chan struct{} // closed when the process has exited, with err set
	err    error
	dir    string // its OTJ_DATA_DIR
}

// startProcess runs app cmdName with env. Its stderr goes to t.Logf
// under name; it is killed, if still running, when the test ends.
func startProcess(t *testing.T, name string, env map[string]string, cmdName string) *appProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], cmdName)
	// The race detector sleeps 1s at exit by default, which would count
	// against every shutdown bound.
	cmd.Env = append(os.Environ(), runMainEnv+"=1", "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	for _, k := range appSettings {
		cmd.Env = append(cmd.Env, k+"=")
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v) // the last of a name wins
	}
	p := &appProcess{name: name, cmd: cmd, stdout: &testsupport.Buffer{}, stderr: &testsupport.Buffer{}, done: make(chan struct{}), dir: env["OTJ_DATA_DIR"]}
	cmd.Stdout = p.stdout
	cmd.Stderr = io.MultiWriter(&tLogWriter{t: t, prefix: name}, p.stderr)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		defer close(p.done)
		p.err = cmd.Wait()
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Errorf("%s (pid %d) still running 30s after SIGKILL", name, cmd.Process.Pid)
		}
	})
	return p
}

// startWorker runs app worker and waits until it takes jobs.
func startWorker(t *testing.T, name string, env map[string]string) *appProcess {
	t.Helper()
	p := startProcess(t, name, env, "worker")
	p.waitStderr(t, regexp.MustCompile(`msg="worker started"`))
	return p
}

func (p *appProcess) pid() int { return p.cmd.Process.Pid }

// workerName is the name the process's worker signs its events with.
func (p *appProcess) workerName() string {
	host, _ := os.Hostname()
	return host + ":" + strconv.Itoa(p.pid())
}

// waitExit waits at most within for the process to exit, and returns how
// long that took and how it exited.
func (p *appProcess) waitExit(t *testing.T, within time.Duration) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	select {
	case <-p.done:
		return time.Since(start), p.err
	case <-time.After(within):
		t.Fatalf("%s (pid %d) still running after %s", p.name, p.pid(), within)
		return 0, nil
	}
}

// waitStdout waits for re to match the process's stdout and returns the
// first submatch.
func (p *appProcess) waitStdout(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	return p.wait(t, p.stdout, "stdout", re)
}

func (p *appProcess) waitStderr(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	return p.wait(t, p.stderr, "stderr", re)
}

func (p *appProcess) wait(t *testing.T, out *testsupport.Buffer, what string, re *regexp.Regexp) string {
	t.Helper()
	var m []string
	testsupport.Eventually(t, 60*time.Second, fmt.Sprintf("%s printed nothing matching %s on %s", p.name, re, what), func() bool {
		if m = re.FindStringSubmatch(out.String()); m != nil {
			return true
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited early: %v", p.name, p.err)
		default:
		}
		return false
	})
	if len(m) > 1 {
		return m[1]
	}
	return m[0]
}

// runLog is the file the test jobs of every process append their runs to.
type runLog struct{ path string }

// runLine is one line of the run log: a job's attempt in a process
// started, ended, was cancelled or failed.
type runLine struct {
	job     string
	attempt int
	pid     int
	what    string
}

func newRunLog(t *testing.T) runLog { return runLog{path: filepath.Join(t.TempDir(), "runs.log")} }

func (l runLog) text(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(l.path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// lines parses the complete lines written so far.
func (l runLog) lines(t *testing.T) []runLine {
	t.Helper()
	var rs []runLine
	sc := bufio.NewScanner(strings.NewReader(l.text(t)))
	for sc.Scan() {
		var r runLine
		if _, err := fmt.Sscanf(sc.Text(), "%s %d %d %s", &r.job, &r.attempt, &r.pid, &r.what); err != nil {
			continue // a line still being written
		}
		rs = append(rs, r)
	}
	return rs
}

// waitFor polls the run log until cond holds and returns the lines it held for.
func (l runLog) waitFor(t *testing.T, timeout time.Duration, msg string, cond func([]runLine) bool) []runLine {
	t.Helper()
	var rs []runLine
	testsupport.Eventually(t, timeout, msg, func() bool {
		rs = l.lines(t)
		return cond(rs)
	})
	return rs
}

// matching returns the lines of job with what, from pid (0: any).
func matching(rs []runLine, job, what string, pid int) []runLine {
	var out []runLine
	for _, r := range rs {
		if r.job == job && r.what == what && (pid == 0 || r.pid == pid) {
			out = append(out, r)
		}
	}
	return out
}

// enqueueSleep enqueues a test_sleep job of ms milliseconds for userID.
func enqueueSleep(t *testing.T, b *jetstream.Broker, userID int64, ms int) tasktype.Job {
	t.Helper()
	payload, _ := json.Marshal(testPayload{MS: ms})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	job, err := b.Enqueue(ctx, tasktype.EnqueueRequest{Type: testSleep, UserID: userID, Payload: payload})
	if err != nil {
		t.Fatalf("enqueue %s: %v", testSleep, err)
	}
	return job
}

// jobHistory reads every event of a job, as the task page shows them:
// with the start of each attempt that ended before its first heartbeat,
// which its outcome carries (marked "implied" by describe).
func jobHistory(t *testing.T, b *jetstream.Broker, userID int64, jobID string) []tasktype.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	evs, err := b.History(ctx, userID, jobID)
	if err != nil {
		t.Fatalf("history of job %s: %v", jobID, err)
	}
	return tasktype.WithStarts(evs)
}

// waitJobDone polls the job's newest event until the job has finished
// (succeeded, failed or cancelled) and returns that event. Errors while
// polling, as when the server is away, count as not finished yet.
func waitJobDone(t *testing.T, b *jetstream.Broker, userID int64, jobID string, timeout time.Duration) tasktype.Event {
	t.Helper()
	var last tasktype.Event
	testsupport.Eventually(t, timeout, "job "+jobID+" did not finish", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		e, err := b.Last(ctx, userID, jobID)
		if err != nil {
			return false
		}
		last = e
		return e.Kind == tasktype.EventSucceeded || e.Kind == tasktype.EventFailed || e.Kind == tasktype.EventCancelled
	})
	return last
}

func kinds(evs []tasktype.Event, k tasktype.EventKind) []tasktype.Event {
	var out []tasktype.Event
	for _, e := range evs {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

func countKind(evs []tasktype.Event, k tasktype.EventKind) int { return len(kinds(evs, k)) }

func firstKind(evs []tasktype.Event, k tasktype.EventKind) (tasktype.Event, bool) {
	if ks := kinds(evs, k); len(ks) > 0 {
		return ks[0], true
	}
	return tasktype.Event{}, false
}

// describe lists a history for a failure message or the log.
func describe(evs []tasktype.Event) string {
	var sb strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&sb, "  %d %s %s attempt=%d", e.Seq, e.Time.Format("15:04:05.000"), e.Kind, e.Attempt)
		if e.Implied {
			sb.WriteString(" (implied by its outcome)")
		}
		if e.Worker != "" {
			fmt.Fprintf(&sb, " worker=%s", e.Worker)
		}
		if e.Error != "" {
			fmt.Fprintf(&sb, " error=%q", e.Error)
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}

// formKey reads a fresh generate form key from the task list.
func formKey(t *testing.T, c *http.Client, base string) string {
	t.Helper()
	_, page := testsupport.Get(t, c, base+"/tasks/")
	m := keyRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no form key on the task list:\n%s", page)
	}
	return m[1]
}

// postReport asks for a full report as the form does and returns the new
// job's id (on a redirect) and the status.
func postReport(t *testing.T, c *http.Client, base string) (string, int) {
	t.Helper()
	resp, body := testsupport.PostForm(t, c, base+"/tasks/generate-report", url.Values{"key": {formKey(t, c, base)}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Logf("POST generate-report = %d:\n%s", resp.StatusCode, body)
		return "", resp.StatusCode
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	id := loc.Query().Get("queued")
	if id == "" {
		t.Fatalf("redirect to %q names no job", loc)
	}
	return id, resp.StatusCode
}

// taskBadge is the status shown for task id on the list page, or "".
func taskBadge(page, id string) string {
	i := strings.Index(page, `<tr id="task-`+id+`"`)
	if i < 0 {
		return ""
	}
	row := page[i:]
	if j := strings.Index(row, "</tr>"); j >= 0 {
		row = row[:j]
	}
	m := regexp.MustCompile(`badge-(\w+)`).FindStringSubmatch(row)
	if m == nil {
		return ""
	}
	return m[1]
}
