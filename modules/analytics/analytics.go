// Package analytics is the batch analytics job: per user, KSB coverage
// of their standard, hours per ISO week over the last year, hours by
// activity type, seminar against other hours and the portfolio readiness
// score, stored as JSON and shown as server-rendered SVG charts with the
// same numbers in tables (RenderHTML).
package analytics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
	_ "time/tzdata" // users' zones must load on machines without zoneinfo

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// Type is the job type of batch analytics.
const Type = "analytics"

// Label is how users see an analytics task.
const Label = "Analytics (charts)"

// Version is the version of the stored Result's shape; RenderHTML
// refuses a result of another.
const Version = 1

// Weeks is how many ISO weeks the weekly hours cover, the current one last.
const Weeks = 52

// DefaultTimezone is the zone of a user who has set none, or an unknown one.
const DefaultTimezone = "Europe/London"

// ResultName is the stored result's file name.
const ResultName = "analytics.json"

// seminarTypes are the activity types that count as seminars.
var seminarTypes = map[string]bool{"training_course": true, "workshop": true}

// Source is what analytics reads from the activity log; *activity.Store
// is one.
type Source interface {
	// UserByID returns the user, or an error wrapping activity.ErrNotFound.
	UserByID(ctx context.Context, id int64) (activity.User, error)
	// AnalyticsTotals returns the log's sums for u, days in [from, to).
	AnalyticsTotals(ctx context.Context, u activity.User, from, to time.Time) (activity.Totals, error)
}

// Result is what an analytics job stores, as JSON.
type Result struct {
	Version    int       `json:"version"`
	ComputedAt time.Time `json:"computed_at"`
	// Timezone is the zone the weeks were cut in.
	Timezone string `json:"timezone"`
	// Standard is the code of the user's standard, "" when none is chosen.
	Standard   string      `json:"standard"`
	TotalHours float64     `json:"total_hours"`
	KSBs       []KSB       `json:"ksbs"`
	Weeks      []Week      `json:"weeks"`
	Types      []TypeHours `json:"types"`
	Seminar    Seminar     `json:"seminar"`
	Readiness  Readiness   `json:"readiness"`
}

// KSB is one KSB of the user's standard and its evidence.
type KSB struct {
	Code       string  `json:"code"`
	Category   string  `json:"category"`
	Title      string  `json:"title"`
	Activities int     `json:"activities"`
	Hours      float64 `json:"hours"`
	// Assured: at least one of its activities is Good or Ready for review.
	Assured bool `json:"assured"`
}

// Week is one ISO week's hours.
type Week struct {
	// Week is the ISO week ("2026-W49"); Start its Monday (YYYY-MM-DD).
	Week  string  `json:"week"`
	Start string  `json:"start"`
	Hours float64 `json:"hours"`
}

// TypeHours is the hours of one activity type.
type TypeHours struct {
	Type       string  `json:"type"`
	Label      string  `json:"label"`
	Activities int     `json:"activities"`
	Hours      float64 `json:"hours"`
}

// Seminar is seminar hours (training courses and workshops) against the
// other off-the-job hours.
type Seminar struct {
	SeminarHours float64 `json:"seminar_hours"`
	OtherHours   float64 `json:"other_hours"`
	// TargetHours is the user's seminar target, 0 when none is set.
	TargetHours float64 `json:"target_hours"`
}

// Readiness is the portfolio readiness score: 60 × the share of KSBs
// with any evidence plus 40 × the share with Good or Ready-for-review
// evidence, 0 to 100.
type Readiness struct {
	Score     float64 `json:"score"`
	KSBs      int     `json:"ksbs"`
	Evidenced int     `json:"evidenced"`
	Assured   int     `json:"assured"`
}

// Location is the user's time zone: their own, or DefaultTimezone when
// it is unset or unknown.
func Location(u activity.User) (*time.Location, string) {
	if u.Timezone != "" {
		if loc, err := time.LoadLocation(u.Timezone); err == nil {
			return loc, u.Timezone
		}
	}
	loc, err := time.LoadLocation(DefaultTimezone)
	if err != nil {
		// time/tzdata is linked in; this cannot happen.
		return time.UTC, "UTC"
	}
	return loc, DefaultTimezone
}

// WeekRange is the civil dates [from, to) of the Weeks ISO weeks up to
// and including the one holding now in loc.
func WeekRange(now time.Time, loc *time.Location) (from, to time.Time) {
	y, m, d := now.In(loc).Date()
	today := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	monday := today.AddDate(0, 0, -((int(today.Weekday()) + 6) % 7))
	return monday.AddDate(0, 0, -7*(Weeks-1)), monday.AddDate(0, 0, 7)
}

// Compute builds the result from the log's sums for u, as of now.
// from is WeekRange's start, the first day of t.Days' range.
func Compute(u activity.User, t activity.Totals, now time.Time, from time.Time, tz string) Result {
	r := Result{Version: Version, ComputedAt: now.UTC(), Timezone: tz, Standard: u.SelectedSpec,
		KSBs: []KSB{}, Weeks: make([]Week, Weeks), Types: []TypeHours{}}
	for i := range r.Weeks {
		start := from.AddDate(0, 0, 7*i)
		y, w := start.ISOWeek()
		r.Weeks[i] = Week{Week: fmt.Sprintf("%d-W%02d", y, w), Start: start.Format(time.DateOnly)}
	}
	for _, d := range t.Days {
		if i := int(d.Date.Sub(from).Hours()/24) / 7; i >= 0 && i < Weeks {
			r.Weeks[i].Hours += d.Hours
		}
	}
	for i := range r.Weeks {
		r.Weeks[i].Hours = round(r.Weeks[i].Hours)
	}
	// Types in the order forms show them; any stored value the app does
	// not know goes last, as it is.
	seen := map[string]bool{}
	add := func(th activity.TypeHours) {
		seen[th.Type] = true
		r.Types = append(r.Types, TypeHours{Type: th.Type, Label: activity.TypeLabel(th.Type), Activities: th.Activities, Hours: round(th.Hours)})
		r.TotalHours += th.Hours
		if seminarTypes[th.Type] {
			r.Seminar.SeminarHours += th.Hours
		} else {
			r.Seminar.OtherHours += th.Hours
		}
	}
	for _, o := range activity.ActivityTypes {
		for _, th := range t.Types {
			if th.Type == o.Value {
				add(th)
			}
		}
	}
	for _, th := range t.Types {
		if !seen[th.Type] {
			add(th)
		}
	}
	r.TotalHours = round(r.TotalHours)
	r.Seminar = Seminar{SeminarHours: round(r.Seminar.SeminarHours), OtherHours: round(r.Seminar.OtherHours), TargetHours: u.SeminarTargetHours}

	for _, k := range t.KSBs {
		r.KSBs = append(r.KSBs, KSB{Code: k.Code, Category: k.Category, Title: k.Title, Activities: k.Activities, Hours: round(k.Hours), Assured: k.Assured})
		if k.Activities > 0 {
			r.Readiness.Evidenced++
		}
		if k.Assured {
			r.Readiness.Assured++
		}
	}
	if n := len(t.KSBs); n > 0 {
		r.Readiness.KSBs = n
		r.Readiness.Score = round(60*float64(r.Readiness.Evidenced)/float64(n) + 40*float64(r.Readiness.Assured)/float64(n))
	}
	return r
}

// round keeps two decimals: sums of REAL hours carry binary noise.
func round(h float64) float64 { return math.Round(h*100) / 100 }

// Policy is how analytics jobs are retried: the aggregation is a few
// queries, so a short timeout.
var Policy = tasktype.Policy{MaxAttempts: 3, Timeout: 5 * time.Minute}

// Each database call has its own deadline inside the job's: a user
// lookup is one row; the sums take about a second on a 100k log.
const (
	lookupTimeout = 10 * time.Second
	queryTimeout  = 2 * time.Minute
)

// Register adds the analytics job type to reg. now is the clock (nil:
// time.Now).
func Register(reg *tasks.Registry, src Source, now func() time.Time) error {
	return RegisterWith(reg, src, Options{Now: now})
}

// Options tune the analytics job type; the zero value is the default.
type Options struct {
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// LogChanged, when set, lets the charts' page say when the log has
	// moved past the figures (RenderWithChanges).
	LogChanged LogChanged
}

// RegisterWith is Register with options: it registers the handler and
// describes the kind, whose result is shown as the charts' page.
func RegisterWith(reg *tasks.Registry, src Source, o Options) error {
	if err := registerHandler(reg, src, o.Now); err != nil {
		return err
	}
	return reg.Describe(tasktype.Kind{
		Type: Type, Label: Label, Noun: "analytics",
		Start: &tasktype.StartButton{Path: "run-analytics", Label: "Run analytics",
			Hint: "Charts of your hours, KSB coverage and portfolio readiness."},
		View: &tasktype.ResultView{Path: "analytics", Link: "Open the charts", Render: RenderWithChanges(o.LogChanged)},
	})
}

// registerHandler registers the analytics' handler.
func registerHandler(reg *tasks.Registry, src Source, now func() time.Time) error {
	if now == nil {
		now = time.Now
	}
	return reg.Register(Type, func(ctx context.Context, job tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
		out.Progress(0, "Reading your activity log")
		uctx, cancel := context.WithTimeout(ctx, lookupTimeout)
		u, err := src.UserByID(uctx, job.UserID)
		cancel()
		if errors.Is(err, activity.ErrNotFound) {
			err = fmt.Errorf("analytics: user %d is not in this worker's database (is it the web's? OTJ_DATA_DIR): %w", job.UserID, err)
			return tasktype.Result{}, tasktype.Permanent(tasktype.UserMessage(err,
				"Your activity log could not be found by the service that runs analytics. Please tell the operator; trying again will not help until they fix it."))
		}
		if err != nil {
			return tasktype.Result{}, fmt.Errorf("analytics: %w", err)
		}
		at := now()
		loc, tz := Location(u)
		from, to := WeekRange(at, loc)
		qctx, cancel := context.WithTimeout(ctx, queryTimeout)
		totals, err := src.AnalyticsTotals(qctx, u, from, to)
		cancel()
		if err != nil {
			return tasktype.Result{}, fmt.Errorf("analytics: %w", err)
		}
		out.Progress(70, "Computing the figures")
		res := Compute(u, totals, at, from, tz)
		w, err := out.Create(ResultName, "application/json")
		if err != nil {
			return tasktype.Result{}, fmt.Errorf("analytics: %w", err)
		}
		enc := json.NewEncoder(w)
		if err := enc.Encode(res); err != nil {
			return tasktype.Result{}, fmt.Errorf("analytics: write result: %w", err)
		}
		out.Progress(100, "Done")
		return tasktype.Result{Summary: fmt.Sprintf("Readiness %.0f%%, %s hours", res.Readiness.Score, formatHours(res.TotalHours))}, nil
	}, Policy)
}
