package jetstream_test

import (
	"context"
	"strings"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/internal/worker"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// TestForgottenDeliveryOfALostAttemptIsTakenOver has the server forget
// that it handed out a work item whose attempt then started, as a server
// killed before it wrote its consumer's state to disk does (at most every
// 100ms), while the attempt's worker is gone. The server hands the item
// out again as a first delivery; a worker must not drop it as a copy
// (nothing would ever deliver it again) but leave it until its lease runs
// out, then take the attempt over as lost and run the job to its end.
//
// A consumer reset to the item's sequence is the server forgetting, on
// demand.
func TestForgottenDeliveryOfALostAttemptIsTakenOver(t *testing.T) {
	const lease = time.Second
	srv := testsupport.NATS(t)
	nc := testsupport.Connect(t, srv, "worker")
	ctx := testsupport.Context(t)
	b, err := jetstream.Open(ctx, jetstream.Config{Conn: nc, AckWait: lease, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	q, err := b.Queue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	job, err := b.Enqueue(ctx, tasktype.EnqueueRequest{Type: "work", UserID: 1})
	if err != nil {
		t.Fatal(err)
	}

	// A worker takes the item, starts the attempt, and dies.
	d, err := q.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gone := tasktype.Event{ID: "start-1", Kind: tasktype.EventStarted, JobID: job.ID, JobType: job.Type, UserID: job.UserID, Time: time.Now().UTC(), Attempt: 1, MaxAttempts: 3, Worker: "gone:1"}
	if _, err := b.Append(ctx, gone, d.Item().Seq); err != nil {
		t.Fatal(err)
	}
	js, err := natsjs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.ResetConsumerToSequence(ctx, jetstream.StreamName, jetstream.WorkConsumer, d.Item().Seq); err != nil {
		t.Fatalf("reset the workers consumer: %v", err)
	}

	reg := tasks.NewRegistry()
	if err := reg.Register("work", func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
		return tasktype.Result{Summary: "done"}, nil
	}, tasktype.Policy{MaxAttempts: 3, BackoffMin: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.Config{Queue: q, Capabilities: b.Capabilities(), Events: b, Results: b, Registry: reg, ExtendEvery: lease / 5, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	reset := time.Now()
	testsupport.Go(t, func(ctx context.Context) { _ = w.Run(ctx) })

	var last tasktype.Event
	testsupport.Eventually(t, 10*lease, "the job whose delivery the server forgot never finished", func() bool {
		last, err = b.Last(ctx, job.UserID, job.ID)
		return err == nil && last.Kind == tasktype.EventSucceeded
	})
	t.Logf("succeeded %s after the server forgot the delivery (lease %s)", time.Since(reset).Round(time.Millisecond), lease)
	h, err := b.History(ctx, job.UserID, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	h = tasktype.WithStarts(h)
	var kinds []string
	for _, e := range h {
		kinds = append(kinds, string(e.Kind))
	}
	if got := strings.Join(kinds, " "); got != "enqueued started retrying started succeeded" || last.Attempt != 2 ||
		!strings.Contains(h[2].Error, "worker gone:1 stopped responding during attempt 1") {
		t.Fatalf("history %s (attempt %d, %q), want attempt 1 lost on gone:1, attempt 2 succeeded", got, last.Attempt, h[2].Error)
	}
}
