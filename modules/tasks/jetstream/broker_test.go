package jetstream_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

func TestMain(m *testing.M) {
	testsupport.VerifyNoLeaks(m)
}

func TestEnqueueFailsFastWhenServerIsDown(t *testing.T) {
	srv := testsupport.NATS(t)
	b := jetstreamtest.Broker(t, testsupport.Connect(t, srv, "web"))
	ctx := testsupport.Context(t)
	if err := b.Ping(ctx); err != nil {
		t.Fatalf("ping while up: %v", err)
	}
	srv.Shutdown()

	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err := b.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 1})
	if !errors.Is(err, tasktype.ErrUnavailable) {
		t.Fatalf("enqueue with the server down: %v, want ErrUnavailable", err)
	}
	if ctx.Err() != nil {
		t.Fatal("enqueue waited for the caller's deadline instead of failing by itself")
	}
	if err := b.Ping(ctx); err == nil {
		t.Fatal("ping succeeded with the server down")
	}
}

func TestAppendIsConditionalOnTheJobsLastEvent(t *testing.T) {
	srv := testsupport.NATS(t)
	b := jetstreamtest.Broker(t, testsupport.Connect(t, srv, "worker"))
	ctx := testsupport.Context(t)
	job, err := b.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 4})
	if err != nil {
		t.Fatal(err)
	}
	other, err := b.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 4})
	if err != nil {
		t.Fatal(err)
	}
	last, err := b.Last(ctx, 4, job.ID)
	if err != nil || last.Kind != tasktype.EventEnqueued || last.Seq != job.EventSeq {
		t.Fatalf("last event of a new job: %+v, %v", last, err)
	}
	ev := func(kind tasktype.EventKind) tasktype.Event {
		return tasktype.Event{ID: string(kind), Kind: kind, JobID: job.ID, JobType: job.Type, UserID: job.UserID, Time: time.Now().UTC(), Attempt: 1}
	}
	started, err := b.Append(ctx, ev(tasktype.EventStarted), job.EventSeq)
	if err != nil {
		t.Fatal(err)
	}
	// A second writer that read the same state loses; another job's
	// events in between do not count against this one.
	if _, err := b.Append(ctx, ev(tasktype.EventCancelled), job.EventSeq); !errors.Is(err, tasktype.ErrConflict) {
		t.Fatalf("stale append: %v, want ErrConflict", err)
	}
	if other.EventSeq <= job.EventSeq {
		t.Fatal("jobs out of order")
	}
	done, err := b.Append(ctx, ev(tasktype.EventSucceeded), started)
	if err != nil {
		t.Fatal(err)
	}
	h, err := b.History(ctx, 4, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []tasktype.EventKind
	for _, e := range h {
		kinds = append(kinds, e.Kind)
	}
	if len(h) != 3 || kinds[0] != tasktype.EventEnqueued || kinds[1] != tasktype.EventStarted || kinds[2] != tasktype.EventSucceeded || h[2].Seq != done {
		t.Fatalf("history %v", kinds)
	}
	// Owners only: another user's id finds nothing; 0 (operators) finds it.
	if _, err := b.Last(ctx, 5, job.ID); !errors.Is(err, tasktype.ErrNotFound) {
		t.Fatalf("last event for another user: %v, want ErrNotFound", err)
	}
	if _, err := b.History(ctx, 5, job.ID); !errors.Is(err, tasktype.ErrNotFound) {
		t.Fatalf("history for another user: %v, want ErrNotFound", err)
	}
	if e, err := b.Last(ctx, 0, job.ID); err != nil || e.Seq != done {
		t.Fatalf("operator's last event: %+v, %v", e, err)
	}
	for _, bad := range []string{"*", ">", "a.b", "", job.ID + ".*"} {
		if _, err := b.Last(ctx, 0, bad); !errors.Is(err, tasktype.ErrNotFound) {
			t.Errorf("last event of job id %q: %v, want ErrNotFound", bad, err)
		}
	}
}
