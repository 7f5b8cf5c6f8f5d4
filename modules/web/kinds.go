package web

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"regexp"
	"strings"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// TaskKind is one kind of background work, as the web offers and shows
// it. The web knows no job type of its own: each job module declares its
// kind with the task registry (tasks.Registry.Describe), and the app
// passes the registry's kinds (tasks.Client.Kinds).
type TaskKind = tasktype.Kind

// ResultFormat is another file a completed task's result downloads as;
// see tasktype.ResultFormat.
type ResultFormat = tasktype.ResultFormat

// StartButton is a task list button that starts a task of its kind; see
// tasktype.StartButton.
type StartButton = tasktype.StartButton

// ResultView shows a completed task's result as a page of the app; see
// tasktype.ResultView.
type ResultView = tasktype.ResultView

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

// restateTasks puts the sentence each completed task's owner is shown in
// place of its summary as the log holds it (tasktype.Kind.Restate): the
// log keeps no personal text, so a summary that names the user is built
// here, as the page is read. Tasks are changed in place; a summary is
// restated once per call and owner, however many tasks share it (never
// one owner's sentence on another's task).
func (k *kinds) restateTasks(ctx context.Context, list []tasktype.Task) {
	type restated struct {
		taskType, summary string
		userID            int64
	}
	seen := map[restated]string{}
	for i := range list {
		t := &list[i]
		key := restated{t.TaskType, t.ResultData, t.UserID}
		if s, ok := seen[key]; ok {
			t.ResultData = s
			continue
		}
		t.ResultData = k.restate(ctx, t.TaskType, t.UserID, t.ResultData)
		seen[key] = t.ResultData
	}
}

// restateEvents does for a history's success events what restateTasks
// does for rows.
func (k *kinds) restateEvents(ctx context.Context, events []tasktype.Event) {
	for i := range events {
		if e := &events[i]; e.Kind == tasktype.EventSucceeded {
			e.Summary = k.restate(ctx, e.JobType, e.UserID, e.Summary)
		}
	}
}

// restate is summary, of a task of type t owned by userID, as its owner
// is shown it.
func (k *kinds) restate(ctx context.Context, t string, userID int64, summary string) string {
	if kd := k.byType[t]; kd != nil && kd.Restate != nil && summary != "" {
		return kd.Restate(ctx, userID, summary)
	}
	return summary
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
