package jetstream_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/platform/testsupport"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestEnqueueFailsFastWhenServerIsDown(t *testing.T) {
	srv := testsupport.NATS(t)
	b := testsupport.Broker(t, testsupport.Connect(t, srv, "web"))
	ctx := testsupport.Context(t)
	if err := b.Ping(ctx); err != nil {
		t.Fatalf("ping while up: %v", err)
	}
	srv.Shutdown()

	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err := b.Enqueue(ctx, tasks.EnqueueRequest{Type: "full_report", UserID: 1})
	if !errors.Is(err, tasks.ErrUnavailable) {
		t.Fatalf("enqueue with the server down: %v, want ErrUnavailable", err)
	}
	if ctx.Err() != nil {
		t.Fatal("enqueue waited for the caller's deadline instead of failing by itself")
	}
	if err := b.Ping(ctx); err == nil {
		t.Fatal("ping succeeded with the server down")
	}
}

func TestOutcomeFindsTerminalEvents(t *testing.T) {
	srv := testsupport.NATS(t)
	b := testsupport.Broker(t, testsupport.Connect(t, srv, "worker"))
	ctx := testsupport.Context(t)
	job, err := b.Enqueue(ctx, tasks.EnqueueRequest{Type: "full_report", UserID: 4})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := b.Outcome(ctx, job); err != nil || out != nil {
		t.Fatalf("outcome of a new job: %+v, %v", out, err)
	}
	ev := tasks.Event{ID: job.ID + ".1.failed", Kind: tasks.EventFailed, JobID: job.ID, JobType: job.Type, UserID: job.UserID, Time: time.Now().UTC(), Attempt: 1, Error: "boom"}
	seq, err := b.Append(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := b.Append(ctx, ev); err != nil || again != seq {
		t.Fatalf("repeated append: seq %d (first %d), %v", again, seq, err)
	}
	out, err := b.Outcome(ctx, job)
	if err != nil || out == nil || out.Kind != tasks.EventFailed || out.Error != "boom" || out.Seq != seq {
		t.Fatalf("outcome %+v, %v", out, err)
	}
	if last, _ := b.LastSeq(ctx); last != seq {
		t.Fatalf("stream holds %d events, want %d (the repeat must be dropped)", last, seq)
	}
}
