package web

import (
	"crypto/rand"
	"net/http"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// recentTasks is how many tasks the list shows.
const recentTasks = 50

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
	// Type is the one kind of task listed (?type=), "" for every kind;
	// Kinds are the kinds to list one of.
	Type  string
	Kinds []TaskKind
}

// listTasks shows the user's recent tasks (GET /tasks/).
func (s *server) listTasks(w http.ResponseWriter, r *http.Request) {
	u := currentUser(r)
	live := s.liveURL(r.Context()) // before the list: no event after it is missed
	typ := r.URL.Query().Get("type")
	var (
		list []tasktype.Task
		err  error
	)
	switch {
	case typ == "":
		list, err = s.cfg.Tasks.ListForUser(r.Context(), u.ID, recentTasks)
	case s.kinds.byType[typ] == nil:
		s.fail(w, r, http.StatusBadRequest, "Bad request", "There is no such kind of task to list.")
		return
	default:
		// One kind's tasks, such as every digest the user was sent.
		list, err = s.cfg.Tasks.List(r.Context(), tasktype.Filter{UserID: u.ID, Type: typ, Limit: recentTasks})
	}
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	title := "Tasks"
	if typ != "" {
		title = s.kinds.label(typ)
	}
	v := view{Title: title, Nav: "tasks", Live: live, Data: tasksData{Tasks: list, FormKey: rand.Text(), Expired: s.expiredList(list), RegenKey: rand.Text(),
		Type: typ, Kinds: s.kinds.list}}
	for _, t := range list {
		if t.Status.Active() { // pending, running or retrying
			v.Refresh = true
		}
		if t.ID == r.URL.Query().Get("queued") {
			v.Notice = s.kinds.queuedNotice(t.TaskType, t.Status)
		}
	}
	s.render(w, r, "tasks", v)
}
