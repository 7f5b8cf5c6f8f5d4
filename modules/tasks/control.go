package tasks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nuid"
)

// ErrWrongState means the task is not in a state the request applies
// to, such as cancelling a completed task. The error is a *StateError.
var ErrWrongState = errors.New("not possible in the task's state")

// StateError says why a cancel or retry does not apply, in words meant
// for the person who asked. It matches ErrWrongState.
type StateError struct {
	Status  Status   // the task's state
	Allowed []Status // the states the request applies to
	Action  string   // "cancelled", "retried"
}

func (e *StateError) Error() string {
	allowed := make([]string, len(e.Allowed))
	for i, s := range e.Allowed {
		allowed[i] = string(s)
	}
	return fmt.Sprintf("the task is %s; only %s tasks can be %s", e.Status, orList(allowed), e.Action)
}

// Unwrap makes a StateError match ErrWrongState.
func (e *StateError) Unwrap() error { return ErrWrongState }

// orList joins ["a","b","c"] as "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// Who asked for a cancel or a retry, as recorded in the event.
const (
	ByUser     = "user"
	ByOperator = "operator"
)

// StatusAfter is the state a task is in when its newest event is of kind
// k. The projection and every state check use it, so they cannot differ.
func StatusAfter(k EventKind) Status {
	switch k {
	case EventStarted, EventProgress:
		return StatusRunning
	case EventSucceeded:
		return StatusCompleted
	case EventRetrying:
		return StatusRetrying
	case EventFailed:
		return StatusFailed
	case EventCancelled:
		return StatusCancelled
	default: // enqueued, retried, released: waiting for a worker
		return StatusPending
	}
}

// Control cancels and retries jobs by appending events to the log. It
// decides from the job's newest event, not from the projection, so it
// is right even while the projection lags.
type Control struct {
	events EventLog
	now    func() time.Time
}

// NewControl returns a Control over events.
func NewControl(events EventLog) *Control {
	return &Control{events: events, now: time.Now}
}

// Cancel cancels a pending, retrying or running job: a queued job never
// starts, and a running job's context is cancelled within a lease check
// (about a second). userID 0 means any owner (operators); otherwise
// another user's job is ErrNotFound. It returns the cancelled event.
func (c *Control) Cancel(ctx context.Context, userID int64, jobID, by string) (Event, error) {
	return c.change(ctx, userID, jobID, "cancel", func(last Event) (Event, error) {
		if s := StatusAfter(last.Kind); !s.Active() {
			return Event{}, &StateError{Status: s, Allowed: []Status{StatusPending, StatusRetrying, StatusRunning}, Action: "cancelled"}
		}
		return c.next(last, EventCancelled, by), nil
	})
}

// Retry runs a failed or cancelled job again, with the job type's full
// allowance of attempts; its history is kept. It returns the retried
// event, which is the new work item.
func (c *Control) Retry(ctx context.Context, userID int64, jobID, by string) (Event, error) {
	var first Event
	return c.change(ctx, userID, jobID, "retry", func(last Event) (Event, error) {
		if s := StatusAfter(last.Kind); s != StatusFailed && s != StatusCancelled {
			return Event{}, &StateError{Status: s, Allowed: []Status{StatusFailed, StatusCancelled}, Action: "retried"}
		}
		if first.Kind == "" {
			// The new attempt needs the job's payload, which only the
			// enqueued event carries.
			h, err := c.events.History(ctx, userID, jobID)
			if err != nil {
				return Event{}, err
			}
			first = h[0]
		}
		e := c.next(last, EventRetried, by)
		e.Payload, e.EnqueuedAt = first.Payload, first.Time
		return e, nil
	})
}

func (c *Control) change(ctx context.Context, userID int64, jobID, verb string, step func(last Event) (Event, error)) (Event, error) {
	for range 5 {
		last, err := c.events.Last(ctx, userID, jobID)
		if err != nil {
			return Event{}, fmt.Errorf("%s task %s: %w", verb, jobID, err)
		}
		e, err := step(last)
		if err != nil {
			return Event{}, fmt.Errorf("%s task %s: %w", verb, jobID, err)
		}
		seq, err := c.events.Append(ctx, e, last.Seq)
		if errors.Is(err, ErrConflict) {
			continue // a worker moved the job on; decide again
		}
		if err != nil {
			return Event{}, fmt.Errorf("%s task %s: %w", verb, jobID, err)
		}
		e.Seq = seq
		return e, nil
	}
	return Event{}, fmt.Errorf("%s task %s: %w", verb, jobID, ErrConflict)
}

func (c *Control) next(last Event, kind EventKind, by string) Event {
	return Event{
		ID:      nuid.Next(),
		Kind:    kind,
		JobID:   last.JobID,
		JobType: last.JobType,
		UserID:  last.UserID,
		Time:    c.now().UTC(),
		Attempt: last.Attempt,
		By:      by,
	}
}
