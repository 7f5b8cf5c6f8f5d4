package web

import (
	"errors"
	"mime"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// downloadResult streams a completed task's file (GET /tasks/{id}/download).
// Unknown ids, other users' tasks and unfinished tasks are all 404.
//
// It serves only the file that belongs to the task's job and attempt
// (tasktype.OwnsResult), and only if the store's digest of it is the one
// the job's outcome recorded: a row or an object that says otherwise was
// forged or damaged, which the user sees as a 404 and the operator as an
// error in the log.
func (s *server) downloadResult(w http.ResponseWriter, r *http.Request) {
	t, ok := s.userTask(w, r)
	if !ok {
		return
	}
	if !t.HasResult() {
		s.notFound(w, r)
		return
	}
	res, ok := s.openResult(w, r, &t)
	if !ok {
		return
	}
	defer res.Close()
	h := w.Header()
	h.Set("Content-Type", t.ResultType)
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": t.ResultName}))
	h.Set("Content-Length", strconv.FormatUint(res.Size, 10))
	h.Set("Cache-Control", "private, no-store")
	if _, err := s.streamResponse(w, res); err != nil {
		// Headers are gone; all we can do is log and cut the response.
		s.log.WarnContext(r.Context(), "download interrupted", "task_id", t.ID, "err", err)
	}
}

// userTask is the signed-in user's task {id}, or false once it has
// answered: 404 for an unknown id or another user's task.
func (s *server) userTask(w http.ResponseWriter, r *http.Request) (tasktype.Task, bool) {
	t, err := s.cfg.Tasks.GetForUser(r.Context(), currentUser(r).ID, chi.URLParam(r, "id"))
	if errors.Is(err, tasktype.ErrNotFound) {
		s.notFound(w, r)
		return t, false
	}
	if err != nil {
		s.serverError(w, r, err)
		return t, false
	}
	return t, true
}

// openResult opens completed task t's stored result, or answers and
// returns false. It opens only the file that belongs to the task's job
// and attempt (tasktype.OwnsResult), and only if the store's digest of
// it is the one the job's outcome recorded: a row or an object that says
// otherwise was forged or damaged, which the user sees as a 404 and the
// operator as an error in the log. A result past its retention, or gone
// from the store, is the expired page.
func (s *server) openResult(w http.ResponseWriter, r *http.Request, t *tasktype.Task) (*tasktype.StoredResult, bool) {
	u := currentUser(r)
	if !tasktype.OwnsResult(t.ID, t.Attempts, t.ResultPath) {
		s.log.ErrorContext(r.Context(), "result refused: the task names a result that is not its own job's",
			"task_id", t.ID, "user_id", u.ID, "attempt", t.Attempts, "object", t.ResultPath)
		s.notFound(w, r)
		return nil, false
	}
	if gone, err := s.expired(r.Context(), t); err != nil {
		s.serverError(w, r, err, "task_id", t.ID)
		return nil, false
	} else if gone {
		s.expiredPage(w, r, t)
		return nil, false
	}
	res, err := s.cfg.Results.Open(r.Context(), t.ResultPath)
	if errors.Is(err, tasktype.ErrResultMissing) {
		// Gone before its time (deleted, the store rebuilt): to the
		// user it is expired all the same.
		s.log.InfoContext(r.Context(), "result no longer stored", "task_id", t.ID, "object", t.ResultPath)
		s.expiredPage(w, r, t)
		return nil, false
	}
	if err != nil {
		s.serverError(w, r, err, "task_id", t.ID)
		return nil, false
	}
	if res.Digest != t.Digest {
		res.Close()
		s.log.ErrorContext(r.Context(), "result refused: the stored result's digest is not the one its job recorded",
			"task_id", t.ID, "user_id", u.ID, "object", t.ResultPath, "stored_digest", tasktype.HexDigest(res.Digest), "recorded_digest", tasktype.HexDigest(t.Digest))
		s.notFound(w, r)
		return nil, false
	}
	return res, true
}
