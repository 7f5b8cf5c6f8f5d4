package web

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/otjhelper/otj/modules/activity"
)

// settingsForm is the settings form as typed, so that a refused one is
// shown again as the user left it.
type settingsForm struct {
	SelectedSpec, OTJ, Seminar, Weekly, Timezone string
}

type settingsData struct {
	Standards []activity.Standard
	Form      settingsForm
	// Errors holds a sentence per field name that was refused.
	Errors map[string]string
}

// The bounds of the hour targets: an apprenticeship's OTJ hours run to
// hundreds, rarely beyond a thousand; a week has 168 hours.
const (
	maxTargetHours = 10000
	maxWeeklyHours = 168
)

// formOf shows a user's stored settings; a target of 0 (none) is blank.
func formOf(u *activity.User) settingsForm {
	num := func(h float64) string {
		if h == 0 {
			return ""
		}
		return strconv.FormatFloat(h, 'f', -1, 64)
	}
	return settingsForm{SelectedSpec: u.SelectedSpec, OTJ: num(u.OTJTargetHours), Seminar: num(u.SeminarTargetHours),
		Weekly: num(u.WeeklyTargetHours), Timezone: u.Timezone}
}

// showSettings is GET /settings.
func (s *server) showSettings(w http.ResponseWriter, r *http.Request) {
	u := currentUser(r)
	notice := ""
	if r.URL.Query().Get("saved") == "1" {
		notice = "Your settings are saved."
	}
	s.renderSettings(w, r, http.StatusOK, notice, formOf(u), nil)
}

func (s *server) renderSettings(w http.ResponseWriter, r *http.Request, status int, notice string, f settingsForm, errs map[string]string) {
	stds, err := s.cfg.Settings.Standards(r.Context())
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	w.WriteHeader(status)
	s.render(w, r, "settings", view{Title: "Settings", Nav: "settings", Notice: notice,
		Data: settingsData{Standards: stds, Form: f, Errors: errs}})
}

// saveSettings is POST /settings: checked field by field, saved, and
// back to the page with a confirmation (303), or the form again with a
// sentence per refused field (400).
func (s *server) saveSettings(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.formError(w, r, err)
		return
	}
	f := settingsForm{
		SelectedSpec: strings.TrimSpace(r.PostForm.Get("selected_spec")),
		OTJ:          strings.TrimSpace(r.PostForm.Get("otj_target_hours")),
		Seminar:      strings.TrimSpace(r.PostForm.Get("seminar_target_hours")),
		Weekly:       strings.TrimSpace(r.PostForm.Get("weekly_target_hours")),
		Timezone:     strings.TrimSpace(r.PostForm.Get("timezone")),
	}
	stds, err := s.cfg.Settings.Standards(r.Context())
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	set, errs := checkSettings(f, stds)
	if len(errs) > 0 {
		s.renderSettings(w, r, http.StatusBadRequest, "", f, errs)
		return
	}
	if err := s.cfg.Settings.UpdateSettings(r.Context(), currentUser(r).ID, set); err != nil {
		s.serverError(w, r, err)
		return
	}
	http.Redirect(w, r, "/settings?saved=1", http.StatusSeeOther)
}

// checkSettings turns the form into Settings, or says what is wrong with
// each field it refuses.
func checkSettings(f settingsForm, stds []activity.Standard) (activity.Settings, map[string]string) {
	errs := map[string]string{}
	set := activity.Settings{SelectedSpec: f.SelectedSpec, Timezone: f.Timezone}
	known := false
	for _, st := range stds {
		known = known || st.Code == f.SelectedSpec
	}
	if f.SelectedSpec == "" {
		errs["selected_spec"] = "Choose your apprenticeship standard."
	} else if !known {
		errs["selected_spec"] = "Choose one of the standards listed."
	}
	var msg string
	if set.OTJTargetHours, msg = hoursField(f.OTJ, true, maxTargetHours); msg != "" {
		errs["otj_target_hours"] = msg
	}
	if set.SeminarTargetHours, msg = hoursField(f.Seminar, false, maxTargetHours); msg != "" {
		errs["seminar_target_hours"] = msg
	}
	if set.WeeklyTargetHours, msg = hoursField(f.Weekly, false, maxWeeklyHours); msg != "" {
		errs["weekly_target_hours"] = msg
	}
	if f.Timezone == "" {
		errs["timezone"] = "Enter your time zone, such as Europe/London."
	} else if _, err := time.LoadLocation(f.Timezone); err != nil || strings.EqualFold(f.Timezone, "local") {
		errs["timezone"] = "Enter a time zone name such as Europe/London; " + strconv.Quote(f.Timezone) + " is not one."
	}
	return set, errs
}

// hoursField reads a target in hours: blank is none (0) unless required;
// otherwise a number above 0 and at most max.
func hoursField(v string, required bool, max float64) (float64, string) {
	if v == "" {
		if required {
			return 0, "Enter a number of hours."
		}
		return 0, ""
	}
	h, err := strconv.ParseFloat(v, 64)
	switch {
	case err != nil || math.IsNaN(h) || math.IsInf(h, 0):
		return 0, "Enter a number of hours, such as 400 or 6.5."
	case h <= 0 && required:
		return 0, "Enter a number of hours above 0."
	case h <= 0:
		return 0, "Enter a number of hours above 0, or leave it blank for none."
	case h > max:
		return 0, "Enter at most " + strconv.FormatFloat(max, 'f', -1, 64) + " hours."
	}
	return h, ""
}
