// Package driver is the task engine's seam: what a driver gives the
// engine, and nothing else. It is internal to modules/tasks, so only the
// engine and the drivers in its tree (jetstream, redisbroker) can name
// it; everyone else goes through tasks.Client.
//
// Two things vary, and they are the two interfaces here:
//   - Log, the record: job events, their stream and the result files.
//     JetStream implements it, and is the only implementation; it is an
//     interface so that the Redis transport can sit on it and the engine
//     can be tested without a server, not because a second log is
//     expected.
//   - Transport, how work items reach workers: JetStream (the work item
//     is the event) or Redis (relayed from the log).
//
// What a transport can do beyond the interface it reports as data
// (Capabilities), which the engine and the driver suite (drivertest)
// read alike: nothing discovers an ability by type assertion.
package driver

import (
	"context"
	"io"
	"time"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// Log is where the task system keeps its record. Every event after a
// job's first is appended on condition that the job's newest event is
// still the one the writer decided on, so each job's history is a
// sequence of legal steps however many workers, web processes and
// operators race. JetStream implements it alone.
type Log interface {
	// EnqueueEvent stores a new job's enqueued event, deduplicated by
	// the request's key, and reports whether the request was a repeat
	// (the event is then the first request's).
	EnqueueEvent(ctx context.Context, r tasktype.EnqueueRequest) (tasktype.Event, bool, error)
	// EnqueueEventBatch stores the enqueued events of rs without waiting
	// for each before sending the next, and returns them in order, each
	// with whether it repeated an earlier request. Every request is
	// checked before any is stored; on error the events returned are
	// those stored before the first that failed.
	EnqueueEventBatch(ctx context.Context, rs []tasktype.EnqueueRequest) ([]tasktype.Event, []bool, error)
	// Append stores e if the newest event of e's job is at sequence
	// after, and returns e's sequence; otherwise it stores nothing and
	// returns an error wrapping tasktype.ErrConflict.
	Append(ctx context.Context, e tasktype.Event, after uint64) (uint64, error)
	// Last returns the job's newest event, or tasktype.ErrNotFound. A
	// userID of 0 matches the job whoever owns it.
	Last(ctx context.Context, userID int64, jobID string) (tasktype.Event, error)
	// History returns all the job's events in stream order, or
	// tasktype.ErrNotFound. A userID of 0 matches whoever owns it.
	History(ctx context.Context, userID int64, jobID string) ([]tasktype.Event, error)

	// Follow calls fn with the events after sequence from, in order, in
	// batches of what was ready at once, until ctx ends or fn fails. fn
	// must not keep the slice. A stored message that is not a readable
	// event is passed with only Seq set, so that followers move past it.
	Follow(ctx context.Context, from uint64, fn func([]tasktype.Event) error) error
	// FollowUser calls fn with each of the user's events stored after
	// sequence after, read with a filter on that user, so that nobody
	// else's event is ever read for them.
	FollowUser(ctx context.Context, userID int64, after uint64, fn func(tasktype.Event) error) error
	// LastSeq is the sequence of the newest event ever stored, which may
	// have been purged (EraseUser); LastStoredSeq is that of the newest
	// still stored, 0 when none is.
	LastSeq(ctx context.Context) (uint64, error)
	LastStoredSeq(ctx context.Context) (uint64, error)
	// EventFrom returns the first event at or after seq, or
	// tasktype.ErrNotFound.
	EventFrom(ctx context.Context, seq uint64) (tasktype.Event, error)
	// Created is when the stream was made: a follower keeps it beside
	// its position to tell that a stream made anew numbers from 1 again.
	Created(ctx context.Context) (time.Time, error)

	// FeedWork hands every work item in the log to fn at least once; the
	// calls naming the same consumer, in any process, share the items.
	// It is how a transport that is not the log (Redis) gets its items.
	FeedWork(ctx context.Context, consumer string, fn func(ctx context.Context, item tasktype.Event, redelivered bool) error) error
	// FeedBacklog is how many work items FeedWork's consumer has not yet
	// had or confirmed.
	FeedBacklog(ctx context.Context, consumer string) (uint64, error)
	// ScanWork calls fn for every work item in the log, oldest first.
	ScanWork(ctx context.Context, fn func(ctx context.Context, item tasktype.Event) error) error

	// Put stores a result file under object, streaming it.
	Put(ctx context.Context, object, name, contentType string, r io.Reader) (tasktype.ResultRef, error)
	// Open streams a stored result with the size and digest recorded; a
	// result that is not there is tasktype.ErrResultMissing.
	Open(ctx context.Context, object string) (*tasktype.StoredResult, error)
	// Delete removes a stored result; one already gone is not an error.
	Delete(ctx context.Context, object string) error
	// Succeeded returns the user's succeeded events of jobType stored at
	// or after since, in stream order: what the user's stored results
	// are, without listing the results store.
	Succeeded(ctx context.Context, userID int64, jobType string, since time.Time) ([]tasktype.Event, error)

	// EraseUser deletes the user's results, then their events, so that
	// nothing replayed brings them back. It is idempotent.
	EraseUser(ctx context.Context, userID int64) (tasktype.Erased, error)

	// Beat stores a worker process's heartbeat, and Leave removes it as
	// the worker stops. Workers lists those heard from within their
	// lease, so that a killed worker drops out a lease after its last.
	Beat(ctx context.Context, info tasktype.WorkerInfo) error
	Leave(ctx context.Context, name string) error
	Workers(ctx context.Context) ([]tasktype.WorkerInfo, error)

	// Pause pauses a job type on every worker, and Resume resumes it;
	// both outlast restarts. Pauses lists the paused types, and
	// WatchPauses calls fn with them once read, then after each change,
	// until ctx ends or fn fails.
	Pause(ctx context.Context, p tasktype.Pause) error
	Resume(ctx context.Context, jobType string) error
	Pauses(ctx context.Context) ([]tasktype.Pause, error)
	WatchPauses(ctx context.Context, fn func([]tasktype.Pause) error) error

	// PurgeJob removes the job's events stored at or before sequence
	// through, keeping any stored after it: how a finished task past
	// its retention leaves the log. Purging what is gone is a no-op.
	PurgeJob(ctx context.Context, userID int64, jobID string, through uint64) error
}

// Transport carries work items to workers. JetStream and Redis
// implement it; both keep each job's record in the Log.
type Transport interface {
	// Capabilities says what the transport can do beyond this interface.
	Capabilities() Capabilities
	// Enqueue stores a new job and sends its work item. On success the
	// job is stored and will run; on error nothing was stored.
	Enqueue(ctx context.Context, r tasktype.EnqueueRequest) (tasktype.Job, error)
	// EnqueueBatch enqueues every request and returns the jobs in order.
	// On error it returns the jobs stored so far; the rest may or may
	// not be stored. With Capabilities.BatchEnqueue it sends them all
	// before waiting; otherwise it is Enqueue in a loop.
	EnqueueBatch(ctx context.Context, rs []tasktype.EnqueueRequest) ([]tasktype.Job, error)
	// Queue opens a worker's queue.
	Queue(ctx context.Context) (Queue, error)
	// QueueStats reports the work queue, asking the server once.
	QueueStats(ctx context.Context) (tasktype.QueueStats, error)
	// Ping checks that the transport's server answers.
	Ping(ctx context.Context) error
	// SetRunInline gives a transport with Capabilities.InRequestFallback
	// the runner of jobs it stored and could not send on: it runs them
	// in the enqueuing call. Called before the first Enqueue; the other
	// transports ignore it.
	SetRunInline(run func(ctx context.Context, item tasktype.Event))
}

// Capabilities are a transport's optional abilities, as data.
type Capabilities struct {
	// BatchEnqueue: EnqueueBatch sends a batch in one go rather than one
	// job after another.
	BatchEnqueue bool
	// BatchQueue: Queue.NextBatch hands out several items in one round
	// trip; otherwise one.
	BatchQueue bool
	// ItemLease: the transport keeps one lease per work item, whichever
	// delivery of it renews it (JetStream: the consumer's pending entry
	// is the stream sequence). There, a first delivery of an item whose
	// attempt has started is the server having forgotten the first
	// delivery, not a second copy, and the worker leaves it for the
	// attempt's worker, or for redelivery if that one is gone.
	ItemLease bool
	// DelayedRedelivery: Delivery.Delay holds the item back on the
	// server for the time asked.
	DelayedRedelivery bool
	// InRequestFallback: the transport can hand a job it stored and could
	// not send on to the enqueuer to run (SetRunInline).
	InRequestFallback bool
}

// Queue hands work items to one worker. Its methods are safe to call
// from several goroutines at once: a worker keeps a few pulls in flight.
type Queue interface {
	// Next blocks until an item is delivered or ctx ends.
	Next(ctx context.Context) (Delivery, error)
	// NextBatch blocks until at least one item is delivered or ctx ends,
	// and returns between 1 and max: never more than the worker can
	// start at once, so that no item waits in the worker while its lease
	// runs.
	NextBatch(ctx context.Context, max int) ([]Delivery, error)
	// Lease is the lease in force for every worker of the deployment,
	// which may differ from the one this process was configured with
	// (JetStream's shared consumer keeps one for all); 0 when the
	// transport leaves it to each worker's configuration.
	Lease() time.Duration
}

// Delivery is one delivery of a work item (an enqueued, retrying or
// retried event) to a worker. Until it is acked the transport delivers
// it again if the worker stops renewing it.
type Delivery interface {
	// Item is the work item, with its stream sequence.
	Item() tasktype.Event
	// Redelivered says the item was handed out before and not acked.
	Redelivered() bool
	// Extend tells the transport the item is still being worked on.
	Extend(ctx context.Context) error
	// Ack removes the item from the queue for good.
	Ack(ctx context.Context) error
	// Release gives the item back for any worker to take at once.
	Release(ctx context.Context) error
	// Delay gives the item back to be delivered again after d.
	Delay(ctx context.Context, d time.Duration) error
}
