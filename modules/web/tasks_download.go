package web

import (
	"errors"
	"mime"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/otjhelper/otj/modules/tasks"
)

// downloadResult streams a completed task's file (GET /tasks/{id}/download).
// Unknown ids, other users' tasks and unfinished tasks are all 404.
func (s *server) downloadResult(w http.ResponseWriter, r *http.Request) {
	u := currentUser(r)
	t, err := s.cfg.Tasks.GetForUser(r.Context(), u.ID, chi.URLParam(r, "id"))
	if errors.Is(err, tasks.ErrNotFound) || (err == nil && !t.HasResult()) {
		s.notFound(w, r)
		return
	}
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	rc, err := s.cfg.Results.Open(r.Context(), t.ResultPath)
	if err != nil {
		s.serverError(w, r, err, "task_id", t.ID)
		return
	}
	defer rc.Close()
	h := w.Header()
	h.Set("Content-Type", t.ResultType)
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": t.ResultName}))
	h.Set("Content-Length", strconv.FormatInt(t.ResultSize, 10))
	h.Set("Cache-Control", "private, no-store")
	if _, err := s.streamResponse(w, rc); err != nil {
		// Headers are gone; all we can do is log and cut the response.
		s.log.WarnContext(r.Context(), "download interrupted", "task_id", t.ID, "err", err)
	}
}
