package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/otjhelper/otj/modules/tasks/internal/driver"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/redis/go-redis/v9"
)

// queue is one worker's consumer in the shared group. A worker keeps a
// few pulls in flight, so Next and NextBatch may run in several
// goroutines at once: their reads go to Redis side by side, and what
// else they do (making the group, moving due retries, claiming lost
// entries, tidying) is done by one at a time, under mu.
type queue struct {
	b        *Broker
	consumer string
	streams  []string // the read's streams and ids; never changed

	mu          sync.Mutex
	groupReady  bool
	resyncDue   bool      // the group was made anew; the queue is to be rebuilt
	nextPromote time.Time // when the delayed set next has something due
	nextClaim   time.Time // when to look for entries of lost workers
	nextTidy    time.Time // when to look for consumers of stopped workers

	// acks combines the acks of deliveries that end at about the same
	// time into one script call.
	acks *combiner[ackOf, bool]
}

// ackOf is an entry to ack, with the key of its item's queued trace.
type ackOf struct{ id, trace string }

var _ driver.Queue = (*queue)(nil)

// Lease implements driver.Queue: each worker's own Config.Lease is its
// claim timeout, so the queue knows no lease in force for all.
func (q *queue) Lease() time.Duration { return 0 }

func newQueue(b *Broker, consumer string) *queue {
	q := &queue{b: b, consumer: consumer, streams: []string{b.stream, ">"}}
	q.acks = newCombiner(ackMax, ackTimeout, q.ackBatch)
	return q
}

// promoteBatch bounds the items one promotion moves, so that a burst of
// due retries does not hold Redis in one script for long.
const promoteBatch = 100

// Next implements driver.Queue.
func (q *queue) Next(ctx context.Context) (driver.Delivery, error) {
	ds, err := q.NextBatch(ctx, 1)
	if err != nil {
		return nil, err
	}
	return ds[0], nil
}

// NextBatch implements driver.Queue: one read of the stream hands out
// up to max entries. A max below 1 counts as 1.
func (q *queue) NextBatch(ctx context.Context, max int) ([]driver.Delivery, error) {
	ds, err := q.next(ctx, max)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err() // the caller's end, not a Redis failure
	}
	return ds, err
}

func (q *queue) next(ctx context.Context, n int) ([]driver.Delivery, error) {
	b := q.b
	n = max(n, 1)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ds, wait, err := q.upkeep(ctx, n)
		if err != nil || len(ds) > 0 {
			return ds, err
		}
		res, err := b.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: Group, Consumer: q.consumer, Streams: q.streams, Count: int64(n), Block: wait,
		}).Result()
		switch {
		case errors.Is(err, redis.Nil):
			continue // nothing came within the wait
		case err != nil && strings.HasPrefix(err.Error(), "NOGROUP"):
			q.mu.Lock()
			q.groupReady = false // the stream was deleted; make it again
			q.mu.Unlock()
			continue
		case err != nil:
			return nil, fmt.Errorf("read jobs: %w", unavailable(err))
		}
		if ds := q.deliveries(ctx, res, false); len(ds) > 0 {
			return ds, nil
		}
	}
}

// upkeep does what is due before a read: makes the group (and rebuilds
// the queue if the group is new), moves due retries, claims up to n lost
// entries, which it returns, and tidies; and says how long the read may
// wait. One caller at a time does it; the others wait for it, which is
// short unless the queue is being rebuilt, when they have nothing to
// read anyway.
func (q *queue) upkeep(ctx context.Context, n int) ([]driver.Delivery, time.Duration, error) {
	b := q.b
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.groupReady {
		err := b.rdb.XGroupCreateMkStream(ctx, b.stream, Group, "0").Err()
		switch {
		case err == nil:
			// This worker made the group, so Redis held no queue: new,
			// or its data lost. Whatever the log says is waiting must
			// be put back.
			b.cfg.Logger.InfoContext(ctx, "created the redis consumer group; rebuilding the queue from the event log", "stream", b.stream)
			q.resyncDue = true
		case !strings.HasPrefix(err.Error(), "BUSYGROUP"):
			return nil, 0, fmt.Errorf("create consumer group: %w", unavailable(err))
		}
		q.groupReady = true
	}
	if q.resyncDue {
		// Tried again on each call until it succeeds.
		if err := b.resync(ctx); err != nil {
			return nil, 0, err
		}
		q.resyncDue = false
	}
	now := b.cfg.Now()
	if !now.Before(q.nextPromote) {
		if err := q.promote(ctx, now); err != nil {
			return nil, 0, err
		}
	}
	if !now.Before(q.nextClaim) {
		ds, err := q.claim(ctx, n)
		if err != nil || len(ds) > 0 {
			return ds, 0, err
		}
		q.nextClaim = now.Add(b.cfg.Lease / 4)
	}
	if !now.Before(q.nextTidy) {
		q.tidy(ctx)
		q.nextTidy = now.Add(b.cfg.ForgetAfter / 2)
	}
	return nil, min(b.cfg.Poll, max(q.nextPromote.Sub(now), time.Millisecond)), nil
}

// deliveries wraps the entries of a read or a claim.
func (q *queue) deliveries(ctx context.Context, res []redis.XStream, claimed bool) []driver.Delivery {
	var ds []driver.Delivery
	for _, s := range res {
		for _, m := range s.Messages {
			if d := q.delivery(ctx, m, claimed); d != nil {
				ds = append(ds, d)
			}
		}
	}
	return ds
}

// promote moves due delayed items onto the stream and notes when the
// next one falls due. The caller holds q.mu.
func (q *queue) promote(ctx context.Context, now time.Time) error {
	b := q.b
	res, err := promote.Run(ctx, b.rdb, []string{b.stream, b.delayed, b.lastAsk}, now.UnixMilli(), promoteBatch).Int64Slice()
	if err != nil {
		return fmt.Errorf("move due retries: %w", unavailable(err))
	}
	switch moved, next := res[0], res[1]; {
	case moved == promoteBatch:
		q.nextPromote = now // more may be due
	case next < 0:
		q.nextPromote = now.Add(b.cfg.Poll)
	default:
		q.nextPromote = time.UnixMilli(next)
	}
	return nil
}

// claim takes over up to n entries whose worker stopped renewing them.
// The caller holds q.mu.
func (q *queue) claim(ctx context.Context, n int) ([]driver.Delivery, error) {
	b := q.b
	msgs, _, err := b.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
		Stream: b.stream, Group: Group, Consumer: q.consumer, MinIdle: b.cfg.Lease, Start: "0-0", Count: int64(n),
	}).Result()
	if err != nil {
		if strings.HasPrefix(err.Error(), "NOGROUP") {
			q.groupReady = false
			return nil, nil
		}
		return nil, fmt.Errorf("claim lost jobs: %w", unavailable(err))
	}
	ds := q.deliveries(ctx, []redis.XStream{{Stream: b.stream, Messages: msgs}}, true)
	for _, d := range ds {
		b.cfg.Logger.InfoContext(ctx, "claimed a job whose worker stopped renewing it", "job_id", d.Item().JobID, "entry", d.(*delivery).id)
	}
	if len(ds) > 0 {
		q.nextClaim = time.Time{} // there may be more
	}
	return ds, nil
}

// tidy removes the group's consumers that have been silent for
// ForgetAfter with nothing pending: workers that stopped. Removing a
// live one by mistake would do no harm, as Redis adds it again at its
// next read. It is housekeeping, so a failure is only logged.
func (q *queue) tidy(ctx context.Context) {
	b := q.b
	consumers, err := b.rdb.XInfoConsumers(ctx, b.stream, Group).Result()
	if err != nil {
		b.cfg.Logger.DebugContext(ctx, "list consumers", "err", err)
		return
	}
	for _, c := range consumers {
		if c.Name == q.consumer || c.Pending > 0 || c.Idle < b.cfg.ForgetAfter {
			continue
		}
		if err := b.rdb.XGroupDelConsumer(ctx, b.stream, Group, c.Name).Err(); err != nil {
			b.cfg.Logger.DebugContext(ctx, "remove consumer", "consumer", c.Name, "err", err)
			continue
		}
		b.cfg.Logger.InfoContext(ctx, "removed the consumer of a stopped worker", "consumer", c.Name, "idle", c.Idle)
	}
}

// delivery wraps an entry; an entry that cannot be read is never
// runnable, so it is removed.
func (q *queue) delivery(ctx context.Context, m redis.XMessage, claimed bool) *delivery {
	raw, _ := m.Values["item"].(string)
	item, suspect, err := decode(raw)
	d := &delivery{q: q, id: m.ID, raw: raw, item: item, claimed: claimed || suspect}
	if err != nil {
		q.b.cfg.Logger.ErrorContext(ctx, "dropping undecodable work item", "entry", m.ID, "err", err)
		_ = d.Ack(ctx)
		return nil
	}
	return d
}

// ErrNotHeld means the entry is no longer this worker's: another worker
// claimed it after the lease ran out, or it was acked.
var ErrNotHeld = errors.New("entry no longer held by this worker")

type delivery struct {
	q       *queue
	id      string
	raw     string
	item    tasktype.Event
	claimed bool // taken over from a worker that stopped renewing it
}

func (d *delivery) Item() tasktype.Event { return d.item }

// Redelivered is true for an entry claimed from a silent worker, and
// for a suspect item of a queue rebuilt after Redis lost its data. An
// entry handed back (Release) or delayed is added anew, and comes as a
// first delivery: the worker finds the reason in the log.
func (d *delivery) Redelivered() bool { return d.claimed }

func (d *delivery) run(ctx context.Context, verb string, s *redis.Script, keys []string, args ...any) error {
	args = append([]any{Group, d.id, d.q.consumer}, args...)
	n, err := s.Run(ctx, d.q.b.rdb, keys, args...).Int()
	if err != nil {
		return fmt.Errorf("%s job %s: %w", verb, d.item.JobID, unavailable(err))
	}
	if n == 0 {
		return fmt.Errorf("%s job %s: %w", verb, d.item.JobID, ErrNotHeld)
	}
	return nil
}

func (d *delivery) Extend(ctx context.Context) error {
	return d.run(ctx, "extend", extend, []string{d.q.b.stream})
}

// Ack removes the entry, in one script call with the acks of the
// queue's other deliveries that end at about the same time.
func (d *delivery) Ack(ctx context.Context) error {
	held, err := d.q.acks.do(ctx, ackOf{id: d.id, trace: d.q.b.trace(d.item.JobID, d.item.Seq)})
	switch {
	case err != nil:
		return fmt.Errorf("ack job %s: %w", d.item.JobID, err)
	case !held:
		return fmt.Errorf("ack job %s: %w", d.item.JobID, ErrNotHeld)
	}
	return nil
}

func (d *delivery) Release(ctx context.Context) error {
	return d.run(ctx, "release", requeue, []string{d.q.b.stream, d.q.b.delayed}, d.raw, 0)
}

func (d *delivery) Delay(ctx context.Context, wait time.Duration) error {
	due := d.q.b.cfg.Now().Add(wait).UnixMilli()
	return d.run(ctx, "delay", requeue, []string{d.q.b.stream, d.q.b.delayed}, d.raw, due)
}

// ackTimeout bounds one script call of a queue's acks. Callers wait no
// longer than their own context allows.
const ackTimeout = 10 * time.Second

// ackMax bounds the entries of one ack script call (the script unpacks
// them as the arguments of one command).
const ackMax = 512

// ackBatch removes the entries of acks still held by this consumer, with
// their queued traces, in one script call, and says for each whether it
// was.
func (q *queue) ackBatch(ctx context.Context, acks []ackOf) ([]bool, error) {
	args := make([]any, 0, 2+len(acks))
	args = append(args, Group, q.consumer)
	keys := make([]string, 0, 1+len(acks))
	keys = append(keys, q.b.stream)
	for _, a := range acks {
		args, keys = append(args, a.id), append(keys, a.trace)
	}
	res, err := ack.Run(ctx, q.b.rdb, keys, args...).Int64Slice()
	if err != nil {
		return nil, unavailable(err)
	}
	held := make([]bool, len(res))
	for i, n := range res {
		held[i] = n == 1
	}
	return held, nil
}
