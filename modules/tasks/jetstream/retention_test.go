package jetstream_test

import (
	"errors"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// The task retention is recorded on the stream by the first process
// that brings one; another value is refused, naming the one in force,
// unless reset; a process bringing none leaves it; and a stream updated
// for another setting keeps it.
func TestTaskRetentionIsRecordedAndRefusedUnlessReset(t *testing.T) {
	srv := testsupport.NATS(t)
	ctx := testsupport.Context(t)
	open := func(cfg jetstream.Config) (*jetstream.Broker, error) {
		cfg.Conn, cfg.Logger = testsupport.Connect(t, srv, "web"), testsupport.Logger(t)
		return jetstream.Open(ctx, cfg)
	}
	in := func(b *jetstream.Broker) time.Duration {
		t.Helper()
		d, err := b.TaskRetention(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	first, err := open(jetstream.Config{TaskRetention: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got := in(first); got != 10*time.Second {
		t.Fatalf("retention recorded by the first process: %s; want 10s", got)
	}
	_, err = open(jetstream.Config{TaskRetention: time.Hour})
	var mismatch *jetstream.RetentionMismatchError
	if !errors.As(err, &mismatch) || mismatch.Deployed != 10*time.Second || mismatch.Wanted != time.Hour {
		t.Fatalf("open with another retention: %v; want a RetentionMismatchError naming 10s in force", err)
	}
	if _, err := open(jetstream.Config{Duplicates: 3 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	if got := in(first); got != 10*time.Second {
		t.Fatalf("after an update of another setting by a process with no retention: %s; want 10s kept", got)
	}
	if _, err := open(jetstream.Config{TaskRetention: time.Hour, ResetTaskRetention: true}); err != nil {
		t.Fatal(err)
	}
	if got := in(first); got != time.Hour {
		t.Fatalf("after a reset to 1h: %s in force", got)
	}
}

// PurgeJob removes the job's events up to the one named, keeps any
// stored after it, touches no other job, and purging again is no error.
func TestPurgeJobKeepsWhatCameAfter(t *testing.T) {
	b := jetstreamtest.Broker(t, testsupport.Connect(t, testsupport.NATS(t), "web"))
	ctx := testsupport.Context(t)
	job, err := b.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 4})
	if err != nil {
		t.Fatal(err)
	}
	other, err := b.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 4})
	if err != nil {
		t.Fatal(err)
	}
	cancelled, err := b.Append(ctx, tasktype.Event{ID: "c", Kind: tasktype.EventCancelled, JobID: job.ID, JobType: job.Type, UserID: 4, Time: time.Now().UTC()}, job.EventSeq)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := b.PurgeJob(ctx, 4, job.ID, job.EventSeq); err != nil {
			t.Fatal(err)
		}
	}
	h, err := b.History(ctx, 4, job.ID)
	if err != nil || len(h) != 1 || h[0].Seq != cancelled {
		t.Fatalf("history after purging through the enqueue: %+v, %v; want only the cancel", h, err)
	}
	if err := b.PurgeJob(ctx, 4, job.ID, cancelled); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Last(ctx, 4, job.ID); !errors.Is(err, tasktype.ErrNotFound) {
		t.Fatalf("job after purging through its last event: %v; want ErrNotFound", err)
	}
	if _, err := b.Last(ctx, 4, other.ID); err != nil {
		t.Fatalf("another job of the user after the purge: %v", err)
	}
}
