package web

import (
	"net/http"
	"strconv"

	"github.com/otjhelper/otj/modules/activity"
)

const activitiesPerPage = 50

type activitiesData struct {
	Page  activity.Page
	Pages int
}

// listActivities shows the user's log, newest first (GET /activities).
func (s *server) listActivities(w http.ResponseWriter, r *http.Request) {
	page := 1
	if p := r.URL.Query().Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			s.fail(w, r, http.StatusBadRequest, "Bad request", "The page number must be a whole number from 1.")
			return
		}
		page = n
	}
	u := currentUser(r)
	pg, err := s.cfg.Activities.ListActivities(r.Context(), u.ID, activity.Filter{}, page, activitiesPerPage)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	pages := max(1, (pg.Total+activitiesPerPage-1)/activitiesPerPage)
	s.render(w, r, "activities", view{Title: "Activity log", Nav: "activities", Data: activitiesData{Page: pg, Pages: pages}})
}
