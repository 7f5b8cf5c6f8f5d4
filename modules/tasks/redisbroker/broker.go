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
//   - short-lived markers of items already sent, so that an item is not
//     added twice.
//
// An item reaches Redis two ways: Enqueue sends the new job's item at
// once, and a relay (Relay) follows the event log and sends every work
// item (enqueued, retrying, retried), whoever stored it. The relay is
// what makes a crash between the two stores harmless, and what carries
// retries, which workers and operators write to the log.
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
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nuid"
	"github.com/redis/go-redis/v9"

	"github.com/otjhelper/otj/modules/tasks"
)

// Group is the consumer group every worker shares.
const Group = "workers"

// DefaultOrphanAfter is Config.OrphanAfter's default.
const DefaultOrphanAfter = time.Hour

// EventLog is what the Redis broker needs of the job event log: the
// JetStream broker provides it.
type EventLog interface {
	tasks.EventLog
	// EnqueueEvent stores a new job's enqueued event, deduplicated by
	// the request's key, and reports whether the request was a repeat.
	EnqueueEvent(ctx context.Context, r tasks.EnqueueRequest) (tasks.Event, bool, error)
	// FeedWork hands every work item in the log to fn at least once.
	FeedWork(ctx context.Context, consumer string, fn func(ctx context.Context, item tasks.Event, redelivered bool) error) error
	// ScanWork calls fn for every work item in the log, oldest first.
	ScanWork(ctx context.Context, fn func(ctx context.Context, item tasks.Event) error) error
}

// Config configures a Broker. Zero fields take the defaults below.
type Config struct {
	// Client is required. Give it ContextTimeoutEnabled, so that
	// SendTimeout also holds against a Redis that accepts connections
	// and does not answer; otherwise the client's own read timeout does.
	Client redis.UniversalClient
	Events EventLog // required
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
	// (tasks.Worker.RunInline). When nil the job waits in the event log
	// until the relay can send it.
	RunInline func(ctx context.Context, item tasks.Event)
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
		c.Name = tasks.ProcessName()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// sentTTL is how long an item's sent marker lasts. It only has to
// outlast the relay's first sight of an item Enqueue already sent
// (milliseconds, or an event-log outage). A copy sent after it is
// harmless, only wasted: its worker finds the job moved on, or, as a
// first delivery, finds the attempt started and leaves it to the holder.
const sentTTL = 10 * time.Minute

// Broker implements tasks.Enqueuer on Redis and hands out tasks.Queue
// values for workers. Events and results stay with the EventLog.
type Broker struct {
	cfg     Config
	rdb     redis.UniversalClient
	stream  string
	delayed string
}

// New returns a Broker. It does not touch Redis, so that a process can
// start while Redis is down.
func New(cfg Config) (*Broker, error) {
	cfg.setDefaults()
	if cfg.Client == nil || cfg.Events == nil {
		return nil, errors.New("new redis broker: Client and Events are required")
	}
	return &Broker{cfg: cfg, rdb: cfg.Client, stream: cfg.Prefix + ":work", delayed: cfg.Prefix + ":delayed"}, nil
}

// Enqueue stores the job's enqueued event in the log, then sends its
// item to Redis. If Redis cannot be reached within SendTimeout, the job
// is still accepted: it runs here through RunInline, or waits for the
// relay. A repeated key returns the first job and sends nothing.
func (b *Broker) Enqueue(ctx context.Context, r tasks.EnqueueRequest) (tasks.Job, error) {
	item, repeat, err := b.cfg.Events.EnqueueEvent(ctx, r)
	if err != nil {
		return tasks.Job{}, err
	}
	if repeat {
		return item.Job(), nil
	}
	sctx, cancel := context.WithTimeout(ctx, b.cfg.SendTimeout)
	res, err := b.send(sctx, item)
	cancel()
	switch {
	case err == nil && res == full:
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

// What a send did.
type sendResult int

const (
	sentBefore sendResult = iota // marked as sent already: nothing done
	added                        // added to the stream or the delayed set
	full                         // the stream is at MaxLength: nothing done
)

// send adds item to the stream, or to the delayed set if it is a retry
// not yet due, unless it was sent before.
func (b *Broker) send(ctx context.Context, item tasks.Event) (sendResult, error) {
	return b.sendWith(ctx, item, sendOptions{due: item.RetryAt})
}

// sendOptions change how an item is sent.
type sendOptions struct {
	// due is when the item is to be delivered; now if zero or past.
	due time.Time
	// suspect items are delivered as if claimed from a silent worker,
	// so that the worker that gets one judges a started attempt lost
	// rather than someone else's.
	suspect bool
	// unbounded sends the item through the delayed set even if it is
	// due now, so that the stream's bound does not apply.
	unbounded bool
}

func (b *Broker) sendWith(ctx context.Context, item tasks.Event, o sendOptions) (sendResult, error) {
	raw, err := encode(item, o.suspect)
	if err != nil {
		return 0, err
	}
	dueMS := int64(0)
	if now := b.cfg.Now(); o.due.After(now) {
		dueMS = o.due.UnixMilli()
	} else if o.unbounded {
		dueMS = now.UnixMilli()
	}
	marker := b.cfg.Prefix + ":sent:" + item.JobID + ":" + strconv.FormatUint(item.Seq, 10)
	n, err := forward.Run(ctx, b.rdb, []string{b.stream, b.delayed, marker},
		raw, dueMS, int(sentTTL/time.Second), b.cfg.MaxLength).Int()
	if err != nil {
		return 0, fmt.Errorf("send job %s to redis: %w", item.JobID, unavailable(err))
	}
	switch n {
	case 1:
		return added, nil
	case -1:
		return full, nil
	}
	return sentBefore, nil
}

// Relay sends every work item stored in the event log to Redis, until
// ctx ends. Every process using this broker runs it; they share the
// work. Items whose job has moved on by the time they are sent again
// (after a failure or a crash) are dropped, so that a job run in a
// request while Redis was down is not run a second time.
func (b *Broker) Relay(ctx context.Context) error {
	for {
		err := b.cfg.Events.FeedWork(ctx, "redis-relay", b.relayItem)
		if ctx.Err() != nil {
			return nil
		}
		b.cfg.Logger.WarnContext(ctx, "redis relay stopped; restarting", "err", err)
		sleep(ctx, time.Second)
	}
}

var errFull = errors.New("redis queue full")

func (b *Broker) relayItem(ctx context.Context, item tasks.Event, redelivered bool) error {
	if redelivered {
		last, err := b.cfg.Events.Last(ctx, item.UserID, item.JobID)
		if err != nil {
			return err
		}
		switch {
		case last.Seq == item.Seq: // still waiting for a worker
		case last.Attempt == item.Attempt+1 && (last.Kind == tasks.EventStarted || last.Kind == tasks.EventProgress):
			// The item's attempt is running, started where Redis never
			// had the item (unless it is marked as sent): in a request,
			// while Redis was down. Should that process die, nothing
			// would hand the job to a worker; a suspect copy, due once
			// the attempt must have ended, is found stale if it did
			// and counts the attempt as lost if not.
			_, err := b.sendWith(ctx, item, sendOptions{due: last.Time.Add(b.cfg.OrphanAfter), suspect: true})
			return err
		default:
			return nil // the job moved on without this item
		}
	}
	res, err := b.send(ctx, item)
	if err != nil {
		return err
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

// Queue returns a tasks.Queue on the shared consumer group, as a new
// consumer named after this process. It does not touch Redis: the group
// is created on first use, so a worker can start while Redis is down.
func (b *Broker) Queue(ctx context.Context) (tasks.Queue, error) {
	return &queue{b: b, consumer: b.cfg.Name + "-" + nuid.Next()}, nil
}

// An item is stored in Redis as "<seq> <event JSON>": the event log's
// sequence (which the JSON leaves out) and the event. A suspect item's
// sequence ends with "!".
func encode(item tasks.Event, suspect bool) (string, error) {
	data, err := json.Marshal(item)
	if err != nil {
		return "", fmt.Errorf("encode job %s: %w", item.JobID, err)
	}
	mark := ""
	if suspect {
		mark = "!"
	}
	return strconv.FormatUint(item.Seq, 10) + mark + " " + string(data), nil
}

func decode(raw string) (e tasks.Event, suspect bool, err error) {
	seq, data, ok := strings.Cut(raw, " ")
	if !ok {
		return tasks.Event{}, false, errors.New("decode work item: no sequence")
	}
	seq, suspect = strings.CutSuffix(seq, "!")
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return tasks.Event{}, false, fmt.Errorf("decode work item: sequence: %w", err)
	}
	if err := json.Unmarshal([]byte(data), &e); err != nil {
		return tasks.Event{}, false, fmt.Errorf("decode work item: %w", err)
	}
	e.Seq = n
	return e, suspect, nil
}

// resync rebuilds the queue from the event log after Redis lost it (a
// restart without persistence, a flush, a new server): the consumer
// group had to be made anew. Every job waiting for a worker gets its item
// back; a job whose attempt was running gets a suspect item, due after
// two leases, so that if its worker is gone (its entry went with the
// data) the attempt is judged lost and the job runs again, and if the
// worker finishes first, the item is found stale.
func (b *Broker) resync(ctx context.Context) error {
	start := b.cfg.Now()
	var waiting, running int
	err := b.cfg.Events.ScanWork(ctx, func(ctx context.Context, item tasks.Event) error {
		last, err := b.cfg.Events.Last(ctx, item.UserID, item.JobID)
		if errors.Is(err, tasks.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		ours := last.Attempt == item.Attempt+1 // the newest event is about this item's attempt
		var res sendResult
		switch {
		case last.Seq == item.Seq, ours && last.Kind == tasks.EventReleased:
			// Past the stream's bound: what the log holds must all go
			// back. An item marked as sent is there already.
			if res, err = b.sendWith(ctx, item, sendOptions{due: item.RetryAt, unbounded: true}); res == added {
				waiting++
			}
		case ours && (last.Kind == tasks.EventStarted || last.Kind == tasks.EventProgress):
			if res, err = b.sendWith(ctx, item, sendOptions{due: b.cfg.Now().Add(2 * b.cfg.Lease), suspect: true}); res == added {
				running++
			}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("rebuild redis queue from the event log: %w", err)
	}
	b.cfg.Logger.InfoContext(ctx, "rebuilt the redis queue from the event log", "waiting", waiting, "running", running,
		"took", b.cfg.Now().Sub(start).Round(time.Millisecond))
	return nil
}

// unavailable marks errors that mean Redis could not be reached (or did
// not answer in time) as tasks.ErrUnavailable. Redis's own error replies
// are left as they are.
func unavailable(err error) error {
	var rerr redis.Error
	if errors.As(err, &rerr) && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %w", tasks.ErrUnavailable, err)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
