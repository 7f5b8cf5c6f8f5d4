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
}

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
