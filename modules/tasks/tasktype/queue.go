package tasktype

import "time"

// QueueStats is what a driver's work queue holds at one moment, as its
// server reports it: for metrics, and for the health check that notices
// jobs waiting with no worker taking them.
type QueueStats struct {
	// Joined says a worker has ever opened the queue (JetStream: the
	// work consumer exists; Redis: the consumer group does). Before
	// that, Pending counts every work item stored and LastPull is zero.
	Joined bool
	// Pending counts the work items waiting for a worker: stored, not
	// yet handed out.
	Pending uint64
	// AckPending counts the items handed out and not yet acked: running,
	// or held back until their retry time.
	AckPending uint64
	// MaxAckPending bounds AckPending, where the transport has such a
	// bound (JetStream: the work consumer's); 0 otherwise.
	MaxAckPending int
	// Redelivered counts the items handed out more than once and not yet
	// acked: taken over from a worker that stopped, or given back.
	Redelivered uint64
	// Created is when the queue was made (JetStream: the work consumer);
	// Delivered counts the deliveries it has made since, and Acked how
	// many of them are acked with every one before them. A queue made
	// again, or reset, starts them over. Zero where the transport does
	// not keep them.
	Created   time.Time
	Delivered uint64
	Acked     uint64
	// Waiting counts the requests for work the server holds from workers
	// right now (JetStream: pull requests waiting). A worker with a free
	// slot always has one.
	Waiting int
	// LastPull is when a worker last asked for work or was handed an
	// item, as far as the server knows; zero when none ever has.
	LastPull time.Time
	// OldestWaiting is when the oldest item that may still be waiting was
	// stored, where the driver knows it cheaply (before any worker
	// joined); zero otherwise.
	OldestWaiting time.Time
	// Relay is set by a driver that passes items on from the event log
	// (Redis): how many items the log holds that it has not yet passed
	// on, across every process's relay.
	Relay *RelayStats
}

// RelayStats is the backlog of a driver's relay from the event log.
type RelayStats struct {
	// Backlog counts work items stored in the log and not yet passed on
	// to the driver, or passed on and not yet confirmed.
	Backlog uint64
}

// Erased says what erasing a user removed from the task system.
type Erased struct {
	Events  uint64 // events purged from the log
	Results int    // result files deleted (or found already gone)
	Rows    int64  // task_result rows deleted (tasks.Client.EraseUser)
}
