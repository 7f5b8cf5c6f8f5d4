package tasktype

import (
	"encoding/json"
	"errors"
	"time"
)

// EventKind names a change in a job's life.
type EventKind string

// The job events. Their names are the last token of the event subject.
//
// Enqueued, retrying and retried events are also work items: each asks for
// one more attempt of the job, and workers take them from the broker.
const (
	// EventEnqueued: the job was accepted. Work item for attempt 1.
	EventEnqueued EventKind = "enqueued"
	// EventStarted: a worker began attempt Attempt of MaxAttempts. It is
	// recorded at the attempt's first heartbeat, so only for attempts that
	// outlive one; a shorter attempt's outcome carries StartedAt instead.
	EventStarted EventKind = "started"
	// EventSucceeded: attempt Attempt finished; the job is completed.
	EventSucceeded EventKind = "succeeded"
	// EventRetrying: attempt Attempt failed with Error and the job will
	// be tried again at RetryAt. Work item for attempt Attempt+1.
	EventRetrying EventKind = "retrying"
	// EventFailed: attempt Attempt failed with Error and there will be no
	// other; the job is failed until someone retries it by hand.
	EventFailed EventKind = "failed"
	// EventCancelled: By cancelled the job. A queued job never starts; a
	// running one has its context cancelled.
	EventCancelled EventKind = "cancelled"
	// EventRetried: By asked for a failed or cancelled job to run again,
	// with a fresh allowance of attempts. Work item for attempt Attempt+1.
	EventRetried EventKind = "retried"
	// EventReleased: the worker running attempt Attempt shut down and
	// handed the job back unfinished; the same attempt runs again.
	EventReleased EventKind = "released"
	// EventProgress: attempt Attempt reports Percent done, with Message.
	EventProgress EventKind = "progress"
	// EventResultRead: Operator, an operator, downloaded the completed
	// job's result (Result), which belongs to another user. It records
	// who read what, and changes nothing: the state machine skips it,
	// and it carries no attempt (Attempt 0), so no work item of the job
	// can take it for its own.
	EventResultRead EventKind = "result_read"
)

// IsWorkItem reports whether events of this kind ask for an attempt.
func (k EventKind) IsWorkItem() bool {
	return k == EventEnqueued || k == EventRetrying || k == EventRetried
}

// WorkKinds lists the kinds that are work items.
var WorkKinds = []EventKind{EventEnqueued, EventRetrying, EventRetried}

// Event is one fact about a job, as stored on the event stream. The stream
// is the source of truth; task_result is derived from it.
type Event struct {
	// ID identifies the event itself.
	ID      string    `json:"id"`
	Kind    EventKind `json:"kind"`
	JobID   string    `json:"job_id"`
	JobType string    `json:"job_type"`
	UserID  int64     `json:"user_id"`
	Time    time.Time `json:"time"`

	// Attempt is the attempt the event is about (started, succeeded,
	// retrying, failed, released), or the last attempt made before it
	// (retried, cancelled). Work items run attempt Attempt+1.
	Attempt int `json:"attempt,omitempty"`
	// MaxAttempts is the allowance the attempt runs under (started,
	// retrying). Zero on a work item means the job type's policy decides.
	MaxAttempts int `json:"max_attempts,omitempty"`
	// Worker names the process that ran the attempt: started, progress,
	// and every outcome a worker records (succeeded, retrying, failed,
	// released).
	Worker string `json:"worker,omitempty"`
	// Lease is the lease the worker holds the attempt under, on a
	// started event. A worker that records it promises a sign of life for
	// the attempt (its started event, then progress events, repeating the
	// latest report when there is no new one) at least every third of it,
	// so that a running task whose newest event is older than Lease has
	// lost its worker: see Task.WorkerLost. Starts recorded before workers
	// made that promise have none.
	Lease time.Duration `json:"lease,omitempty"`
	// StartedAt is when the attempt began, on every outcome a worker
	// records. A job done before its first heartbeat has no started
	// event (it would cost a durable write per job for a state nobody
	// can see): its outcome carries the start instead, and the
	// projection and the history read it from there.
	StartedAt time.Time `json:"started_at,omitzero"`

	// Payload and EnqueuedAt travel with every work item, so that any
	// attempt's handler sees the job as it was enqueued.
	Payload    json.RawMessage `json:"payload,omitempty"`    // work items
	EnqueuedAt time.Time       `json:"enqueued_at,omitzero"` // retrying, retried

	Error   string    `json:"error,omitempty"`   // retrying, failed
	RetryAt time.Time `json:"retry_at,omitzero"` // retrying
	By      string    `json:"by,omitempty"`      // cancelled, retried: "user" or "operator"
	// Operator names the operator (their email address) who cancelled
	// or retried the job (By "operator") or read its result
	// (result_read), from the operator console.
	Operator string     `json:"operator,omitempty"`
	Result   *ResultRef `json:"result,omitempty"`  // succeeded, when the job wrote a file
	Summary  string     `json:"summary,omitempty"` // succeeded
	Percent  int        `json:"percent,omitempty"` // progress
	// Message is a line for the task's owner: on a progress event how far
	// the job has got; on a retrying or failed event the plain sentence
	// shown instead of Error, which is for operators. Failures recorded
	// before they carried one have none (see FailureMessage).
	Message string `json:"message,omitempty"` // progress, retrying, failed
	// Fix, on a failed event, says the job refused its input (Rejected)
	// and where its owner puts it right: running it again as it is
	// would fail the same way.
	Fix *Fix `json:"fix,omitempty"`

	// Seq is the event's position in the stream, set when it is read back.
	Seq uint64 `json:"-"`
	// Implied marks a start that is not stored: one an outcome carries,
	// put in a history by WithStarts. It has its outcome's Seq.
	Implied bool `json:"-"`
}

// ResultRef points at a job's stored result file.
type ResultRef struct {
	Object      string `json:"object"` // name in the results store
	Name        string `json:"name"`   // file name offered on download
	ContentType string `json:"content_type"`
	Size        uint64 `json:"size"`
	Digest      string `json:"digest"` // as the store reports it, e.g. SHA-256=...
}

// Job returns the job an event is about, as the handler of its next
// attempt sees it.
func (e *Event) Job() Job {
	at := e.EnqueuedAt
	if at.IsZero() {
		at = e.Time
	}
	return Job{ID: e.JobID, Type: e.JobType, UserID: e.UserID, Payload: e.Payload, EnqueuedAt: at, EventSeq: e.Seq, Attempt: e.Attempt + 1}
}

// ErrConflict means a conditional Append lost: the job gained another
// event since the one the caller read.
var ErrConflict = errors.New("job changed meanwhile")

// ImpliedStart is the started event an outcome carries the start of
// (StartedAt set): an attempt shorter than a heartbeat records no
// started event, and its outcome stands for it. The event is not stored:
// it has the outcome's sequence and no ID of its own.
func ImpliedStart(outcome Event) Event {
	return Event{
		Kind: EventStarted, JobID: outcome.JobID, JobType: outcome.JobType, UserID: outcome.UserID,
		Time: outcome.StartedAt, Attempt: outcome.Attempt, MaxAttempts: outcome.MaxAttempts,
		Worker: outcome.Worker, Seq: outcome.Seq, Implied: true,
	}
}

// WithStarts returns a job's history with the start of every attempt in
// it: for each outcome that carries its start (StartedAt) and follows no
// started event of its attempt, the started event it stands for, just
// before it. Histories read for people (the task page, app tasks show,
// the account export) go through it, so that each attempt shows when and
// where it ran whether or not it outlived a heartbeat.
func WithStarts(events []Event) []Event {
	var out []Event
	started := -1 // attempt of the newest started event seen
	for i, e := range events {
		if e.Kind == EventStarted {
			started = e.Attempt
		}
		if !e.StartedAt.IsZero() && e.Attempt != started && e.Kind != EventStarted && e.Kind != EventProgress {
			if out == nil {
				out = append(make([]Event, 0, len(events)+1), events[:i]...)
			}
			out = append(out, ImpliedStart(e))
			started = e.Attempt
		}
		if out != nil {
			out = append(out, e)
		}
		if e.Kind != EventStarted && e.Kind != EventProgress {
			started = -1 // the attempt ended, or a new one was asked for
		}
	}
	if out == nil {
		return events
	}
	return out
}
