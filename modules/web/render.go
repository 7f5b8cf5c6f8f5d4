package web

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // users' zones must load on machines without zoneinfo

	"github.com/go-chi/chi/v5/middleware"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

var pageNames = []string{"tasks", "task", "result", "activities", "activity", "activity_form", "import", "signin", "error", "denied", "settings", "account", "goodbye", "admin_jobs", "admin_job", "admin_workers", "admin_types"}

type pages struct{ byName map[string]*template.Template }

// view is what every page template gets.
type view struct {
	Title   string
	Nav     string
	User    *activity.User
	Loc     *time.Location
	Notice  string
	Refresh bool
	// Live is the event stream the page follows to update itself
	// (live.js), or "" for none.
	Live string
	// Now is the server's clock as the page is rendered: what its
	// relative times count from (see heardView).
	Now time.Time
	// Operator shows the operator console in the menu.
	Operator bool
	Data     any
}

var funcs = template.FuncMap{
	"when": func(loc *time.Location, t time.Time) string {
		if loc == nil {
			loc = time.UTC
		}
		return t.In(loc).Format("2 Jan 2006, 15:04:05 MST")
	},
	"hours":        func(h float64) string { return strconv.FormatFloat(h, 'f', 1, 64) },
	"typeLabel":    activity.TypeLabel,
	"qualityLabel": activity.QualityLabel,
	"join":         strings.Join,
	"inc":          func(i int) int { return i + 1 },
	"dec":          func(i int) int { return i - 1 },
	"size":         humanSize,
	"canCancel":    canCancel,
	"canRetry":     canRetry,
	"taskFix":      taskFix,
	"byWhom":       byWhom,
	"endLabel":     endLabel,
	"isoTime":      func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"regen":        func(id, key string) regenForm { return regenForm{ID: id, Key: key} },
	"fileKind":     fileKind,
	"heard":        heard,
	"jsTime":       jsTime,
	// The activity pages'.
	"stageLabel":      activity.StageLabel,
	"sourceTypeLabel": activity.SourceTypeLabel,
	"linkText":        linkText,
	"activityTypes":   func() []activity.Option { return activity.ActivityTypes },
	"qualities":       func() []activity.Option { return activity.EvidenceQualities },
	"linkStages":      func() []activity.Option { return activity.LinkStages },
	"sourceTypes":     func() []activity.Option { return activity.LinkSourceTypes },
	"titleAt":         titleAt,
}

// parsePages parses every page with the layout and the shared partials
// once, at start, so that a broken template stops the app instead of
// failing a request later.
func parsePages(k *kinds) (*pages, error) {
	p := &pages{byName: make(map[string]*template.Template)}
	fm := maps.Clone(funcs)
	fm["taskLabel"] = k.label
	fm["taskView"] = k.view
	fm["taskFormats"] = k.formats
	fm["startButtons"] = k.startButtons
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(fm).ParseFS(templateFS, "templates/layout.html", "templates/partials.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parse page %s: %w", name, err)
		}
		p.byName[name] = t
	}
	return p, nil
}

func staticHandler() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	return http.StripPrefix("/static/", http.FileServerFS(sub))
}

// render writes a page, fully rendered first so that a template error
// becomes a clean 500 rather than half a page.
func (s *server) render(w http.ResponseWriter, r *http.Request, name string, v view) {
	if v.User == nil {
		v.User = currentUser(r)
	}
	if v.Now.IsZero() {
		v.Now = s.cfg.Now()
	}
	v.Operator = s.isOperator(v.User)
	if v.User != nil && v.Loc == nil {
		v.Loc = location(v.User.Timezone)
	}
	var buf bytes.Buffer
	if err := s.pages.byName[name].ExecuteTemplate(&buf, "layout", v); err != nil {
		s.log.ErrorContext(r.Context(), "render page", "page", name, "err", err, "request_id", middleware.GetReqID(r.Context()))
		http.Error(w, "Something went wrong showing this page.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}

type errorData struct {
	Heading, Message string
	// Regenerate, if set, offers to make an expired result again.
	Regenerate *regenForm
}

// fail shows an error page with a message meant for the user.
func (s *server) fail(w http.ResponseWriter, r *http.Request, status int, heading, msg string) {
	w.WriteHeader(status)
	s.render(w, r, "error", view{Title: heading, Data: errorData{Heading: heading, Message: msg}})
}

// unavailable reports whether err means the broker could not be reached
// in time: the user can only wait and try again.
func unavailable(err error) bool {
	return errors.Is(err, tasktype.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

// queueUnavailable answers 503 with sentence, saying what did not
// happen, and logs err for the operator as what failed, with attrs.
func (s *server) queueUnavailable(w http.ResponseWriter, r *http.Request, err error, what, sentence string, attrs ...any) {
	s.log.WarnContext(r.Context(), what+": broker unavailable", append(attrs, "err", err)...)
	s.fail(w, r, http.StatusServiceUnavailable, "Task queue unavailable", sentence)
}

func (s *server) notFound(w http.ResponseWriter, r *http.Request) {
	s.fail(w, r, http.StatusNotFound, "Not found", "There is nothing here, or it is not yours to see.")
}

// serverError logs err with the request id and shows a page without it.
func (s *server) serverError(w http.ResponseWriter, r *http.Request, err error, attrs ...any) {
	id := middleware.GetReqID(r.Context())
	s.log.ErrorContext(r.Context(), "request failed", append([]any{"err", err, "method", r.Method, "path", r.URL.Path, "request_id", id}, attrs...)...)
	s.fail(w, r, http.StatusInternalServerError, "Something went wrong", "Please try again. If it keeps happening, quote reference "+id+".")
}

func isNotFound(err error) bool {
	return errors.Is(err, activity.ErrNotFound) || errors.Is(err, tasktype.ErrNotFound)
}

var (
	locMu    sync.Mutex
	locCache = map[string]*time.Location{}
)

// location loads a user's zone, falling back to UK time, where apprentices are.
func location(name string) *time.Location {
	locMu.Lock()
	defer locMu.Unlock()
	if l, ok := locCache[name]; ok {
		return l
	}
	l, err := time.LoadLocation(name)
	if err != nil || name == "" {
		l, _ = time.LoadLocation("Europe/London")
	}
	locCache[name] = l
	return l
}

// fileKind names a result's content type for a download link ("CSV").
func fileKind(contentType string) string {
	mt, _, _ := strings.Cut(contentType, ";")
	switch strings.TrimSpace(mt) {
	case "text/csv":
		return "CSV"
	case "application/json":
		return "JSON"
	case "application/zip":
		return "zip"
	case "message/rfc822":
		return "email"
	}
	return "file"
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
