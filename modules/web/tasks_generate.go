package web

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// projectionWait bounds how long a POST waits for its new task to reach
// the list before redirecting anyway.
const projectionWait = 2 * time.Second

// formKey reads the form's idempotency key, answering 400 for a form
// that cannot be read or a malformed key.
func (s *server) formKey(w http.ResponseWriter, r *http.Request) (string, bool) {
	if err := r.ParseForm(); err != nil {
		s.formError(w, r, err)
		return "", false
	}
	key := r.PostForm.Get("key")
	if !validFormKey(key) {
		s.fail(w, r, http.StatusBadRequest, "Bad request", "The form is malformed (bad key). Reload the page and try again.")
		return "", false
	}
	return key, true
}

// startJob enqueues req and, once the projection shows the new task,
// sends the browser to the list, which tells the user about it.
func (s *server) startJob(w http.ResponseWriter, r *http.Request, req tasktype.EnqueueRequest) {
	if job, ok := s.enqueue(w, r, req); ok {
		http.Redirect(w, r, "/tasks/?queued="+url.QueryEscape(job.ID), http.StatusSeeOther)
	}
}

// enqueue enqueues req within EnqueueTimeout and waits, a little, for
// the projection to show the new task, so that the page the browser is
// sent to next has it. A broker that cannot be reached is a 503 saying
// nothing was started; on any failure it has answered and returns false.
func (s *server) enqueue(w http.ResponseWriter, r *http.Request, req tasktype.EnqueueRequest) (tasktype.Job, bool) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.EnqueueTimeout)
	defer cancel()
	job, err := s.cfg.Enqueuer.Enqueue(ctx, req)
	s.renewWriteDeadline(w) // the enqueue may have run the whole job
	switch {
	case unavailable(err):
		s.queueUnavailable(w, r, err, "enqueue failed",
			"The background task queue cannot be reached right now, so no "+s.kinds.noun(req.Type)+" was started. Please try again in a minute.",
			"user_id", req.UserID, "type", req.Type)
		return job, false
	case err != nil:
		s.serverError(w, r, err)
		return job, false
	}
	if s.cfg.Projection != nil {
		wctx, cancel := context.WithTimeout(r.Context(), projectionWait)
		defer cancel()
		// A timeout only means the next page may not show the task yet.
		_ = s.cfg.Projection.WaitFor(wctx, job.EventSeq)
	}
	return job, true
}

// validFormKey accepts what listTasks issues (rand.Text: base32), or
// nothing, for clients that don't send one.
func validFormKey(k string) bool {
	if len(k) > 64 {
		return false
	}
	for _, c := range k {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
