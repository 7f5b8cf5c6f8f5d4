package tasktype

import "time"

// Task is a task's state as read from the task_result projection: what
// the task list, the task page and the operator commands show. The
// projection keeps its own row type for the database.
type Task struct {
	ID         string
	UserID     int64
	TaskType   string
	Status     Status
	ResultData string
	ResultPath string
	Error      string
	// UserMessage is the sentence the owner of a failed or retrying task
	// sees instead of Error; see Message.
	UserMessage string
	// Fix is where the owner of a task that failed because it refused
	// its input puts that input right (RejectedError); nil otherwise.
	Fix         *Fix
	CreatedAt   time.Time
	CompletedAt time.Time
	StartedAt   time.Time
	UpdatedAt   time.Time
	Attempts    int
	MaxAttempts int
	Worker      string
	ResultName  string
	ResultType  string
	ResultSize  int64
	Digest      string
	LastSeq     uint64
	// NextAttemptAt is when a retrying task runs again.
	NextAttemptAt time.Time
	// ChangedBy says who cancelled or last retried the task by hand.
	ChangedBy string
	// ProgressPercent and ProgressMessage are the running attempt's
	// latest progress report.
	ProgressPercent int
	ProgressMessage string
	// Lease is the lease the running attempt's worker holds it under, as
	// its started event recorded it (Event.Lease); zero for an attempt
	// started by a worker that did not record one.
	Lease time.Duration
}

// LastHeard is when the running attempt's worker last gave a sign of
// life: the time of the task's newest event, its start or a progress
// report, since a running task's row changes with nothing else. Zero
// unless the task is running.
//
// Why the event log and not the broker: it is the one record both brokers
// share (JetStream keeps no per-message time of a consumer's pending
// deliveries; Redis's pending-entry idle time exists only there), and the
// task list and page already read it. Heartbeats themselves write no
// event, so a worker running an attempt writes one at least every third
// of its lease (Event.Lease): one event per job every few seconds of a
// long job, none for a job shorter than its first heartbeat.
func (t *Task) LastHeard() time.Time {
	if t.Status != StatusRunning {
		return time.Time{}
	}
	return t.UpdatedAt
}

// WorkerLost reports whether, at now, the running task's worker has been
// silent for longer than its lease: it stopped (or lost its way to the
// broker), and the job waits for a worker to take it over. A worker that
// recorded no lease made no promise to be heard from, so its task is
// never judged lost.
func (t *Task) WorkerLost(now time.Time) bool {
	return t.Status == StatusRunning && t.Lease > 0 && now.Sub(t.UpdatedAt) > t.Lease
}

// WorkerLostMessage is the sentence the owner of a running task whose
// worker was lost (WorkerLost) is shown.
const WorkerLostMessage = "The worker running this task stopped responding. The task will resume when a worker is free."

// LostWorkerMessage is the sentence the owner of a task is shown for an
// attempt that was counted as failed because its worker stopped (was
// killed, crashed, or lost the broker) before finishing it.
const LostWorkerMessage = "The worker running this task stopped responding."

// Message is the plain sentence the task's owner is shown about its
// failure: the one its failure carried, or one for its state if it
// carried none (recorded before failures did). Error is for operators.
func (t *Task) Message() string {
	if t.UserMessage != "" {
		return t.UserMessage
	}
	return FailureMessage(t.Status)
}

// HasResult reports whether a completed task has a file to download.
func (t *Task) HasResult() bool { return t.Status == StatusCompleted && t.ResultPath != "" }
