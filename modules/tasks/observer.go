package tasks

import (
	"time"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// Observer is told, as it happens, what this process does with jobs:
// what it enqueues, cancels and retries by hand through its Client, and
// every attempt its workers start and end. It is how metrics see the
// task system (taskmetrics implements it) without the engine knowing of
// them. The worker calls it on every job, at thousands a second, so
// each method must be quick and must not block.
//
// Each process counts what it did itself: the web process its enqueues
// and cancels, a worker its attempts. Summed over the processes of a
// deployment, each job is counted once.
type Observer interface {
	// Enqueued: n jobs of jobType were stored by Enqueue or
	// EnqueueBatch. A request repeating an earlier one's key counts,
	// though it returned the first job.
	Enqueued(jobType string, n int)
	// Cancelled: Cancel cancelled a job of jobType.
	Cancelled(jobType string)
	// Retried: Retry ran a failed or cancelled job of jobType again.
	Retried(jobType string)
	// AttemptStarted: a worker of this process started an attempt of a
	// job of jobType, waited after its work item fell due (was enqueued,
	// reached its retry time, was retried by hand).
	AttemptStarted(jobType string, waited time.Duration)
	// AttemptEnded: a started attempt is over, its handler having run
	// for ran. outcome is the event on record for it: EventSucceeded,
	// EventRetrying or EventFailed (tasktype.OutcomeRejected for a
	// failure the handler marked tasktype.Rejected); EventCancelled when a cancel stopped
	// it; EventReleased when shutdown handed it back; "" when another
	// worker took it over or its outcome could not be stored. Called
	// once for every AttemptStarted.
	AttemptEnded(jobType string, outcome tasktype.EventKind, ran time.Duration)
}

// NopObserver is an Observer that does nothing: a Client given none
// has it, and an Observer that watches only some of what happens embeds
// it for the rest.
type NopObserver struct{}

// Enqueued does nothing.
func (NopObserver) Enqueued(string, int) {}

// Cancelled does nothing.
func (NopObserver) Cancelled(string) {}

// Retried does nothing.
func (NopObserver) Retried(string) {}

// AttemptStarted does nothing.
func (NopObserver) AttemptStarted(string, time.Duration) {}

// AttemptEnded does nothing.
func (NopObserver) AttemptEnded(string, tasktype.EventKind, time.Duration) {}
