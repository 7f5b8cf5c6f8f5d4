package web

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/otjhelper/otj/modules/activity"
)

const activitiesPerPage = 50

type activitiesData struct {
	Page   activity.Page
	Pages  int
	Filter activity.Filter
	// Filtered is set when any filter narrows the list.
	Filtered bool
	// KSBs and Tags are the filter's choices: the user's standard's KSBs
	// and the user's tags.
	KSBs []activity.KSB
	Tags []string
}

// PageURL is the list's address for page p with the same filters.
func (d activitiesData) PageURL(p int) string {
	q := url.Values{}
	if d.Filter.KSB != "" {
		q.Set("ksb", d.Filter.KSB)
	}
	if d.Filter.Type != "" {
		q.Set("type", d.Filter.Type)
	}
	if d.Filter.Tag != "" {
		q.Set("tag", d.Filter.Tag)
	}
	if p > 1 {
		q.Set("page", strconv.Itoa(p))
	}
	if len(q) == 0 {
		return "/activities"
	}
	return "/activities?" + q.Encode()
}

// listActivities shows the user's log, newest first, filtered by KSB
// (natural code), type and tag (GET /activities?ksb=K1&type=workshop&tag=go&page=2).
func (s *server) listActivities(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page := 1
	if p := q.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			s.fail(w, r, http.StatusBadRequest, "Bad request", "The page number must be a whole number from 1.")
			return
		}
		page = n
	}
	f := activity.Filter{KSB: q.Get("ksb"), Type: q.Get("type"), Tag: q.Get("tag")}
	if f.Type != "" && !isOption(activity.ActivityTypes, f.Type) {
		s.fail(w, r, http.StatusBadRequest, "Bad request", "The activity type to filter by is not one of the list's.")
		return
	}
	u := currentUser(r)
	pg, err := s.cfg.Activities.ListActivities(r.Context(), u.ID, f, page, activitiesPerPage)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	d := activitiesData{Page: pg, Pages: max(1, (pg.Total+activitiesPerPage-1)/activitiesPerPage), Filter: f, Filtered: f != activity.Filter{}}
	if u.SelectedSpec != "" {
		if d.KSBs, err = s.cfg.Activities.KSBs(r.Context(), u.SelectedSpec); err != nil {
			s.serverError(w, r, err)
			return
		}
	}
	if d.Tags, err = s.cfg.Activities.Tags(r.Context(), u.ID); err != nil {
		s.serverError(w, r, err)
		return
	}
	notice := ""
	if q.Get("deleted") != "" {
		notice = "The activity was deleted."
	}
	s.render(w, r, "activities", view{Title: "Activity log", Nav: "activities", Notice: notice, Data: d})
}
