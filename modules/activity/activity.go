// Package activity is the activity log: users, standards and KSBs,
// activities with tags, links and KSBs.
//
// It holds the slice of OTJ Helper's log that the web UI and the background
// tasks (the CSV report) read, the reference data of the apprenticeship
// standards, and a generator of realistic demo data.
package activity

import (
	"errors"
	"time"
)

// Option is a stored value with the label people see.
type Option struct{ Value, Label string }

// ActivityTypes are the kinds of off-the-job training an apprentice can log,
// in the order forms and filters show them.
var ActivityTypes = []Option{
	{"self_study", "Self-study"},
	{"training_course", "Training course"},
	{"workshop", "Workshop"},
	{"mentoring", "Mentoring"},
	{"shadowing", "Shadowing"},
	{"project_work", "Project work"},
	{"research", "Research"},
	{"conference", "Conference or event"},
	{"reflection", "Reflective writing"},
	{"other", "Other"},
}

// EvidenceQualities are how far an activity's evidence has got, in the order
// forms and filters show them.
var EvidenceQualities = []Option{
	{"draft", "Draft"},
	{"good", "Good"},
	{"review_ready", "Ready for review"},
}

// defaultQuality is what an empty evidence_quality means: the column's
// default, and what older rows written before the choice existed hold.
const defaultQuality = "draft"

// TypeLabel returns the label of a stored activity type, or v itself when
// it is not one of ActivityTypes, so that an unexpected value is still shown
// rather than hidden.
func TypeLabel(v string) string { return label(ActivityTypes, v) }

// QualityLabel returns the label of a stored evidence quality; "" counts as
// "draft", and an unknown value is returned as it is.
func QualityLabel(v string) string {
	if v == "" {
		v = defaultQuality
	}
	return label(EvidenceQualities, v)
}

// label looks v up in opts. The lists are short, so a linear scan beats
// keeping a map in sync with them.
func label(opts []Option, v string) string {
	for _, o := range opts {
		if o.Value == v {
			return o.Label
		}
	}
	return v
}

// User is an apprentice using the app, with the standard they follow and
// their hour targets.
type User struct {
	ID    int64
	Email string
	Name  string
	// SelectedSpec is the code of the user's apprenticeship standard
	// (e.g. "ST0787"), "" when none is chosen yet.
	SelectedSpec string
	// The hour targets: off-the-job training in all, seminars in all,
	// and each week. 0 means the user has set no target.
	OTJTargetHours     float64
	SeminarTargetHours float64
	WeeklyTargetHours  float64
	// Timezone is an IANA zone name, such as Europe/London.
	Timezone  string
	CreatedAt time.Time
}

// Activity is one logged piece of off-the-job training as the activity log
// page shows it: stored values for Type and Quality (see TypeLabel and
// QualityLabel), KSBs by natural code.
type Activity struct {
	ID int64
	// Date is a civil date, held as midnight UTC.
	Date        time.Time
	Title       string
	Description string
	Hours       float64
	Type        string
	Quality     string
	Notes       string
	// Tags are the tag names, sorted by name.
	Tags []string
	// KSBs are natural codes ("K1"), K then S then B, each by number.
	KSBs []string
	// Links are resource URLs in the order they were added.
	Links []string
	// LinkTitles are the links' titles, one for each of Links ("" for
	// none), so the log can show a title rather than a bare URL.
	LinkTitles []string
}

// Page is one page of a user's activity log, with totals over the whole
// filtered log so the page can say how much there is in all.
type Page struct {
	Activities []Activity
	// Total is how many of the user's activities the filter lets
	// through; TotalHours their hours.
	Total      int
	Page       int
	PerPage    int
	TotalHours float64
}

// ReportRow is one activity as the full report shows it: labels, not stored
// values; KSBs by natural code. It is the row the reports module reads
// (reports.Source), defined here, where EachReportRow fills it.
type ReportRow struct {
	Date         time.Time
	Title        string
	Hours        float64
	TypeLabel    string
	QualityLabel string
	Tags         []string
	KSBs         []string
	Links        []string
	Description  string
	Notes        string
}

// ErrNotFound is returned (wrapped) when a looked-up record does not exist,
// so callers can answer 404 rather than 500.
var ErrNotFound = errors.New("not found")
