// Package control cancels and retries jobs, by appending events to the
// log on condition that the job has not moved on meanwhile.
package control

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nuid"

	"github.com/otjhelper/otj/modules/tasks/internal/projection"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// Events is what Control needs of the job event log (driver.Log).
type Events interface {
	Append(ctx context.Context, e tasktype.Event, after uint64) (uint64, error)
	History(ctx context.Context, userID int64, jobID string) ([]tasktype.Event, error)
}

// Control cancels and retries jobs by appending events to the log. It
// decides from the job's history as the projection's state machine takes
// it (projection.Replay), read from the log rather than from the
// projection, so it is right even while the projection lags, and an
// event the state machine refused (a failed after the job succeeded)
// cannot make a finished job retryable.
type Control struct {
	events Events
	now    func() time.Time
}

// New returns a Control over events.
func New(events Events) *Control {
	return &Control{events: events, now: time.Now}
}

// Cancel cancels a pending, retrying or running job: a queued job never
// starts, and a running job's context is cancelled within a lease check
// (about a second). userID 0 means any owner (operators); otherwise
// another user's job is ErrNotFound. It returns the cancelled event.
func (c *Control) Cancel(ctx context.Context, userID int64, jobID, by string) (tasktype.Event, error) {
	return c.cancel(ctx, userID, jobID, by, "")
}

// CancelByOperator is Cancel of any owner's job by the named operator,
// whom the cancelled event names.
func (c *Control) CancelByOperator(ctx context.Context, jobID, operator string) (tasktype.Event, error) {
	return c.cancel(ctx, 0, jobID, tasktype.ByOperator, operator)
}

func (c *Control) cancel(ctx context.Context, userID int64, jobID, by, operator string) (tasktype.Event, error) {
	return c.change(ctx, userID, jobID, "cancel", func(s tasktype.Status, last, _ tasktype.Event) (tasktype.Event, error) {
		if !s.Active() {
			return tasktype.Event{}, &tasktype.StateError{Status: s, Allowed: []tasktype.Status{tasktype.StatusPending, tasktype.StatusRetrying, tasktype.StatusRunning}, Action: "cancelled"}
		}
		return c.next(last, tasktype.EventCancelled, by, operator), nil
	})
}

// Retry runs a failed or cancelled job again, with the job type's full
// allowance of attempts; its history is kept. It returns the retried
// event, which is the new work item.
func (c *Control) Retry(ctx context.Context, userID int64, jobID, by string) (tasktype.Event, error) {
	return c.retry(ctx, userID, jobID, by, "")
}

// RetryByOperator is Retry of any owner's job by the named operator,
// whom the retried event names.
func (c *Control) RetryByOperator(ctx context.Context, jobID, operator string) (tasktype.Event, error) {
	return c.retry(ctx, 0, jobID, tasktype.ByOperator, operator)
}

// ResultRead records that the named operator read the result of the
// completed job jobID (tasktype.EventResultRead), on condition that the
// job has not changed since, and returns the event. A job in another
// state is tasktype.ErrWrongState.
func (c *Control) ResultRead(ctx context.Context, jobID, operator string) (tasktype.Event, error) {
	return c.change(ctx, 0, jobID, "record the reading of", func(s tasktype.Status, last, _ tasktype.Event) (tasktype.Event, error) {
		if s != tasktype.StatusCompleted {
			return tasktype.Event{}, &tasktype.StateError{Status: s, Allowed: []tasktype.Status{tasktype.StatusCompleted}, Action: "downloaded"}
		}
		e := c.next(last, tasktype.EventResultRead, tasktype.ByOperator, operator)
		// No attempt: a stray work item of the job, reading this as
		// the job's newest event, must find it stale.
		e.Attempt = 0
		e.Result = last.Result
		return e, nil
	})
}

func (c *Control) retry(ctx context.Context, userID int64, jobID, by, operator string) (tasktype.Event, error) {
	return c.change(ctx, userID, jobID, "retry", func(s tasktype.Status, last, first tasktype.Event) (tasktype.Event, error) {
		if s != tasktype.StatusFailed && s != tasktype.StatusCancelled {
			return tasktype.Event{}, &tasktype.StateError{Status: s, Allowed: []tasktype.Status{tasktype.StatusFailed, tasktype.StatusCancelled}, Action: "retried"}
		}
		// The new attempt needs the job's payload, which only the
		// enqueued event carries.
		e := c.next(last, tasktype.EventRetried, by, operator)
		e.Payload, e.EnqueuedAt = first.Payload, first.Time
		return e, nil
	})
}

func (c *Control) change(ctx context.Context, userID int64, jobID, verb string, step func(s tasktype.Status, last, first tasktype.Event) (tasktype.Event, error)) (tasktype.Event, error) {
	for range 5 {
		history, err := c.events.History(ctx, userID, jobID)
		if err != nil {
			return tasktype.Event{}, fmt.Errorf("%s task %s: %w", verb, jobID, err)
		}
		task, taken := projection.Replay(history)
		if len(taken) == 0 {
			// No enqueued event first: no job the state machine knows.
			return tasktype.Event{}, fmt.Errorf("%s task %s: %w", verb, jobID, tasktype.ErrNotFound)
		}
		// The step is decided from the newest event the state machine
		// took, and appended on condition that nothing at all was
		// written since the newest event in the log.
		last := history[len(history)-1]
		e, err := step(task.Status, taken[len(taken)-1], taken[0])
		if err != nil {
			return tasktype.Event{}, fmt.Errorf("%s task %s: %w", verb, jobID, err)
		}
		seq, err := c.events.Append(ctx, e, last.Seq)
		if errors.Is(err, tasktype.ErrConflict) {
			continue // a worker moved the job on; decide again
		}
		if err != nil {
			return tasktype.Event{}, fmt.Errorf("%s task %s: %w", verb, jobID, err)
		}
		e.Seq = seq
		return e, nil
	}
	return tasktype.Event{}, fmt.Errorf("%s task %s: %w", verb, jobID, tasktype.ErrConflict)
}

func (c *Control) next(last tasktype.Event, kind tasktype.EventKind, by, operator string) tasktype.Event {
	return tasktype.Event{
		ID:       nuid.Next(),
		Kind:     kind,
		JobID:    last.JobID,
		JobType:  last.JobType,
		UserID:   last.UserID,
		Time:     c.now().UTC(),
		Attempt:  last.Attempt,
		By:       by,
		Operator: operator,
	}
}
