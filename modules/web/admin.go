package web

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// AdminTasks is what the operator console needs of the task system
// (tasks.Client): every user's tasks, and changes to them that name the
// operator who made them.
type AdminTasks interface {
	// List returns the tasks matching f, newest first, whoever owns them.
	List(ctx context.Context, f tasktype.Filter) ([]tasktype.Task, error)
	// Get returns task id whoever owns it, or tasktype.ErrNotFound.
	Get(ctx context.Context, id string) (tasktype.Task, error)
	CancelByOperator(ctx context.Context, jobID, operator string) (tasktype.Event, error)
	RetryByOperator(ctx context.Context, jobID, operator string) (tasktype.Event, error)
	// RecordResultRead records that operator reads the result of
	// another user's completed job, before it is served.
	RecordResultRead(ctx context.Context, jobID, operator string) (tasktype.Event, error)
	// CountMatching counts the tasks matching f, whoever owns them.
	CountMatching(ctx context.Context, f tasktype.Filter) (int64, error)
	// Workers lists the worker processes heard from within their lease.
	Workers(ctx context.Context) ([]tasktype.WorkerInfo, error)
	// Pause and Resume pause and resume a job type on every worker;
	// Pauses lists the paused ones. An unknown type is
	// tasktype.ErrUnknownType.
	Pause(ctx context.Context, jobType, by string) error
	Resume(ctx context.Context, jobType string) error
	Pauses(ctx context.Context) ([]tasktype.Pause, error)
}

// AdminUsers finds users for the operator console (activity.Store):
// by the address an operator filters by, and the addresses a list shows.
type AdminUsers interface {
	UserByEmail(ctx context.Context, email string) (activity.User, error)
	UserEmails(ctx context.Context, ids []int64) (map[int64]string, error)
}

// AdminConfig serves the operator console under /admin/ (ADMIN_EMAILS).
type AdminConfig struct {
	// Operators are who may use it: signed-in users whose address it
	// admits. Everyone else, signed in or not, gets a 404 on every
	// /admin/ route, as if there were none. Must not be empty.
	Operators Allowlist
	Tasks     AdminTasks // required
	Users     AdminUsers // required
}

func (a *AdminConfig) validate() error {
	if a.Operators.Empty() {
		return errors.New("web config: Admin needs at least one operator in Operators")
	}
	if a.Tasks == nil || a.Users == nil {
		return errors.New("web config: Admin needs Tasks and Users")
	}
	return nil
}

// adminRoutes mounts the operator console: its pages and its JSON API,
// all behind the operator check.
func (s *server) adminRoutes(r chi.Router) {
	r.Use(s.operator)
	r.Get("/", redirect("/admin/jobs"))
	r.Get("/jobs", s.adminJobs)
	r.Get("/api/jobs", s.adminAPIJobs)
	r.Get("/workers", s.adminWorkers)
	r.Get("/api/workers", s.adminAPIWorkers)
	r.Get("/types", s.adminTypes)
	r.Get("/api/types", s.adminAPITypes)
	r.Post("/types/{type}/{action:pause|resume}", s.adminPause(false))
	r.Post("/api/types/{type}/{action:pause|resume}", s.adminPause(true))
	r.Group(func(r chi.Router) {
		r.Use(s.taskID)
		r.Get("/jobs/{id}", s.adminJob)
		r.Get("/api/jobs/{id}", s.adminAPIJob)
		r.Post("/jobs/{id}/cancel", s.adminChange(taskAction{verb: "cancel", done: "cancelled"}))
		r.Post("/jobs/{id}/retry", s.adminChange(taskAction{verb: "retry", done: "retried"}))
		r.Get("/jobs/{id}/download", s.adminDownload)
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { s.notFound(w, r) })
}

// operator lets through the signed-in operators, with the user in the
// request context as authenticate puts it, and answers everyone else,
// signed in or not, with the 404 of a path that does not exist: the
// console does not say it is there.
func (s *server) operator(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok, err := s.signedIn(r)
		if err != nil {
			s.serverError(w, r, err)
			return
		}
		if !ok || !s.isOperator(&u) {
			s.notFound(w, r)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, &u)))
	})
}

// isOperator reports whether u may use the operator console.
func (s *server) isOperator(u *activity.User) bool {
	a := s.cfg.Admin
	return a != nil && u != nil && !a.Operators.Empty() && a.Operators.Admits(u.Email)
}

// apiJob is a job as the API answers it: the documented minimum of
// README.md's "Operators" (GET /admin/api/jobs).
type apiJob struct {
	ID        string          `json:"id"`
	UserID    int64           `json:"user_id"`
	Type      string          `json:"type"`
	Status    tasktype.Status `json:"status"`
	Attempts  int             `json:"attempts"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
	Error     string          `json:"error"`
}

func apiJobOf(t tasktype.Task) apiJob {
	return apiJob{ID: t.ID, UserID: t.UserID, Type: t.TaskType, Status: t.Status, Attempts: t.Attempts,
		CreatedAt: t.CreatedAt.UTC(), UpdatedAt: t.UpdatedAt.UTC(), Error: t.Error}
}

// apiJobList is GET /admin/api/jobs's answer. Next is the after= of the
// following page, empty on the last.
type apiJobList struct {
	Jobs []apiJob `json:"jobs"`
	Next string   `json:"next"`
}

// apiEvent is one event of a job's history in GET /admin/api/jobs/{id}:
// the event as the log stores it, with its place in the log.
type apiEvent struct {
	Seq uint64 `json:"seq"`
	tasktype.Event
}

// apiJobDetail is GET /admin/api/jobs/{id}'s answer.
type apiJobDetail struct {
	Job    apiJob     `json:"job"`
	Events []apiEvent `json:"events"`
}

// Bounds of a page of the console's job list.
const (
	adminDefaultLimit = 50
	adminMaxLimit     = 100
	// adminMaxText bounds the text searched for in errors.
	adminMaxText = 200
)

// jobQuery is a job list's filters and place, as read from the query
// string that the page's form and the API share.
type jobQuery struct {
	Filter tasktype.Filter
	// Values are the filters as given, for the form and the next
	// page's link (after= left out).
	State, Type, User, From, Before, Error string
	// NoUser is set when the user asked for does not exist: the list
	// is empty.
	NoUser bool
}

// parseJobQuery reads the filters of a job list. Its error is a
// sentence for the operator.
func (s *server) parseJobQuery(r *http.Request) (jobQuery, error) {
	q := r.URL.Query()
	jq := jobQuery{
		State: strings.TrimSpace(q.Get("state")), Type: strings.TrimSpace(q.Get("type")), User: strings.TrimSpace(q.Get("user")),
		From: strings.TrimSpace(q.Get("from")), Before: strings.TrimSpace(q.Get("before")), Error: strings.TrimSpace(q.Get("error")),
	}
	f := &jq.Filter
	if jq.State != "" {
		if !tasktype.Status(jq.State).Valid() {
			return jq, fmt.Errorf("state %q is not one of %s", jq.State, statusNames())
		}
		f.Status = tasktype.Status(jq.State)
	}
	if jq.Type != "" {
		if !tasktype.ValidType(jq.Type) {
			return jq, fmt.Errorf("type %q is not a job type name", jq.Type)
		}
		f.Type = jq.Type
	}
	switch {
	case jq.User == "":
	case strings.Contains(jq.User, "@"):
		u, err := s.cfg.Admin.Users.UserByEmail(r.Context(), jq.User)
		switch {
		case isNotFound(err):
			jq.NoUser = true
		case err != nil:
			return jq, err
		default:
			f.UserID = u.ID
		}
	default:
		id, err := strconv.ParseInt(jq.User, 10, 64)
		if err != nil || id <= 0 {
			return jq, fmt.Errorf("user %q is neither an email address nor a user id", jq.User)
		}
		f.UserID = id
	}
	var err error
	if f.CreatedFrom, err = parseWhen(jq.From, false); err != nil {
		return jq, fmt.Errorf("from: %v", err)
	}
	if f.CreatedBefore, err = parseWhen(jq.Before, true); err != nil {
		return jq, fmt.Errorf("before: %v", err)
	}
	if utf8.RuneCountInString(jq.Error) > adminMaxText {
		return jq, fmt.Errorf("error: the text searched for is longer than %d characters", adminMaxText)
	}
	f.ErrorContains = jq.Error
	f.Limit = adminDefaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > adminMaxLimit {
			return jq, fmt.Errorf("limit %q is not a number from 1 to %d", v, adminMaxLimit)
		}
		f.Limit = n
	}
	if v := q.Get("after"); v != "" {
		c, err := parseCursor(v)
		if err != nil {
			return jq, errors.New("after is not a cursor this list gave")
		}
		f.After = c
	}
	return jq, nil
}

func statusNames() string {
	names := make([]string, len(tasktype.Statuses))
	for i, st := range tasktype.Statuses {
		names[i] = string(st)
	}
	return strings.Join(names, ", ")
}

// parseWhen reads a time bound: a date (2026-12-07, in UTC; as an end,
// the day is included) or an RFC 3339 time. Empty is no bound.
func parseWhen(v string, end bool) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.Parse(time.DateOnly, v); err == nil {
		if end {
			d = d.AddDate(0, 0, 1)
		}
		return d, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a date (2006-01-02) nor an RFC 3339 time", v)
	}
	return t.UTC(), nil
}

// cursorOf is the after= that continues a list past t: its created time
// and id, opaque to the caller.
func cursorOf(t tasktype.Task) string {
	raw := strconv.FormatInt(t.CreatedAt.UnixNano(), 10) + "." + t.ID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func parseCursor(v string) (*tasktype.Cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return nil, err
	}
	ns, id, ok := strings.Cut(string(raw), ".")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || !tasktype.ValidID(id) {
		return nil, errors.New("malformed cursor")
	}
	return &tasktype.Cursor{CreatedAt: time.Unix(0, n).UTC(), ID: id}, nil
}

// listJobs runs jq: a page of jobs, and the cursor of the next page
// ("" at the end).
func (s *server) listJobs(ctx context.Context, jq jobQuery) ([]tasktype.Task, string, error) {
	if jq.NoUser {
		return nil, "", nil
	}
	f := jq.Filter
	limit := f.Limit
	f.Limit = limit + 1 // one more says whether there is a next page
	ts, err := s.cfg.Admin.Tasks.List(ctx, f)
	if err != nil {
		return nil, "", fmt.Errorf("list jobs: %w", err)
	}
	if len(ts) <= limit {
		return ts, "", nil
	}
	ts = ts[:limit]
	return ts, cursorOf(ts[limit-1]), nil
}

// adminAPIJobs is GET /admin/api/jobs.
func (s *server) adminAPIJobs(w http.ResponseWriter, r *http.Request) {
	jq, err := s.parseJobQuery(r)
	if err != nil {
		s.apiError(w, r, http.StatusBadRequest, err)
		return
	}
	ts, next, err := s.listJobs(r.Context(), jq)
	if err != nil {
		s.apiError(w, r, http.StatusInternalServerError, err)
		return
	}
	out := apiJobList{Jobs: make([]apiJob, len(ts)), Next: next}
	for i, t := range ts {
		out.Jobs[i] = apiJobOf(t)
	}
	s.writeJSON(w, r, http.StatusOK, out)
}

// adminAPIJob is GET /admin/api/jobs/{id}.
func (s *server) adminAPIJob(w http.ResponseWriter, r *http.Request) {
	t, events, err := s.adminLoad(r)
	switch {
	case errors.Is(err, tasktype.ErrNotFound):
		s.apiError(w, r, http.StatusNotFound, errors.New("no such job"))
		return
	case err != nil:
		s.apiError(w, r, http.StatusInternalServerError, err)
		return
	}
	out := apiJobDetail{Job: apiJobOf(t), Events: make([]apiEvent, len(events))}
	for i, e := range events {
		out.Events[i] = apiEvent{Seq: e.Seq, Event: e}
	}
	s.writeJSON(w, r, http.StatusOK, out)
}

// adminLoad reads job {id} and its whole history from the log, whoever
// owns it.
func (s *server) adminLoad(r *http.Request) (tasktype.Task, []tasktype.Event, error) {
	id := chi.URLParam(r, "id")
	t, err := s.cfg.Admin.Tasks.Get(r.Context(), id)
	if err != nil {
		return t, nil, err
	}
	events, err := s.cfg.History.History(r.Context(), 0, id)
	if err != nil && !errors.Is(err, tasktype.ErrNotFound) {
		return t, nil, err
	}
	return t, events, nil
}

// apiError answers an API request with {"error": sentence}; a 5xx's
// cause is logged and not shown.
func (s *server) apiError(w http.ResponseWriter, r *http.Request, status int, err error) {
	msg := err.Error()
	if status >= 500 {
		s.log.ErrorContext(r.Context(), "admin api request failed", "err", err, "path", r.URL.Path)
		msg = "Something went wrong; see the server's log."
	}
	s.writeJSON(w, r, status, map[string]string{"error": msg})
}

func (s *server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.log.ErrorContext(r.Context(), "encode admin api answer", "err", err)
		http.Error(w, `{"error":"encoding failed"}`, http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// adminRow is one job of the console's list page.
type adminRow struct {
	tasktype.Task
	Email string
}

// adminJobsData is what the console's job list shows.
type adminJobsData struct {
	Query    jobQuery
	Rows     []adminRow
	Next     string // link to the next page, "" on the last
	Statuses []tasktype.Status
	Kinds    []TaskKind
	Invalid  string // why the filters were refused
}

// adminJobs is GET /admin/jobs: every user's jobs, filtered.
func (s *server) adminJobs(w http.ResponseWriter, r *http.Request) {
	d := adminJobsData{Statuses: tasktype.Statuses, Kinds: s.kinds.list}
	jq, err := s.parseJobQuery(r)
	d.Query = jq
	if err != nil {
		d.Invalid = err.Error()
		w.WriteHeader(http.StatusBadRequest)
		s.render(w, r, "admin_jobs", view{Title: "All jobs", Nav: "admin", Data: d})
		return
	}
	ts, next, err := s.listJobs(r.Context(), jq)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	emails, err := s.emailsOf(r.Context(), ts)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	for _, t := range ts {
		d.Rows = append(d.Rows, adminRow{Task: t, Email: emails[t.UserID]})
	}
	if next != "" {
		v := url.Values{}
		for k, val := range map[string]string{"state": jq.State, "type": jq.Type, "user": jq.User, "from": jq.From, "before": jq.Before, "error": jq.Error} {
			if val != "" {
				v.Set(k, val)
			}
		}
		v.Set("after", next)
		d.Next = "/admin/jobs?" + v.Encode()
	}
	s.render(w, r, "admin_jobs", view{Title: "All jobs", Nav: "admin", Data: d})
}

// emailsOf maps the owners of ts to their addresses.
func (s *server) emailsOf(ctx context.Context, ts []tasktype.Task) (map[int64]string, error) {
	var ids []int64
	for _, t := range ts {
		if !slices.Contains(ids, t.UserID) {
			ids = append(ids, t.UserID)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	m, err := s.cfg.Admin.Users.UserEmails(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("owners of jobs: %w", err)
	}
	return m, nil
}

// adminJobData is what the console's page of a job shows.
type adminJobData struct {
	Task    *tasktype.Task
	Email   string
	Events  []tasktype.Event
	Payload string
	Done    string
}

// adminJob is GET /admin/jobs/{id}.
func (s *server) adminJob(w http.ResponseWriter, r *http.Request) {
	t, events, err := s.adminLoad(r)
	if errors.Is(err, tasktype.ErrNotFound) {
		s.notFound(w, r)
		return
	}
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	emails, err := s.emailsOf(r.Context(), []tasktype.Task{t})
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	d := adminJobData{Task: &t, Email: emails[t.UserID], Events: events}
	if len(events) > 0 && len(events[0].Payload) > 0 {
		d.Payload = string(events[0].Payload)
	}
	switch done := r.URL.Query().Get("done"); done {
	case "cancelled", "retried":
		d.Done = "The job was " + done + "; its history records you as the operator who did it."
	}
	s.render(w, r, "admin_job", view{Title: "Job " + t.ID, Nav: "admin", Data: d})
}

// adminChange cancels or retries any user's job as the signed-in
// operator, whom the event names, then shows the job.
func (s *server) adminChange(a taskAction) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := chi.URLParam(r, "id")
		op := currentUser(r)
		do := s.cfg.Admin.Tasks.CancelByOperator
		if a.verb == "retry" {
			do = s.cfg.Admin.Tasks.RetryByOperator
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.EnqueueTimeout)
		defer cancel()
		e, err := do(ctx, id, op.Email)
		if err != nil {
			s.changeFailed(w, r, a, err)
			return
		}
		s.log.InfoContext(r.Context(), "task changed by an operator", "action", a.verb, "task_id", id, "owner_id", e.UserID, "operator", op.Email, "seq", e.Seq)
		if s.cfg.Projection != nil {
			wctx, cancel := context.WithTimeout(r.Context(), projectionWait)
			defer cancel()
			_ = s.cfg.Projection.WaitFor(wctx, e.Seq) // a timeout shows the old state until a reload
		}
		http.Redirect(w, r, "/admin/jobs/"+url.PathEscape(id)+"?done="+a.done, http.StatusSeeOther)
	}
}

// adminDownload is GET /admin/jobs/{id}/download: any user's result,
// checked as the owner's download is. Reading another user's result is
// recorded in the job's history, naming the operator, before a byte is
// served: a read that cannot be recorded is refused.
func (s *server) adminDownload(w http.ResponseWriter, r *http.Request) {
	t, err := s.cfg.Admin.Tasks.Get(r.Context(), chi.URLParam(r, "id"))
	if errors.Is(err, tasktype.ErrNotFound) {
		s.notFound(w, r)
		return
	}
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if !t.HasResult() {
		s.notFound(w, r)
		return
	}
	if op := currentUser(r); t.UserID != op.ID {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.EnqueueTimeout)
		defer cancel()
		e, err := s.cfg.Admin.Tasks.RecordResultRead(ctx, t.ID, op.Email)
		if err != nil {
			s.changeFailed(w, r, taskAction{verb: "download", done: "downloaded"}, err)
			return
		}
		s.log.InfoContext(r.Context(), "result read by an operator", "task_id", t.ID, "owner_id", t.UserID, "operator", op.Email, "seq", e.Seq)
	}
	s.serveResult(w, r, &t)
}

// serveResult streams completed task t's stored result as a download,
// once openResult has checked it.
func (s *server) serveResult(w http.ResponseWriter, r *http.Request, t *tasktype.Task) {
	res, ok := s.openResult(w, r, t)
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
