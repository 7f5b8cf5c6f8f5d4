package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// EventKind names a change in a job's life.
type EventKind string

// The job events. Their names are the last token of the event subject.
const (
	EventEnqueued  EventKind = "enqueued"
	EventStarted   EventKind = "started"
	EventSucceeded EventKind = "succeeded"
	EventFailed    EventKind = "failed"
)

// Event is one fact about a job, as stored on the event stream. The stream
// is the source of truth; task_result is derived from it.
type Event struct {
	// ID identifies the event itself; brokers use it to drop a repeated
	// publish of the same event.
	ID      string    `json:"id"`
	Kind    EventKind `json:"kind"`
	JobID   string    `json:"job_id"`
	JobType string    `json:"job_type"`
	UserID  int64     `json:"user_id"`
	Time    time.Time `json:"time"`

	Attempt int    `json:"attempt,omitempty"` // started, succeeded, failed
	Worker  string `json:"worker,omitempty"`  // started

	Payload json.RawMessage `json:"payload,omitempty"` // enqueued
	Error   string          `json:"error,omitempty"`   // failed
	Result  *ResultRef      `json:"result,omitempty"`  // succeeded, when the job wrote a file
	Summary string          `json:"summary,omitempty"` // succeeded

	// Seq is the event's position in the stream, set when it is read back.
	Seq uint64 `json:"-"`
}

// ResultRef points at a job's stored result file.
type ResultRef struct {
	Object      string `json:"object"` // name in the results store
	Name        string `json:"name"`   // file name offered on download
	ContentType string `json:"content_type"`
	Size        uint64 `json:"size"`
	Digest      string `json:"digest"` // as the store reports it, e.g. SHA-256=...
}

// Job returns the job an enqueued event describes.
func (e *Event) Job() Job {
	return Job{ID: e.JobID, Type: e.JobType, UserID: e.UserID, Payload: e.Payload, EnqueuedAt: e.Time, EventSeq: e.Seq}
}

// SubjectPrefix starts every job event subject.
const SubjectPrefix = "tasks"

// Subject is where an event is published:
//
//	tasks.<type>.<user>.<job>.<kind>
//
// so that a filter selects one job type (tasks.full_report.>), one user
// (tasks.*.42.>), one job (tasks.*.*.<id>.>) or one kind of event
// (tasks.*.*.*.enqueued, the work queue).
func Subject(jobType string, userID int64, jobID string, kind EventKind) string {
	return SubjectPrefix + "." + jobType + "." + strconv.FormatInt(userID, 10) + "." + jobID + "." + string(kind)
}

// Subject returns the event's own subject.
func (e *Event) Subject() string { return Subject(e.JobType, e.UserID, e.JobID, e.Kind) }

// EventLog is where job events are stored.
type EventLog interface {
	// Append stores the event and returns its stream sequence. Appending
	// an event whose ID was already stored returns the first sequence.
	Append(ctx context.Context, e Event) (uint64, error)
	// Outcome returns the job's terminal event (succeeded or failed), or
	// nil if it has none yet.
	Outcome(ctx context.Context, j Job) (*Event, error)
}

// EventStream delivers stored events in stream order.
type EventStream interface {
	// Follow calls fn for each event after sequence from, in order, until
	// ctx ends or fn returns an error. It keeps following new events.
	Follow(ctx context.Context, from uint64, fn func(Event) error) error
	// LastSeq is the sequence of the newest stored event.
	LastSeq(ctx context.Context) (uint64, error)
}

func eventID(jobID string, attempt int, kind EventKind) string {
	return fmt.Sprintf("%s.%d.%s", jobID, attempt, kind)
}
