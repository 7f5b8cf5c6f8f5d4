package tasktype

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Status is a task's state as the projection shows it.
type Status string

// The task states: the seed's four, plus retrying (an attempt failed and
// another is scheduled) and cancelled.
const (
	StatusPending   Status = "pending"
	StatusRunning   Status = "running"
	StatusRetrying  Status = "retrying"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
)

// Statuses lists every state, in the order a task may pass through them.
var Statuses = []Status{StatusPending, StatusRunning, StatusRetrying, StatusCompleted, StatusFailed, StatusCancelled}

// Active reports whether the task may still change by itself.
func (s Status) Active() bool {
	return s == StatusPending || s == StatusRunning || s == StatusRetrying
}

// Valid reports whether s is one of Statuses.
func (s Status) Valid() bool {
	for _, v := range Statuses {
		if s == v {
			return true
		}
	}
	return false
}

// StatusAfter is the state a task is in when its newest event is of kind
// k. The projection and every state check use it, so they cannot differ.
func StatusAfter(k EventKind) Status {
	switch k {
	case EventStarted, EventProgress:
		return StatusRunning
	case EventSucceeded, EventResultRead:
		// Only a completed job's result is read, and reading it
		// leaves the job completed.
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

// Who asked for a cancel or a retry, as recorded in the event.
const (
	ByUser     = "user"
	ByOperator = "operator"
)

// ErrNotFound means no such task, or not one the asker may see.
var ErrNotFound = errors.New("task not found")

// ErrUnknownType is the error for a job type the task system's registry
// does not know, where one is named (pausing a type).
var ErrUnknownType = errors.New("no such job type")

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

// Filter selects tasks: an operator's, or with UserID one user's (the
// task list). Zero fields select everything.
type Filter struct {
	Status Status
	UserID int64
	Type   string
	// CreatedFrom and CreatedBefore bound when the tasks were created:
	// from CreatedFrom on, and before CreatedBefore. Zero: no bound.
	CreatedFrom, CreatedBefore time.Time
	// UpdatedFrom, when set, keeps the tasks last changed from then on.
	UpdatedFrom time.Time
	// After, when set, continues a listing from a task it showed (keyset
	// paging: no offset, so a page deep in the list costs what the first
	// does, and a task added meanwhile shifts nothing).
	After *Cursor
	// ErrorContains, when set, keeps the tasks whose error (the
	// operator's detail) contains it, ignoring case.
	ErrorContains string
	// Limit caps the rows returned, newest first. Default 50.
	Limit int
}

// Cursor is a place in a listing: a task's created time and id, the
// listing's order. Newer lists the tasks just newer than it (still
// returned newest first), otherwise those just older.
type Cursor struct {
	CreatedAt time.Time
	ID        string
	Newer     bool
}

// CursorAt is the place of task t in a listing, going the given way.
func CursorAt(t Task, newer bool) *Cursor {
	return &Cursor{CreatedAt: t.CreatedAt, ID: t.ID, Newer: newer}
}
