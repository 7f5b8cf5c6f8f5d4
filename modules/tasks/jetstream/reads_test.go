package jetstream_test

import (
	"context"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// A read of the log (a job's history, a user's successes, an erasure's
// events, a scan of the work items) leaves no consumer behind: the server
// takes at most 1,000 per stream by default, and a consumer left for the
// server to remove after nats.go's five idle minutes made a burst of page
// views or prunes fail every read, live page and prune after it with
// "maximum consumers limit reached". Where the role may not delete
// consumers (a worker's), the server removes the read's after a short
// idle time instead.
func TestReadsLeaveNoConsumerBehind(t *testing.T) {
	ctx := testsupport.Context(t)
	s := testsupport.NATS(t)
	nc := testsupport.Connect(t, s, "reads")
	b := jetstreamtest.Broker(t, nc)
	worker := jetstreamtest.BrokerWith(t, testsupport.Connect(t, s, "worker"), jetstream.Config{NoPurge: true, JoinOnly: true})
	job, err := b.Enqueue(ctx, tasktype.EnqueueRequest{Type: "report", UserID: 7})
	if err != nil {
		t.Fatal(err)
	}
	js, err := natsjs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, jetstream.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	consumers := func() []natsjs.ConsumerInfo {
		var all []natsjs.ConsumerInfo
		l := stream.ListConsumers(ctx)
		for ci := range l.Info() {
			all = append(all, *ci)
		}
		if err := l.Err(); err != nil {
			t.Fatal(err)
		}
		return all
	}
	before := len(consumers())
	reads := []struct {
		name string
		read func(*jetstream.Broker) error
	}{
		{"history", func(b *jetstream.Broker) error { _, err := b.History(ctx, 7, job.ID); return err }},
		{"succeeded", func(b *jetstream.Broker) error {
			_, err := b.Succeeded(ctx, 7, "report", time.Time{})
			return err
		}},
		{"scan work", func(b *jetstream.Broker) error {
			return b.ScanWork(ctx, func(context.Context, tasktype.Event) error { return nil })
		}},
	}
	for _, r := range reads {
		for range 20 {
			if err := r.read(b); err != nil {
				t.Fatalf("%s: %v", r.name, err)
			}
		}
		if n := len(consumers()); n != before {
			t.Errorf("after 20 reads of %s: %d consumers on %s, want %d", r.name, n, jetstream.StreamName, before)
		}
	}
	// A worker's read: the consumer goes once idle for a few seconds.
	if _, err := worker.History(ctx, 7, job.ID); err != nil {
		t.Fatal(err)
	}
	for _, ci := range consumers() {
		if ci.Config.InactiveThreshold > time.Minute {
			t.Errorf("consumer %s is kept %s after its last use, want a read's short idle time", ci.Name, ci.Config.InactiveThreshold)
		}
	}
}
