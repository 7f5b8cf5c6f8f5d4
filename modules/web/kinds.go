package web

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"regexp"
	"strings"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// TaskKind is one kind of background work, as the web offers and shows
// it. The web knows no job type of its own: cmd/app passes each job
// module's kind (the report's, the digest's, the analytics').
type TaskKind struct {
	// Type is the job type. Required.
	Type string
	// Label is how each task of the kind is named ("Full report (CSV)");
	// empty: the type, underscores as spaces.
	Label string
	// Noun is what a user calls one in a sentence ("report", "digest");
	// empty: the label, lower-cased.
	Noun string
	// Start, when set, puts a button on the task list that starts one.
	Start *StartButton
	// View, when set, is what a completed task of the kind offers in
	// place of a download: a page showing its result.
	View *ResultView
	// Formats are other files a completed task's result downloads as,
	// beside the stored one, each made from it as it is downloaded.
	Formats []ResultFormat
}

// ResultFormat is another file a completed task's stored result can be
// downloaded as (GET /tasks/{id}/download/{Name}), made from the stored
// file, once its digest is checked, by the kind's own module as the
// response is written: nothing more is stored, and the two files say
// the same.
type ResultFormat struct {
	// Name is the address's last segment ("xlsx"): lower-case letters,
	// digits and '-'.
	Name string
	// Label is the link's text ("Excel (.xlsx)").
	Label string
	// Ext is the file name's extension in place of the stored one's
	// (".xlsx"); ContentType is the file's.
	Ext, ContentType string
	// Convert writes the stored result, read from src, to dst in the
	// format. An error before anything is written is a 500; it should
	// return soon after ctx ends (the client went away).
	Convert func(ctx context.Context, src io.Reader, dst io.Writer) error
}

// StartButton is a task list button that enqueues a job of its kind for
// the signed-in user: POST /tasks/{Path}, with the list's idempotency key.
type StartButton struct {
	// Path is the route under /tasks/ ("generate-report"): lower-case
	// letters, digits and '-'.
	Path string
	// Label is the button's text ("Generate Full Report").
	Label string
	// Hint, if set, says beside the button what it makes.
	Hint string
	// Queued is the notice shown once the job is queued; empty: a
	// sentence built from the kind's label.
	Queued string
}

// ResultView shows a completed task's stored result as a page of the app,
// at /tasks/{id}/{Path}, linked from the task list and the task's page.
type ResultView struct {
	// Path is the page's last path segment ("analytics"): lower-case
	// letters, digits and '-', and none of the task routes' own.
	Path string
	// Link is the text of the links to the page ("Open the charts").
	Link string
	// Render writes the result, read from result, as an HTML fragment
	// the page's layout wraps. It must hold no script and no inline
	// style (the pages' CSP refuses both); classes are styled by the
	// app's stylesheet. An error before anything is written is a 500.
	Render func(ctx context.Context, w io.Writer, t tasktype.Task, result io.Reader) error
}

// reservedViewPaths are the task routes a ResultView's path must not shadow.
var reservedViewPaths = map[string]bool{"cancel": true, "retry": true, "download": true, "regenerate": true, "events": true}

var pathSegment = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// kinds is the configured TaskKinds by type, in their configured order.
type kinds struct {
	list   []TaskKind
	byType map[string]*TaskKind
}

func newKinds(ks []TaskKind) (*kinds, error) {
	k := &kinds{list: append([]TaskKind(nil), ks...), byType: make(map[string]*TaskKind)}
	var errs []error
	starts, views := map[string]bool{}, map[string]bool{}
	for i := range k.list {
		kd := &k.list[i]
		if !tasktype.ValidType(kd.Type) {
			errs = append(errs, fmt.Errorf("web config: Kinds[%d]: type %q is not a job type", i, kd.Type))
			continue
		}
		if k.byType[kd.Type] != nil {
			errs = append(errs, fmt.Errorf("web config: Kinds: type %q twice", kd.Type))
		}
		k.byType[kd.Type] = kd
		if b := kd.Start; b != nil {
			if !pathSegment.MatchString(b.Path) || starts[b.Path] || b.Label == "" {
				errs = append(errs, fmt.Errorf("web config: Kinds[%d] (%s): Start needs a unique Path of a-z, 0-9 and '-' and a Label (got %q, %q)", i, kd.Type, b.Path, b.Label))
			}
			starts[b.Path] = true
		}
		if v := kd.View; v != nil {
			if !pathSegment.MatchString(v.Path) || reservedViewPaths[v.Path] || views[v.Path] || v.Link == "" || v.Render == nil {
				errs = append(errs, fmt.Errorf("web config: Kinds[%d] (%s): View needs a unique Path of a-z, 0-9 and '-' that is no task route's, a Link and Render (got %q)", i, kd.Type, v.Path))
			}
			views[v.Path] = true
		}
		names := map[string]bool{}
		for _, f := range kd.Formats {
			if !pathSegment.MatchString(f.Name) || names[f.Name] || f.Label == "" || f.ContentType == "" || f.Convert == nil {
				errs = append(errs, fmt.Errorf("web config: Kinds[%d] (%s): each of Formats needs a unique Name of a-z, 0-9 and '-', a Label, a ContentType and Convert (got %q)", i, kd.Type, f.Name))
			}
			names[f.Name] = true
		}
	}
	if len(starts) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("web config: Kinds: at least one kind must have a Start button"))
	}
	return k, errors.Join(errs...)
}

// label is how users see job type t.
func (k *kinds) label(t string) string {
	if kd := k.byType[t]; kd != nil && kd.Label != "" {
		return kd.Label
	}
	return strings.ReplaceAll(t, "_", " ")
}

// view is job type t's result page, or nil when its results download.
func (k *kinds) view(t string) *ResultView {
	if kd := k.byType[t]; kd != nil {
		return kd.View
	}
	return nil
}

// formats are job type t's other download formats.
func (k *kinds) formats(t string) []ResultFormat {
	if kd := k.byType[t]; kd != nil {
		return kd.Formats
	}
	return nil
}

// format is job type t's download format name, or nil.
func (k *kinds) format(t, name string) *ResultFormat {
	for i, f := range k.formats(t) {
		if f.Name == name {
			return &k.formats(t)[i]
		}
	}
	return nil
}

// startButtons are the task list's buttons, in the configured order.
func (k *kinds) startButtons() []startButton {
	var bs []startButton
	for _, kd := range k.list {
		if kd.Start != nil {
			bs = append(bs, startButton{StartButton: *kd.Start, Type: kd.Type})
		}
	}
	return bs
}

// startButton is a StartButton with its kind's type, for the template.
type startButton struct {
	StartButton
	Type string
}

// noun is what a user calls a task of type t in a sentence.
func (k *kinds) noun(t string) string {
	if kd := k.byType[t]; kd != nil && kd.Noun != "" {
		return kd.Noun
	}
	return strings.ToLower(k.label(t))
}

// queuedNotice tells the user what became of the task of type t they
// just started.
func (k *kinds) queuedNotice(t string, st tasktype.Status) string {
	name := k.noun(t)
	switch st {
	case tasktype.StatusCompleted:
		return "Your " + name + " is ready: see below."
	case tasktype.StatusFailed:
		return "Your " + name + " could not be made; the reason is shown below."
	case tasktype.StatusRetrying:
		return "Your " + name + " hit a problem and will be tried again shortly; the reason is shown below."
	case tasktype.StatusCancelled:
		return "Your " + name + " was cancelled."
	}
	if kd := k.byType[t]; kd != nil && kd.Start != nil && kd.Start.Queued != "" {
		return kd.Start.Queued
	}
	return "Your " + name + " is being made in the background. It will appear below when it is ready."
}

// startKind enqueues a job of kind t for the signed-in user (POST
// /tasks/{Start.Path}).
func (s *server) startKind(t string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, ok := s.formKey(w, r)
		if !ok {
			return
		}
		s.startJob(w, r, tasktype.EnqueueRequest{Type: t, UserID: currentUser(r).ID, Key: key})
	}
}

type resultPageData struct {
	Task tasktype.Task
	View *ResultView
	Body template.HTML
}

// showResult shows a completed task's result through its kind's
// ResultView (GET /tasks/{id}/{View.Path}). Another user's task, a task
// of another kind and a task without a result are all 404s; an expired
// result is a 410 offering to make it again, as a download's is.
func (s *server) showResult(v *ResultView, t string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		task, ok := s.userTask(w, r)
		if !ok {
			return
		}
		if task.TaskType != t || !task.HasResult() {
			s.notFound(w, r)
			return
		}
		res, ok := s.openResult(w, r, &task)
		if !ok {
			return
		}
		defer res.Close()
		var b strings.Builder
		if err := v.Render(r.Context(), &b, task, res); err != nil {
			s.serverError(w, r, fmt.Errorf("render %s result %s: %w", t, task.ID, err))
			return
		}
		s.render(w, r, "result", view{Title: s.kinds.label(t), Nav: "tasks", Data: resultPageData{Task: task, View: v, Body: template.HTML(b.String())}})
	}
}
