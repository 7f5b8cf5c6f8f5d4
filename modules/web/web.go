// Package web is OTJ Helper's browser UI for background tasks: the task
// list, a page per task with its history, starting a report, cancelling
// and retrying tasks, downloading results, the activity log the reports
// are built from, and the health check. It reads the task_result
// projection and the event log, and changes tasks only through its
// TaskEnqueuer and TaskControl ports (tasks.Client); it never writes task
// state itself.
package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/session"
)

// TaskReader reads the task_result projection.
type TaskReader interface {
	ListForUser(ctx context.Context, userID int64, limit int) ([]tasktype.Task, error)
	// List returns the tasks matching f, newest first; the task list
	// of one kind asks it for the signed-in user's (f.UserID set).
	List(ctx context.Context, f tasktype.Filter) ([]tasktype.Task, error)
	GetForUser(ctx context.Context, userID int64, id string) (tasktype.Task, error)
	// NewerResults counts the user's completed results of the type
	// completed after task id (tasks.Client.NewerResults).
	NewerResults(ctx context.Context, userID int64, taskType, id string, completed time.Time) (int, error)
}

// TaskEnqueuer asks for background work (tasks.Client). Enqueue is
// atomic: on success the job is stored and will run; on error nothing
// was stored.
type TaskEnqueuer interface {
	Enqueue(ctx context.Context, r tasktype.EnqueueRequest) (tasktype.Job, error)
}

// TaskControl cancels and retries tasks (tasks.Client). Both take the
// signed-in user's id, so another user's task is tasktype.ErrNotFound.
type TaskControl interface {
	Cancel(ctx context.Context, userID int64, jobID, by string) (tasktype.Event, error)
	Retry(ctx context.Context, userID int64, jobID, by string) (tasktype.Event, error)
}

// TaskHistory reads a task's events from the event log.
type TaskHistory interface {
	History(ctx context.Context, userID int64, jobID string) ([]tasktype.Event, error)
}

// ResultOpener streams stored result files (tasks.Client.Open),
// with the digest the store recorded, which the download checks against
// the one the job's outcome recorded.
type ResultOpener interface {
	Open(ctx context.Context, object string) (*tasktype.StoredResult, error)
}

// ProjectionWaiter waits until the projection has seen an event.
type ProjectionWaiter interface {
	WaitFor(ctx context.Context, seq uint64) error
}

// Users finds and creates users.
type Users interface {
	EnsureUser(ctx context.Context, email string) (activity.User, error)
	UserByID(ctx context.Context, id int64) (activity.User, error)
}

// Activities reads and changes a user's activity log (activity.Store).
// Every method takes the signed-in user's id, so another user's activity
// is activity.ErrNotFound.
type Activities interface {
	ListActivities(ctx context.Context, userID int64, f activity.Filter, page, perPage int) (activity.Page, error)
	GetActivity(ctx context.Context, userID, id int64) (activity.Entry, error)
	CreateActivity(ctx context.Context, userID int64, in activity.Input) (int64, error)
	UpdateActivity(ctx context.Context, userID, id int64, in activity.Input) error
	DeleteActivity(ctx context.Context, userID, id int64) error
	// KSBs lists a standard's KSBs; Tags the user's tags.
	KSBs(ctx context.Context, spec string) ([]activity.KSB, error)
	Tags(ctx context.Context, userID int64) ([]string, error)
}

// UserSettings reads the standards on offer and saves a user's settings
// (activity.Store). Optional: without it there is no settings page.
type UserSettings interface {
	Standards(ctx context.Context) ([]activity.Standard, error)
	UpdateSettings(ctx context.Context, userID int64, set activity.Settings) error
}

// DefaultSessionTTL is how long a sign-in lasts unless Config.SessionTTL
// says otherwise.
const DefaultSessionTTL = 7 * 24 * time.Hour

// HealthCheck is one dependency /healthz reports on.
type HealthCheck struct {
	Name  string
	Check func(ctx context.Context) error
	// Degraded marks a dependency the app works without, if less well
	// (the Redis broker, whose enqueues fall back to running in the
	// request): its failure shows as "degraded" and /healthz stays 200.
	Degraded bool
}

// Config wires the web module to the rest of the app.
type Config struct {
	Tasks      TaskReader       // required
	Enqueuer   TaskEnqueuer     // required
	Control    TaskControl      // required
	History    TaskHistory      // required
	Results    ResultOpener     // required
	Users      Users            // required
	Activities Activities       // required
	Sessions   *session.Signer  // required
	Projection ProjectionWaiter // optional: makes a new task show at once
	// Events, when set, serves GET /tasks/events and makes the task
	// pages update live; without it they refresh while a task is active.
	Events TaskEvents
	// LiveHeartbeat is how often an idle event stream sends a comment.
	// Default DefaultLiveHeartbeat.
	LiveHeartbeat time.Duration
	Health        []HealthCheck
	// Kinds are the kinds of work the app offers: their labels, the task
	// list's buttons that start them, and the pages that show their
	// results. The web knows no job type of its own: each job module
	// describes its kind with the task registry, and the app passes the
	// registry's (tasks.Client.Kinds). At least one must have a Start button.
	Kinds []TaskKind
	// DevAutoLoginEmail signs every request in as this user, creating it
	// on first use (development only, as in the Python app).
	DevAutoLoginEmail string
	// OIDC, when set, signs users in with an OpenID Connect provider
	// (GET /login, the callback at its RedirectURL's path).
	OIDC *OIDCConfig
	// SessionTTL is how long a sign-in lasts (SESSION_TTL); past it the
	// user signs in again. Default DefaultSessionTTL.
	SessionTTL time.Duration
	// TrustProxyHeaders makes cookies Secure when a request's
	// X-Forwarded-Proto says https (TRUST_PROXY_HEADERS): only for an
	// app that a TLS proxy alone can reach, since a client could send it.
	TrustProxyHeaders bool
	// BodyLimit bounds a request's body, in bytes, unless its route sets
	// its own with BodyLimit. Default DefaultBodyLimit.
	BodyLimit int64
	// Admin, when set, serves the operator console under /admin/ to
	// the operators it names (ADMIN_EMAILS); without it every /admin/
	// path is a 404.
	Admin *AdminConfig
	// Settings, when set, serves the settings page (GET|POST /settings).
	Settings UserSettings
	// Import, when set, serves the activity import (GET|POST
	// /activities/import), which uploads a CSV and starts its job.
	Import *ActivityImport
	// Account, when set, serves the account page (GET /account) and its
	// erasure (POST /account/delete).
	Account AccountEraser
	// ExportType, when set with Account, is the job type of a user's data
	// export, started from the account page (POST /account/export): the
	// web knows no job type of its own.
	ExportType string
	// BaseURL is the address users reach the app at (BASE_URL), such as
	// https://otj.example.org behind a TLS proxy. Its scheme and host are
	// the app's origin: the cross-origin check compares a request's
	// Origin with them, and with https the app counts as served over
	// HTTPS (Strict-Transport-Security on every response, and Sessions
	// must make Secure cookies). Nil: the app is on plain HTTP, at
	// whatever host the request names.
	BaseURL *url.URL
	// ReadTimeout bounds reading a request, body included, and
	// WriteTimeout writing its response; see NewServer. Defaults
	// DefaultReadTimeout and DefaultWriteTimeout.
	ReadTimeout, WriteTimeout time.Duration
	// EnqueueTimeout bounds a request's wait for the broker. Default 5s.
	EnqueueTimeout time.Duration
	// Retention is how long results are kept and how many of each kind
	// (RESULT_TTL, RESULT_KEEP): a completed task whose result is past
	// it shows as expired, with a button that makes it again, instead of
	// a download link. Zero fields mean no limit.
	Retention tasktype.Retention
	// Middleware, when set, wraps every request inside the router, ahead
	// of the app's own middleware: it sees each response's status and
	// duration, and once the request has been served,
	// chi.RouteContext(r.Context()).RoutePattern() names the route it
	// took ("/tasks/{id}"), never the raw path. The app (internal/app) passes the HTTP
	// metrics' (platform/metrics).
	Middleware func(http.Handler) http.Handler
	// Now is the clock results expire by, and that a running task's
	// last sign of life is counted from. Default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

func (c *Config) validate() error {
	var errs []error
	if c.Tasks == nil || c.Enqueuer == nil || c.Control == nil || c.History == nil || c.Results == nil || c.Users == nil || c.Activities == nil {
		errs = append(errs, errors.New("web config: Tasks, Enqueuer, Control, History, Results, Users and Activities are required"))
	}
	if c.Sessions == nil {
		errs = append(errs, errors.New("web config: Sessions is required"))
	}
	if c.ExportType != "" && (c.Account == nil || !tasktype.ValidType(c.ExportType)) {
		errs = append(errs, fmt.Errorf("web config: ExportType %q needs Account and a valid job type", c.ExportType))
	}
	if c.OIDC != nil {
		if err := c.OIDC.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Admin != nil {
		if err := c.Admin.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Import != nil {
		if err := c.Import.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if u := c.BaseURL; u != nil && (u.Scheme != "http" && u.Scheme != "https" || u.Host == "") {
		errs = append(errs, fmt.Errorf("web config: BaseURL %q: want http:// or https:// and a host", u))
	}
	if c.Sessions != nil && c.Sessions.SecureCookies() != c.https() {
		base := "unset"
		if c.BaseURL != nil {
			base = c.BaseURL.String()
		}
		errs = append(errs, fmt.Errorf("web config: Sessions must make Secure cookies exactly when BaseURL is https (BaseURL %s, Secure %v)",
			base, c.Sessions.SecureCookies()))
	}
	return errors.Join(errs...)
}

// https reports whether the app is served over HTTPS, as BaseURL says.
func (c *Config) https() bool { return c.BaseURL != nil && c.BaseURL.Scheme == "https" }

type server struct {
	cfg   Config
	log   *slog.Logger
	pages *pages
	kinds *kinds
	oidc  *oidcProvider // nil without Config.OIDC
	// stopping is closed by stop, at server shutdown, to end the
	// long-lived event streams.
	stopping chan struct{}
	stopOnce sync.Once
}

// New returns the app's HTTP handler.
func New(cfg Config) (http.Handler, error) {
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	return s.routes(), nil
}

// newServer checks cfg, fills in its defaults and parses the pages.
func newServer(cfg Config) (*server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.EnqueueTimeout <= 0 {
		cfg.EnqueueTimeout = 5 * time.Second
	}
	cfg.defaultTimeouts()
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = DefaultBodyLimit
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Import != nil {
		im := *cfg.Import // a copy: defaults are the web's own
		if im.MaxBytes <= 0 {
			im.MaxBytes = DefaultImportMaxBytes
		}
		cfg.Import = &im
	}
	if cfg.LiveHeartbeat <= 0 {
		cfg.LiveHeartbeat = DefaultLiveHeartbeat
	}
	// A copy: the caller's slice may change.
	kd, err := newKinds(cfg.Kinds)
	if err != nil {
		return nil, err
	}
	pg, err := parsePages(kd)
	if err != nil {
		return nil, err
	}
	s := &server{cfg: cfg, log: cfg.Logger, pages: pg, kinds: kd, stopping: make(chan struct{})}
	if cfg.OIDC != nil {
		s.oidc = newOIDCProvider(*cfg.OIDC)
	}
	return s, nil
}

// routes is the app's router: every page and action, behind the
// middleware every response goes through.
func (s *server) routes() *chi.Mux {
	r := chi.NewRouter()
	if s.cfg.Middleware != nil {
		r.Use(s.cfg.Middleware)
	}
	r.Use(middleware.RequestID)
	// First, so that every response carries them, refusals and errors
	// included.
	r.Use(s.securityHeaders)
	r.Use(s.recoverer)
	r.Use(s.crossOrigin)
	r.Use(s.limitBodies)
	r.Use(s.checkInput)
	r.Get("/healthz", s.health)
	r.Handle("/static/*", staticHandler())
	r.Get("/signin", s.signinPage)
	if s.oidc != nil {
		r.Get("/login", s.login)
		r.Get(s.oidc.cfg.callbackPath(), s.callback)
	}
	r.Post("/logout", s.logout)
	if s.cfg.Admin != nil {
		r.Route("/admin", s.adminRoutes)
	}
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate)
		if s.cfg.Settings != nil {
			r.Get("/settings", s.showSettings)
			r.Post("/settings", s.saveSettings)
		}
		if s.cfg.Account != nil {
			r.Get("/account", s.showAccount)
			r.Post("/account/delete", s.deleteAccount)
			if s.cfg.ExportType != "" {
				r.Post("/account/export", s.exportAccount)
			}
		}
		r.Get("/", redirect("/tasks/"))
		r.Get("/tasks", redirect("/tasks/"))
		r.Get("/tasks/", s.listTasks)
		if s.cfg.Events != nil {
			r.Get("/tasks/events", s.taskEvents)
		}
		for _, b := range s.kinds.startButtons() {
			r.Post("/tasks/"+b.Path, s.startKind(b.Type))
		}
		r.Group(func(r chi.Router) {
			// Every route with a task id, and only these: the id is
			// checked once, here, for all of them.
			r.Use(s.taskID)
			r.Get("/tasks/{id}", s.showTask)
			r.Post("/tasks/{id}/cancel", s.cancelTask)
			r.Post("/tasks/{id}/retry", s.retryTask)
			r.Get("/tasks/{id}/download", s.downloadResult)
			r.Get("/tasks/{id}/download/{format}", s.downloadFormat)
			r.Post("/tasks/{id}/regenerate", s.regenerateResult)
			for _, kd := range s.kinds.list {
				if v := kd.View; v != nil {
					r.Get("/tasks/{id}/"+v.Path, s.showResult(v, kd.Type))
				}
			}
		})
		r.Get("/activities", s.listActivities)
		if s.cfg.Import != nil {
			r.Get("/activities/import", s.importForm)
			r.With(BodyLimit(s.cfg.Import.MaxBytes+importFormOverhead)).Post("/activities/import", s.importActivities)
		}
		r.Get("/activities/new", s.newActivity)
		r.Post("/activities/new", s.createActivity)
		r.Group(func(r chi.Router) {
			// Every route with an activity id: checked once, here.
			r.Use(s.activityID)
			r.Get("/activities/{id}", s.showActivity)
			r.Get("/activities/{id}/edit", s.editActivity)
			r.Post("/activities/{id}/edit", s.updateActivity)
			r.Post("/activities/{id}/delete", s.deleteActivity)
		})
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { s.notFound(w, r) })
	return r
}

func redirect(to string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, to, http.StatusSeeOther) }
}

// hsts is the Strict-Transport-Security of an app served over HTTPS: a
// year, the usual figure, and only for the app's own host, since it may
// share a domain with sites that are not on HTTPS.
const hsts = "max-age=31536000"

// securityHeaders sets, before anything else runs, the headers every
// response carries: a page of this app runs only its own scripts and
// styles, in no frame, and posts only to itself.
func (s *server) securityHeaders(next http.Handler) http.Handler {
	https := s.cfg.https()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		if https {
			h.Set("Strict-Transport-Security", hsts)
		}
		next.ServeHTTP(w, r)
	})
}

// taskID answers 404 to a request whose {id} is not a job id
// (tasktype.ValidID), so that no malformed id, such as one holding a NUL
// byte or a subject wildcard, reaches storage or the broker. The page is
// the same as for an unknown id or another user's task.
func (s *server) taskID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !tasktype.ValidID(chi.URLParam(r, "id")) {
			s.notFound(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// recoverer turns a panicking handler into a 500 page, logged once.
func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.serverError(w, r, errors.New("panic in handler"), "panic", p)
			}
		}()
		next.ServeHTTP(w, r)
	})
}
