package web

import (
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks"
)

func TestDescribe(t *testing.T) {
	london := location("Europe/London")
	at := time.Date(2026, 7, 1, 13, 0, 0, 0, time.UTC) // 14:00 BST
	tests := []struct {
		name string
		e    tasks.Event
		want string
	}{
		{"enqueued", tasks.Event{Kind: tasks.EventEnqueued}, "Queued"},
		{"started", tasks.Event{Kind: tasks.EventStarted, Attempt: 1, MaxAttempts: 3, Worker: "host:42"}, "Attempt 1 of 3 started on host:42"},
		{"started, older event without allowance or worker", tasks.Event{Kind: tasks.EventStarted, Attempt: 2}, "Attempt 2 started"},
		{"succeeded", tasks.Event{Kind: tasks.EventSucceeded, Attempt: 2, Summary: "1,204 activities"}, "Attempt 2 succeeded: 1,204 activities"},
		{"succeeded without summary", tasks.Event{Kind: tasks.EventSucceeded, Attempt: 1}, "Attempt 1 succeeded"},
		{"retrying", tasks.Event{Kind: tasks.EventRetrying, Time: at, Attempt: 1, Error: "smtp: dial tcp: i/o timeout", Message: "The mail server did not answer",
			RetryAt: at.Add(2*time.Minute + 31*time.Second)}, "Attempt 1 failed: The mail server did not answer. Next attempt at 14:02:31"},
		{"retrying, message ends a sentence", tasks.Event{Kind: tasks.EventRetrying, Time: at, Attempt: 1, Error: "write: ENOSPC", Message: "The disk is full.", RetryAt: at.Add(time.Second)},
			"Attempt 1 failed: The disk is full. Next attempt at 14:00:01"},
		{"retrying until tomorrow", tasks.Event{Kind: tasks.EventRetrying, Time: at, Attempt: 2, Message: "x", RetryAt: at.Add(12 * time.Hour)},
			"Attempt 2 failed: x. Next attempt at 2 Jul 2026, 02:00:00"},
		{"retrying without a time", tasks.Event{Kind: tasks.EventRetrying, Attempt: 1}, "Attempt 1 failed. It will be tried again"},
		{"retrying recorded before messages: the error is not shown", tasks.Event{Kind: tasks.EventRetrying, Time: at, Attempt: 1, Error: "smtp timeout", RetryAt: at.Add(time.Second)},
			"Attempt 1 failed. Next attempt at 14:00:01"},
		{"failed", tasks.Event{Kind: tasks.EventFailed, Attempt: 3, Error: "standard ST9999: not found", Message: "Your apprenticeship standard is not known"},
			"Failed for good after attempt 3: Your apprenticeship standard is not known"},
		{"failed before any attempt", tasks.Event{Kind: tasks.EventFailed, Error: `no handler registered for job type "x"`}, `Failed`},
		{"cancelled by the user", tasks.Event{Kind: tasks.EventCancelled, By: tasks.ByUser}, "Cancelled by you"},
		{"cancelled by an operator", tasks.Event{Kind: tasks.EventCancelled, By: tasks.ByOperator}, "Cancelled by an operator"},
		{"retried by the user", tasks.Event{Kind: tasks.EventRetried, By: tasks.ByUser}, "Retried by you"},
		{"retried by an operator", tasks.Event{Kind: tasks.EventRetried, By: tasks.ByOperator}, "Retried by an operator"},
		{"released", tasks.Event{Kind: tasks.EventReleased, Attempt: 2, Worker: "host:42"}, "Attempt 2 handed back by host:42 as it shut down"},
		{"released by an unnamed worker", tasks.Event{Kind: tasks.EventReleased, Attempt: 1}, "Attempt 1 handed back by its worker as it shut down"},
		{"kind from a newer version", tasks.Event{Kind: "paused"}, "Recorded “paused”"},
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
		status tasks.Status
		want   string
	}{
		{"cancelled", tasks.StatusCancelled, "Cancelled."},
		{"retried", tasks.StatusPending, "Retrying: the task is queued again."},
		{"retried", tasks.StatusRunning, "Retrying: the task is queued again."},
		{"retried", tasks.StatusCompleted, "The retry succeeded."},
		{"retried", tasks.StatusFailed, "The retry failed as well; the reason is below."},
		{"", tasks.StatusRunning, ""},
		{"<script>", tasks.StatusRunning, ""},
	}
	for _, tt := range tests {
		if got := doneNotice(tt.done, tt.status); got != tt.want {
			t.Errorf("doneNotice(%q, %s) = %q, want %q", tt.done, tt.status, got, tt.want)
		}
	}
}
