package redisbroker_test

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/redisbroker"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// A job whose attempt runs with nothing on record yet (shorter than its
// first heartbeat) when Redis loses its data looks, in the log, like a
// job still waiting. The rebuilt queue holds its item for a lease, in
// which a live attempt records its outcome (or its start), so that the
// job is not handed to a second worker and run again.
//
// On the code before the hold, the rebuilt item ran at once, and this
// outcome lost its race.
func TestRebuildGivesAnAttemptNotYetOnRecordALease(t *testing.T) {
	const lease = time.Second
	var logs testsupport.Buffer
	e := newEnv(t, redisbroker.Config{Lease: lease, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := testsupport.Context(t)
	testsupport.Go(t, func(ctx context.Context) { e.broker.Relay(ctx) })
	job, err := e.broker.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 6})
	if err != nil {
		t.Fatal(err)
	}
	// A worker takes it and is running it, its start not on record.
	dead, _ := e.broker.Queue(ctx)
	if d := next(t, dead, 5*time.Second); d.Item().JobID != job.ID {
		t.Fatalf("took %s, want %s", d.Item().JobID, job.ID)
	}
	rebuilds := func() int { return strings.Count(logs.String(), "rebuilding the queue from the event log") }
	before := rebuilds() // the queue's first rebuild, making the group

	// Redis loses everything; another worker rebuilds the queue.
	iter := e.rdb.Scan(ctx, 0, e.prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		e.rdb.Del(ctx, iter.Val())
	}
	var runs atomic.Int32
	reg := tasks.NewRegistry()
	reg.Register("full_report", func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
		runs.Add(1)
		return tasktype.Result{}, nil
	}, tasktype.Policy{})
	e.runWorker(t, reg, lease)
	testsupport.Eventually(t, 10*time.Second, "the queue was never rebuilt", func() bool {
		return rebuilds() > before
	})
	time.Sleep(lease / 5) // the rebuild has read the log

	// The first attempt ends now, as its outcome reaches the log.
	if _, err := e.events.Append(ctx, tasktype.Event{ID: "ok" + job.ID, Kind: tasktype.EventSucceeded, JobID: job.ID, JobType: job.Type,
		UserID: job.UserID, Time: time.Now().UTC(), Attempt: 1, Worker: "first:1"}, job.EventSeq); err != nil {
		t.Fatalf("the first attempt's outcome: %v; the handler had run %d times since the rebuild", err, runs.Load())
	}
	time.Sleep(3 * lease) // the rebuilt item had its chance to come
	if n := runs.Load(); n != 0 {
		t.Fatalf("handler ran %d times after the rebuild, want 0: the attempt on the worker whose entry went with Redis's data was already running it", n)
	}
	if last, _ := e.events.Last(ctx, job.UserID, job.ID); last.Kind != tasktype.EventSucceeded || last.Worker != "first:1" {
		t.Fatalf("job ended %+v, want the first attempt's success", last)
	}
}
