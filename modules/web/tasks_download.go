package web

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

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
	s.serveResult(w, r, &t)
}

// downloadFormat streams a completed task's result in another format
// its kind offers (GET /tasks/{id}/download/{format}), converted from the
// stored file as openResult checks it. Unknown formats are 404, as are
// the tasks downloadResult refuses. The conversion may take a while
// before its first byte (a workbook is written whole at its end): the
// write deadline moves on with each write, not from the request's start.
func (s *server) downloadFormat(w http.ResponseWriter, r *http.Request) {
	t, ok := s.userTask(w, r)
	if !ok {
		return
	}
	f := s.kinds.format(t.TaskType, chi.URLParam(r, "format"))
	if !t.HasResult() || f == nil {
		s.notFound(w, r)
		return
	}
	res, ok := s.openResult(w, r, &t)
	if !ok {
		return
	}
	defer res.Close()
	name := strings.TrimSuffix(t.ResultName, path.Ext(t.ResultName)) + f.Ext
	dw := &deadlineWriter{w: w, rc: http.NewResponseController(w), timeout: s.cfg.WriteTimeout, header: func(h http.Header) {
		h.Set("Content-Type", f.ContentType)
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
		h.Set("Cache-Control", "private, no-store")
	}}
	err := f.Convert(r.Context(), res, dw)
	switch {
	case err == nil:
	case dw.n == 0 && r.Context().Err() == nil:
		s.serverError(w, r, fmt.Errorf("convert the result to %s: %w", f.Name, err), "task_id", t.ID)
	default:
		// Headers are gone (or the client is): log and cut the response.
		s.log.WarnContext(r.Context(), "download interrupted", "task_id", t.ID, "format", f.Name, "err", err)
		if dw.n > 0 {
			panic(http.ErrAbortHandler)
		}
	}
}

// deadlineWriter writes a response whose length is not known ahead,
// setting its headers at the first write and giving each write
// WriteTimeout from when it starts, as streamResponse does.
type deadlineWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	header  func(http.Header)
	n       int64
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	if d.n == 0 && d.header != nil {
		d.header(d.w.Header())
		d.header = nil
	}
	if err := deadline(d.rc.SetWriteDeadline(time.Now().Add(d.timeout))); err != nil {
		return 0, fmt.Errorf("move write deadline: %w", err)
	}
	k, err := d.w.Write(p)
	d.n += int64(k)
	return k, err
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
