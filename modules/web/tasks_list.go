package web

import (
	"crypto/rand"
	"net/http"
	"net/url"
	"time"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// tasksPerPage is how many tasks a page of the list shows.
const tasksPerPage = 50

type tasksData struct {
	Tasks []tasktype.Task
	// FormKey makes the generate form idempotent: a double-click sends
	// the same key twice and makes one job.
	FormKey string
	// Expired marks the tasks whose result is gone; RegenKey is the key
	// of their Generate again buttons (one for the page: two expired
	// results of a kind make one new one).
	Expired  map[string]bool
	RegenKey string
	// Filter is what the list is narrowed to; Kinds and States are the
	// filter's choices.
	Filter taskFilter
	Kinds  []TaskKind
	States []tasktype.Status
	// NewerURL and OlderURL are the neighbouring pages, "" at either end.
	NewerURL, OlderURL string
}

// taskFilter is the task list's query: the kind (?type=), state and
// creation dates (?from=, ?to=, both days in the user's time zone,
// inclusive).
type taskFilter struct {
	Type, State, From, To string
}

// Filtered reports whether any filter narrows the list.
func (f taskFilter) Filtered() bool { return f != taskFilter{} }

// url is the list's address with f's filters and, if set, the cursor
// parameter (before or after) naming a task.
func (f taskFilter) url(param, taskID string) string {
	q := url.Values{}
	for k, v := range map[string]string{"type": f.Type, "state": f.State, "from": f.From, "to": f.To, param: taskID} {
		if k != "" && v != "" {
			q.Set(k, v)
		}
	}
	if len(q) == 0 {
		return "/tasks/"
	}
	return "/tasks/?" + q.Encode()
}

// listTasks shows a page of the user's tasks, newest first, narrowed by
// kind, state and creation date (GET /tasks/?type=&state=&from=&to=).
// It pages by keyset: ?before=ID shows the tasks just older than task ID,
// ?after=ID those just newer.
func (s *server) listTasks(w http.ResponseWriter, r *http.Request) {
	u := currentUser(r)
	live := s.liveURL(r.Context()) // before the list: no event after it is missed
	q := r.URL.Query()
	tf := taskFilter{Type: q.Get("type"), State: q.Get("state"), From: q.Get("from"), To: q.Get("to")}
	f, msg := s.parseTaskFilter(tf, location(u.Timezone))
	if msg != "" {
		s.fail(w, r, http.StatusBadRequest, "Bad request", msg)
		return
	}
	f.UserID, f.Limit = u.ID, tasksPerPage+1 // one more: is there another page?
	for _, p := range []string{"before", "after"} {
		id := q.Get(p)
		if id == "" {
			continue
		}
		// The cursor is a task of the user's: another's, or one that is
		// gone, is not found.
		t, err := s.cfg.Tasks.GetForUser(r.Context(), u.ID, id)
		if isNotFound(err) {
			s.fail(w, r, http.StatusNotFound, "Not found", "The task this page was to continue from is not there any more. Start again from the newest.")
			return
		}
		if err != nil {
			s.serverError(w, r, err)
			return
		}
		f.After = tasktype.CursorAt(t, p == "after")
		break
	}
	d := tasksData{FormKey: rand.Text(), RegenKey: rand.Text(), Filter: tf, Kinds: s.kinds.list, States: tasktype.Statuses}
	list, err := s.cfg.Tasks.List(r.Context(), f)
	if err == nil && f.After != nil && f.After.Newer && len(list) <= tasksPerPage {
		// Nothing newer beyond these: the newest page, full.
		f.After = nil
		list, err = s.cfg.Tasks.List(r.Context(), f)
	}
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	more := len(list) > tasksPerPage
	switch {
	case f.After == nil:
		list = list[:min(len(list), tasksPerPage)]
		if more {
			d.OlderURL = tf.url("before", list[len(list)-1].ID)
		}
	case f.After.Newer: // more is true here: the newest page was shown instead
		list = list[1:]
		d.NewerURL = tf.url("after", list[0].ID)
		d.OlderURL = tf.url("before", list[len(list)-1].ID)
	default:
		list = list[:min(len(list), tasksPerPage)]
		if len(list) > 0 {
			d.NewerURL = tf.url("after", list[0].ID)
			if more {
				d.OlderURL = tf.url("before", list[len(list)-1].ID)
			}
		} else {
			d.NewerURL = tf.url("", "")
		}
	}
	s.kinds.restateTasks(r.Context(), list)
	d.Tasks, d.Expired = list, s.expiredList(list)
	title := "Tasks"
	if tf.Type != "" {
		title = s.kinds.label(tf.Type)
	}
	v := view{Title: title, Nav: "tasks", Live: live, Data: d}
	for _, t := range list {
		if t.Status.Active() { // pending, running or retrying
			v.Refresh = true
		}
		if t.ID == q.Get("queued") {
			v.Notice = s.kinds.queuedNotice(t.TaskType, t.Status)
		}
	}
	s.render(w, r, "tasks", v)
}

// parseTaskFilter turns the list's query into a filter of the user's
// tasks, the dates read in loc; or a sentence saying what is wrong.
func (s *server) parseTaskFilter(tf taskFilter, loc *time.Location) (tasktype.Filter, string) {
	var f tasktype.Filter
	if tf.Type != "" {
		if s.kinds.byType[tf.Type] == nil {
			return f, "There is no such kind of task to list."
		}
		f.Type = tf.Type
	}
	if tf.State != "" {
		if !tasktype.Status(tf.State).Valid() {
			return f, "There is no such state of a task to list."
		}
		f.Status = tasktype.Status(tf.State)
	}
	if tf.From != "" {
		d, err := time.ParseInLocation(time.DateOnly, tf.From, loc)
		if err != nil {
			return f, "The first day to list must be a date such as 2026-03-31."
		}
		f.CreatedFrom = d
	}
	if tf.To != "" {
		d, err := time.ParseInLocation(time.DateOnly, tf.To, loc)
		if err != nil {
			return f, "The last day to list must be a date such as 2026-03-31."
		}
		f.CreatedBefore = d.AddDate(0, 0, 1) // the whole last day
	}
	if !f.CreatedFrom.IsZero() && !f.CreatedBefore.IsZero() && !f.CreatedFrom.Before(f.CreatedBefore) {
		return f, "The first day to list must not be after the last."
	}
	return f, ""
}
