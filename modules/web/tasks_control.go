package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"unicode"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// taskAction is a change a user may ask for on one of their tasks.
type taskAction struct {
	verb string // "cancel", "retry": in logs and messages
	done string // "cancelled", "retried": the task page's ?done=
	do   func(ctx context.Context, userID int64, jobID, by string) (tasktype.Event, error)
}

// cancelTask cancels a pending, retrying or running task
// (POST /tasks/{id}/cancel).
func (s *server) cancelTask(w http.ResponseWriter, r *http.Request) {
	s.changeTask(w, r, taskAction{verb: "cancel", done: "cancelled", do: s.cfg.Control.Cancel})
}

// retryTask runs a failed or cancelled task again (POST /tasks/{id}/retry).
func (s *server) retryTask(w http.ResponseWriter, r *http.Request) {
	s.changeTask(w, r, taskAction{verb: "retry", done: "retried", do: s.cfg.Control.Retry})
}

// changeTask applies a to the task in the URL and, once the projection
// shows the change, sends the browser to the task page. The forms on the
// list and on the task page both land there, so the user always sees the
// outcome together with the task's history.
func (s *server) changeTask(w http.ResponseWriter, r *http.Request, a taskAction) {
	id := chi.URLParam(r, "id") // checked by taskID
	u := currentUser(r)
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.EnqueueTimeout)
	defer cancel()
	e, err := a.do(ctx, u.ID, id, tasktype.ByUser)
	if err != nil {
		s.changeFailed(w, r, a, err)
		return
	}
	s.log.InfoContext(r.Context(), "task changed by its owner", "action", a.verb, "task_id", id, "user_id", u.ID, "seq", e.Seq)
	if s.cfg.Projection != nil {
		wctx, cancel := context.WithTimeout(r.Context(), projectionWait)
		defer cancel()
		// A timeout only means the page may show the old state until
		// its next refresh.
		_ = s.cfg.Projection.WaitFor(wctx, e.Seq)
	}
	http.Redirect(w, r, "/tasks/"+url.PathEscape(id)+"?done="+a.done, http.StatusSeeOther)
}

// changeFailed shows why a cancel or retry did not happen.
func (s *server) changeFailed(w http.ResponseWriter, r *http.Request, a taskAction, err error) {
	switch {
	case errors.Is(err, tasktype.ErrNotFound):
		s.notFound(w, r)
	case errors.Is(err, tasktype.ErrWrongState):
		s.fail(w, r, http.StatusConflict, "Cannot "+a.verb+" this task", wrongStateMessage(err, a))
	case errors.Is(err, tasktype.ErrConflict):
		s.fail(w, r, http.StatusConflict, "Cannot "+a.verb+" this task",
			"The task kept changing while you asked. Look at it again, then try once more if you still want to.")
	case unavailable(err):
		s.queueUnavailable(w, r, err, a.verb+" failed",
			"The background task queue cannot be reached right now, so the task was not "+a.done+". Please try again in a minute.",
			"user_id", currentUser(r).ID)
	default:
		s.serverError(w, r, err, "action", a.verb)
	}
}

// wrongStateMessage is tasktype.StateError's explanation, as a sentence.
func wrongStateMessage(err error, a taskAction) string {
	var se *tasktype.StateError
	if !errors.As(err, &se) {
		return "The task is not in a state in which it can be " + a.done + "."
	}
	why := se.Error()
	first, n := utf8.DecodeRuneInString(why)
	return string(unicode.ToUpper(first)) + why[n:] + "."
}

// canCancel reports whether the task page and list offer Cancel: the
// states tasks.Client.Cancel accepts.
func canCancel(s tasktype.Status) bool { return s.Active() }

// canRetry reports whether they offer Retry: the states
// tasks.Client.Retry accepts.
func canRetry(s tasktype.Status) bool {
	return s == tasktype.StatusFailed || s == tasktype.StatusCancelled
}
