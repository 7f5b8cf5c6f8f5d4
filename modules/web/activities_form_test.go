package web

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/activity"
)

// validForm is a form every check passes; each case changes one field.
func validForm() url.Values {
	return url.Values{
		"title": {"Read the Go memory model"}, "activity_date": {"2026-03-05"}, "duration_hours": {"1.5"},
		"activity_type": {"self_study"}, "evidence_quality": {"good"}, "description": {"line one\nline two"},
		"notes": {"n"}, "ksbs": {"AK1", "AS2"}, "tags": {"go, memory ,go"},
		"link_url": {"https://go.dev/ref/mem", "", ""}, "link_title": {"The Go Memory Model", "", ""},
		"link_source_type": {"documentation", "article", "article"}, "link_description": {"the spec", "", ""},
		"link_stage": {"capture", "capture", "capture"},
	}
}

var formKSBs = map[string]bool{"AK1": true, "AS2": true, "AB1": true}

func TestParseActivityFormValid(t *testing.T) {
	f, in := parseActivityForm(validForm(), formKSBs)
	if len(f.Errors) != 0 {
		t.Fatalf("errors %v", f.Errors)
	}
	want := activity.Input{
		Title: "Read the Go memory model", Date: time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC), Hours: 1.5,
		Type: "self_study", Quality: "good", Description: "line one\nline two", Notes: "n",
		KSBs: []string{"AK1", "AS2"}, Tags: []string{"go", "memory"},
		Links: []activity.Link{{URL: "https://go.dev/ref/mem", Title: "The Go Memory Model", SourceType: "documentation", Description: "the spec", Stage: "capture"}},
	}
	if !reflect.DeepEqual(in, want) {
		t.Errorf("input\n got  %+v\n want %+v", in, want)
	}
}

// Every field's checks: each case breaks one thing, which must come back
// as a message on that field (and only there), with the form kept.
func TestParseActivityFormValidation(t *testing.T) {
	tests := []struct {
		name, field string
		set         map[string][]string
		wantMsg     string
	}{
		{"title missing", "title", map[string][]string{"title": {"  "}}, "Give the activity a title"},
		{"title 201 characters", "title", map[string][]string{"title": {strings.Repeat("é", 201)}}, "keep it to 200"},
		{"title with a control character", "title", map[string][]string{"title": {"a\x1fb"}}, "one line"},
		{"date missing", "activity_date", map[string][]string{"activity_date": {""}}, "Give the date"},
		{"date not a date", "activity_date", map[string][]string{"activity_date": {"yesterday"}}, "YYYY-MM-DD"},
		{"date 30 February", "activity_date", map[string][]string{"activity_date": {"2026-02-30"}}, "real date"},
		{"date in another layout", "activity_date", map[string][]string{"activity_date": {"05/03/2026"}}, "YYYY-MM-DD"},
		{"hours missing", "duration_hours", map[string][]string{"duration_hours": {""}}, "Give the hours"},
		{"hours not a number", "duration_hours", map[string][]string{"duration_hours": {"two"}}, "must be a number"},
		{"hours NaN", "duration_hours", map[string][]string{"duration_hours": {"NaN"}}, "must be a number"},
		{"hours infinite", "duration_hours", map[string][]string{"duration_hours": {"Inf"}}, "must be a number"},
		{"hours below 0.25", "duration_hours", map[string][]string{"duration_hours": {"0.2"}}, "at least 0.25"},
		{"hours negative", "duration_hours", map[string][]string{"duration_hours": {"-1"}}, "at least 0.25"},
		{"hours above 100", "duration_hours", map[string][]string{"duration_hours": {"100.01"}}, "at most 100"},
		{"type missing", "activity_type", map[string][]string{"activity_type": {""}}, "type of activity"},
		{"type unknown", "activity_type", map[string][]string{"activity_type": {"napping"}}, "type of activity"},
		{"quality unknown", "evidence_quality", map[string][]string{"evidence_quality": {"perfect"}}, "evidence quality"},
		{"description too long", "description", map[string][]string{"description": {strings.Repeat("a", maxText+1)}}, "Keep this to"},
		{"notes with a NUL", "notes", map[string][]string{"notes": {"a\x00b"}}, "not text"},
		{"KSB of another standard", "ksbs", map[string][]string{"ksbs": {"AK1", "K99"}}, "your standard's list"},
		{"tag too long", "tags", map[string][]string{"tags": {strings.Repeat("t", 51)}}, "50 characters"},
		{"tag with a control character", "tags", map[string][]string{"tags": {"a\tb"}}, "plain text"},
		{"too many tags", "tags", map[string][]string{"tags": {manyTags(21)}}, "at most 20"},
		{"link javascript:", "links", map[string][]string{"link_url": {"javascript:alert(1)"}}, "see its row"},
		{"link without scheme", "links", map[string][]string{"link_url": {"go.dev"}}, "see its row"},
		{"link ftp", "links", map[string][]string{"link_url": {"ftp://example.org/f"}}, "see its row"},
		{"link title without address", "links", map[string][]string{"link_url": {""}, "link_title": {"a title"}}, "see its row"},
		{"link stage unknown", "links", map[string][]string{"link_stage": {"ship"}}, "see its row"},
		{"link source unknown", "links", map[string][]string{"link_source_type": {"rumour"}}, "see its row"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := validForm()
			for k, vals := range tt.set {
				v[k] = vals
			}
			f, in := parseActivityForm(v, formKSBs)
			if got := f.Errors[tt.field]; !strings.Contains(got, tt.wantMsg) {
				t.Errorf("%s: message %q, want %q in it (all: %v)", tt.field, got, tt.wantMsg, f.Errors)
			}
			if len(f.Errors) != 1 {
				t.Errorf("errors on other fields too: %v", f.Errors)
			}
			if !reflect.DeepEqual(in, activity.Input{}) {
				t.Errorf("an invalid form gave input %+v", in)
			}
			// The form comes back as typed.
			if want := strings.TrimSpace(v.Get("title")); f.Title != want {
				t.Errorf("title kept as %q, want %q", f.Title, want)
			}
		})
	}
}

func manyTags(n int) string {
	var tags []string
	for i := range n {
		tags = append(tags, "tag"+string(rune('a'+i)))
	}
	return strings.Join(tags, ",")
}

// The row of a bad link carries its own message, and the other rows and
// fields are kept.
func TestParseActivityFormLinkRows(t *testing.T) {
	v := validForm()
	v["link_url"] = []string{"https://ok.example/", "data:text/html,hi", ""}
	v["link_title"] = []string{"ok", "bad", ""}
	f, _ := parseActivityForm(v, formKSBs)
	if len(f.Links) != 2 || f.Links[0].Err != "" || !strings.Contains(f.Links[1].Err, "http://") || f.Links[1].Title != "bad" {
		t.Fatalf("rows %+v", f.Links)
	}
	if !f.KSBs["AK1"] || !f.KSBs["AS2"] || f.Tags != "go, memory ,go" {
		t.Errorf("form not kept: %+v", f)
	}
}

func TestLinkText(t *testing.T) {
	for _, tt := range []struct{ url, title, want string }{
		{"https://go.dev/ref/mem", "The Go Memory Model", "The Go Memory Model"},
		{"https://www.example.org:8443/a?b", "", "www.example.org"},
		{"not a url", "", "not a url"},
	} {
		if got := linkText(tt.url, tt.title); got != tt.want {
			t.Errorf("linkText(%q, %q) = %q, want %q", tt.url, tt.title, got, tt.want)
		}
	}
}
