package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/otjhelper/otj/modules/activity"
)

// maxFormBytes bounds an activity form's body: far above the most the
// field limits allow, far below what would cost the server memory.
const maxFormBytes = 512 << 10

type activityIDKey struct{}

// activityID answers 404 to a request whose {id} is not a positive
// decimal activity id, before it reaches storage, and passes the id on.
// The page is the same as for an unknown id or another user's activity.
func (s *server) activityID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw := chi.URLParam(r, "id")
		id, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || id < 1 || strconv.FormatInt(id, 10) != raw {
			s.notFound(w, r)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), activityIDKey{}, id)))
	})
}

// currentActivityID is the id activityID checked.
func currentActivityID(r *http.Request) int64 {
	id, _ := r.Context().Value(activityIDKey{}).(int64)
	return id
}

// ksbGroup is one category of a standard's KSBs, as the form groups them.
type ksbGroup struct {
	Label string
	KSBs  []activity.KSB
}

// formData is what activity_form.html gets.
type formData struct {
	Form activityForm
	// Action is where the form posts; ID the activity edited (0: new).
	Action string
	ID     int64
	Groups []ksbGroup
	// NoStandard is set when the user has chosen no standard yet: the
	// form then links to /settings instead of listing KSBs.
	NoStandard bool
	Tags       []string
}

// userKSBs returns the signed-in user's standard's KSBs, grouped K, S, B,
// and their stored codes.
func (s *server) userKSBs(r *http.Request) ([]ksbGroup, map[string]bool, error) {
	u := currentUser(r)
	if u.SelectedSpec == "" {
		return nil, map[string]bool{}, nil
	}
	ksbs, err := s.cfg.Activities.KSBs(r.Context(), u.SelectedSpec)
	if err != nil {
		return nil, nil, err
	}
	codes := make(map[string]bool, len(ksbs))
	groups := []ksbGroup{{Label: "Knowledge"}, {Label: "Skills"}, {Label: "Behaviours"}}
	for _, k := range ksbs {
		codes[k.Code] = true
		i := 0
		switch k.Category {
		case "skill":
			i = 1
		case "behaviour":
			i = 2
		}
		groups[i].KSBs = append(groups[i].KSBs, k)
	}
	return groups, codes, nil
}

// renderForm shows the activity form, with status (400 for an invalid one).
func (s *server) renderForm(w http.ResponseWriter, r *http.Request, status int, f activityForm, id int64) {
	groups, _, err := s.userKSBs(r)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	tags, err := s.cfg.Activities.Tags(r.Context(), currentUser(r).ID)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	d := formData{Form: f.withBlankRows(), ID: id, Groups: groups, NoStandard: currentUser(r).SelectedSpec == "", Tags: tags, Action: "/activities/new"}
	title := "New activity"
	if id != 0 {
		d.Action, title = "/activities/"+strconv.FormatInt(id, 10)+"/edit", "Edit activity"
	}
	if status != http.StatusOK {
		w.WriteHeader(status)
	}
	s.render(w, r, "activity_form", view{Title: title, Nav: "activities", Data: d})
}

// newActivity shows an empty form (GET /activities/new).
func (s *server) newActivity(w http.ResponseWriter, r *http.Request) {
	s.renderForm(w, r, http.StatusOK, activityForm{Quality: "draft"}, 0)
}

// readForm parses and checks a posted activity form. It answers the
// request itself (400, with the form) unless the form is valid.
func (s *server) readForm(w http.ResponseWriter, r *http.Request, id int64) (activity.Input, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.fail(w, r, http.StatusRequestEntityTooLarge, "Form too large",
				"The form is larger than an activity can be (512 KB). Shorten the description or notes and try again.")
			return activity.Input{}, false
		}
		s.fail(w, r, http.StatusBadRequest, "Bad request", "The form could not be read. Reload the page and try again.")
		return activity.Input{}, false
	}
	_, codes, err := s.userKSBs(r)
	if err != nil {
		s.serverError(w, r, err)
		return activity.Input{}, false
	}
	f, in := parseActivityForm(r.PostForm, codes)
	if len(f.Errors) > 0 {
		s.renderForm(w, r, http.StatusBadRequest, f, id)
		return activity.Input{}, false
	}
	return in, true
}

// createActivity stores a new activity and sends the browser to it
// (POST /activities/new).
func (s *server) createActivity(w http.ResponseWriter, r *http.Request) {
	in, ok := s.readForm(w, r, 0)
	if !ok {
		return
	}
	id, err := s.cfg.Activities.CreateActivity(r.Context(), currentUser(r).ID, in)
	if err != nil {
		s.writeFailed(w, r, err, 0)
		return
	}
	http.Redirect(w, r, "/activities/"+strconv.FormatInt(id, 10), http.StatusSeeOther)
}

// writeFailed answers a store error of a create or an update: a KSB that
// left the user's standard meanwhile is the form's mistake, not a 500.
func (s *server) writeFailed(w http.ResponseWriter, r *http.Request, err error, id int64) {
	switch {
	case errors.Is(err, activity.ErrUnknownKSB):
		if perr := r.ParseForm(); perr == nil {
			f, _ := parseActivityForm(r.PostForm, nil)
			f.Errors = map[string]string{"ksbs": "Choose KSBs from your standard's list."}
			s.renderForm(w, r, http.StatusBadRequest, f, id)
			return
		}
		s.fail(w, r, http.StatusBadRequest, "Bad request", "Choose KSBs from your standard's list.")
	case isNotFound(err):
		s.notFound(w, r)
	default:
		s.serverError(w, r, err)
	}
}

// activityData is what activity.html gets.
type activityData struct {
	Entry activity.Entry
	// KSBs are the entry's KSBs with their titles, in the standard's order.
	KSBs []activity.KSB
}

// showActivity shows one of the user's activities (GET /activities/{id}).
func (s *server) showActivity(w http.ResponseWriter, r *http.Request) {
	e, err := s.cfg.Activities.GetActivity(r.Context(), currentUser(r).ID, currentActivityID(r))
	if err != nil {
		s.writeFailed(w, r, err, 0)
		return
	}
	d := activityData{Entry: e}
	if len(e.KSBs) > 0 {
		groups, _, err := s.userKSBs(r)
		if err != nil {
			s.serverError(w, r, err)
			return
		}
		has := make(map[string]bool, len(e.KSBs))
		for _, c := range e.KSBs {
			has[c] = true
		}
		for _, g := range groups {
			for _, k := range g.KSBs {
				if has[k.Code] {
					d.KSBs = append(d.KSBs, k)
					delete(has, k.Code)
				}
			}
		}
		for _, c := range e.KSBs { // of a standard the user has left since
			if has[c] {
				d.KSBs = append(d.KSBs, activity.KSB{Code: c, NaturalCode: c})
			}
		}
	}
	notice := ""
	if r.URL.Query().Get("saved") != "" {
		notice = "Saved."
	}
	s.render(w, r, "activity", view{Title: e.Title, Nav: "activities", Notice: notice, Data: d})
}

// editActivity shows the form filled with the activity (GET /activities/{id}/edit).
func (s *server) editActivity(w http.ResponseWriter, r *http.Request) {
	id := currentActivityID(r)
	e, err := s.cfg.Activities.GetActivity(r.Context(), currentUser(r).ID, id)
	if err != nil {
		s.writeFailed(w, r, err, id)
		return
	}
	s.renderForm(w, r, http.StatusOK, formFromEntry(e), id)
}

// updateActivity stores the edited activity and sends the browser to it
// (POST /activities/{id}/edit).
func (s *server) updateActivity(w http.ResponseWriter, r *http.Request) {
	id := currentActivityID(r)
	// Another user's id is a 404 before the form is even checked, so
	// that a bad form cannot tell whether the id exists.
	if _, err := s.cfg.Activities.GetActivity(r.Context(), currentUser(r).ID, id); err != nil {
		s.writeFailed(w, r, err, id)
		return
	}
	in, ok := s.readForm(w, r, id)
	if !ok {
		return
	}
	if err := s.cfg.Activities.UpdateActivity(r.Context(), currentUser(r).ID, id, in); err != nil {
		s.writeFailed(w, r, err, id)
		return
	}
	http.Redirect(w, r, "/activities/"+strconv.FormatInt(id, 10)+"?saved=1", http.StatusSeeOther)
}

// deleteActivity deletes the activity and sends the browser to the list
// (POST /activities/{id}/delete).
func (s *server) deleteActivity(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Activities.DeleteActivity(r.Context(), currentUser(r).ID, currentActivityID(r)); err != nil {
		s.writeFailed(w, r, err, 0)
		return
	}
	http.Redirect(w, r, "/activities?deleted=1", http.StatusSeeOther)
}

// linkText is what a link shows: its title, else its host name, else
// the address itself.
func linkText(rawURL, title string) string {
	if title != "" {
		return title
	}
	if u, err := url.Parse(rawURL); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return rawURL
}

// titleAt is titles[i], or "" past its end.
func titleAt(titles []string, i int) string {
	if i < len(titles) {
		return titles[i]
	}
	return ""
}
