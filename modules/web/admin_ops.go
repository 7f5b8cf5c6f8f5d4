package web

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// apiWorker is a worker as GET /admin/api/workers answers it (README.md,
// "Operators").
type apiWorker struct {
	Name          string    `json:"name"`
	Host          string    `json:"host"`
	Version       string    `json:"version"`
	StartedAt     time.Time `json:"started_at"`
	Concurrency   int       `json:"concurrency"`
	Running       []string  `json:"running"`
	LastHeartbeat time.Time `json:"last_heartbeat"`
}

// adminAPIWorkers is GET /admin/api/workers: every connected worker
// process, from its own heartbeats.
func (s *server) adminAPIWorkers(w http.ResponseWriter, r *http.Request) {
	ws, err := s.cfg.Admin.Tasks.Workers(r.Context())
	if err != nil {
		s.apiError(w, r, http.StatusInternalServerError, err)
		return
	}
	out := struct {
		Workers []apiWorker `json:"workers"`
	}{Workers: make([]apiWorker, len(ws))}
	for i, wk := range ws {
		running := wk.Running
		if running == nil {
			running = []string{}
		}
		out.Workers[i] = apiWorker{Name: wk.Name, Host: wk.Host, Version: wk.Version, StartedAt: wk.StartedAt.UTC(),
			Concurrency: wk.Concurrency, Running: running, LastHeartbeat: wk.LastHeartbeat.UTC()}
	}
	s.writeJSON(w, r, http.StatusOK, out)
}

// adminWorkers is GET /admin/workers.
func (s *server) adminWorkers(w http.ResponseWriter, r *http.Request) {
	ws, err := s.cfg.Admin.Tasks.Workers(r.Context())
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.render(w, r, "admin_workers", view{Title: "Workers", Nav: "admin", Data: ws})
}

// apiType is a job type as GET /admin/api/types answers it.
type apiType struct {
	Type      string `json:"type"`
	Paused    bool   `json:"paused"`
	PausedBy  string `json:"paused_by,omitempty"`
	Waiting   int64  `json:"waiting"`
	Running   int64  `json:"running"`
	Failed24h int64  `json:"failed_24h"`
}

// types counts each job type's waiting, running and recently failed
// tasks, and says which are paused.
func (s *server) types(r *http.Request) ([]apiType, error) {
	ctx := r.Context()
	pauses, err := s.cfg.Admin.Tasks.Pauses(ctx)
	if err != nil {
		return nil, err
	}
	by := make(map[string]string, len(pauses))
	for _, p := range pauses {
		by[p.Type] = p.By
	}
	day := s.cfg.Now().Add(-24 * time.Hour)
	out := make([]apiType, 0, len(s.kinds.list))
	for _, k := range s.kinds.list {
		t := apiType{Type: k.Type}
		t.PausedBy, t.Paused = by[k.Type]
		for _, c := range []struct {
			n *int64
			f tasktype.Filter
		}{
			{&t.Waiting, tasktype.Filter{Type: k.Type, Status: tasktype.StatusPending}},
			{&t.Waiting, tasktype.Filter{Type: k.Type, Status: tasktype.StatusRetrying}},
			{&t.Running, tasktype.Filter{Type: k.Type, Status: tasktype.StatusRunning}},
			{&t.Failed24h, tasktype.Filter{Type: k.Type, Status: tasktype.StatusFailed, UpdatedFrom: day}},
		} {
			n, err := s.cfg.Admin.Tasks.CountMatching(ctx, c.f)
			if err != nil {
				return nil, err
			}
			*c.n += n
		}
		out = append(out, t)
	}
	return out, nil
}

// adminAPITypes is GET /admin/api/types.
func (s *server) adminAPITypes(w http.ResponseWriter, r *http.Request) {
	ts, err := s.types(r)
	if err != nil {
		s.apiError(w, r, http.StatusInternalServerError, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, ts)
}

// adminTypesData is what the console's page of job types shows.
type adminTypesData struct {
	Types []apiType
	Done  string
}

// adminTypes is GET /admin/types.
func (s *server) adminTypes(w http.ResponseWriter, r *http.Request) {
	ts, err := s.types(r)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	d := adminTypesData{Types: ts}
	switch r.URL.Query().Get("done") {
	case "pause":
		d.Done = "Paused. Its jobs are still accepted, and wait until it is resumed."
	case "resume":
		d.Done = "Resumed. Its waiting jobs run within a few seconds."
	}
	s.render(w, r, "admin_types", view{Title: "Job types", Nav: "admin", Data: d})
}

// adminPause is POST …/types/{type}/pause and …/resume, as the signed-in
// operator: from the page (back to it) or the API (JSON).
func (s *server) adminPause(api bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		typ, action := chi.URLParam(r, "type"), chi.URLParam(r, "action")
		op := currentUser(r)
		ctx := r.Context()
		var err error
		if action == "pause" {
			err = s.cfg.Admin.Tasks.Pause(ctx, typ, op.Email)
		} else {
			err = s.cfg.Admin.Tasks.Resume(ctx, typ)
		}
		switch {
		case errors.Is(err, tasktype.ErrUnknownType) && api:
			s.apiError(w, r, http.StatusNotFound, errors.New("no such job type"))
			return
		case errors.Is(err, tasktype.ErrUnknownType):
			s.notFound(w, r)
			return
		case err != nil && api:
			s.apiError(w, r, http.StatusInternalServerError, err)
			return
		case err != nil:
			s.serverError(w, r, err)
			return
		}
		s.log.InfoContext(ctx, "job type "+action+"d by an operator", "job_type", typ, "operator", op.Email)
		if api {
			s.writeJSON(w, r, http.StatusOK, map[string]any{"type": typ, "paused": action == "pause"})
			return
		}
		http.Redirect(w, r, "/admin/types?done="+url.QueryEscape(action), http.StatusSeeOther)
	}
}
