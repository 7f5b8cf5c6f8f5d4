package taskdriver

import (
	"context"
	"io"
	"time"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// Enqueuer is the port through which the rest of the app asks for
// background work. Enqueue is atomic: on success the job is stored and
// will run; on error nothing was stored.
type Enqueuer interface {
	Enqueue(ctx context.Context, r tasktype.EnqueueRequest) (tasktype.Job, error)
}

// BatchEnqueuer is an Enqueuer that can accept many jobs in one call,
// sending them without waiting for each to be stored in turn. It is
// all-or-error per request: Jobs are returned in the order of the
// requests, and an error means some of them may not have been stored
// (those returned before the error were).
type BatchEnqueuer interface {
	Enqueuer
	// EnqueueBatch enqueues every request and returns their jobs in
	// order. On error it returns the jobs stored so far, in order of
	// their requests, and the error; the rest may or may not be stored.
	EnqueueBatch(ctx context.Context, rs []tasktype.EnqueueRequest) ([]tasktype.Job, error)
}

// Queue hands jobs to a worker. Brokers implement it.
type Queue interface {
	// Next blocks until a job is delivered or ctx ends. Jobs not yet
	// delivered stay with the broker.
	Next(ctx context.Context) (Delivery, error)
}

// BatchQueue is a Queue that can hand out several jobs in one round
// trip. A worker with several free slots asks for as many jobs as it can
// start at once, never more, so that no job waits in the worker while
// its lease runs. NextBatch must be safe to call from several goroutines
// at once: a worker keeps a few pulls in flight.
type BatchQueue interface {
	Queue
	// NextBatch blocks until at least one job is delivered or ctx ends,
	// and returns between 1 and max deliveries.
	NextBatch(ctx context.Context, max int) ([]Delivery, error)
}

// Delivery is one delivery of a work item (an enqueued, retrying or
// retried event) to a worker. Until it is acked the broker delivers it
// again if the worker stops renewing it.
type Delivery interface {
	// Item is the work item, with its stream sequence.
	Item() tasktype.Event
	// Redelivered says the broker handed this item out before and it was
	// not acked: its worker stopped renewing it or gave it back. A first
	// delivery that finds its attempt already started is a second copy
	// of an item another worker holds, not a sign that worker is gone
	// (unless the broker keeps one lease per item: see ItemLease).
	Redelivered() bool
	// Extend tells the broker the item is still being worked on.
	Extend(ctx context.Context) error
	// Ack removes the item from the queue for good.
	Ack(ctx context.Context) error
	// Release gives the item back for any worker to take at once.
	Release(ctx context.Context) error
	// Delay gives the item back to be delivered again after d.
	Delay(ctx context.Context, d time.Duration) error
}

// ItemLease is implemented by the deliveries of a broker that keeps one
// lease per work item, whichever delivery of it renews the lease
// (JetStream: the consumer's pending entry is the stream sequence, and a
// heartbeat or ack names only that). There, a first delivery of an item
// whose attempt has started is not a second copy: the broker forgot the
// first delivery, as a server killed before it wrote down its consumer's
// state does, and handed the item out again. Dropping it would leave
// nothing to redeliver if the attempt's worker is gone, so the worker
// leaves it with the broker instead: the attempt's worker, if alive,
// keeps it with its heartbeats and acks it when done; if it is gone, the
// item comes back as a redelivery once the lease runs out, and is taken
// over as a lost attempt.
type ItemLease interface {
	Delivery
	// LeasePerItem says the broker keeps one lease for all deliveries of
	// the item.
	LeasePerItem() bool
}

// LeaseReporter is a Queue that knows the lease in force for every
// worker of the deployment, which may differ from the one this process
// was configured with (JetStream's shared consumer keeps one AckWait for
// all). Workers renew their jobs by it.
type LeaseReporter interface {
	Queue
	Lease() time.Duration
}

// ResultStore keeps jobs' result files.
type ResultStore interface {
	// Put stores r under object, streaming it.
	Put(ctx context.Context, object, name, contentType string, r io.Reader) (tasktype.ResultRef, error)
	// Open streams a stored result, with the size and digest the store
	// recorded. A result that is not there is ErrResultMissing.
	Open(ctx context.Context, object string) (*tasktype.StoredResult, error)
	// Delete removes a stored result; deleting one that is not there is
	// not an error.
	Delete(ctx context.Context, object string) error
}

// SucceededLog finds the results a user's jobs of one type have stored,
// from the event log: the worker prunes a user's older results with it,
// without a database and without listing the whole results store.
type SucceededLog interface {
	// Succeeded returns the user's succeeded events of jobType stored
	// at or after since (the zero time: all of them), in stream order.
	Succeeded(ctx context.Context, userID int64, jobType string, since time.Time) ([]tasktype.Event, error)
}

// EventLog is where job events are stored. Every event after a job's
// first is appended on condition that the job's newest event is still
// the one the writer decided on, so each job's history is a sequence of
// legal steps however many workers, web processes and operators race.
type EventLog interface {
	// Append stores e if the newest event of e's job is at sequence
	// after, and returns e's sequence. Otherwise it stores nothing and
	// returns an error wrapping ErrConflict.
	Append(ctx context.Context, e tasktype.Event, after uint64) (uint64, error)
	// Last returns the job's newest event, or ErrNotFound. A userID of 0
	// matches the job whoever owns it.
	Last(ctx context.Context, userID int64, jobID string) (tasktype.Event, error)
	// History returns all the job's events in stream order, or
	// ErrNotFound. A userID of 0 matches the job whoever owns it.
	History(ctx context.Context, userID int64, jobID string) ([]tasktype.Event, error)
}

// EventStream delivers stored events in stream order.
type EventStream interface {
	// Follow calls fn with the events after sequence from, in order, in
	// batches, until ctx ends or fn returns an error. It keeps following
	// new events. A batch holds the events that were ready at once (at
	// most a few hundred), so a follower can apply a burst in one go and
	// a single new event without delay. fn must not keep the slice. A
	// stored message that is not a readable event is passed with only Seq
	// set, so that followers can move past it.
	Follow(ctx context.Context, from uint64, fn func([]tasktype.Event) error) error
	// LastSeq is the sequence of the newest stored event.
	LastSeq(ctx context.Context) (uint64, error)
	// Created is when the stream was made. A stream made anew (a fresh
	// server, a stream deleted and made again) numbers its events from 1
	// again and has another time: a follower that kept a position keeps
	// this beside it, to tell that its position belongs to another
	// stream.
	Created(ctx context.Context) (time.Time, error)
}

// Log is where the task system keeps its record: the event log and its
// stream, the result files, and the lookup of a user's stored results.
// The JetStream driver is one; every deployment has it, whichever driver
// carries the jobs.
type Log interface {
	EventLog
	EventStream
	ResultStore
	SucceededLog
}

// InlineFallback is implemented by a driver whose Enqueue stores a job in
// the log and then sends its work item elsewhere (Redis): when that send
// fails, the driver can run the job in the enqueuing call rather than
// leave it waiting in the log for the broker to come back. The Client
// gives it the runner, before the first Enqueue.
type InlineFallback interface {
	SetRunInline(run func(ctx context.Context, item tasktype.Event))
}

// Driver is what a job driver offers the task system: it takes new jobs
// from the web side and opens a queue for each worker. JetStream
// (jetstream.Broker) and Redis (redisbroker.Broker) implement it; the
// event log and the results (Log) are JetStream's whichever driver
// carries the jobs. What a driver may offer beyond it (batches, one lease
// per item, running a job in the request) it offers through the other
// interfaces here; drivertest checks each driver against what it claims.
type Driver interface {
	Enqueuer
	// Queue opens a worker's queue.
	Queue(ctx context.Context) (Queue, error)
	// Ping checks that the driver's server answers.
	Ping(ctx context.Context) error
}

// UserEventStream delivers one user's stored events, read from the log
// with a subject filter on that user, so that nobody else's event is
// ever read for them. It is what a live page follows.
type UserEventStream interface {
	// FollowUser calls fn with each of the user's events stored after
	// sequence after, in stream order, one at a time, until ctx ends or
	// fn returns an error. It keeps following new events. Whatever it
	// holds on the server is gone when it returns.
	FollowUser(ctx context.Context, userID int64, after uint64, fn func(tasktype.Event) error) error
}

// UserEraser is a Log that can erase everything it keeps of one user: the
// result files of every attempt of their jobs, then their events, so that
// nothing replayed from the log brings them back (UK GDPR erasure). The
// JetStream driver is one: its subjects name the user, so one purge by
// subject filter removes all their events and no one else's.
type UserEraser interface {
	// EraseUser deletes the user's results, then their events. It is
	// idempotent: erasing a user with nothing left is not an error, and
	// a call cut short is finished by calling it again.
	EraseUser(ctx context.Context, userID int64) (Erased, error)
}

// Erased says what an EraseUser removed.
type Erased struct {
	Events  uint64 // events purged from the log
	Results int    // result files deleted (or found already gone)
}

// StoredEnd is an EventStream whose newest sequence (LastSeq) may name
// an event that is no longer stored: one purged from the end of the
// stream (UserEraser). A follower catching up waits for the newest event
// still stored instead, which it will be given.
type StoredEnd interface {
	// LastStoredSeq is the sequence of the newest event still stored, 0
	// when none is.
	LastStoredSeq(ctx context.Context) (uint64, error)
}
