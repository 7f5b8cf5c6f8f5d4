package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

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
	if d.Filter.Text != "" {
		q.Set("q", d.Filter.Text)
	}
	if d.Filter.From != "" {
		q.Set("from", d.Filter.From)
	}
	if d.Filter.To != "" {
		q.Set("to", d.Filter.To)
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
// (natural code), type, tag, dates and a text in the title, description
// or notes (GET /activities?ksb=K1&type=workshop&tag=go&from=2026-01-01&to=2026-03-31&q=kafka&page=2).
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
	f := activity.Filter{KSB: q.Get("ksb"), Type: q.Get("type"), Tag: q.Get("tag"),
		Text: strings.TrimSpace(q.Get("q")), From: q.Get("from"), To: q.Get("to")}
	if msg := checkActivityFilter(f); msg != "" {
		s.fail(w, r, http.StatusBadRequest, "Bad request", msg)
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

// maxSearchText bounds the text searched for: a longer one can match
// nothing a form would have stored sensibly, and each byte is read
// against every row.
const maxSearchText = 200

// checkActivityFilter returns a sentence saying what is wrong with f, or "".
func checkActivityFilter(f activity.Filter) string {
	if f.Type != "" && !isOption(activity.ActivityTypes, f.Type) {
		return "The activity type to filter by is not one of the list's."
	}
	if len(f.Text) > maxSearchText {
		return fmt.Sprintf("The text to search for may be at most %d characters long.", maxSearchText)
	}
	for _, d := range []struct{ v, which string }{{f.From, "first"}, {f.To, "last"}} {
		if d.v == "" {
			continue
		}
		if _, err := time.Parse(time.DateOnly, d.v); err != nil {
			return "The " + d.which + " day to list must be a date such as 2026-03-31."
		}
	}
	if f.From != "" && f.To != "" && f.From > f.To {
		return "The first day to list must not be after the last."
	}
	return ""
}
