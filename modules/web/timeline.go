package web

import (
	"strconv"
	"strings"
	"time"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// timelineEntry is one event of a task's history as the task page shows
// it: when, what kind (for styling) and a plain-English line.
type timelineEntry struct {
	Time time.Time
	Kind tasktype.EventKind
	Text string
}

// timeline turns a task's events, oldest first, into the lines of its
// history: the events tasks.Replay took, so that the history never shows
// a step the task's state does not reflect. Times inside the lines are shown in loc, the user's zone.
// Progress reports are left out: a long job makes one a second, and the
// page shows the latest beside the task's state.
func timeline(events []tasktype.Event, loc *time.Location) []timelineEntry {
	out := make([]timelineEntry, 0, len(events))
	for _, e := range events {
		if e.Kind == tasktype.EventProgress {
			continue
		}
		out = append(out, timelineEntry{Time: e.Time, Kind: e.Kind, Text: describe(e, loc)})
	}
	return out
}

// describe says what one event means to the task's owner. A failure
// gives the sentence it carried for them, never its error, which is for
// operators (app tasks show).
func describe(e tasktype.Event, loc *time.Location) string {
	attempt := "Attempt " + strconv.Itoa(e.Attempt)
	switch e.Kind {
	case tasktype.EventEnqueued:
		return "Queued"
	case tasktype.EventStarted:
		s := attempt
		if e.MaxAttempts > 0 {
			s += " of " + strconv.Itoa(e.MaxAttempts)
		}
		s += " started"
		if e.Worker != "" {
			s += " on " + e.Worker
		}
		return s
	case tasktype.EventSucceeded:
		return withReason(attempt+" succeeded", e.Summary)
	case tasktype.EventRetrying:
		// The error may end a sentence of its own; one full stop is enough.
		s := withReason(attempt+" failed", strings.TrimRight(e.Message, ". "))
		if e.RetryAt.IsZero() {
			return s + ". It will be tried again"
		}
		return s + ". Next attempt at " + clock(e.RetryAt, e.Time, loc)
	case tasktype.EventFailed:
		if e.Attempt == 0 {
			return withReason("Failed", e.Message)
		}
		return withReason("Failed for good after attempt "+strconv.Itoa(e.Attempt), e.Message)
	case tasktype.EventCancelled:
		return "Cancelled" + byWhom(e.By)
	case tasktype.EventRetried:
		return "Retried" + byWhom(e.By)
	case tasktype.EventReleased:
		worker := e.Worker
		if worker == "" {
			worker = "its worker"
		}
		return attempt + " handed back by " + worker + " as it shut down"
	}
	// A kind newer than this code: say so rather than hide the event.
	return "Recorded “" + string(e.Kind) + "”"
}

func withReason(s, reason string) string {
	if reason == "" {
		return s
	}
	return s + ": " + reason
}

// clock shows t as a time of day in loc, with the date as well when it
// falls on another day than ref (the event's own time, shown beside it).
func clock(t, ref time.Time, loc *time.Location) string {
	t, ref = t.In(loc), ref.In(loc)
	if t.YearDay() != ref.YearDay() || t.Year() != ref.Year() {
		return t.Format("2 Jan 2006, 15:04:05")
	}
	return t.Format("15:04:05")
}

// byWhom names who cancelled or retried a task, as the owner reads it.
func byWhom(by string) string {
	switch by {
	case "":
		return ""
	case tasktype.ByUser:
		return " by you"
	case tasktype.ByOperator:
		return " by an operator"
	}
	return " by " + by
}

// endLabel names the time a finished task ended, after its state.
func endLabel(s tasktype.Status) string {
	switch s {
	case tasktype.StatusCompleted:
		return "Completed"
	case tasktype.StatusFailed:
		return "Failed"
	case tasktype.StatusCancelled:
		return "Cancelled"
	}
	return "Finished"
}
