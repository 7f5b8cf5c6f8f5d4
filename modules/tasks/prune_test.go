package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nuid"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// With PruneOnProjection, the worker deletes nothing (its broker role may
// not purge the results bucket: here its broker is NoPurge) and the
// projection deletes a user's results beyond Keep, oldest first, once it
// applies a newer success; another user's stay.
func TestProjectionPrunesOlderResults(t *testing.T) {
	ctx := testsupport.Context(t)
	db, _ := testsupport.DB(t)
	s := testsupport.NATS(t)
	web := jetstreamtest.Broker(t, testsupport.Connect(t, s, "web"))
	worker := jetstreamtest.BrokerWith(t, testsupport.Connect(t, s, "worker"), jetstream.Config{NoPurge: true, JoinOnly: true})
	reg := tasks.NewRegistry()
	if err := reg.Register("file", func(_ context.Context, job tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
		w, err := out.Create("r.txt", "text/plain")
		if err != nil {
			return tasktype.Result{}, err
		}
		_, err = fmt.Fprintf(w, "result of %s", job.ID)
		return tasktype.Result{}, err
	}, tasktype.Policy{MaxAttempts: 1, Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	retention := tasktype.Retention{Keep: 2, TTL: time.Hour}
	workers, err := tasks.NewClient(tasks.Config{DB: db, Log: worker, Transport: worker, Registry: reg, Retention: retention,
		PruneOnProjection: true, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	webc, err := tasks.NewClient(tasks.Config{DB: db, Log: web, Transport: web, Retention: retention,
		PruneOnProjection: true, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	go func() { _ = workers.RunWorker(rctx); done <- struct{}{} }()
	go func() { _ = webc.RunProjection(rctx); done <- struct{}{} }()
	t.Cleanup(func() { stop(); <-done; <-done })

	var jobs []tasktype.Job
	for i := range 4 {
		user := int64(1)
		if i == 3 {
			user = 2
		}
		job, err := webc.Enqueue(ctx, tasktype.EnqueueRequest{Type: "file", UserID: user})
		if err != nil {
			t.Fatal(err)
		}
		waitKind(t, webc, job, tasktype.EventSucceeded)
		jobs = append(jobs, job)
	}
	stored := func(job tasktype.Job) bool { return storedResult(t, web, job, 1) }
	testsupport.Eventually(t, 10*time.Second, "user 1's oldest result was never pruned", func() bool { return !stored(jobs[0]) })
	for _, job := range jobs[1:] {
		if !stored(job) {
			t.Errorf("result of job %s (user %d) is gone; only user 1's oldest should be", job.ID, job.UserID)
		}
	}
}

// With PruneOnProjection, the projection deletes the result files of an
// ended job's attempts that did not win: one that stored its file and
// was then taken for lost, before a success; every attempt's, after a
// failure for good. The winner's file stays.
func TestProjectionSweepsLosingAttemptsFiles(t *testing.T) {
	ctx := testsupport.Context(t)
	db, _ := testsupport.DB(t)
	web := jetstreamtest.Broker(t, testsupport.Connect(t, testsupport.NATS(t), "web"))
	webc, err := tasks.NewClient(tasks.Config{DB: db, Log: web, Transport: web, Retention: tasktype.Retention{Keep: 5, TTL: time.Hour},
		PruneOnProjection: true, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = webc.RunProjection(rctx) }()
	t.Cleanup(func() { stop(); <-done })

	put := func(job tasktype.Job, attempt int) *tasktype.ResultRef {
		ref, err := web.Put(ctx, tasktype.ResultObjectName(job.ID, attempt), "r.txt", "text/plain", strings.NewReader("attempt "+strconv.Itoa(attempt)))
		if err != nil {
			t.Fatal(err)
		}
		return &ref
	}
	stored := func(job tasktype.Job, attempt int) bool { return storedResult(t, web, job, attempt) }
	// record appends the job's events after its newest, as a worker would.
	record := func(job tasktype.Job, events ...tasktype.Event) {
		for _, e := range events {
			last, err := web.Last(ctx, job.UserID, job.ID)
			if err != nil {
				t.Fatal(err)
			}
			e.ID, e.JobID, e.JobType, e.UserID, e.Time = nuid.Next(), job.ID, job.Type, job.UserID, time.Now().UTC()
			if _, err := web.Append(ctx, e, last.Seq); err != nil {
				t.Fatal(err)
			}
		}
	}
	lost := "worker gone:1 stopped responding during attempt 1"

	won, err := webc.Enqueue(ctx, tasktype.EnqueueRequest{Type: "file", UserID: 1})
	if err != nil {
		t.Fatal(err)
	}
	put(won, 1) // attempt 1 stored its file, then its worker was taken for lost
	record(won,
		tasktype.Event{Kind: tasktype.EventStarted, Attempt: 1, MaxAttempts: 3, Worker: "gone:1"},
		tasktype.Event{Kind: tasktype.EventRetrying, Attempt: 1, MaxAttempts: 3, Error: lost, RetryAt: time.Now()},
		tasktype.Event{Kind: tasktype.EventSucceeded, Attempt: 2, MaxAttempts: 3, Worker: "here:2", Result: put(won, 2)})

	failed, err := webc.Enqueue(ctx, tasktype.EnqueueRequest{Type: "file", UserID: 1})
	if err != nil {
		t.Fatal(err)
	}
	put(failed, 1)
	record(failed,
		tasktype.Event{Kind: tasktype.EventStarted, Attempt: 1, MaxAttempts: 1, Worker: "gone:1"},
		tasktype.Event{Kind: tasktype.EventFailed, Attempt: 1, MaxAttempts: 1, Error: lost})

	testsupport.Eventually(t, 10*time.Second, "the losing attempts' files were never deleted", func() bool {
		return !stored(won, 1) && !stored(failed, 1)
	})
	if !stored(won, 2) {
		t.Error("the winning attempt's file was deleted")
	}
}

// storedResult says whether the bucket holds the result file of the
// job's attempt.
func storedResult(t *testing.T, b *jetstream.Broker, job tasktype.Job, attempt int) bool {
	t.Helper()
	r, err := b.Open(testsupport.Context(t), tasktype.ResultObjectName(job.ID, attempt))
	if err == nil {
		r.Close()
		return true
	}
	if !errors.Is(err, tasktype.ErrResultMissing) {
		t.Fatal(err)
	}
	return false
}
