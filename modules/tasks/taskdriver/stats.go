package taskdriver

import (
	"context"
	"time"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

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

// StatsReporter is a Driver that can report its queue's state. Each call
// asks the server once (one request, or one pipeline), so that a scrape
// of metrics costs one round trip and no poller runs in between.
type StatsReporter interface {
	QueueStats(ctx context.Context) (QueueStats, error)
}

// EventFinder is an EventStream that can read the first event stored at
// or after a sequence, in one request: how far behind a follower of the
// stream is, in time.
type EventFinder interface {
	// EventFrom returns the first event at or after seq, or
	// tasktype.ErrNotFound when there is none.
	EventFrom(ctx context.Context, seq uint64) (tasktype.Event, error)
}
