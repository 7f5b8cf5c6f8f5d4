package jetstream_test

import (
	"context"
	"errors"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// collectUser follows the user's events after seq until n have come or
// wait has passed, and returns them.
func collectUser(t *testing.T, b *jetstream.Broker, user int64, after uint64, n int, wait time.Duration) []tasktype.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(testsupport.Context(t), wait)
	defer cancel()
	errEnough := errors.New("enough")
	var got []tasktype.Event
	err := b.FollowUser(ctx, user, after, func(e tasktype.Event) error {
		got = append(got, e)
		if len(got) == n {
			return errEnough
		}
		return nil
	})
	if !errors.Is(err, errEnough) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("follow user %d: %v", user, err)
	}
	return got
}

// A user's follower reads only that user's events, from the sequence it
// asks for on, and leaves no consumer behind on the server.
func TestFollowUserSeesOnlyTheirOwnEventsAndLeavesNoConsumer(t *testing.T) {
	srv := testsupport.NATS(t)
	nc := testsupport.Connect(t, srv, "app")
	b := jetstreamtest.Broker(t, nc)
	ctx := testsupport.Context(t)
	var bobJobs []tasktype.Job
	for i := range 6 {
		user := int64(1 + i%2) // alice 1, bob 2, interleaved
		j, err := b.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: user})
		if err != nil {
			t.Fatal(err)
		}
		if user == 2 {
			bobJobs = append(bobJobs, j)
		}
	}
	bob := collectUser(t, b, 2, 0, 10, 2*time.Second)
	if len(bob) != len(bobJobs) {
		t.Fatalf("bob's follower got %d events, want %d: %+v", len(bob), len(bobJobs), bob)
	}
	for i, e := range bob {
		if e.UserID != 2 || e.JobID != bobJobs[i].ID {
			t.Errorf("bob's event %d is %s of user %d, want his job %s", i, e.JobID, e.UserID, bobJobs[i].ID)
		}
	}
	// Resuming after bob's first event gives the rest, nothing twice.
	rest := collectUser(t, b, 2, bob[0].Seq, 10, 2*time.Second)
	if len(rest) != len(bobJobs)-1 || rest[0].Seq != bob[1].Seq {
		t.Fatalf("resumed after %d: got %+v, want from %d on", bob[0].Seq, rest, bob[1].Seq)
	}
	// A new event arrives while following.
	last, err := b.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []tasktype.Event, 1)
	go func() { done <- collectUser(t, b, 1, last, 1, 10*time.Second) }()
	time.Sleep(200 * time.Millisecond)
	j, err := b.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := <-done; len(got) != 1 || got[0].JobID != j.ID {
		t.Fatalf("live event: got %+v, want job %s", got, j.ID)
	}

	js, err := natsjs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, 5*time.Second, "followers left consumers on the server", func() bool {
		s, err := js.Stream(ctx, jetstream.StreamName)
		return err == nil && s.CachedInfo().State.Consumers == 0
	})
}

// Many followers at once cost a consumer each while open, and none once
// their clients are gone.
func TestFollowUserConsumersGoWithTheirClients(t *testing.T) {
	srv := testsupport.NATS(t)
	nc := testsupport.Connect(t, srv, "app")
	b := jetstreamtest.Broker(t, nc)
	js, err := natsjs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	consumers := func() int {
		s, err := js.Stream(testsupport.Context(t), jetstream.StreamName)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().State.Consumers
	}
	base := consumers()
	const n = 20
	ctx, cancel := context.WithCancel(testsupport.Context(t))
	ended := make(chan error, n)
	for i := range n {
		go func() { ended <- b.FollowUser(ctx, int64(i+1), 0, func(tasktype.Event) error { return nil }) }()
	}
	testsupport.Eventually(t, 10*time.Second, "followers never all opened", func() bool { return consumers() == base+n })
	cancel()
	for range n {
		if err := <-ended; !errors.Is(err, context.Canceled) {
			t.Fatalf("follower ended with %v, want context.Canceled", err)
		}
	}
	if got := consumers(); got != base {
		t.Fatalf("%d consumers after the followers ended, want %d", got, base)
	}
}
