package worker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/internal/worker"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// After a job stores its result, only the newest ResultKeep results of
// that user's jobs of that type are kept; other users' and other types'
// are not touched.
func TestWorkerKeepsNewestResultsPerUserAndType(t *testing.T) {
	write := func(ctx context.Context, job tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
		w, err := out.Create("r.txt", "text/plain")
		if err != nil {
			return tasktype.Result{}, err
		}
		fmt.Fprintf(w, "result of %s", job.ID)
		return tasktype.Result{}, nil
	}
	s := setupWith(t, func(r *tasks.Registry) {
		r.Register("report_a", write, tasktype.Policy{})
		r.Register("report_b", write, tasktype.Policy{})
	}, worker.Config{Concurrency: 1, ResultKeep: 2, ResultTTL: time.Hour})

	run := func(typ string, user int64) tasktype.Task {
		t.Helper()
		row := s.waitDone(t, s.enqueue(t, typ, user, ""))
		if !row.HasResult() {
			t.Fatalf("%s of user %d: no result (%s, %s)", typ, user, row.Status, row.Error)
		}
		return row
	}
	other := run("report_a", 8)
	otherType := run("report_b", 7)
	var mine []tasktype.Task
	for range 4 {
		mine = append(mine, run("report_a", 7))
	}
	stored := func(row tasktype.Task) bool {
		res, err := s.web.Open(testsupport.Context(t), row.ResultPath)
		if err == nil {
			res.Close()
			return true
		}
		if !errors.Is(err, tasktype.ErrResultMissing) {
			t.Fatal(err)
		}
		return false
	}
	testsupport.Eventually(t, 10*time.Second, "older results of user 7's report_a not deleted", func() bool {
		return !stored(mine[0]) && !stored(mine[1])
	})
	for name, row := range map[string]tasktype.Task{"newest": mine[3], "second newest": mine[2], "another user's": other, "another type's": otherType} {
		if !stored(row) {
			t.Errorf("the %s result was deleted", name)
		}
	}
}

// The projection applies a succeeded event only if its result is the
// object of that very job and of the attempt the task is running;
// otherwise the row stays as it was.
func TestProjectionRefusesForeignResultReference(t *testing.T) {
	s := setup(t, func(r *tasks.Registry) {
		r.Register("hold", func(ctx context.Context, _ tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
			<-ctx.Done()
			return tasktype.Result{}, ctx.Err()
		}, tasktype.Policy{})
	})
	ctx := testsupport.Context(t)
	job := s.enqueue(t, "hold", 7, "")
	s.waitStatus(t, job, tasktype.StatusRunning)
	for _, tt := range []struct {
		name    string
		attempt int
		object  string
	}{
		{"another job's object", 1, tasktype.ResultObjectName("someoneElsesJob", 1)},
		{"another attempt's object", 1, tasktype.ResultObjectName(job.ID, 2)},
		{"an attempt the task is not running", 2, tasktype.ResultObjectName(job.ID, 2)},
		{"a name not made by the rule", 1, job.ID},
	} {
		t.Run(tt.name, func(t *testing.T) {
			last, err := s.web.Last(ctx, job.UserID, job.ID)
			if err != nil {
				t.Fatal(err)
			}
			seq, err := s.web.Append(ctx, tasktype.Event{
				ID: tt.name, Kind: tasktype.EventSucceeded, JobID: job.ID, JobType: job.Type, UserID: job.UserID,
				Time: time.Now().UTC(), Attempt: tt.attempt,
				Result: &tasktype.ResultRef{Object: tt.object, Name: "r.csv", ContentType: "text/csv", Size: 1, Digest: "SHA-256=x"},
			}, last.Seq)
			if err != nil {
				t.Fatal(err)
			}
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := s.proj.WaitFor(wctx, seq); err != nil {
				t.Fatal(err)
			}
			row, err := s.store.GetForUser(ctx, job.UserID, job.ID)
			if err != nil {
				t.Fatal(err)
			}
			if row.Status != tasktype.StatusRunning || row.ResultPath != "" || row.LastSeq >= seq {
				t.Fatalf("forged outcome applied: status %s, result %q, last seq %d (forged %d)", row.Status, row.ResultPath, row.LastSeq, seq)
			}
		})
	}
}
