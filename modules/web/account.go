package web

import (
	"context"
	"crypto/rand"
	"net/http"
	"strings"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/session"
)

// AccountEraser erases a user everywhere: their task results, job
// events and task rows, their activity log and their user row
// (account.Eraser). It must be safe to run again after a failure.
type AccountEraser interface {
	Erase(ctx context.Context, userID int64) error
}

// accountData is what the account page shows.
type accountData struct {
	// Export says the page offers the export (Config.ExportType set).
	Export bool
	// FormKey makes the export form idempotent, as the task list's.
	FormKey string
	// Confirm is the confirmation as typed, and Error why it was refused.
	Confirm, Error string
}

// showAccount is GET /account: what the user can take and erase.
func (s *server) showAccount(w http.ResponseWriter, r *http.Request) {
	s.renderAccount(w, r, http.StatusOK, accountData{})
}

func (s *server) renderAccount(w http.ResponseWriter, r *http.Request, status int, d accountData) {
	d.Export, d.FormKey = s.cfg.ExportType != "", rand.Text()
	w.WriteHeader(status)
	s.render(w, r, "account", view{Title: "Your data", Nav: "account", Data: d})
}

// exportAccount is POST /account/export: it starts the user's export, a
// task whose result is the zip, and goes to the task list.
func (s *server) exportAccount(w http.ResponseWriter, r *http.Request) {
	key, ok := s.formKey(w, r)
	if !ok {
		return
	}
	s.startJob(w, r, tasktype.EnqueueRequest{Type: s.cfg.ExportType, UserID: currentUser(r).ID, Key: key})
}

// deleteAccount is POST /account/delete: once the user has typed their
// email in confirm, it erases them everywhere, signs them out and says
// goodbye. A missing or wrong confirmation is a 400 with the form again,
// and erases nothing.
func (s *server) deleteAccount(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.formError(w, r, err)
		return
	}
	u := currentUser(r)
	confirm := strings.TrimSpace(r.PostForm.Get("confirm"))
	if !strings.EqualFold(confirm, u.Email) {
		msg := "Type your email address, " + u.Email + ", to confirm. Nothing was deleted."
		if confirm == "" {
			msg = "Type your email address to confirm that you want everything deleted. Nothing was deleted."
		}
		s.renderAccount(w, r, http.StatusBadRequest, accountData{Confirm: confirm, Error: msg})
		return
	}
	if err := s.cfg.Account.Erase(r.Context(), u.ID); err != nil {
		s.serverError(w, r, err, "user_id", u.ID)
		return
	}
	http.SetCookie(w, s.cookie(r, s.cfg.Sessions.Clear(session.CookieName)))
	// The page is shown signed out: the user is gone.
	r = r.WithContext(context.WithValue(r.Context(), userKey{}, (*activity.User)(nil)))
	s.render(w, r, "goodbye", view{Title: "Your account is deleted"})
}
