package web

import (
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

func TestDescribe(t *testing.T) {
	london := location("Europe/London")
	at := time.Date(2026, 7, 1, 13, 0, 0, 0, time.UTC) // 14:00 BST
	tests := []struct {
		name string
		e    tasktype.Event
		want string
	}{
		{"enqueued", tasktype.Event{Kind: tasktype.EventEnqueued}, "Queued"},
		{"started", tasktype.Event{Kind: tasktype.EventStarted, Attempt: 1, MaxAttempts: 3, Worker: "host:42"}, "Attempt 1 of 3 started on host:42"},
		{"started, older event without allowance or worker", tasktype.Event{Kind: tasktype.EventStarted, Attempt: 2}, "Attempt 2 started"},
		{"succeeded", tasktype.Event{Kind: tasktype.EventSucceeded, Attempt: 2, Summary: "1,204 activities"}, "Attempt 2 succeeded: 1,204 activities"},
		{"succeeded without summary", tasktype.Event{Kind: tasktype.EventSucceeded, Attempt: 1}, "Attempt 1 succeeded"},
		{"retrying", tasktype.Event{Kind: tasktype.EventRetrying, Time: at, Attempt: 1, Error: "smtp: dial tcp: i/o timeout", Message: "The mail server did not answer",
			RetryAt: at.Add(2*time.Minute + 31*time.Second)}, "Attempt 1 failed: The mail server did not answer. Next attempt at 14:02:31"},
		{"retrying, message ends a sentence", tasktype.Event{Kind: tasktype.EventRetrying, Time: at, Attempt: 1, Error: "write: ENOSPC", Message: "The disk is full.", RetryAt: at.Add(time.Second)},
			"Attempt 1 failed: The disk is full. Next attempt at 14:00:01"},
		{"retrying until tomorrow", tasktype.Event{Kind: tasktype.EventRetrying, Time: at, Attempt: 2, Message: "x", RetryAt: at.Add(12 * time.Hour)},
			"Attempt 2 failed: x. Next attempt at 2 Jul 2026, 02:00:00"},
		{"retrying without a time", tasktype.Event{Kind: tasktype.EventRetrying, Attempt: 1}, "Attempt 1 failed. It will be tried again"},
		{"retrying recorded before messages: the error is not shown", tasktype.Event{Kind: tasktype.EventRetrying, Time: at, Attempt: 1, Error: "smtp timeout", RetryAt: at.Add(time.Second)},
			"Attempt 1 failed. Next attempt at 14:00:01"},
		{"failed", tasktype.Event{Kind: tasktype.EventFailed, Attempt: 3, Error: "standard ST9999: not found", Message: "Your apprenticeship standard is not known"},
			"Failed for good after attempt 3: Your apprenticeship standard is not known"},
		{"failed before any attempt", tasktype.Event{Kind: tasktype.EventFailed, Error: `no handler registered for job type "x"`}, `Failed`},
		{"cancelled by the user", tasktype.Event{Kind: tasktype.EventCancelled, By: tasktype.ByUser}, "Cancelled by you"},
		{"cancelled by an operator", tasktype.Event{Kind: tasktype.EventCancelled, By: tasktype.ByOperator}, "Cancelled by an operator"},
		{"retried by the user", tasktype.Event{Kind: tasktype.EventRetried, By: tasktype.ByUser}, "Retried by you"},
		{"retried by an operator", tasktype.Event{Kind: tasktype.EventRetried, By: tasktype.ByOperator}, "Retried by an operator"},
		{"released", tasktype.Event{Kind: tasktype.EventReleased, Attempt: 2, Worker: "host:42"}, "Attempt 2 handed back by host:42 as it shut down"},
		{"released by an unnamed worker", tasktype.Event{Kind: tasktype.EventReleased, Attempt: 1}, "Attempt 1 handed back by its worker as it shut down"},
		{"kind from a newer version", tasktype.Event{Kind: "paused"}, "Recorded “paused”"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := describe(tt.e, london); got != tt.want {
				t.Fatalf("describe = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDoneNotice(t *testing.T) {
	tests := []struct {
		done   string
		status tasktype.Status
		want   string
	}{
		{"cancelled", tasktype.StatusCancelled, "Cancelled."},
		{"retried", tasktype.StatusPending, "Retrying: the task is queued again."},
		{"retried", tasktype.StatusRunning, "Retrying: the task is queued again."},
		{"retried", tasktype.StatusCompleted, "The retry succeeded."},
		{"retried", tasktype.StatusFailed, "The retry failed as well; the reason is below."},
		{"", tasktype.StatusRunning, ""},
		{"<script>", tasktype.StatusRunning, ""},
	}
	for _, tt := range tests {
		if got := doneNotice(tt.done, tt.status); got != tt.want {
			t.Errorf("doneNotice(%q, %s) = %q, want %q", tt.done, tt.status, got, tt.want)
		}
	}
}
