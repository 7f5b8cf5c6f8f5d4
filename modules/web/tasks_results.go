package web

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// regenForm is the Generate again button of an expired result: a POST
// to /tasks/{id}/regenerate with an idempotency key, as the generate form
// has, so that a double click makes one job.
type regenForm struct {
	ID, Key string
}

// expiredList says which completed tasks of a list have a result that is
// gone by now, by Retention: past its TTL, or behind Keep newer results
// of its kind. The rank comes from the list itself (the user's newest
// tasks), which is enough: a result it misses is found gone when opened,
// and the download says so.
func (s *server) expiredList(list []tasktype.Task) map[string]bool {
	now := s.cfg.Now()
	expired := make(map[string]bool)
	for i := range list {
		t := &list[i]
		if !t.HasResult() {
			continue
		}
		newer := 0
		for j := range list {
			o := &list[j]
			if j != i && o.HasResult() && o.TaskType == t.TaskType &&
				(o.CompletedAt.After(t.CompletedAt) || o.CompletedAt.Equal(t.CompletedAt) && o.ID > t.ID) {
				newer++
			}
		}
		if s.cfg.Retention.Expired(t.CompletedAt, newer, now) {
			expired[t.ID] = true
		}
	}
	return expired
}

// expired reports whether the completed task t's result is gone by now,
// by Retention.
func (s *server) expired(ctx context.Context, t *tasktype.Task) (bool, error) {
	if !t.HasResult() {
		return false, nil
	}
	newer := 0
	if s.cfg.Retention.Keep > 0 {
		var err error
		if newer, err = s.cfg.Tasks.NewerResults(ctx, t.UserID, t.TaskType, t.ID, t.CompletedAt); err != nil {
			return false, err
		}
	}
	return s.cfg.Retention.Expired(t.CompletedAt, newer, s.cfg.Now()), nil
}

// expiredPage tells the user that the task's result is gone and offers
// to make it again (410 Gone): never an error page or a broken link.
func (s *server) expiredPage(w http.ResponseWriter, r *http.Request, t *tasktype.Task) {
	w.WriteHeader(http.StatusGone)
	s.render(w, r, "error", view{Title: "Result expired", Data: errorData{
		Heading:    "This result has expired",
		Message:    "Results are kept for a while and then removed to make room" + s.retentionNote() + ". You can generate it again: it will show the data as it is now.",
		Regenerate: &regenForm{ID: t.ID, Key: rand.Text()},
	}})
}

// retentionNote says how long results are kept, as part of a sentence.
func (s *server) retentionNote() string {
	var note string
	if ttl := s.cfg.Retention.TTL; ttl > 0 {
		note = " (for " + humanDuration(ttl)
		if k := s.cfg.Retention.Keep; k > 0 {
			note += ", and only the newest " + strconv.Itoa(k) + " of each kind"
		}
		note += ")"
	}
	return note
}

func humanDuration(d time.Duration) string {
	if days := d / (24 * time.Hour); days >= 2 && d%(24*time.Hour) == 0 {
		return strconv.Itoa(int(days)) + " days"
	}
	if d == time.Hour {
		return "an hour"
	}
	if d%time.Hour == 0 {
		return strconv.Itoa(int(d/time.Hour)) + " hours"
	}
	return d.String()
}

// regenerateResult makes a completed task's result again
// (POST /tasks/{id}/regenerate): a new job of the task's type for the
// same user, with the payload the task was enqueued with. The web knows
// no job types for this; the task's row and history say it all.
func (s *server) regenerateResult(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if !tasktype.ValidID(id) {
		s.notFound(w, r)
		return
	}
	key, ok := s.formKey(w, r)
	if !ok {
		return
	}
	u := currentUser(r)
	t, err := s.cfg.Tasks.GetForUser(r.Context(), u.ID, id)
	if errors.Is(err, tasktype.ErrNotFound) {
		s.notFound(w, r)
		return
	}
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if t.Status != tasktype.StatusCompleted {
		s.fail(w, r, http.StatusConflict, "Cannot generate this again",
			"Only a completed task's result can be generated again; this task is "+string(t.Status)+".")
		return
	}
	hctx, cancel := context.WithTimeout(r.Context(), s.cfg.EnqueueTimeout)
	defer cancel()
	events, err := s.cfg.History.History(hctx, u.ID, id)
	switch {
	case errors.Is(err, tasktype.ErrNotFound) || err == nil && (len(events) == 0 || events[0].Kind != tasktype.EventEnqueued):
		s.fail(w, r, http.StatusConflict, "Cannot generate this again",
			"The details this task was started with are no longer kept. Start a new one from the task list.")
		return
	case unavailable(err):
		s.queueUnavailable(w, r, err, "regenerate",
			"The background task queue cannot be reached right now, so nothing was started. Please try again in a minute.",
			"task_id", id, "user_id", u.ID)
		return
	case err != nil:
		s.serverError(w, r, err, "task_id", id)
		return
	}
	s.startJob(w, r, tasktype.EnqueueRequest{Type: t.TaskType, UserID: u.ID, Payload: events[0].Payload, Key: key})
}
