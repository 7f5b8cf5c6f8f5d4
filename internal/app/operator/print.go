package operator

import (
	"cmp"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// printTaskTable prints rows as an aligned table, times in UTC.
func printTaskTable(w io.Writer, rows []tasktype.Task, emails map[int64]string) {
	if len(rows) == 0 {
		fmt.Fprintln(w, "no tasks match")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tTYPE\tSTATUS\tATTEMPTS\tCREATED (UTC)\tUPDATED (UTC)\tLAST ERROR")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, userLabel(r.UserID, emails[r.UserID]), r.TaskType, r.Status,
			attempts(r.Attempts, r.MaxAttempts), utc(r.CreatedAt, false), utc(r.UpdatedAt, false), truncate(oneLine(r.Error), errorWidth))
	}
	tw.Flush()
}

// printTask prints a task_result row, one field a line, times in UTC.
func printTask(w io.Writer, r tasktype.Task, email string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	field := func(name, value string) {
		if value != "" {
			fmt.Fprintf(tw, "%s\t%s\n", name, value)
		}
	}
	field("task", r.ID)
	field("user", fmt.Sprintf("%s (id %d)", cmp.Or(email, "unknown user"), r.UserID))
	field("type", r.TaskType)
	field("status", string(r.Status))
	field("attempts", attempts(r.Attempts, r.MaxAttempts))
	field("created", utc(r.CreatedAt, false))
	field("started", utc(r.StartedAt, false))
	field("updated", utc(r.UpdatedAt, false))
	field("finished", utc(r.CompletedAt, false))
	field("next attempt", utc(r.NextAttemptAt, false))
	field("worker", r.Worker)
	if r.Status == tasktype.StatusRunning && r.ProgressMessage != "" {
		field("progress", fmt.Sprintf("%d%% %s", r.ProgressPercent, r.ProgressMessage))
	}
	field("changed by", r.ChangedBy)
	field("error", oneLine(r.Error))
	if r.UserMessage != "" {
		field("user sees", oneLine(r.UserMessage))
	}
	field("summary", r.ResultData)
	if r.ResultPath != "" {
		field("result", fmt.Sprintf("%s (%s, %d bytes, %s)", r.ResultName, r.ResultType, r.ResultSize, tasktype.HexDigest(r.Digest)))
	}
	tw.Flush()
}

// printHistory prints a job's events as a timeline, one line each: time
// (UTC), time since enqueue, stream sequence, kind and what happened.
func printHistory(w io.Writer, events []tasktype.Event) {
	fmt.Fprintln(w, "history (times UTC):")
	var first time.Time
	for i, e := range events {
		if i == 0 {
			first = e.Time
		}
		since := "+" + e.Time.Sub(first).Round(time.Millisecond).String()
		fmt.Fprintf(w, "  %s  %-9s  #%-6d %-9s  %s\n", utc(e.Time, true), since, e.Seq, e.Kind, describeEvent(e))
	}
}

// userSees quotes the sentence a failure showed the task's owner, if it
// carried one, after the error operators see.
func userSees(e tasktype.Event) string {
	if e.Message == "" {
		return ""
	}
	return fmt.Sprintf(" (the user sees: %q)", oneLine(e.Message))
}

// describeEvent says what an event records, for the timeline.
func describeEvent(e tasktype.Event) string {
	switch e.Kind {
	case tasktype.EventEnqueued:
		if len(e.Payload) == 0 {
			return "queued"
		}
		return "queued, payload " + truncate(string(e.Payload), 80)
	case tasktype.EventStarted:
		return fmt.Sprintf("attempt %s started on worker %s", attempts(e.Attempt, e.MaxAttempts), e.Worker)
	case tasktype.EventSucceeded:
		s := fmt.Sprintf("attempt %d succeeded", e.Attempt)
		if e.Summary != "" {
			s += ": " + e.Summary
		}
		if r := e.Result; r != nil {
			s += fmt.Sprintf("; result %s (%d bytes)", r.Name, r.Size)
		}
		return s
	case tasktype.EventRetrying:
		return fmt.Sprintf("attempt %s failed: %s; next attempt at %s%s", attempts(e.Attempt, e.MaxAttempts), oneLine(e.Error), utc(e.RetryAt, true), userSees(e))
	case tasktype.EventFailed:
		if e.Attempt == 0 {
			return "failed before any attempt: " + oneLine(e.Error) + userSees(e)
		}
		return fmt.Sprintf("attempt %s failed: %s; no more attempts%s", attempts(e.Attempt, e.MaxAttempts), oneLine(e.Error), userSees(e))
	case tasktype.EventCancelled:
		return fmt.Sprintf("cancelled by %s %s", cmp.Or(e.By, "?"), afterAttempts(e.Attempt))
	case tasktype.EventRetried:
		return fmt.Sprintf("retried by %s; attempt %d queued", cmp.Or(e.By, "?"), e.Attempt+1)
	case tasktype.EventReleased:
		return fmt.Sprintf("attempt %d handed back by worker %s as it shut down; it runs again", e.Attempt, e.Worker)
	case tasktype.EventProgress:
		return fmt.Sprintf("attempt %d at %d%%: %s", e.Attempt, e.Percent, oneLine(e.Message))
	}
	return "(an event kind this version does not know)"
}

// TaskView is a task_result row as app tasks list/show --json print it.
type TaskView struct {
	ID            string              `json:"id"`
	UserID        int64               `json:"user_id"`
	UserEmail     string              `json:"user_email,omitempty"`
	Type          string              `json:"type"`
	Status        tasktype.Status     `json:"status"`
	Attempts      int                 `json:"attempts"`
	MaxAttempts   int                 `json:"max_attempts"`
	CreatedAt     time.Time           `json:"created_at"`
	StartedAt     time.Time           `json:"started_at,omitzero"`
	UpdatedAt     time.Time           `json:"updated_at"`
	CompletedAt   time.Time           `json:"completed_at,omitzero"`
	NextAttemptAt time.Time           `json:"next_attempt_at,omitzero"`
	Worker        string              `json:"worker,omitempty"`
	ChangedBy     string              `json:"changed_by,omitempty"`
	Error         string              `json:"error,omitempty"`
	UserMessage   string              `json:"user_message,omitempty"`
	Summary       string              `json:"summary,omitempty"`
	Result        *tasktype.ResultRef `json:"result,omitempty"`
}

func newTaskView(r tasktype.Task, email string) TaskView {
	v := TaskView{
		ID: r.ID, UserID: r.UserID, UserEmail: email, Type: r.TaskType, Status: r.Status,
		Attempts: r.Attempts, MaxAttempts: r.MaxAttempts,
		CreatedAt: r.CreatedAt.UTC(), StartedAt: r.StartedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
		CompletedAt: r.CompletedAt.UTC(), NextAttemptAt: r.NextAttemptAt.UTC(),
		Worker: r.Worker, ChangedBy: r.ChangedBy, Error: r.Error, UserMessage: r.UserMessage, Summary: r.ResultData,
	}
	if r.ResultPath != "" {
		v.Result = &tasktype.ResultRef{Object: r.ResultPath, Name: r.ResultName, ContentType: r.ResultType, Size: uint64(r.ResultSize), Digest: tasktype.HexDigest(r.Digest)}
	}
	return v
}

// EventView is an event with its stream sequence, which tasktype.Event
// leaves out of its JSON.
type EventView struct {
	Seq uint64 `json:"seq"`
	tasktype.Event
}

func statusNames() string {
	names := make([]string, len(tasktype.Statuses))
	for i, s := range tasktype.Statuses {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// utc formats t in UTC, to the millisecond for timelines; "" when zero.
func utc(t time.Time, millis bool) string {
	if t.IsZero() {
		return ""
	}
	if millis {
		return t.UTC().Format("2006-01-02 15:04:05.000Z")
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func attempts(n, allowed int) string {
	if allowed <= 0 {
		return strconv.Itoa(n) + "/-" // not started: the job type's policy decides
	}
	return strconv.Itoa(n) + "/" + strconv.Itoa(allowed)
}

// afterAttempts says how many attempts came before a cancel.
func afterAttempts(n int) string {
	switch n {
	case 0:
		return "before any attempt"
	case 1:
		return "after 1 attempt"
	}
	return "after " + strconv.Itoa(n) + " attempts"
}

func userLabel(id int64, email string) string {
	if email == "" {
		return "#" + strconv.FormatInt(id, 10)
	}
	return email
}

// oneLine keeps a multi-line error on one line of a table or timeline.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// truncate shortens s to at most n runes, marking the cut with "…".
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
