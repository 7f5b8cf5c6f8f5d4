package web

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// taskData is what the task page shows.
type taskData struct {
	// Task is a pointer so that the template can call its pointer
	// methods (HasResult).
	Task     *tasktype.Task
	Timeline []timelineEntry
	// Lagging is set when the projection has no row for the task yet and
	// Task was made from its events.
	Lagging bool
	// Note says which part of the page is missing, and why.
	Note string
	// Expired says the completed task's result is gone; RegenKey is the
	// key of its Generate again button.
	Expired  bool
	RegenKey string
	// Fix, for a task failed because it refused its input, is where the
	// user puts the input right, offered instead of Retry, which would
	// fail the same way.
	Fix *tasktype.Fix
}

// showTask shows one of the user's tasks with its whole history
// (GET /tasks/{id}). Unknown ids and other users' tasks are 404, as
// taskID makes malformed ids.
func (s *server) showTask(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	u := currentUser(r)
	loc := location(u.Timezone)
	live := s.liveURL(r.Context()) // before the task: no event after it is missed
	d, err := s.loadTask(r.Context(), u.ID, id, loc)
	switch {
	case errors.Is(err, tasktype.ErrNotFound):
		s.notFound(w, r)
		return
	case unavailable(err):
		s.queueUnavailable(w, r, err, "show task",
			"This task cannot be shown until the background task queue can be reached again. Please try again in a minute.",
			"task_id", id, "user_id", u.ID)
		return
	case err != nil:
		s.serverError(w, r, err, "task_id", id)
		return
	}
	if d.Expired, err = s.expired(r.Context(), d.Task); err != nil {
		s.serverError(w, r, err, "task_id", id)
		return
	}
	d.RegenKey = rand.Text()
	s.render(w, r, "task", view{
		Title: s.kinds.label(d.Task.TaskType), Nav: "tasks", Loc: loc, Data: d,
		Notice: doneNotice(r.URL.Query().Get("done"), d.Task.Status),
		// A lagging page is incomplete whatever the task's state.
		Refresh: d.Task.Status.Active() || d.Lagging,
		Live:    live,
	})
}

// loadTask reads the task's row from the projection, then its history
// from the event log (in that order, so the history is never older than
// the row). Both reads are scoped to the user, so another user's task is
// missing from both. Either one is enough for a page:
//
//   - Events but no row: the projection lags behind the log, e.g. the
//     user followed a link to a task enqueued a moment ago. The log is the
//     source of truth, and Cancel and Retry act on it, so the page shows
//     the task from its events (and refreshes until the row is there)
//     rather than a 404 that the next refresh would contradict.
//   - A row but no history (the log unreachable, or its events purged):
//     the row is still worth showing, with a note saying what is missing.
//
// Neither is tasktype.ErrNotFound.
func (s *server) loadTask(ctx context.Context, userID int64, id string, loc *time.Location) (taskData, error) {
	row, err := s.cfg.Tasks.GetForUser(ctx, userID, id)
	noRow := errors.Is(err, tasktype.ErrNotFound)
	if err != nil && !noRow {
		return taskData{}, err
	}
	hctx, cancel := context.WithTimeout(ctx, s.cfg.EnqueueTimeout)
	defer cancel()
	events, err := s.cfg.History.History(hctx, userID, id)
	// The history shows what the state machine took, as the row does: an
	// event it skipped (a failed event after the job succeeded) changed
	// nothing, and showing it would contradict the task's state.
	replayed, events := tasks.Replay(events)
	// The log keeps no personal text: sentences that name the user are
	// built now (tasktype.Kind.Restate).
	s.kinds.restateEvents(ctx, events)
	if !noRow {
		row.ResultData = s.kinds.restate(ctx, row.TaskType, row.UserID, row.ResultData)
	}
	if err == nil && len(events) == 0 {
		err = tasktype.ErrNotFound
	}
	switch {
	case err == nil && noRow:
		t := fromHistory(replayed)
		return taskData{Task: &t, Timeline: timeline(events, loc), Lagging: true,
			Note: "This task was queued a moment ago; its details will show in a few seconds."}, nil
	case err == nil:
		return taskData{Task: &row, Timeline: timeline(events, loc), Fix: refusedInput(row.Status, events)}, nil
	case noRow:
		return taskData{}, err
	case errors.Is(err, tasktype.ErrNotFound):
		return taskData{Task: &row, Note: "The detailed history of this task is no longer kept."}, nil
	}
	s.log.WarnContext(ctx, "show task without its history", "task_id", id, "user_id", userID, "err", err,
		"request_id", middleware.GetReqID(ctx))
	return taskData{Task: &row, Note: "The history of this task cannot be read right now. It will show again when the task queue can be reached."}, nil
}

// refusedInput is where a failed task's refused input is fixed: the fix
// its failure carried, when the task is still failed and the fix is a
// page of this app; nil otherwise.
func refusedInput(status tasktype.Status, events []tasktype.Event) *tasktype.Fix {
	if status != tasktype.StatusFailed || len(events) == 0 {
		return nil
	}
	last := events[len(events)-1]
	if last.Kind != tasktype.EventFailed {
		return nil
	}
	return ownFix(last.Fix)
}

// taskFix is the fix a task list row offers instead of Retry: the
// failed task's own (tasktype.Task.Fix), when it is a page of this app.
func taskFix(t tasktype.Task) *tasktype.Fix {
	if t.Status != tasktype.StatusFailed {
		return nil
	}
	return ownFix(t.Fix)
}

// ownFix is f when it is a labelled page of this app, nil otherwise: a
// fix is linked, and a link to another site (//host, /\host, a URL) is
// never shown, whoever wrote the event.
func ownFix(f *tasktype.Fix) *tasktype.Fix {
	if f == nil || f.Label == "" ||
		!strings.HasPrefix(f.Href, "/") || strings.HasPrefix(f.Href, "//") || strings.HasPrefix(f.Href, "/\\") {
		return nil
	}
	return f
}

// fromHistory stands in for a row the projection has not written yet:
// what the replayed events say at a glance. The timeline shows the
// rest; the result is left out, since the download reads the row.
func fromHistory(r tasktype.Task) tasktype.Task {
	return tasktype.Task{
		ID: r.ID, UserID: r.UserID, TaskType: r.TaskType,
		Status: r.Status, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}

// doneNotice confirms what the user just did to the task (?done=, set by
// changeTask's redirect). A retry's notice follows the task, since the
// page refreshes under the same address until the task settles.
func doneNotice(done string, s tasktype.Status) string {
	switch {
	case done == "cancelled":
		return "Cancelled."
	case done != "retried":
		return ""
	case s.Active():
		return "Retrying: the task is queued again."
	case s == tasktype.StatusCompleted:
		return "The retry succeeded."
	case s == tasktype.StatusFailed:
		return "The retry failed as well; the reason is below."
	}
	return ""
}
