package redisbroker

import (
	"context"
	"sync"
	"time"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// sentHere keeps, for a short while, the sends of new jobs' items by
// this process's enqueuer, from just after each job is stored. This
// process's relay sees most of those items soon after, often while the
// send is on its way: it waits for the send rather than race it to
// Redis, and if the item went in, it need not ask Redis about it, only
// have the enqueuer's marker removed, which the sweeper does in batches.
// Items the relay of another process sees, or sees late, go the usual
// way, so a send forgotten costs only a round trip.
type sentHere struct {
	mu      sync.Mutex
	cur     map[uint64]*localSend // by the item's event log sequence
	old     map[uint64]*localSend // the previous sentHereFor's
	rotated time.Time
}

// localSend is one item's send by this process's enqueuer.
type localSend struct {
	done chan struct{} // closed when the send is over
	// Set before done is closed: the item is in Redis, and whether with
	// the enqueuer's marker.
	inRedis, marked bool
}

// sentHereFor is how long a send is kept at least, and at most twice
// that: the relay normally sees its item within milliseconds.
const sentHereFor = 10 * time.Second

// sentHereMax bounds the sends kept per sentHereFor, so that a process
// enqueuing for relays elsewhere does not hoard them.
const sentHereMax = 1 << 16

// start keeps the sends of items about to be made; the caller finishes
// them. A send not kept (too many are) is nil.
func (s *sentHere) start(items []tasktype.Event, now time.Time) []*localSend {
	sends := make([]*localSend, len(items))
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.rotated) >= sentHereFor {
		s.old, s.cur, s.rotated = s.cur, make(map[uint64]*localSend), now
	}
	for i, item := range items {
		if len(s.cur) >= sentHereMax {
			break
		}
		sends[i] = &localSend{done: make(chan struct{})}
		s.cur[item.Seq] = sends[i]
	}
	return sends
}

// finish records how the sends went.
func finish(sends []*localSend, res []sendResult) {
	for i, ls := range sends {
		if ls == nil {
			continue
		}
		ls.inRedis = res[i] == added || res[i] == sentBefore
		ls.marked = res[i] == added
		close(ls.done)
	}
}

// take forgets the send of the item at seq and returns it, or nil.
func (s *sentHere) take(seq uint64) *localSend {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ls, ok := s.cur[seq]; ok {
		delete(s.cur, seq)
		return ls
	}
	if ls, ok := s.old[seq]; ok {
		delete(s.old, seq)
		return ls
	}
	return nil
}

// settledHere says whether this process's enqueuer put item in Redis,
// waiting for its send if it is on its way (SendTimeout bounds it); if
// so, it queues the item's marker for removal.
func (b *Broker) settledHere(ctx context.Context, item tasktype.Event) (bool, error) {
	ls := b.sent.take(item.Seq)
	if ls == nil {
		return false, nil
	}
	select {
	case <-ls.done:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	if ls.marked {
		b.unmark(item)
	}
	return ls.inRedis, nil
}

// Sweeping: the markers of items settled here are removed in batches,
// at most sweepEvery apart.
const (
	sweepEvery = 20 * time.Millisecond
	sweepMax   = 256  // markers per call at most
	sweepQueue = 4096 // markers waiting at most; more are left to expire
)

// unmark queues the enqueuer's marker of item for removal. A marker that
// finds the queue full is left to expire.
func (b *Broker) unmark(item tasktype.Event) {
	select {
	case b.sweepQueue <- b.marker(item):
	default:
	}
}

// sweep removes the queued markers, in batches, until ctx ends. Relay
// runs it; it is housekeeping, so a failure is only logged, and the
// markers it leaves expire.
func (b *Broker) sweep(ctx context.Context) {
	keys := []string{b.rebuild}
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	flush := func() {
		if len(keys) == 1 {
			return
		}
		if err := unmark.Run(ctx, b.rdb, keys).Err(); err != nil && ctx.Err() == nil {
			b.cfg.Logger.DebugContext(ctx, "remove sent markers; they expire instead", "markers", len(keys)-1, "err", err)
		}
		keys = keys[:1]
	}
	for {
		select {
		case <-ctx.Done():
			return
		case k := <-b.sweepQueue:
			if keys = append(keys, k); len(keys)-1 >= sweepMax {
				flush()
			}
		case <-t.C:
			flush()
		}
	}
}
