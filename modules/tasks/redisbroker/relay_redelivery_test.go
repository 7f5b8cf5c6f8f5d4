package redisbroker_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks/internal/driver"
	"github.com/otjhelper/otj/modules/tasks/redisbroker"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// unconfirmedFeed is an event log whose feed hands each item to the relay
// and then loses the relay's confirmation, once per item: what a relay's
// process killed between its send to Redis and its ack to the log looks
// like, or a reply from Redis lost on the way back. The feed hands the
// item again, redelivered.
type unconfirmedFeed struct {
	driver.Log
	// lost, if set, runs when a confirmation is about to be lost.
	lost func(ctx context.Context, item tasktype.Event)
	mu   sync.Mutex
	seen map[uint64]bool
}

func (f *unconfirmedFeed) FeedWork(ctx context.Context, consumer string, fn func(ctx context.Context, item tasktype.Event, redelivered bool) error) error {
	return f.Log.FeedWork(ctx, consumer, func(ctx context.Context, item tasktype.Event, redelivered bool) error {
		if err := fn(ctx, item, redelivered); err != nil {
			return err
		}
		f.mu.Lock()
		again := f.seen[item.Seq]
		f.mu.Unlock()
		if again {
			return nil
		}
		if f.lost != nil {
			f.lost(ctx, item)
		}
		f.mu.Lock()
		f.seen[item.Seq] = true
		f.mu.Unlock()
		return errors.New("confirmation lost")
	})
}

// TestRelayRedeliveryAddsNoSecondCopy: an item the relay is handed again,
// after a send that went through, is in Redis already (waiting, or held
// by a worker that has not yet recorded its start). A second copy would
// let a second worker run the same attempt beside the first: the double
// run once seen when the event log's host was SIGKILLed on Redis.
func TestRelayRedeliveryAddsNoSecondCopy(t *testing.T) {
	cases := []struct {
		name string
		// item stores the work item, returning its sequence.
		item func(t *testing.T, e *env) uint64
		// held says a worker takes the item before the redelivery.
		held bool
	}{
		{name: "enqueued, both senders done", item: enqueuedItem},
		{name: "enqueued, held by a worker", held: true, item: enqueuedItem},
		{name: "retrying", item: retryingItem},
		{name: "retrying, held by a worker", held: true, item: retryingItem},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, redisbroker.Config{})
			e.makeGroup(t)
			ctx := testsupport.Context(t)
			seq := c.item(t, e)
			// The relay runs in another process than the enqueuer.
			feed := &unconfirmedFeed{Log: e.events, seen: map[uint64]bool{}}
			if c.held {
				// A worker takes the item before the relay is handed it
				// again; its attempt has not yet recorded its start.
				q, _ := e.broker.Queue(ctx)
				feed.lost = func(ctx context.Context, item tasktype.Event) {
					if item.Seq != seq {
						return
					}
					for {
						qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
						d, err := q.Next(qctx)
						cancel()
						if err != nil {
							t.Errorf("the item never reached a worker: %v", err)
							return
						}
						if d.Item().Seq == seq {
							return // held
						}
						d.Ack(ctx)
					}
				}
			}
			relay := e.open(t, redisbroker.Config{}, feed)
			testsupport.Go(t, func(ctx context.Context) { relay.Relay(ctx) })
			testsupport.Eventually(t, 10*time.Second, "the relay was never handed the item again", func() bool {
				feed.mu.Lock()
				defer feed.mu.Unlock()
				return feed.seen[seq]
			})
			time.Sleep(1500 * time.Millisecond) // the redelivery comes a second after the failure
			if n := e.copies(t, seq); n != 1 {
				t.Fatalf("Redis holds %d copies of the item, want 1", n)
			}
		})
	}
}

// enqueuedItem enqueues a job through the broker (its enqueuer sends its
// item to Redis) and returns its item's sequence.
func enqueuedItem(t *testing.T, e *env) uint64 {
	t.Helper()
	ctx := testsupport.Context(t)
	job, err := e.broker.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 1})
	if err != nil {
		t.Fatal(err)
	}
	last, err := e.events.Last(ctx, 1, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	return last.Seq
}

// retryingItem stores a job whose first attempt failed and will be tried
// again now, with no enqueued item left for Redis: the retrying event is
// the job's work item. It returns its sequence.
func retryingItem(t *testing.T, e *env) uint64 {
	t.Helper()
	ctx := testsupport.Context(t)
	ev, _, err := e.events.EnqueueEvent(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 1})
	if err != nil {
		t.Fatal(err)
	}
	seq := ev.Seq
	r := tasktype.Event{ID: "r" + ev.JobID, Kind: tasktype.EventRetrying, JobID: ev.JobID, JobType: ev.JobType, UserID: ev.UserID,
		Time: time.Now().UTC(), Attempt: 1, MaxAttempts: 3, Error: "boom", RetryAt: time.Now().UTC()}
	rseq, err := e.events.Append(ctx, r, seq)
	if err != nil {
		t.Fatal(err)
	}
	return rseq
}

// copies counts the entries of the work stream and the delayed set that
// carry the item stored at seq.
func (e *env) copies(t *testing.T, seq uint64) int {
	t.Helper()
	ctx := testsupport.Context(t)
	prefix := strconv.FormatUint(seq, 10)
	n := 0
	entries, err := e.rdb.XRange(ctx, e.prefix+":work", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range entries {
		if raw, _ := m.Values["item"].(string); strings.HasPrefix(raw, prefix+" ") || strings.HasPrefix(raw, prefix+"! ") {
			n++
		}
	}
	delayed, err := e.rdb.ZRange(ctx, e.prefix+":delayed", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range delayed {
		if strings.HasPrefix(raw, prefix+" ") || strings.HasPrefix(raw, prefix+"! ") {
			n++
		}
	}
	return n
}
