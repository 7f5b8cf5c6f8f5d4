package analytics_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/analytics"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

func render(t *testing.T, r analytics.Result) string {
	t.Helper()
	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := analytics.RenderHTML(t.Context(), &b, tasktype.Task{ID: "t1"}, strings.NewReader(string(raw))); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func sample() analytics.Result {
	r := analytics.Result{Version: analytics.Version, ComputedAt: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC), Timezone: "Europe/London",
		Standard: "ST0787", TotalHours: 12.5,
		KSBs: []analytics.KSB{
			{Code: "K1", Title: `<script>alert("x")</script> & co`, Activities: 3, Hours: 7.25, Assured: true},
			{Code: "K2", Title: "Unused", Activities: 0, Hours: 0},
		},
		Types:     []analytics.TypeHours{{Type: "workshop", Label: "Workshop", Activities: 2, Hours: 5}, {Type: "self_study", Label: "Self-study", Activities: 4, Hours: 7.5}},
		Seminar:   analytics.Seminar{SeminarHours: 5, OtherHours: 7.5},
		Readiness: analytics.Readiness{Score: 50, KSBs: 2, Evidenced: 1, Assured: 1},
	}
	for i := range analytics.Weeks {
		r.Weeks = append(r.Weeks, analytics.Week{Week: "2026-W" + string(rune('A'+i%26)), Start: "2026-01-01", Hours: float64(i % 3)})
	}
	return r
}

func TestRenderHTML(t *testing.T) {
	page := render(t, sample())
	for _, want := range []string{
		`<svg class="chart"`, `width="100%"`, `viewBox="0 0 400`,
		`<th scope="row">K1 <span class="ksb-title">&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; co</span></th><td>3</td><td>7.25</td><td>Yes</td>`,
		`<th scope="row">K2 <span class="ksb-title">Unused</span></th><td>0</td><td>0</td><td>No</td>`,
		`<th scope="row">Workshop</th><td>2</td><td>5</td>`,
		`<th scope="row">Seminars</th><td>5</td>`, `<th scope="row">Other off-the-job training</th><td>7.5</td>`,
		`<th scope="row">All</th><td>12.5</td>`,
		"<caption>", `<th scope="col">Hours</th>`, "<strong>50.0</strong>",
		// 10:00 UTC is 10:00 GMT in December.
		"Computed 3 December 2026 10:00 GMT",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script") {
		t.Error("a title's markup reached the page unescaped")
	}
	if regexp.MustCompile(`(?i)\sstyle\s*=`).MatchString(page) || strings.Contains(page, "<style") {
		t.Error("page has inline style, which the CSP refuses")
	}
	// One bar per week, and one per type and per KSB.
	if n := strings.Count(page, `<rect class="chart-bar"`); n != analytics.Weeks+2+1 {
		t.Errorf("%d plain bars, want %d weeks + 2 types + 1 assured KSB", n, analytics.Weeks)
	}
	// The largest week (2 h) reaches the plot's top.
	if !strings.Contains(page, `height="120.0"`) {
		t.Error("the tallest week's bar is not full height")
	}
}

func TestRenderHTMLEmptyLog(t *testing.T) {
	r := analytics.Result{Version: analytics.Version, Timezone: "Europe/London", Weeks: make([]analytics.Week, analytics.Weeks)}
	page := render(t, r)
	if !strings.Contains(page, "No activities logged yet.") || !strings.Contains(page, "No standard chosen yet") {
		t.Error("an empty log says nothing about being empty")
	}
	if strings.Contains(page, "NaN") || strings.Contains(page, "Inf") {
		t.Error("empty charts divide by zero")
	}
}

func TestRenderHTMLRefusesOtherVersions(t *testing.T) {
	for _, body := range []string{`{"version": 99}`, `not json`} {
		var b strings.Builder
		if err := analytics.RenderHTML(t.Context(), &b, tasktype.Task{ID: "t1"}, strings.NewReader(body)); err == nil || b.Len() != 0 {
			t.Errorf("%q: err %v, wrote %d bytes", body, err, b.Len())
		}
	}
}
