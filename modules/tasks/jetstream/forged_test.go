package jetstream_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/jetstream/internal/codec"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// A worker's NATS role may write retrying events, which are work items,
// but not enqueued ones. The queue hands out no retrying item of a job
// that was never enqueued, nor an item stored on another subject than its
// own event's: a worker credential cannot create a job either way. A
// real job's items still come.
func TestQueueDropsWorkItemsNoJobAskedFor(t *testing.T) {
	ctx := testsupport.Context(t)
	b, real := forgedLog(t, ctx)
	q, err := b.Queue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []tasktype.Event
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && len(got) == 0 {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		ds, _ := q.NextBatch(rctx, 10)
		cancel()
		for _, d := range ds {
			got = append(got, d.Item())
		}
	}
	if len(got) != 1 || got[0].JobID != real.ID {
		t.Fatalf("the queue handed out %+v, want only job %s", got, real.ID)
	}
}

// The Redis broker takes its work items from the log through FeedWork
// and ScanWork: a worker credential must not create a job there either,
// so both pass on a real job's items and none that no job asked for.
func TestFeedPassesOnNoWorkItemNoJobAskedFor(t *testing.T) {
	ctx := testsupport.Context(t)
	b, real := forgedLog(t, ctx)
	var scanned []string
	if err := b.ScanWork(ctx, func(_ context.Context, e tasktype.Event) error {
		scanned = append(scanned, e.JobID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(scanned) != 1 || scanned[0] != real.ID {
		t.Errorf("ScanWork passed on %v, want only job %s", scanned, real.ID)
	}

	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fed := make(chan string, 10)
	done := make(chan error, 1)
	go func() {
		done <- b.FeedWork(fctx, "relay-test", func(_ context.Context, e tasktype.Event, _ bool) error {
			fed <- e.JobID
			return nil
		})
	}()
	select {
	case id := <-fed:
		if id != real.ID {
			t.Errorf("FeedWork passed on job %s first, want %s", id, real.ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("FeedWork passed on nothing")
	}
	// The log holds nothing after the real job: anything more fed is forged.
	select {
	case id := <-fed:
		t.Errorf("FeedWork passed on job %s too, which no job of the log asked for", id)
	case <-time.After(time.Second):
	}
	cancel()
	<-done
}

// forgedLog is a broker whose log holds, oldest first, two work items no
// job asked for, as a worker credential could write them, and then one
// real job's.
func forgedLog(t *testing.T, ctx context.Context) (*jetstream.Broker, tasktype.Job) {
	t.Helper()
	nc := testsupport.Connect(t, testsupport.NATS(t), "forged")
	b := jetstreamtest.Broker(t, nc)
	js, err := natsjs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(subject string, e tasktype.Event) {
		t.Helper()
		if _, err := js.Publish(ctx, subject, codec.AppendEvent(nil, &e)); err != nil {
			t.Fatal(err)
		}
	}
	forged := tasktype.Event{ID: "f1", Kind: tasktype.EventRetrying, JobID: "neverenqueued1", JobType: "account_export", UserID: 99,
		Attempt: 1, Time: time.Now().UTC(), RetryAt: time.Now().UTC(), Payload: json.RawMessage(`{}`)}
	publish(jetstream.EventSubject(&forged), forged)
	// An enqueued event stored where a worker may write: as a retrying.
	elsewhere := tasktype.Event{ID: "f2", Kind: tasktype.EventEnqueued, JobID: "elsewhere1", JobType: "account_export", UserID: 99,
		Time: time.Now().UTC(), Payload: json.RawMessage(`{}`)}
	publish(jetstream.Subject("account_export", 99, "elsewhere1", tasktype.EventRetrying), elsewhere)
	real, err := b.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 1, Payload: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	return b, real
}
