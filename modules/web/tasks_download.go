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
	u := currentUser(r)
	t, err := s.cfg.Tasks.GetForUser(r.Context(), u.ID, chi.URLParam(r, "id"))
	if errors.Is(err, tasktype.ErrNotFound) || (err == nil && !t.HasResult()) {
		s.notFound(w, r)
		return
	}
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if !tasktype.OwnsResult(t.ID, t.Attempts, t.ResultPath) {
		s.log.ErrorContext(r.Context(), "download refused: the task names a result that is not its own job's",
			"task_id", t.ID, "user_id", u.ID, "attempt", t.Attempts, "object", t.ResultPath)
		s.notFound(w, r)
		return
	}
	if gone, err := s.expired(r.Context(), &t); err != nil {
		s.serverError(w, r, err, "task_id", t.ID)
		return
	} else if gone {
		s.expiredPage(w, r, &t)
		return
	}
	res, err := s.cfg.Results.Open(r.Context(), t.ResultPath)
	if errors.Is(err, tasktype.ErrResultMissing) {
		// Gone before its time (deleted, the store rebuilt): to the
		// user it is expired all the same.
		s.log.InfoContext(r.Context(), "download of a result no longer stored", "task_id", t.ID, "object", t.ResultPath)
		s.expiredPage(w, r, &t)
		return
	}
	if err != nil {
		s.serverError(w, r, err, "task_id", t.ID)
		return
	}
	defer res.Close()
	if res.Digest != t.Digest {
		s.log.ErrorContext(r.Context(), "download refused: the stored result's digest is not the one its job recorded",
			"task_id", t.ID, "user_id", u.ID, "object", t.ResultPath, "stored_digest", tasktype.HexDigest(res.Digest), "recorded_digest", tasktype.HexDigest(t.Digest))
		s.notFound(w, r)
		return
	}
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
