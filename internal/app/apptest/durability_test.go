package apptest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// How many jobs TestAcknowledgedEnqueueSurvivesKill enqueues, and the
// lease of its workers: short, so that work items whose ack the second
// kill lost come back within seconds.
const (
	durableBatch   = 500
	durableSingles = 20
	durableLease   = 2 * time.Second
)

// TestAcknowledgedEnqueueSurvivesKill enqueues jobs over TCP to the NATS
// server that app web embeds, through the batch API and one at a time, and
// SIGKILLs app web the moment the last ack is in: no drain, no shutdown.
// Restarted on the same data dir, the stream must hold every acknowledged
// enqueue at the sequence its ack named, and nothing else. Then a worker
// runs them all, and app web and the worker are SIGKILLed together the
// moment the last job's outcome is stored, while workers' acks (sent
// without waiting) and the projection's latest batch may still be on their
// way. Restarted once more, the work items whose acks were lost must be
// dropped as stale, each job must have run once with one succeeded event,
// and task_result must hold each job once, completed at its succeeded
// event, with the projection's position at the stream's end.
//
// Each NATS_SYNC mode runs: the guarantee against a process kill must not
// depend on fsync, which only matters when the machine itself goes down.
// Not parallel, as the lifecycle tests: several race-instrumented
// processes each.
func TestAcknowledgedEnqueueSurvivesKill(t *testing.T) {
	for _, sync := range []string{"interval", "always"} {
		t.Run(sync, func(t *testing.T) { acknowledgedEnqueueSurvivesKill(t, sync) })
	}
}

func acknowledgedEnqueueSurvivesKill(t *testing.T, sync string) {
	dir := t.TempDir()
	runs := newRunLog(t)
	env := map[string]string{
		"OTJ_DATA_DIR":       dir,
		"PORT":               "0",
		"NATS_LISTEN":        "127.0.0.1:0",
		"SECRET_KEY":         testsupport.TestSecretKey,
		"NATS_SYNC":          sync,
		"JOB_LEASE":          durableLease.String(),
		"WORKER_CONCURRENCY": "8",
		// A line per job from each process would bury a failure's cause.
		"LOG_LEVEL": "warn",
		runLogEnv:   runs.path,
	}

	// 1. Enqueue, and kill the server's process as soon as it has
	// acknowledged everything.
	web := startProcess(t, "web-1", env, "web")
	conn := durableConnect(t, web.waitJoin(t))
	db := dataDB(t, dir) // made and migrated by now
	jobs, lastAck := enqueueNoops(t, conn.b)
	gap := time.Since(lastAck)
	killProcesses(t, web)
	conn.nc.Close()
	t.Logf("%d jobs acknowledged; SIGKILL sent to app web %s after the last ack", len(jobs), gap.Round(time.Microsecond))
	t.Logf("app web's projection had applied up to seq %d of %d when killed", projectionOffset(t, db), len(jobs))

	// 2. Every acknowledged enqueue is in the stream, as acknowledged, and
	// nothing else is; then a worker runs them all.
	web = startProcess(t, "web-2", env, "web")
	nj := web.waitJoin(t)
	conn = durableConnect(t, nj)
	var lastSeq uint64
	var lost, moved []string
	for _, j := range jobs {
		lastSeq = max(lastSeq, j.EventSeq)
		e, err := conn.b.Last(testsupport.Context(t), j.UserID, j.ID)
		switch {
		case errors.Is(err, tasktype.ErrNotFound):
			lost = append(lost, fmt.Sprintf("job %s, acked at seq %d", j.ID, j.EventSeq))
		case err != nil:
			t.Fatal(err)
		case e.Kind != tasktype.EventEnqueued || e.Seq != j.EventSeq:
			moved = append(moved, fmt.Sprintf("job %s, acked at seq %d: %s event at seq %d", j.ID, j.EventSeq, e.Kind, e.Seq))
		}
	}
	if len(lost)+len(moved) > 0 {
		t.Fatalf("after the kill, of %d acknowledged enqueues %d are lost and %d not as acknowledged; the first:\n  %s",
			len(jobs), len(lost), len(moved), strings.Join(append(lost[:min(len(lost), 10)], moved[:min(len(moved), 5)]...), "\n  "))
	}
	if st := conn.streamState(t); st.Msgs != uint64(len(jobs)) || st.LastSeq != lastSeq {
		t.Fatalf("stream holds %d events up to seq %d after the kill, want exactly the %d enqueued, up to seq %d", st.Msgs, st.LastSeq, len(jobs), lastSeq)
	}

	wenv := maps.Clone(env)
	// The worker on the same data dir reads the token there, so it
	// has the same after app web restarts.
	wenv["NATS_URL"] = nj.URL
	// Not startWorker: it waits for an info line. The jobs finishing is
	// what counts.
	worker := startProcess(t, "worker-1", wenv, "worker")
	// One request a poll, so that the kill follows the last outcome
	// closely: the server writes a consumer's acks to disk at most every
	// 100ms, so the last ones are then still only in its memory.
	// Two events a job, enqueued and succeeded: a no-op job ends long
	// before its first heartbeat, so its outcome carries its start.
	want := uint64(2 * len(jobs))
	testsupport.Eventually(t, 2*time.Minute, "the jobs never all ran", func() bool {
		return conn.streamState(t).Msgs >= want
	})

	// 3. Kill everything the moment the last outcome is stored, then
	// start again.
	killProcesses(t, web, worker)
	conn.nc.Close()
	t.Logf("second kill: app web's projection had applied up to seq %d", projectionOffset(t, db))

	web = startProcess(t, "web-3", env, "web")
	nj2 := web.waitJoin(t)
	if nj2.Token != nj.Token {
		t.Errorf("app web came back with another token")
	}
	conn = durableConnect(t, nj2)
	if info := conn.workers(t); info.NumAckPending > 0 || info.NumPending > 0 {
		t.Logf("after the second kill the workers consumer has %d work items handed out and not acked, %d not yet handed out: they must be found stale",
			info.NumAckPending, info.NumPending)
	}
	wenv["NATS_URL"] = nj2.URL
	startProcess(t, "worker-2", wenv, "worker")
	opWaitIdle(t, conn.nc)

	// Each job ran once: one start and one end line, and the history
	// enqueued, succeeded (attempt 1, carrying its start), and nothing
	// else.
	st := conn.streamState(t)
	if st.Msgs != want || st.LastSeq != want {
		t.Errorf("stream holds %d events up to seq %d, want %d: two for each of the %d jobs", st.Msgs, st.LastSeq, want, len(jobs))
	}
	histories := conn.allEvents(t)
	rs := runs.lines(t)
	succeeded := make(map[string]uint64, len(jobs))
	var wrong []string
	for _, j := range jobs {
		evs := histories[j.ID]
		starts, ends := len(matching(rs, j.ID, "start", 0)), len(matching(rs, j.ID, "end", 0))
		if len(evs) == 2 && evs[0].Kind == tasktype.EventEnqueued && evs[1].Kind == tasktype.EventSucceeded && evs[1].Attempt == 1 &&
			!evs[1].StartedAt.IsZero() && starts == 1 && ends == 1 {
			succeeded[j.ID] = evs[1].Seq
			continue
		}
		wrong = append(wrong, fmt.Sprintf("job %s started %d and ended %d times; history:\n%s", j.ID, starts, ends, describe(evs)))
	}
	if len(wrong) > 0 {
		t.Errorf("%d of %d jobs did not run exactly once (want one start and end line; enqueued, succeeded attempt 1 carrying its start); the first:\n%s",
			len(wrong), len(jobs), strings.Join(wrong[:min(len(wrong), 5)], ""))
	}

	// task_result shows each job once, completed at its succeeded event,
	// and the projection's position is the stream's end.
	testsupport.Eventually(t, time.Minute, "the projection never reached the stream's end", func() bool {
		return projectionOffset(t, db) == st.LastSeq
	})
	rows, err := readTasks(t, db).All(testsupport.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	wrong = wrong[:0]
	for _, r := range rows {
		if seq, ok := succeeded[r.ID]; !ok || r.Status != tasktype.StatusCompleted || r.Attempts != 1 || r.LastSeq != seq {
			wrong = append(wrong, fmt.Sprintf("%s: %s, attempts %d, last seq %d (succeeded at %d)", r.ID, r.Status, r.Attempts, r.LastSeq, seq))
		}
	}
	if len(rows) != len(jobs) || len(wrong) > 0 {
		t.Errorf("task_result has %d rows, %d of them not completed at their one succeeded event; want %d, all completed; the first:\n  %s",
			len(rows), len(wrong), len(jobs), strings.Join(wrong[:min(len(wrong), 10)], "\n  "))
	}
}

// enqueueNoops enqueues durableBatch test_sleep jobs of 0ms through the
// batch API, then durableSingles one at a time, and returns the jobs as
// acknowledged, and when the last ack came.
func enqueueNoops(t *testing.T, b *jetstream.Broker) ([]tasktype.Job, time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	payload, _ := json.Marshal(testPayload{MS: 0})
	req := tasktype.EnqueueRequest{Type: testSleep, UserID: 1, Payload: payload}
	reqs := make([]tasktype.EnqueueRequest, durableBatch)
	for i := range reqs {
		reqs[i] = req
	}
	jobs, err := b.EnqueueBatch(ctx, reqs)
	if err != nil || len(jobs) != durableBatch {
		t.Fatalf("enqueue batch: %d of %d jobs, err %v", len(jobs), durableBatch, err)
	}
	for range durableSingles {
		job, err := b.Enqueue(ctx, req)
		if err != nil {
			t.Fatalf("enqueue: %v", err)
		}
		jobs = append(jobs, job)
	}
	return jobs, time.Now()
}

// durableConn is the test's connection to an app's NATS server, as
// another process would have it.
type durableConn struct {
	nc *nats.Conn
	js natsjs.JetStream
	b  *jetstream.Broker
}

func durableConnect(t *testing.T, j natsJoin) *durableConn {
	t.Helper()
	nc := j.connect(t, "durability-test")
	js, err := natsjs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// The workers' lease, though this broker opens no queue and so never
	// sets the consumer.
	b, err := jetstream.Open(testsupport.Context(t), jetstream.Config{Conn: nc, AckWait: durableLease, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return &durableConn{nc: nc, js: js, b: b}
}

func (c *durableConn) streamState(t *testing.T) natsjs.StreamState {
	t.Helper()
	ctx := testsupport.Context(t)
	s, err := c.js.Stream(ctx, jetstream.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State
}

// workers is the shared worker consumer's state.
func (c *durableConn) workers(t *testing.T) *natsjs.ConsumerInfo {
	t.Helper()
	ctx := testsupport.Context(t)
	cons, err := c.js.Consumer(ctx, jetstream.StreamName, jetstream.WorkConsumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// errAllRead stops allEvents' Follow at the stream's end.
var errAllRead = errors.New("read to the stream's end")

// allEvents reads the whole stream, in order, and groups it by job.
func (c *durableConn) allEvents(t *testing.T) map[string][]tasktype.Event {
	t.Helper()
	end := c.streamState(t).LastSeq
	byJob := make(map[string][]tasktype.Event)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := c.b.Follow(ctx, 0, func(evs []tasktype.Event) error {
		for _, e := range evs {
			byJob[e.JobID] = append(byJob[e.JobID], e)
			if e.Seq >= end {
				return errAllRead
			}
		}
		return nil
	})
	if !errors.Is(err, errAllRead) {
		t.Fatalf("read the stream to seq %d: %v", end, err)
	}
	return byJob
}

// killProcesses SIGKILLs each process, in order, and waits for it to go.
func killProcesses(t *testing.T, ps ...*appProcess) {
	t.Helper()
	for _, p := range ps {
		if err := p.cmd.Process.Kill(); err != nil {
			t.Fatalf("kill %s: %v", p.name, err)
		}
	}
	for _, p := range ps {
		if _, err := p.waitExit(t, 30*time.Second); err == nil {
			t.Fatalf("%s exited with status 0 after SIGKILL: it had finished before the kill", p.name)
		}
	}
}

// projectionOffset is the stream position task_result is stored at.
func projectionOffset(t *testing.T, db *bun.DB) uint64 {
	t.Helper()
	seq, err := readTasks(t, db).Offset(testsupport.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	return seq
}
