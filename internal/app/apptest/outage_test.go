package apptest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// outageJobs is how many result-writing jobs TestEventLogOutageCostsNoAttempt
// enqueues, and outageJobMS how long each runs: together, several leases
// of work for its two workers, so that the outages fall while jobs are
// both queued and running.
const (
	outageJobs  = 160
	outageJobMS = 500
)

// TestEventLogOutageCostsNoAttempt freezes the event log's host, app web
// with its embedded NATS, with SIGSTOP for twice the lease while jobs
// that store a result are queued and running on two workers; on Redis it
// then SIGKILLs redis-server, which comes back empty, while jobs are still
// queued. Nothing of that is a job's fault, and no worker stopped: every
// job must succeed with no attempt counted as lost, each handler must have
// run once, and the results bucket must hold only results that an event
// names.
//
// On JetStream the frozen host is the work queue too: when it resumes it
// finds leases run out whose renewals are still unread in its sockets,
// and hands running jobs out again. The worker given one listens for the
// attempt's worker before judging it, and leaves the job with it.
//
// OTJ_PROBE_JOBS sets how many jobs it runs (default 160), for the fault
// probe at the size of the issue that found these faults (1,503).
func TestEventLogOutageCostsNoAttempt(t *testing.T) {
	t.Run("redis", func(t *testing.T) { eventLogOutage(t, true, false) })
	t.Run("jetstream", func(t *testing.T) { eventLogOutage(t, false, false) })
}

// TestEventLogKillsCostNoAttempt is TestEventLogOutageCostsNoAttempt with
// the event log's host SIGKILLed three times, and started again each time
// on the same data dir and port, instead of frozen: the fault probe that
// found the jobs charged for it. The same must hold. On JetStream, where
// the killed host is the work queue too, a server killed in the instant
// after handing a job out forgets it and hands it out again (see the
// README's Durability): a handler may then run twice, and only the rest
// is held. On Redis every handler must run once: once in CI, before the
// queued trace, 1 job of 160 ran on two workers at once, its item sent
// to Redis again by a relay killed before it confirmed the first send.
func TestEventLogKillsCostNoAttempt(t *testing.T) {
	t.Run("redis", func(t *testing.T) { eventLogOutage(t, true, true) })
	t.Run("jetstream", func(t *testing.T) { eventLogOutage(t, false, true) })
}

func eventLogOutage(t *testing.T, onRedis, kills bool) {
	// The default lease: the outage, twice as long, then outlasts a
	// request to the log (5s), as a longer one does at any lease.
	const lease = 5 * time.Second
	dir := t.TempDir()
	runs := newRunLog(t)
	env := map[string]string{
		"OTJ_DATA_DIR":       dir,
		"PORT":               "0",
		"NATS_LISTEN":        "127.0.0.1:0",
		"SECRET_KEY":         testsupport.TestSecretKey,
		"DIGEST_SCHEDULE":    "off",
		"JOB_LEASE":          lease.String(),
		"WORKER_CONCURRENCY": "4",
		"LOG_LEVEL":          "warn",
		runLogEnv:            runs.path,
	}
	if kills {
		// The workers find the server where they left it.
		env["NATS_LISTEN"] = "127.0.0.1:" + freePort(t)
	}
	var redis *testsupport.RedisProcess
	if onRedis {
		redis = testsupport.StartRedisServer(t)
		env["TASKS_BROKER"] = "redis"
		env["REDIS_URL"] = "redis://" + redis.Addr + "/0"
	}
	web := startProcess(t, "web", env, "web")
	nj := web.waitJoin(t)
	conn := durableConnect(t, nj)
	wenv := map[string]string{"NATS_URL": nj.URL}
	for k, v := range env {
		if _, set := wenv[k]; !set {
			wenv[k] = v
		}
	}
	for i := range 2 {
		startProcess(t, fmt.Sprintf("worker-%d", i+1), wenv, "worker")
	}

	n := outageJobs
	if v := os.Getenv("OTJ_PROBE_JOBS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("OTJ_PROBE_JOBS=%q: want a number of jobs", v)
		}
	}
	jobs := make([]tasktype.Job, 0, n)
	for i := range n {
		jobs = append(jobs, opEnqueue(t, conn.b, int64(1+i%4), testFile, fmt.Sprintf(`{"bytes":%d,"ms":%d}`, 1000+i, outageJobMS)))
	}
	started := func(rs []runLine) int {
		n := 0
		for _, r := range rs {
			if r.what == "start" {
				n++
			}
		}
		return n
	}
	ended := func(rs []runLine) int { return len(rs) - started(rs) }

	// 1. The event log's host stops answering, mid-work, for two leases.
	// Both workers at work, and the rest of their slots asking for more.
	runs.waitFor(t, time.Minute, "the workers never both started a job", func(rs []runLine) bool {
		pids := make(map[int]bool)
		for _, r := range rs {
			pids[r.pid] = true
		}
		return len(pids) == 2
	})
	if kills {
		// 1'. The event log's host dies mid-work, three times, each time
		// after some more jobs have ended.
		for i := range 3 {
			from := ended(runs.lines(t))
			runs.waitFor(t, time.Minute, "no job ended before the kill", func(rs []runLine) bool { return ended(rs) >= from+len(jobs)/10 })
			conn.nc.Close()
			killProcesses(t, web)
			t.Logf("app web killed with %d of %d jobs ended", ended(runs.lines(t)), len(jobs))
			web = startProcess(t, fmt.Sprintf("web-%d", i+2), env, "web")
			conn = durableConnect(t, web.waitJoin(t))
		}
	} else {
		if err := web.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		cont := func() {
			if err := web.cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Error(err)
			}
		}
		stopped := true
		t.Cleanup(func() {
			if stopped {
				cont()
			}
		})
		time.Sleep(2 * lease) // the outage
		cont()
		stopped = false
		t.Logf("app web stopped for %s; %d of %d jobs had ended then", 2*lease, ended(runs.lines(t)), len(jobs))
	}
	before := ended(runs.lines(t))

	// 2. On Redis, Redis's host crashes and comes back empty, with jobs
	// still queued.
	if onRedis {
		runs.waitFor(t, time.Minute, "no job ended after the outage", func(rs []runLine) bool { return ended(rs) > before })
		if done := ended(runs.lines(t)); done >= len(jobs) {
			t.Fatalf("all %d jobs had ended before redis-server was killed: the kill would test nothing", done)
		}
		redis.Kill()
		t.Logf("redis-server killed with %d of %d jobs ended", ended(runs.lines(t)), len(jobs))
		time.Sleep(lease / 2) // the outage
		redis.Restart()
	}

	// 3. Every job ends, and the log, the run log and the bucket agree.
	for _, j := range jobs {
		testsupport.Eventually(t, 3*time.Minute, "job "+j.ID+" never ended", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			e, err := conn.b.Last(ctx, j.UserID, j.ID)
			return err == nil && (e.Kind == tasktype.EventSucceeded || e.Kind == tasktype.EventFailed)
		})
	}
	byJob := conn.allEvents(t)
	runsOf := make(map[string]int)
	lines := make(map[string][]string)
	for _, r := range runs.lines(t) {
		if r.what == "start" {
			runsOf[r.job]++
		}
		lines[r.job] = append(lines[r.job], fmt.Sprintf("%d %d %s", r.attempt, r.pid, r.what))
	}
	named := make(map[string]bool)
	var failed, lost, retried, twice []string
	released := 0
	for _, j := range jobs {
		evs := byJob[j.ID]
		for _, e := range evs {
			switch e.Kind {
			case tasktype.EventFailed:
				failed = append(failed, fmt.Sprintf("%s: %s", j.ID, e.Error))
			case tasktype.EventReleased:
				released++
			case tasktype.EventRetrying:
				retried = append(retried, fmt.Sprintf("%s attempt %d: %s", j.ID, e.Attempt, e.Error))
			case tasktype.EventSucceeded:
				if e.Result != nil {
					named[e.Result.Object] = true
				}
			}
			if (e.Kind == tasktype.EventFailed || e.Kind == tasktype.EventRetrying) && strings.Contains(e.Error, "stopped") {
				lost = append(lost, fmt.Sprintf("%s attempt %d: %s", j.ID, e.Attempt, e.Error))
			}
		}
		if n := runsOf[j.ID]; n != 1 {
			twice = append(twice, fmt.Sprintf("%s ran %d times; runs: %s; history:\n%s", j.ID, n, strings.Join(lines[j.ID], ", "), describe(evs)))
		}
	}
	ctx := testsupport.Context(t)
	store, err := conn.js.ObjectStore(ctx, jetstream.ResultsBucket)
	if err != nil {
		t.Fatal(err)
	}
	objects, err := store.List(ctx)
	if err != nil && err != natsjs.ErrNoObjectsFound {
		t.Fatal(err)
	}
	var orphans []string
	for _, o := range objects {
		if !named[o.Name] {
			orphans = append(orphans, o.Name)
		}
	}
	handlerRuns := 0
	for _, n := range runsOf {
		handlerRuns += n
	}
	t.Logf("fault probe: %d jobs, %d failed, %d attempts recorded lost, %d retrying events, %d handler runs, %d attempts handed back, %d jobs not run exactly once, %d objects, %d named by no event",
		len(jobs), len(failed), len(lost), len(retried), handlerRuns, released, len(twice), len(objects), len(orphans))
	show := func(what string, s []string) {
		if len(s) > 0 {
			t.Errorf("%d %s, want none; the first:\n  %s", len(s), what, strings.Join(s[:min(len(s), 5)], "\n  "))
		}
	}
	show("jobs failed", failed)
	show("result objects no event names", orphans)
	show("attempts recorded as lost", lost)
	if !kills || onRedis {
		show("jobs whose handler did not run exactly once", twice)
	} else if len(twice) > 0 {
		// Killed, the work queue's own server may take with it a
		// delivery in flight: on JetStream, a server killed just after
		// handing a job out forgets it and hands it out again (see the
		// README's Durability). Reported, not held. On Redis the killed
		// host is only the log's; a relay killed between its send and
		// its confirmation is handed the item again, which Redis's
		// queued trace keeps from a second copy, and that is held.
		t.Logf("%d jobs run twice; the first:\n  %s", len(twice), strings.Join(twice[:min(len(twice), 3)], "\n  "))
	}
}
