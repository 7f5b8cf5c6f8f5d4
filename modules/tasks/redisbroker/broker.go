// Package redisbroker carries OTJ Helper's jobs on Redis, for teams that
// already run Redis as their job broker, behind the same ports as the
// JetStream broker.
//
// Only the jobs move to Redis. Every job event, the work items among
// them, stays in the JetStream event log, from which task status is
// projected and against which every step is recorded on condition, as
// with the JetStream broker; the worker runtime is the same. Redis holds:
//
//   - a stream of work items with one consumer group, "workers": each
//     item goes to one worker, stays pending until acked, and is deleted
//     when acked, so the stream holds only work not yet done;
//   - a sorted set of items waiting for their time (retries with
//     backoff), moved onto the stream when due;
//   - short-lived markers that pair the two sends of a new job's item,
//     so that it is not added twice.
//
// An item reaches Redis two ways: Enqueue sends the new job's item at
// once, and a relay (Relay) follows the event log and sends every work
// item (enqueued, retrying, retried), whoever stored it. The relay is
// what makes a crash between the two stores harmless, and what carries
// retries, which workers and operators write to the log. Of the two sends
// of a new job's item, the first adds it and leaves a marker, the second
// finds the marker and removes it: a marker lasts milliseconds, not the
// item's life, so Redis holds none for the jobs that went through. The
// relay of the enqueuer's own process knows what its enqueuer sent, and
// only has the markers removed, in batches.
//
// Round trips are shared where callers coincide: EnqueueBatch sends its
// items in one pipeline, NextBatch hands out several entries per read,
// and the acks of a worker's jobs, like the relay's sends, that happen at
// about the same time go to Redis in one script call.
//
// A worker that dies leaves its entries pending; after Lease without
// renewal another worker claims them (XAUTOCLAIM) and finds, in the log,
// that the attempt was lost, exactly as on JetStream.
//
// When Redis cannot be reached at enqueue, the job is stored in the log
// and, if RunInline is set, run there and then, as the Python app did;
// once Redis is back the relay sends its item, which workers find done.
package redisbroker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nuid"
	"github.com/redis/go-redis/v9"

	"github.com/otjhelper/otj/modules/tasks/internal/clock"
	"github.com/otjhelper/otj/modules/tasks/internal/driver"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// Group is the consumer group every worker shares.
const Group = "workers"

// DefaultOrphanAfter is Config.OrphanAfter's default.
const DefaultOrphanAfter = time.Hour

// Config configures a Broker. Zero fields take the defaults below.
type Config struct {
	// Client is required. Give it ContextTimeoutEnabled, so that
	// SendTimeout also holds against a Redis that accepts connections
	// and does not answer; otherwise the client's own read timeout does.
	Client redis.UniversalClient
	Events driver.Log // required: the JetStream broker
	// Prefix starts every key. Default "{otj:tasks}": the braces make it
	// the hash tag, so the keys share a slot on a Redis Cluster.
	Prefix string
	// Lease is the visibility timeout: an entry whose worker has neither
	// finished nor renewed it within Lease goes to another worker.
	// Default 30s.
	Lease time.Duration
	// SendTimeout bounds Enqueue's wait for Redis before it falls back.
	// Default 500ms.
	SendTimeout time.Duration
	// MaxLength bounds the stream: while it holds that many items, new
	// ones wait in the event log, and the relay sends them as room
	// comes. Default 100000.
	MaxLength int64
	// Poll bounds how long a worker waits on Redis in one call, and so
	// how late a delayed item may be moved and a lost one claimed.
	// Default 1s.
	Poll time.Duration
	// RunInline, when set, runs a job whose item could not be sent
	// because Redis could not be reached, in the enqueuing call
	// (worker.Worker.RunInline). When nil the job waits in the event log
	// until the relay can send it. EnqueueBatch never runs jobs inline:
	// a batch is bulk work, which the relay sends once Redis is back.
	RunInline func(ctx context.Context, item tasktype.Event)
	// OrphanAfter is how long after its newest event an attempt run in
	// a request while Redis was down is presumed to have died with its
	// process, if it has not ended; then the job runs again on a worker.
	// It must exceed every job type's timeout. Default DefaultOrphanAfter.
	OrphanAfter time.Duration
	// ForgetAfter is how long a consumer of the group may go without
	// touching Redis, with nothing pending, before workers remove it:
	// each worker process joins under a new name, and the names of
	// stopped ones would otherwise pile up. Default 1h.
	ForgetAfter time.Duration
	// Name identifies this process's consumer. Default host:pid.
	Name   string
	Logger *slog.Logger
	Now    func() time.Time
}

func (c *Config) setDefaults() {
	if c.Prefix == "" {
		c.Prefix = "{otj:tasks}"
	}
	if c.Lease <= 0 {
		c.Lease = 30 * time.Second
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = 500 * time.Millisecond
	}
	if c.MaxLength <= 0 {
		c.MaxLength = 100000
	}
	if c.Poll <= 0 {
		c.Poll = time.Second
	}
	if c.OrphanAfter <= 0 {
		c.OrphanAfter = DefaultOrphanAfter
	}
	if c.ForgetAfter <= 0 {
		c.ForgetAfter = time.Hour
	}
	c.ForgetAfter = max(c.ForgetAfter, 10*c.Poll) // never a live, waiting worker
	if c.Name == "" {
		c.Name = tasktype.ProcessName()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// markerTTL bounds how long a sent marker lasts when the second send of
// its item never comes: an enqueuer that crashed between its two stores,
// or gave up on Redis while the relay's send went through. The second
// send normally removes the marker within milliseconds. A marker gone
// too soon costs no second copy while the item is in Redis: its queued
// trace keeps it out (see the handoff script).
const markerTTL = 2 * time.Minute

// freshFor is how long after its event a new job's item may still be
// sent by its enqueuer (a publish and a send, each bounded by seconds),
// with room for clocks that disagree. The relay pairs its send of a
// younger item with the enqueuer's; an older one it first checks
// against the log, as its enqueuer's marker may have expired.
const freshFor = markerTTL / 2

// Broker is a driver.Transport on Redis: it hands out driver.Queue values
// for workers. Events and results stay with the Log (Config.Events).
type Broker struct {
	cfg     Config
	rdb     redis.UniversalClient
	stream  string
	delayed string
	markers string // starts every sent marker's key
	queued  string // starts every queued trace's key
	rebuild string // the flag of a rebuild running
	lastAsk string // when a worker last asked for work, by Redis's clock

	// relayed combines the relay loops' sends of new jobs' items, and
	// posted the sends Enqueue does not wait for.
	relayed *combiner[tasktype.Event, sendResult]
	posted  *combiner[postedSend, sendResult]
	// health is how Redis answered the latest sends; lastEnqueue is
	// when Enqueue was last called, in Unix nanoseconds.
	health      health
	lastEnqueue atomic.Int64
	// sent remembers the items this process's enqueuer added, and
	// sweepQueue the markers of those the relay then settled, to remove.
	sent       sentHere
	sweepQueue chan string
}

// New returns a Broker. It does not touch Redis, so that a process can
// start while Redis is down.
func New(cfg Config) (*Broker, error) {
	cfg.setDefaults()
	if cfg.Client == nil || cfg.Events == nil {
		return nil, errors.New("new redis broker: Client and Events are required")
	}
	b := &Broker{cfg: cfg, rdb: cfg.Client,
		stream: cfg.Prefix + ":work", delayed: cfg.Prefix + ":delayed", markers: cfg.Prefix + ":sent:", queued: cfg.Prefix + ":queued:", rebuild: cfg.Prefix + ":rebuilding", lastAsk: cfg.Prefix + ":last-ask"}
	b.relayed = newCombiner(handoffChunk, relayTimeout, b.relayNew)
	b.posted = newCombiner(handoffChunk, cfg.SendTimeout, b.sendPosted)
	b.sweepQueue = make(chan string, sweepQueue)
	return b, nil
}

// SetRunInline implements driver.Transport: it sets
// Config.RunInline. Call it before the first Enqueue.
func (b *Broker) SetRunInline(run func(ctx context.Context, item tasktype.Event)) {
	b.cfg.RunInline = run
}

// Enqueue stores the job's enqueued event in the log, then sends its
// item to Redis. If Redis cannot be reached within SendTimeout, the job
// is still accepted: it runs here through RunInline, or waits for the
// relay. A repeated key returns the first job and sends nothing.
//
// Under load (enqueues less than busyGap apart) while Redis answers (it
// took a send in the last healthyFor and failed none since), Enqueue
// does not wait for the send: the job is accepted once stored in the
// log, and its item goes to Redis with others sent about then, so that
// an enqueue costs one round trip, not two. Should Redis fail just then,
// the item waits in the log for the relay, as a batch's do, rather than
// run in the request; the next enqueues find Redis failing and wait for
// their sends again, running inline if those fail. An enqueue now and
// then waits for its send, which is then quicker than a hand-off.
func (b *Broker) Enqueue(ctx context.Context, r tasktype.EnqueueRequest) (tasktype.Job, error) {
	item, repeat, err := b.cfg.Events.EnqueueEvent(ctx, r)
	if err != nil {
		return tasktype.Job{}, err
	}
	if repeat {
		return item.Job(), nil
	}
	now := b.cfg.Now()
	busy := now.UnixNano()-b.lastEnqueue.Swap(now.UnixNano()) < int64(busyGap)
	if busy && b.health.good(now) && b.posted.pending() < maxPosted {
		b.posted.post(postedSend{item: item, local: b.sent.start([]tasktype.Event{item}, now)[0]})
		return item.Job(), nil
	}
	res, err := b.sendNew(ctx, []tasktype.Event{item})
	switch {
	case err == nil && res[0] == full:
		b.cfg.Logger.InfoContext(ctx, "redis queue full; the job waits in the event log", "job_id", item.JobID, "max_length", b.cfg.MaxLength)
	case err != nil && b.cfg.RunInline != nil:
		b.cfg.Logger.WarnContext(ctx, "redis unreachable; running the job in this request", "job_id", item.JobID, "job_type", item.JobType, "err", err)
		b.cfg.RunInline(ctx, item)
		// Point readers at the outcome, so that the page after the
		// request shows the job done rather than queued.
		if last, err := b.cfg.Events.Last(ctx, item.UserID, item.JobID); err == nil {
			job := item.Job()
			job.EventSeq = last.Seq
			return job, nil
		}
	case err != nil:
		b.cfg.Logger.WarnContext(ctx, "redis unreachable; the job waits in the event log until it is back", "job_id", item.JobID, "err", err)
	}
	return item.Job(), nil
}

// EnqueueBatch implements driver.Transport. It checks every request,
// stores the jobs' enqueued events in the log in one call, then sends the new jobs' items to Redis in one
// pipeline. As with Enqueue, a stored job is accepted whether or not
// Redis took its item in time: if not, it waits in the log for the
// relay. It is never run inline, as a batch is bulk work. On a failed
// store it returns the jobs stored before it, whose items it still sends.
func (b *Broker) EnqueueBatch(ctx context.Context, rs []tasktype.EnqueueRequest) ([]tasktype.Job, error) {
	for i, r := range rs {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("enqueue batch: request %d: enqueue %s: %w", i, r.Type, err)
		}
	}
	events, repeats, storeErr := b.cfg.Events.EnqueueEventBatch(ctx, rs)
	jobs := make([]tasktype.Job, len(events))
	items := make([]tasktype.Event, 0, len(events))
	for i := range events {
		jobs[i] = events[i].Job()
		if i >= len(repeats) || !repeats[i] {
			items = append(items, events[i])
		}
	}
	if len(items) == 0 {
		return jobs, storeErr
	}
	res, err := b.sendNew(ctx, items)
	switch {
	case err != nil && ctx.Err() != nil:
		// The caller gave up; what was not sent waits for the relay.
	case err != nil:
		b.cfg.Logger.WarnContext(ctx, "redis unreachable; jobs of the batch wait in the event log until it is back", "jobs", count(res, notSent), "err", err)
	}
	if n := count(res, full); n > 0 {
		b.cfg.Logger.InfoContext(ctx, "redis queue full; jobs of the batch wait in the event log", "jobs", n, "max_length", b.cfg.MaxLength)
	}
	return jobs, storeErr
}

// count says how many sends did want.
func count(res []sendResult, want sendResult) int {
	n := 0
	for _, r := range res {
		if r == want {
			n++
		}
	}
	return n
}

// What a send did.
type sendResult int

const (
	notSent    sendResult = iota // Redis was not reached, or failed: unknown
	sentBefore                   // the item's other sender added it: nothing done
	added                        // added to the stream or the delayed set
	full                         // the stream is at MaxLength: nothing done
)

// Senders of a work item, as the handoff script knows them.
const (
	byEnqueuer     = "e" // Enqueue or EnqueueBatch
	byRelayFirst   = "r" // the relay, which the item's enqueuer may still follow
	byRelay        = "o" // the relay, which the enqueuer will not follow
	byRebuild      = "s" // a rebuild, which the enqueuer or the relay may still follow
	byRebuildAlone = "n" // a rebuild, which they will not follow
)

// outgoing is a work item on its way to Redis.
type outgoing struct {
	item tasktype.Event
	// due is when the item is to be delivered: through the delayed set,
	// outside the stream's bound, unless it is zero.
	due time.Time
	// suspect items are delivered as if claimed from a silent worker,
	// so that the worker that gets one judges a started attempt lost
	// rather than someone else's.
	suspect bool
}

// sendNew sends new jobs' items as their enqueuer, within SendTimeout,
// and tells this process's relay how it went.
func (b *Broker) sendNew(ctx context.Context, items []tasktype.Event) ([]sendResult, error) {
	sends := b.sent.start(items, b.cfg.Now())
	ctx, cancel := context.WithTimeout(ctx, b.cfg.SendTimeout)
	defer cancel()
	out := make([]outgoing, len(items))
	for i := range items {
		out[i].item = items[i]
	}
	res, err := b.handoff(ctx, byEnqueuer, out)
	finish(sends, res)
	return res, err
}

// busyGap is the most time between two enqueues for the second not to
// wait for its send (while Redis answers).
const busyGap = time.Millisecond

// maxPosted bounds the sends Enqueue leaves waiting: while Redis is slow
// to take them, enqueues wait for their own sends again, so that a
// backlog does not grow in memory.
const maxPosted = 4 * handoffChunk

// postedSend is a new job's item that Enqueue did not wait for, and its
// send as this process's relay will look for it (nil: not kept).
type postedSend struct {
	item  tasktype.Event
	local *localSend
}

// sendPosted sends items Enqueue did not wait for, as their enqueuer,
// and tells this process's relay how it went. No caller waits for the
// result, so the outcome is logged here; an item Redis did not take
// waits in the log for the relay.
func (b *Broker) sendPosted(ctx context.Context, ps []postedSend) ([]sendResult, error) {
	out := make([]outgoing, len(ps))
	sends := make([]*localSend, len(ps))
	for i := range ps {
		out[i].item, sends[i] = ps[i].item, ps[i].local
	}
	res, err := b.handoff(ctx, byEnqueuer, out)
	finish(sends, res)
	if err != nil {
		b.cfg.Logger.WarnContext(ctx, "redis unreachable; new jobs wait in the event log until it is back", "jobs", count(res, notSent), "err", err)
	}
	if n := count(res, full); n > 0 {
		b.cfg.Logger.InfoContext(ctx, "redis queue full; new jobs wait in the event log", "jobs", n, "max_length", b.cfg.MaxLength)
	}
	return res, err
}

// handoffChunk bounds the items of one handoff script, so that a big
// batch does not hold Redis in one script for long; the chunks go in one
// pipeline.
const handoffChunk = 128

// handoff sends work items that more than one sender may send (see the
// handoff script) and returns what it did with each. On an error, the
// items of the chunks that failed are notSent.
func (b *Broker) handoff(ctx context.Context, sender string, items []outgoing) ([]sendResult, error) {
	res := make([]sendResult, len(items))
	// One buffer holds every encoded item; the arguments are slices of it.
	var buf []byte
	ends := make([]int, len(items))
	for i := range items {
		var err error
		if buf, err = appendItem(buf, &items[i].item, items[i].suspect); err != nil {
			return res, err
		}
		ends[i] = len(buf)
	}
	type chunk struct {
		from int
		keys []string
		args []any
		cmd  *redis.Cmd
	}
	chunks := make([]chunk, 0, (len(items)+handoffChunk-1)/handoffChunk)
	for from := 0; from < len(items); from += handoffChunk {
		to := min(from+handoffChunk, len(items))
		c := chunk{from: from, keys: make([]string, 0, 3+2*(to-from)), args: make([]any, 0, 4+2*(to-from))}
		c.keys = append(c.keys, b.stream, b.delayed, b.rebuild)
		c.args = append(c.args, b.cfg.MaxLength, int(markerTTL/time.Second), sender, int(traceTTL/time.Second))
		start := 0
		if from > 0 {
			start = ends[from-1]
		}
		for i := from; i < to; i++ {
			it := &items[i]
			dueMS := int64(0)
			if !it.due.IsZero() {
				dueMS = it.due.UnixMilli()
			}
			c.keys = append(c.keys, b.marker(it.item), b.trace(it.item.JobID, it.item.Seq))
			c.args = append(c.args, dueMS, buf[start:ends[i]])
			start = ends[i]
		}
		chunks = append(chunks, c)
	}
	if len(chunks) == 1 {
		chunks[0].cmd = handoff.Run(ctx, b.rdb, chunks[0].keys, chunks[0].args...)
	} else {
		pipe := b.rdb.Pipeline()
		for i := range chunks {
			chunks[i].cmd = handoff.EvalSha(ctx, pipe, chunks[i].keys, chunks[i].args...)
		}
		_, _ = pipe.Exec(ctx) // each command has its own error
		for i := range chunks {
			// Redis had not cached the script (it restarted, or this is
			// its first use): Run loads it.
			if c := &chunks[i]; redis.HasErrorPrefix(c.cmd.Err(), "NOSCRIPT") {
				c.cmd = handoff.Run(ctx, b.rdb, c.keys, c.args...)
			}
		}
	}
	var firstErr error
	defer func() { b.health.record(firstErr, b.cfg.Now()) }()
	for _, c := range chunks {
		vals, err := c.cmd.Int64Slice()
		if err == nil && len(vals) != (len(c.keys)-3)/2 {
			err = fmt.Errorf("handoff script answered %d results for %d items", len(vals), (len(c.keys)-3)/2)
		}
		if err != nil {
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		for j, v := range vals {
			switch v {
			case 1:
				res[c.from+j] = added
			case 0:
				res[c.from+j] = sentBefore
			default:
				res[c.from+j] = full
			}
		}
	}
	if firstErr != nil {
		if len(items) == 1 {
			return res, fmt.Errorf("send job %s to redis: %w", items[0].item.JobID, unavailable(firstErr))
		}
		return res, fmt.Errorf("send %d jobs to redis: %w", len(items), unavailable(firstErr))
	}
	return res, nil
}

// marker is the key of item's sent marker.
func (b *Broker) marker(item tasktype.Event) string {
	return b.markers + item.JobID + ":" + strconv.FormatUint(item.Seq, 10)
}

// trace is the key of the queued trace of the item of job stored at seq
// (see the handoff script).
func (b *Broker) trace(jobID string, seq uint64) string {
	return b.queued + jobID + ":" + strconv.FormatUint(seq, 10)
}

// traceTTL bounds how long a queued trace outlives its entry, should it
// ever: it is deleted with the entry, so it never needs to expire while
// the item waits. A week is longer than any relay is handed an item
// again (feedAckWait after its process died).
const traceTTL = 7 * 24 * time.Hour

// sendRetry adds an item that only the relay sends (a retry, a retry by
// hand), at its retry time.
func (b *Broker) sendRetry(ctx context.Context, item tasktype.Event) (sendResult, error) {
	raw, err := appendItem(nil, &item, false)
	if err != nil {
		return notSent, err
	}
	dueMS := int64(0)
	if item.RetryAt.After(b.cfg.Now()) {
		dueMS = item.RetryAt.UnixMilli()
	}
	n, err := add.Run(ctx, b.rdb, []string{b.stream, b.delayed, b.trace(item.JobID, item.Seq)}, raw, dueMS, b.cfg.MaxLength, int(traceTTL/time.Second)).Int()
	switch {
	case err != nil:
		return notSent, fmt.Errorf("send job %s to redis: %w", item.JobID, unavailable(err))
	case n < 0:
		return full, nil
	case n == 0:
		return sentBefore, nil
	}
	return added, nil
}

// relayLoops is how many items one process's relay passes on at once:
// each loop takes items of the shared consumer in turn, and the sends of
// the loops waiting at the same time go to Redis together.
const relayLoops = 4

// relayTimeout bounds one send of the relay's combined sends.
const relayTimeout = 10 * time.Second

// Relay sends every work item stored in the event log to Redis, until
// ctx ends. Every process using this broker runs it; they share the
// work. Items whose job has moved on by the time they are sent again
// (after a failure or a crash) are dropped, so that a job run in a
// request while Redis was down is not run a second time.
func (b *Broker) Relay(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { b.sweep(ctx) })
	for range relayLoops {
		wg.Go(func() {
			for {
				err := b.cfg.Events.FeedWork(ctx, relayConsumer, b.relayItem)
				if ctx.Err() != nil {
					return
				}
				b.cfg.Logger.WarnContext(ctx, "redis relay stopped; restarting", "err", err)
				clock.Sleep(ctx, time.Second)
			}
		})
	}
	wg.Wait()
	return nil
}

// relayNew sends new jobs' items as the relay on its first sight of them.
func (b *Broker) relayNew(ctx context.Context, items []tasktype.Event) ([]sendResult, error) {
	out := make([]outgoing, len(items))
	for i := range items {
		out[i].item = items[i]
	}
	return b.handoff(ctx, byRelayFirst, out)
}

var errFull = errors.New("redis queue full")

func (b *Broker) relayItem(ctx context.Context, item tasktype.Event, redelivered bool) error {
	enqueued := item.Kind == tasktype.EventEnqueued
	sender := byRelayFirst
	if redelivered || b.cfg.Now().Sub(item.Time) >= freshFor {
		// Handed out before (a send failed, or a relay stopped before
		// confirming it), or seen late: the job may have moved on
		// without this item, and its enqueuer no longer sends it.
		sender = byRelay
		last, err := b.cfg.Events.Last(ctx, item.UserID, item.JobID)
		if err != nil {
			return err
		}
		switch {
		case last.Seq == item.Seq: // still waiting for a worker
		case enqueued && last.Attempt == item.Attempt+1 && (last.Kind == tasktype.EventStarted || last.Kind == tasktype.EventProgress):
			// The item's attempt is running, started where Redis never
			// had the item (unless its enqueuer's marker says it did):
			// in a request, while Redis was down. Should that process
			// die, nothing would hand the job to a worker; a suspect
			// copy, due once the attempt must have ended, is found stale
			// if it did and counts the attempt as lost if not.
			_, err := b.handoff(ctx, byRelay, []outgoing{{item: item, due: last.Time.Add(b.cfg.OrphanAfter), suspect: true}})
			return err
		default:
			return nil // the job moved on without this item
		}
	}
	var res sendResult
	switch {
	case enqueued && sender == byRelayFirst: // the usual case
		here, err := b.settledHere(ctx, item)
		if here || err != nil {
			return err // this process's enqueuer put it in Redis
		}
		if res, err = b.relayed.do(ctx, item); err != nil {
			return err
		}
	case enqueued:
		rs, err := b.handoff(ctx, sender, []outgoing{{item: item}})
		if err != nil {
			return err
		}
		res = rs[0]
	default:
		var err error
		if res, err = b.sendRetry(ctx, item); err != nil {
			return err
		}
	}
	if res == full {
		return errFull
	}
	return nil
}

// Ping checks that Redis answers.
func (b *Broker) Ping(ctx context.Context) error {
	if err := b.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// Queue returns a driver.Queue on the shared
// consumer group, as a new consumer named after this process. It does
// not touch Redis: the group is created on first use, so a worker can
// start while Redis is down.
func (b *Broker) Queue(ctx context.Context) (driver.Queue, error) {
	return newQueue(b, b.cfg.Name+"-"+nuid.Next()), nil
}

// An item is stored in Redis as "<seq> <event JSON>": the event log's
// sequence (which the JSON leaves out) and the event. A suspect item's
// sequence ends with "!". appendItem appends item so encoded to buf.
func appendItem(buf []byte, item *tasktype.Event, suspect bool) ([]byte, error) {
	data, err := json.Marshal(item)
	if err != nil {
		return buf, fmt.Errorf("encode job %s: %w", item.JobID, err)
	}
	buf = strconv.AppendUint(buf, item.Seq, 10)
	if suspect {
		buf = append(buf, '!')
	}
	buf = append(buf, ' ')
	return append(buf, data...), nil
}

func decode(raw string) (e tasktype.Event, suspect bool, err error) {
	seq, data, ok := strings.Cut(raw, " ")
	if !ok {
		return tasktype.Event{}, false, errors.New("decode work item: no sequence")
	}
	seq, suspect = strings.CutSuffix(seq, "!")
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return tasktype.Event{}, false, fmt.Errorf("decode work item: sequence: %w", err)
	}
	if err := json.Unmarshal([]byte(data), &e); err != nil {
		return tasktype.Event{}, false, fmt.Errorf("decode work item: %w", err)
	}
	e.Seq = n
	return e, suspect, nil
}

// resync rebuilds the queue from the event log after Redis lost it (a
// restart without persistence, a flush, a new server), or before it ever
// had it (a deployment that moves its jobs from JetStream): the consumer
// group had to be made. Every job waiting for a worker gets its item
// back, a moment later (see recheck); a job whose attempt was running gets a suspect item, due after
// two leases, so that if its worker is gone (its entry went with the
// data) the attempt is judged lost and the job runs again, and if the
// worker finishes first, the item is found stale.
//
// Items Redis holds are left alone, whether it held them before the scan
// of the log or got them during it: what it holds is read again before
// each chunk of items is sent, and while the rebuild runs the markers of
// new jobs' items stay (see the handoff script), so that one sent and
// taken meanwhile is not sent again. A new job's item that its enqueuer
// or the relay may still send is marked, so that they do not add it a
// second time.
func (b *Broker) resync(ctx context.Context) error {
	start := b.cfg.Now()
	if err := b.rdb.Set(ctx, b.rebuild, b.cfg.Name, rebuildFlagTTL).Err(); err != nil {
		return fmt.Errorf("rebuild redis queue from the event log: flag: %w", unavailable(err))
	}
	defer func() {
		// Markers resume pairing; should this fail, the flag expires.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.SendTimeout)
		defer cancel()
		if err := b.rdb.Del(dctx, b.rebuild).Err(); err != nil {
			b.cfg.Logger.DebugContext(ctx, "clear the rebuild flag", "err", err)
		}
	}()
	h := held{b: b, seqs: make(map[uint64]struct{}), lastID: "-"}
	if err := h.refresh(ctx); err != nil {
		return fmt.Errorf("rebuild redis queue from the event log: %w", err)
	}
	var todo []outgoing
	var waiting, running int
	flush := func(ctx context.Context) error {
		if err := b.rdb.Expire(ctx, b.rebuild, rebuildFlagTTL).Err(); err != nil {
			return fmt.Errorf("flag: %w", unavailable(err))
		}
		if err := h.refresh(ctx); err != nil {
			return err
		}
		var fresh, old []outgoing
		for _, o := range todo {
			_, sent := h.seqs[o.item.Seq]
			switch {
			case sent:
			case o.item.Kind == tasktype.EventEnqueued && b.cfg.Now().Sub(o.item.Time) < freshFor:
				fresh = append(fresh, o)
			default:
				old = append(old, o)
			}
		}
		todo = todo[:0]
		for _, batch := range []struct {
			sender string
			items  []outgoing
		}{{byRebuild, fresh}, {byRebuildAlone, old}} {
			if len(batch.items) == 0 {
				continue
			}
			res, err := b.handoff(ctx, batch.sender, batch.items)
			if err != nil {
				return err
			}
			for i, r := range res {
				switch {
				case r != added:
				case batch.items[i].suspect:
					running++
				default:
					waiting++
				}
			}
		}
		return nil
	}
	var unsure []tasktype.Event
	err := b.cfg.Events.ScanWork(ctx, func(ctx context.Context, item tasktype.Event) error {
		if _, ok := h.seqs[item.Seq]; ok {
			return nil
		}
		last, err := b.cfg.Events.Last(ctx, item.UserID, item.JobID)
		if errors.Is(err, tasktype.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		ours := last.Attempt == item.Attempt+1 // the newest event is about this item's attempt
		switch now := b.cfg.Now(); {
		case last.Seq == item.Seq:
			// Waiting, as far as the log says; but an attempt shorter
			// than its first heartbeat, or whose outcome is on its way,
			// has nothing on record either, and its entry went with
			// Redis's data: looked at again a moment later (see recheck).
			unsure = append(unsure, item)
		case ours && last.Kind == tasktype.EventReleased:
			// Through the delayed set, past the stream's bound: what
			// the log holds must all go back.
			due := now
			if item.RetryAt.After(now) {
				due = item.RetryAt
			}
			todo = append(todo, outgoing{item: item, due: due})
		case ours && (last.Kind == tasktype.EventStarted || last.Kind == tasktype.EventProgress):
			todo = append(todo, outgoing{item: item, due: now.Add(2 * b.cfg.Lease), suspect: true})
		}
		if len(todo) >= resyncChunk {
			return flush(ctx)
		}
		return nil
	})
	if err == nil && len(todo) > 0 {
		err = flush(ctx)
	}
	if err == nil && len(unsure) > 0 {
		err = b.recheck(ctx, unsure, func(o outgoing) error {
			todo = append(todo, o)
			if len(todo) >= resyncChunk {
				return flush(ctx)
			}
			return nil
		})
		if err == nil && len(todo) > 0 {
			err = flush(ctx)
		}
	}
	if err != nil {
		return fmt.Errorf("rebuild redis queue from the event log: %w", err)
	}
	b.cfg.Logger.InfoContext(ctx, "rebuilt the redis queue from the event log", "waiting", waiting, "running", running,
		"held", len(h.seqs), "took", b.cfg.Now().Sub(start).Round(time.Millisecond))
	return nil
}

// recheckAfter is how long a rebuild waits before it reads the waiting
// jobs again: an attempt's first heartbeat (a fifth of the lease, where
// it records its start) and one more try of an outcome that a log that
// was down refused (a worker tries every second).
func recheckAfter(lease time.Duration) time.Duration { return lease/5 + time.Second }

// recheck reads again, a moment after the rebuild's scan, the jobs that
// the log showed waiting for a worker, and sends on each one's item as
// what the job is now: waiting still, its item due as it was; running
// (an attempt that had nothing on record when Redis lost its data, and
// recorded its start since), a suspect item due after two leases, as for
// the jobs found running; finished, nothing. Without the wait, an attempt
// shorter than its first heartbeat, or whose outcome was on its way to a
// log that was down, ran again at once on another worker. All the
// waiting jobs start that much later than they could; no job waits more.
func (b *Broker) recheck(ctx context.Context, items []tasktype.Event, send func(outgoing) error) error {
	t := time.NewTimer(recheckAfter(b.cfg.Lease))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	for _, item := range items {
		last, err := b.cfg.Events.Last(ctx, item.UserID, item.JobID)
		if errors.Is(err, tasktype.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		now := b.cfg.Now()
		switch {
		case last.Seq == item.Seq:
			due := now
			if item.RetryAt.After(now) {
				due = item.RetryAt
			}
			err = send(outgoing{item: item, due: due})
		case last.Attempt == item.Attempt+1 && (last.Kind == tasktype.EventStarted || last.Kind == tasktype.EventProgress):
			err = send(outgoing{item: item, due: now.Add(2 * b.cfg.Lease), suspect: true})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// resyncChunk is how many items a rebuild sends at once, after reading
// again what Redis holds.
const resyncChunk = 1000

// rebuildFlagTTL bounds how long the flag of a rebuild lasts, should the
// rebuild stop without clearing it; each chunk sets it again.
const rebuildFlagTTL = time.Minute

// heldPage is how many entries held reads per call.
const heldPage = 1000

// held is what a rebuild knows Redis holds: the event log sequences of
// the items in the stream (waiting or being worked on) and in the
// delayed set. An item once held stays known: if it has left since, its
// job moved on.
type held struct {
	b      *Broker
	seqs   map[uint64]struct{}
	lastID string // the newest stream entry read, or "-"
}

// refresh reads the stream's entries added since the last refresh, and
// the delayed set.
func (h *held) refresh(ctx context.Context) error {
	b := h.b
	note := func(raw string) {
		seq, _, _ := strings.Cut(raw, " ")
		if n, err := strconv.ParseUint(strings.TrimSuffix(seq, "!"), 10, 64); err == nil {
			h.seqs[n] = struct{}{}
		}
	}
	for {
		from := h.lastID
		if from != "-" {
			from = "(" + from
		}
		msgs, err := b.rdb.XRangeN(ctx, b.stream, from, "+", heldPage).Result()
		if err != nil {
			return fmt.Errorf("read stream: %w", unavailable(err))
		}
		for _, m := range msgs {
			raw, _ := m.Values["item"].(string)
			note(raw)
		}
		if len(msgs) > 0 {
			h.lastID = msgs[len(msgs)-1].ID
		}
		if len(msgs) < heldPage {
			break
		}
	}
	for i := int64(0); ; i += heldPage {
		items, err := b.rdb.ZRange(ctx, b.delayed, i, i+heldPage-1).Result()
		if err != nil {
			return fmt.Errorf("read delayed set: %w", unavailable(err))
		}
		for _, raw := range items {
			note(raw)
		}
		if len(items) < heldPage {
			return nil
		}
	}
}

// unavailable marks errors that mean Redis could not be reached (or did
// not answer in time) as tasktype.ErrUnavailable. Redis's own error replies
// are left as they are.
func unavailable(err error) error {
	var rerr redis.Error
	if errors.As(err, &rerr) && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %w", tasktype.ErrUnavailable, err)
}

// The Broker is a transport that can run a job in the request.
var _ driver.Transport = (*Broker)(nil)

// Capabilities implements driver.Transport. A delivery is one entry of
// the consumer group's pending list, with its own idle time: Redis keeps
// a lease per delivery, not per item. Enqueue stores the job in the log
// before it sends the item, so a job whose item cannot be sent can run
// in the request instead (SetRunInline).
func (b *Broker) Capabilities() driver.Capabilities {
	return driver.Capabilities{BatchEnqueue: true, BatchQueue: true, DelayedRedelivery: true, InRequestFallback: true}
}
