package tasks_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/internal/driver"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/redisbroker"
	"github.com/otjhelper/otj/modules/tasks/redisbroker/redisbrokertest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// retentionRegistry runs the retention test's jobs: one that succeeds
// with a result, one that fails for good, one that fails and waits an
// hour to retry, and one that runs until it is stopped.
func retentionRegistry(t *testing.T) *tasks.Registry {
	t.Helper()
	reg := tasks.NewRegistry()
	for name, h := range map[string]tasktype.HandlerFunc{
		"ok_job": func(ctx context.Context, j tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
			w, err := out.Create("r.txt", "text/plain")
			if err != nil {
				return tasktype.Result{}, err
			}
			_, err = w.Write([]byte("a result"))
			return tasktype.Result{Summary: "done"}, err
		},
		"fail_job": func(ctx context.Context, j tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
			return tasktype.Result{}, tasktype.Permanent(errors.New("no"))
		},
		"retry_job": func(ctx context.Context, j tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
			return tasktype.Result{}, errors.New("not yet")
		},
		"block_job": func(ctx context.Context, j tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
			<-ctx.Done()
			return tasktype.Result{}, ctx.Err()
		},
	} {
		policy := tasktype.Policy{}
		if name == "retry_job" {
			policy = tasktype.Policy{MaxAttempts: 3, BackoffMin: time.Hour, BackoffMax: 2 * time.Hour}
		}
		if err := reg.Register(name, h, policy); err != nil {
			t.Fatal(err)
		}
	}
	return reg
}

// A finished task older than TaskRetention goes with its events, its
// result and its row, even when an operator read its result since;
// pending, running, retrying (scheduled) tasks and a
// failed one retried by hand stay, however old; pruning again finds
// nothing; and a rebuild from the log yields exactly the tasks kept. On
// both transports, both dialects, with the pruning client's clock moved
// on past the retention.
func TestRetentionPrunesFinishedTasks(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T, log *jetstream.Broker) driver.Transport
	}{
		{"jetstream", func(t *testing.T, log *jetstream.Broker) driver.Transport { return log }},
		{"redis", func(t *testing.T, log *jetstream.Broker) driver.Transport {
			return redisbrokertest.Broker(t, log, redisbroker.Config{})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testsupport.EachDialect(t, func(t *testing.T, db *bun.DB) { testRetention(t, db, tc.open) })
		})
	}
}

func testRetention(t *testing.T, db *bun.DB, open func(t *testing.T, log *jetstream.Broker) driver.Transport) {
	ctx, cancel := context.WithTimeout(testsupport.Context(t), time.Minute)
	defer cancel()
	srv := testsupport.NATS(t)
	log := jetstreamtest.Broker(t, testsupport.Connect(t, srv, "retention"))
	transport := open(t, log)
	// One job at a time: once block_job holds the worker, later jobs wait.
	w, err := tasks.NewClient(tasks.Config{DB: db, Log: log, Transport: transport, Registry: retentionRegistry(t),
		Worker: tasks.WorkerConfig{Concurrency: 1, ShutdownGrace: 10 * time.Millisecond}, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	testsupport.Go(t, func(ctx context.Context) { w.RunWorker(ctx) })
	const retention = time.Minute
	var skew atomic.Int64
	c, err := tasks.NewClient(tasks.Config{DB: db, Log: log, Transport: transport, TaskRetention: retention, Logger: testsupport.Logger(t),
		Worker: tasks.WorkerConfig{Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }}})
	if err != nil {
		t.Fatal(err)
	}
	const user = 7
	enqueue := func(typ string) tasktype.Job {
		t.Helper()
		job, err := c.Enqueue(ctx, tasktype.EnqueueRequest{Type: typ, UserID: user})
		if err != nil {
			t.Fatal(err)
		}
		return job
	}
	waitKind := func(job tasktype.Job, kind tasktype.EventKind) tasktype.Event {
		t.Helper()
		var last tasktype.Event
		testsupport.Eventually(t, 20*time.Second, "job "+job.Type+" never reached "+string(kind), func() bool {
			last, _ = c.Last(ctx, user, job.ID)
			return last.Kind == kind
		})
		return last
	}
	succeeded := waitKind(enqueue("ok_job"), tasktype.EventSucceeded)
	// An operator read its result later on, within the retention: the
	// task finished when it succeeded, and ages out from then.
	read := succeeded
	read.ID, read.Kind, read.Attempt, read.By, read.Operator = "read-"+succeeded.ID, tasktype.EventResultRead, 0, tasktype.ByOperator, "ops@example.org"
	read.Time = succeeded.Time.Add(retention - 10*time.Second)
	if _, err := log.Append(ctx, read, succeeded.Seq); err != nil {
		t.Fatal(err)
	}
	failed := waitKind(enqueue("fail_job"), tasktype.EventFailed)
	retried := waitKind(enqueue("fail_job"), tasktype.EventFailed)
	retrying := waitKind(enqueue("retry_job"), tasktype.EventRetrying)
	running := waitKind(enqueue("block_job"), tasktype.EventStarted)
	pending := enqueue("ok_job")
	cancelledJob := enqueue("ok_job")
	cancelled, err := c.Cancel(ctx, user, cancelledJob.ID, tasktype.ByUser)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	// Retried by hand after its row said failed: the log is ahead of the
	// row, and the log decides.
	if _, err := c.Retry(ctx, user, retried.JobID, tasktype.ByOperator); err != nil {
		t.Fatal(err)
	}
	// A prune cut short after its purge: the row is still there.
	if err := log.PurgeJob(ctx, user, failed.JobID, failed.Seq); err != nil {
		t.Fatal(err)
	}

	if st, err := c.PruneFinished(ctx); err != nil || st.Pruned != 0 {
		t.Fatalf("PruneFinished within the retention = %+v, %v; want nothing pruned", st, err)
	}
	skew.Store(int64(retention + time.Second))
	st, err := c.PruneFinished(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pruned != 3 || st.Kept != 1 {
		t.Errorf("PruneFinished past the retention = %+v; want 3 pruned (succeeded, failed, cancelled), 1 kept (retried)", st)
	}
	if again, err := c.PruneFinished(ctx); err != nil || again.Pruned != 0 {
		t.Errorf("PruneFinished again = %+v, %v; want nothing left to prune", again, err)
	}
	if err := c.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	for _, e := range []tasktype.Event{succeeded, failed, cancelled} {
		if _, err := c.GetForUser(ctx, user, e.JobID); !errors.Is(err, tasktype.ErrNotFound) {
			t.Errorf("row of pruned %s task: %v; want ErrNotFound", e.Kind, err)
		}
		if _, err := c.History(ctx, user, e.JobID); !errors.Is(err, tasktype.ErrNotFound) {
			t.Errorf("events of pruned %s task: %v; want ErrNotFound", e.Kind, err)
		}
	}
	if _, err := c.Open(ctx, succeeded.Result.Object); !errors.Is(err, tasktype.ErrResultMissing) {
		t.Errorf("result of pruned task opens: %v; want ErrResultMissing", err)
	}
	want := map[string]tasktype.Status{
		retried.JobID: tasktype.StatusPending, retrying.JobID: tasktype.StatusRetrying,
		running.JobID: tasktype.StatusRunning, pending.ID: tasktype.StatusPending,
	}
	kept := func(when string) []string {
		t.Helper()
		ts, err := c.ListForUser(ctx, user, 100)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, task := range ts {
			if want[task.ID] != task.Status {
				t.Errorf("%s: task %s (%s) is %s; want %q", when, task.ID, task.TaskType, task.Status, want[task.ID])
			}
			ids = append(ids, task.ID)
		}
		slices.Sort(ids)
		return ids
	}
	before := kept("after pruning")
	if len(before) != len(want) {
		t.Errorf("after pruning: %d tasks; want %d", len(before), len(want))
	}
	if _, err := c.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	if after := kept("after a rebuild"); !slices.Equal(before, after) {
		t.Errorf("a rebuild from the log made tasks %v; want the ones kept, %v", after, before)
	}
}
