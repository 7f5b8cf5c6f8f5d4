package web

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/otjhelper/otj/modules/activity"
)

// Limits of the activity form, checked on the server whatever the page
// says.
const (
	maxTitle      = 200
	maxText       = 10_000 // description, notes
	maxTag        = 50
	maxTags       = 20
	maxLinks      = 20
	maxLinkURL    = 2_000
	maxLinkTitle  = 200
	maxLinkDesc   = 1_000
	minHours      = 0.25
	maxHours      = 100
	blankLinkRows = 3
)

// activityForm is the activity form as the user filled it in, kept as
// typed so that an invalid form comes back as it was, with a message per
// field in Errors (keyed by field name) and per link row.
type activityForm struct {
	Title, Date, Hours, Type, Quality, Description, Notes, Tags string
	KSBs                                                        map[string]bool // stored codes ticked
	Links                                                       []linkRow
	Errors                                                      map[string]string
}

// linkRow is one row of the form's links.
type linkRow struct {
	URL, Title, SourceType, Description, Stage string
	Err                                        string
}

// formFromEntry fills the form with a stored activity, for editing.
func formFromEntry(e activity.Entry) activityForm {
	f := activityForm{
		Title: e.Title, Date: e.Date.Format(time.DateOnly), Hours: strconv.FormatFloat(e.Hours, 'f', -1, 64),
		Type: e.Type, Quality: e.Quality, Description: e.Description, Notes: e.Notes,
		Tags: strings.Join(e.Tags, ", "), KSBs: map[string]bool{},
	}
	for _, k := range e.KSBs {
		f.KSBs[k] = true
	}
	for _, l := range e.Links {
		f.Links = append(f.Links, linkRow{URL: l.URL, Title: l.Title, SourceType: l.SourceType, Description: l.Description, Stage: l.Stage})
	}
	return f
}

// withBlankRows returns the form's links and blankLinkRows empty rows
// after them, for adding links without a script.
func (f activityForm) withBlankRows() activityForm {
	for range blankLinkRows {
		f.Links = append(f.Links, linkRow{})
	}
	return f
}

// parseActivityForm reads and checks a posted activity form. ksbs are the
// stored codes of the user's standard: the only ones a form may tick. It
// returns the form as typed and, when Errors is empty, the Input to store.
func parseActivityForm(v url.Values, ksbs map[string]bool) (activityForm, activity.Input) {
	f := activityForm{
		Title: strings.TrimSpace(v.Get("title")), Date: strings.TrimSpace(v.Get("activity_date")),
		Hours: strings.TrimSpace(v.Get("duration_hours")), Type: v.Get("activity_type"), Quality: v.Get("evidence_quality"),
		Description: strings.TrimSpace(v.Get("description")), Notes: strings.TrimSpace(v.Get("notes")),
		Tags: strings.TrimSpace(v.Get("tags")), KSBs: map[string]bool{}, Errors: map[string]string{},
	}
	in := activity.Input{Title: f.Title, Type: f.Type, Quality: f.Quality, Description: f.Description, Notes: f.Notes}
	fail := func(field, msg string) {
		if _, had := f.Errors[field]; !had {
			f.Errors[field] = msg
		}
	}

	switch {
	case f.Title == "":
		fail("title", "Give the activity a title.")
	case utf8.RuneCountInString(f.Title) > maxTitle:
		fail("title", fmt.Sprintf("The title is %d characters; keep it to %d.", utf8.RuneCountInString(f.Title), maxTitle))
	case !plainLine(f.Title):
		fail("title", "The title must be one line of text.")
	}

	if f.Date == "" {
		fail("activity_date", "Give the date of the activity.")
	} else if d, err := time.Parse(time.DateOnly, f.Date); err != nil {
		fail("activity_date", "The date must be a real date, written YYYY-MM-DD (for example 2026-03-05).")
	} else {
		in.Date = d
	}

	if f.Hours == "" {
		fail("duration_hours", "Give the hours the activity took.")
	} else if h, err := strconv.ParseFloat(f.Hours, 64); err != nil || math.IsNaN(h) || math.IsInf(h, 0) {
		fail("duration_hours", "The hours must be a number, such as 1.5.")
	} else if h < minHours || h > maxHours {
		fail("duration_hours", "The hours must be at least 0.25 and at most 100 for one activity.")
	} else {
		in.Hours = h
	}

	if !isOption(activity.ActivityTypes, f.Type) {
		fail("activity_type", "Choose the type of activity from the list.")
	}
	if f.Quality == "" {
		in.Quality = "draft" // as the Python app: no choice is a draft
	} else if !isOption(activity.EvidenceQualities, f.Quality) {
		fail("evidence_quality", "Choose the evidence quality from the list.")
	}

	for field, text := range map[string]string{"description": f.Description, "notes": f.Notes} {
		if utf8.RuneCountInString(text) > maxText {
			fail(field, fmt.Sprintf("Keep this to %d characters.", maxText))
		} else if !plainText(text) {
			fail(field, "This holds characters that are not text.")
		}
	}

	for _, code := range v["ksbs"] {
		if !ksbs[code] {
			fail("ksbs", "Choose KSBs from your standard's list.")
			continue
		}
		if !f.KSBs[code] {
			f.KSBs[code] = true
			in.KSBs = append(in.KSBs, code)
		}
	}

	seen := map[string]bool{}
	for _, t := range strings.Split(f.Tags, ",") {
		t = strings.TrimSpace(t)
		switch {
		case t == "" || seen[t]:
			continue
		case utf8.RuneCountInString(t) > maxTag:
			fail("tags", fmt.Sprintf("Keep each tag to %d characters.", maxTag))
		case !plainLine(t):
			fail("tags", "Tags must be plain text, separated by commas.")
		}
		seen[t] = true
		in.Tags = append(in.Tags, t)
	}
	if len(in.Tags) > maxTags {
		fail("tags", fmt.Sprintf("Use at most %d tags.", maxTags))
	}

	f.Links, in.Links = parseLinks(v, fail)
	if len(f.Errors) > 0 {
		return f, activity.Input{}
	}
	return f, in
}

// parseLinks reads the repeated link_* fields, row by row. A row with
// nothing typed in it (the blank rows the form offers) is dropped; any
// other needs an http(s) address.
func parseLinks(v url.Values, fail func(field, msg string)) ([]linkRow, []activity.Link) {
	n := 0
	for _, name := range []string{"link_url", "link_title", "link_source_type", "link_description", "link_stage"} {
		n = max(n, len(v[name]))
	}
	at := func(name string, i int) string {
		if i < len(v[name]) {
			return strings.TrimSpace(v[name][i])
		}
		return ""
	}
	var rows []linkRow
	var links []activity.Link
	for i := range n {
		r := linkRow{URL: at("link_url", i), Title: at("link_title", i), SourceType: at("link_source_type", i),
			Description: at("link_description", i), Stage: at("link_stage", i)}
		if r.URL == "" && r.Title == "" && r.Description == "" {
			continue // a blank row; its selects hold their first choice
		}
		switch {
		case r.URL == "":
			r.Err = "Give the link's address, or clear its row."
		case len(r.URL) > maxLinkURL:
			r.Err = fmt.Sprintf("The address is too long (at most %d characters).", maxLinkURL)
		case !httpURL(r.URL):
			r.Err = "The address must start with http:// or https:// and name a site."
		case utf8.RuneCountInString(r.Title) > maxLinkTitle || !plainLine(r.Title):
			r.Err = fmt.Sprintf("The link's title must be one line of at most %d characters.", maxLinkTitle)
		case utf8.RuneCountInString(r.Description) > maxLinkDesc || !plainText(r.Description):
			r.Err = fmt.Sprintf("The link's description must be text of at most %d characters.", maxLinkDesc)
		case !isOption(activity.LinkStages, r.Stage):
			r.Err = "Choose the link's CORE stage: capture, organise, review or engage."
		case !isOption(activity.LinkSourceTypes, r.SourceType):
			r.Err = "Choose the kind of source from the list."
		}
		if r.Err != "" {
			fail("links", "A link needs correcting: see its row.")
		}
		rows = append(rows, r)
		links = append(links, activity.Link{URL: r.URL, Title: r.Title, SourceType: r.SourceType, Description: r.Description, Stage: r.Stage})
	}
	if len(rows) > maxLinks {
		fail("links", fmt.Sprintf("Add at most %d links.", maxLinks))
	}
	return rows, links
}

func isOption(opts []activity.Option, v string) bool {
	for _, o := range opts {
		if o.Value == v {
			return true
		}
	}
	return false
}

// httpURL reports whether s is an absolute http or https URL with a host:
// no javascript:, data: or relative addresses reach a page as a link.
func httpURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil {
		return false
	}
	return (u.Scheme == "http" || u.Scheme == "https") && plainLine(s)
}

// plainLine reports whether s is valid UTF-8 with no control characters:
// the log folds lists with the unit separator (char 31), so none may be
// stored in a title, tag or address.
func plainLine(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// plainText is plainLine that allows line breaks and tabs.
func plainText(s string) bool {
	return plainLine(strings.NewReplacer("\n", "", "\r", "", "\t", "").Replace(s))
}
