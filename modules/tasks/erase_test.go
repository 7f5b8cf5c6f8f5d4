package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// eraseFixture is a log, a worker that runs "keep_job" (it stores a
// result naming its user) and a client, on one database.
type eraseFixture struct {
	broker *jetstream.Broker
	c      *tasks.Client
}

func newEraseFixture(t *testing.T, db *bun.DB) eraseFixture {
	t.Helper()
	srv := testsupport.NATS(t)
	broker := jetstreamtest.Broker(t, testsupport.Connect(t, srv, "web"))
	worker := jetstreamtest.Broker(t, testsupport.Connect(t, srv, "worker"))
	reg := tasks.NewRegistry()
	if err := reg.Register("keep_job", func(ctx context.Context, j tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
		w, err := out.Create("r.txt", "text/plain")
		if err != nil {
			return tasktype.Result{}, err
		}
		_, err = fmt.Fprintf(w, "result of user %d", j.UserID)
		return tasktype.Result{Summary: "done"}, err
	}, tasktype.Policy{}); err != nil {
		t.Fatal(err)
	}
	w, err := tasks.NewClient(tasks.Config{DB: db, Log: worker, Transport: worker, Registry: reg, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	testsupport.Go(t, func(ctx context.Context) { w.RunWorker(ctx) })
	c, err := tasks.NewClient(tasks.Config{DB: db, Log: broker, Transport: broker, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return eraseFixture{broker: broker, c: c}
}

// run enqueues a keep_job for user and waits for it to succeed.
func (f eraseFixture) run(t *testing.T, user int64) tasktype.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(testsupport.Context(t), 20*time.Second)
	defer cancel()
	job, err := f.c.Enqueue(ctx, tasktype.EnqueueRequest{Type: "keep_job", UserID: user})
	if err != nil {
		t.Fatal(err)
	}
	e, err := f.c.WaitOutcome(ctx, user, job.ID)
	if err != nil || e.Kind != tasktype.EventSucceeded || e.Result == nil {
		t.Fatalf("job of user %d ended %+v, %v; want succeeded with a result", user, e, err)
	}
	return e
}

// Erasing a user removes their results, events and task_result rows, and
// a Rebuild of task_result from the stream afterwards brings none of it
// back; another user's tasks and results are untouched. Both dialects.
func TestEraseUserSurvivesRebuild(t *testing.T) {
	testsupport.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testsupport.Context(t)
		f := newEraseFixture(t, db)
		gone := []tasktype.Event{f.run(t, 1), f.run(t, 1)}
		kept := f.run(t, 2)
		pending, err := f.c.Enqueue(ctx, tasktype.EnqueueRequest{Type: "other_job", UserID: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.c.CatchUp(ctx); err != nil {
			t.Fatal(err)
		}
		if ts, err := f.c.ListForUser(ctx, 1, 10); err != nil || len(ts) != 3 {
			t.Fatalf("before: user 1 has %d tasks, %v; want 3", len(ts), err)
		}

		got, err := f.c.EraseUser(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got.Rows != 3 || got.Events == 0 || got.Results < 2 {
			t.Errorf("EraseUser = %+v; want 3 rows, the events and at least 2 results", got)
		}
		st, err := f.c.Rebuild(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ts, err := f.c.ListForUser(ctx, 1, 10); err != nil || len(ts) != 0 {
			t.Errorf("after erase and rebuild: user 1 has %d tasks, %v; want none", len(ts), err)
		}
		if st.Rows != 1 {
			t.Errorf("rebuild made %d rows; want only user 2's one", st.Rows)
		}
		for _, e := range append(gone, tasktype.Event{JobID: pending.ID}) {
			if _, err := f.c.History(ctx, 1, e.JobID); !errors.Is(err, tasktype.ErrNotFound) {
				t.Errorf("history of erased job %s: %v; want ErrNotFound", e.JobID, err)
			}
			if e.Result == nil {
				continue
			}
			if _, err := f.c.Open(ctx, e.Result.Object); !errors.Is(err, tasktype.ErrResultMissing) {
				t.Errorf("erased result %s opens: %v; want ErrResultMissing", e.Result.Object, err)
			}
		}

		task, err := f.c.GetForUser(ctx, 2, kept.JobID)
		if err != nil || task.Status != tasktype.StatusCompleted {
			t.Fatalf("user 2's task after erase: %+v, %v; want it completed", task, err)
		}
		res, err := f.c.Open(ctx, kept.Result.Object)
		if err != nil {
			t.Fatalf("user 2's result after erase: %v", err)
		}
		body, _ := io.ReadAll(res)
		res.Close()
		if string(body) != "result of user 2" {
			t.Errorf("user 2's result = %q", body)
		}
		if h, err := f.c.History(ctx, 2, kept.JobID); err != nil || len(h) < 3 {
			t.Errorf("user 2's history after erase: %d events, %v", len(h), err)
		}

		// Erasing again finds nothing and is no error.
		if again, err := f.c.EraseUser(ctx, 1); err != nil || again.Rows != 0 || again.Events != 0 {
			t.Errorf("second EraseUser = %+v, %v; want nothing left and no error", again, err)
		}
	})
}

// An erase cut short after the purge, before task_result was cleared,
// is finished by running it again: the rows still name the results, and
// both go.
func TestEraseUserFinishesAnEraseCutShort(t *testing.T) {
	ctx := testsupport.Context(t)
	db, _ := testsupport.DB(t)
	f := newEraseFixture(t, db)
	e := f.run(t, 5)
	if err := f.c.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	// The driver's step alone, as if the process died after it: the
	// result and events go, the row stays.
	if _, err := f.broker.EraseUser(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if ts, err := f.c.ListForUser(ctx, 5, 10); err != nil || len(ts) != 1 {
		t.Fatalf("after the driver's step: %d rows, %v; want the row still there", len(ts), err)
	}
	got, err := f.c.EraseUser(ctx, 5)
	if err != nil || got.Rows != 1 {
		t.Fatalf("EraseUser again = %+v, %v; want the row deleted", got, err)
	}
	if _, err := f.c.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.GetForUser(ctx, 5, e.JobID); !errors.Is(err, tasktype.ErrNotFound) {
		t.Errorf("task after erase and rebuild: %v; want ErrNotFound", err)
	}
}
