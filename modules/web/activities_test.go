package web_test

import (
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/web"
	"github.com/otjhelper/otj/platform/testsupport"
)

// activityFixture is a web fixture whose alice and bob follow ST0787,
// with the codes of two of its KSBs.
func activityFixture(t *testing.T) (*fixture, []activity.KSB) {
	t.Helper()
	f := newFixture(t, web.Config{Enqueuer: &fakeEnqueuer{}})
	if _, err := f.db.ExecContext(t.Context(), `UPDATE app_user SET selected_spec = 'ST0787'`); err != nil {
		t.Fatal(err)
	}
	ksbs, err := f.users.KSBs(t.Context(), "ST0787")
	if err != nil || len(ksbs) < 2 {
		t.Fatalf("ksbs: %v %v", ksbs, err)
	}
	return f, ksbs
}

func activityForm(ksbs ...string) url.Values {
	return url.Values{
		"title": {"Pairing on the deploy pipeline"}, "activity_date": {"2026-03-05"}, "duration_hours": {"2.5"},
		"activity_type": {"mentoring"}, "evidence_quality": {"good"}, "description": {"What I learnt"}, "notes": {""},
		"ksbs": ksbs, "tags": {"ci, devops"},
		"link_url": {"https://example.org/pipeline", "https://docs.example.org/x", ""}, "link_title": {"Pipeline notes", "", ""},
		"link_source_type": {"article", "documentation", "article"}, "link_description": {"", "", ""},
		"link_stage": {"capture", "review", "capture"},
	}
}

// createActivity posts the form as c and returns the new activity's path.
func createActivity(t *testing.T, f *fixture, c *http.Client, form url.Values) string {
	t.Helper()
	resp, body := testsupport.PostForm(t, c, f.srv.URL+"/activities/new", form)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/activities/") {
		t.Fatalf("create = %d, Location %q:\n%s", resp.StatusCode, loc, body)
	}
	return loc
}

// Create, show, edit and delete through HTTP, as the owner.
func TestActivityCRUDThroughHTTP(t *testing.T) {
	t.Parallel()
	f, ksbs := activityFixture(t)
	alice := f.client(t, f.alice)

	code, page := getBody(t, alice, f.srv.URL+"/activities/new")
	if code != 200 || !strings.Contains(page, `name="ksbs" value="`+ksbs[0].Code+`"`) || !strings.Contains(page, "<h3>Knowledge</h3>") {
		t.Fatalf("new form = %d:\n%s", code, page)
	}
	path := createActivity(t, f, alice, activityForm(ksbs[0].Code, ksbs[1].Code))
	code, page = getBody(t, alice, f.srv.URL+path)
	for _, want := range []string{"Pairing on the deploy pipeline", ">Pipeline notes</a>", ">docs.example.org</a>", ksbs[0].NaturalCode, "Capture · Article", "ci, devops"} {
		if code != 200 || !strings.Contains(page, want) {
			t.Fatalf("%s = %d, want %q in it:\n%s", path, code, want, page)
		}
	}
	code, list := getBody(t, alice, f.srv.URL+"/activities")
	if code != 200 || !strings.Contains(list, `href="`+path+`"`) || !strings.Contains(list, ">Pipeline notes</a>") || strings.Contains(list, ">link</a>") {
		t.Fatalf("list = %d:\n%s", code, list)
	}

	code, page = getBody(t, alice, f.srv.URL+path+"/edit")
	if code != 200 || !strings.Contains(page, `value="Pairing on the deploy pipeline"`) || !strings.Contains(page, `value="https://docs.example.org/x"`) {
		t.Fatalf("edit form = %d:\n%s", code, page)
	}
	form := activityForm(ksbs[1].Code)
	form.Set("title", "Pairing, day two")
	form.Set("duration_hours", "37.5")
	resp, body := testsupport.PostForm(t, alice, f.srv.URL+path+"/edit", form)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), path) {
		t.Fatalf("edit = %d %q:\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	var id int64
	fmt.Sscanf(path, "/activities/%d", &id)
	e, err := f.users.GetActivity(t.Context(), f.alice.ID, id)
	if err != nil || e.Title != "Pairing, day two" || e.Hours != 37.5 || !reflect.DeepEqual(e.KSBs, []string{ksbs[1].Code}) {
		t.Fatalf("after edit: %+v %v", e, err)
	}

	resp, _ = testsupport.PostForm(t, alice, f.srv.URL+path+"/delete", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/activities?deleted=1" {
		t.Fatalf("delete = %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if code, _ := getBody(t, alice, f.srv.URL+path); code != http.StatusNotFound {
		t.Fatalf("deleted activity = %d", code)
	}
}

// An invalid form is a 400 with the form re-rendered as typed and a
// message on the field; nothing is stored.
func TestInvalidActivityFormIsKept(t *testing.T) {
	t.Parallel()
	f, ksbs := activityFixture(t)
	alice := f.client(t, f.alice)
	form := activityForm(ksbs[0].Code)
	form.Set("duration_hours", "120")
	form["link_url"][1] = "javascript:alert(1)"
	resp, page := testsupport.PostForm(t, alice, f.srv.URL+"/activities/new", form)
	for _, want := range []string{
		"at least 0.25 and at most 100", "must start with http:// or https://",
		`value="Pairing on the deploy pipeline"`, `value="120"`, `value="` + ksbs[0].Code + `" checked`, `value="ci, devops"`,
	} {
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, want) {
			t.Fatalf("invalid form = %d, want %q in it:\n%s", resp.StatusCode, want, page)
		}
	}
	if pg, err := f.users.ListActivities(t.Context(), f.alice.ID, activity.Filter{}, 1, 10); err != nil || pg.Total != 0 {
		t.Fatalf("stored after an invalid form: %+v %v", pg, err)
	}
	// A KSB of another standard, forged into the form.
	other, err := f.users.KSBs(t.Context(), "ST0763")
	if err != nil || len(other) == 0 {
		t.Fatal(err)
	}
	resp, page = testsupport.PostForm(t, alice, f.srv.URL+"/activities/new", activityForm(other[0].Code))
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "your standard") {
		t.Fatalf("forged KSB = %d:\n%s", resp.StatusCode, page)
	}
}

// A user with no standard sees a note linking to /settings, and can still
// log an activity without KSBs.
func TestActivityFormWithoutStandard(t *testing.T) {
	t.Parallel()
	f := newFixture(t, web.Config{Enqueuer: &fakeEnqueuer{}})
	alice := f.client(t, f.alice)
	code, page := getBody(t, alice, f.srv.URL+"/activities/new")
	if code != 200 || !strings.Contains(page, `href="/settings"`) || strings.Contains(page, `name="ksbs"`) {
		t.Fatalf("form = %d:\n%s", code, page)
	}
	createActivity(t, f, alice, activityForm())
}

// Every route that takes an activity id answers 404 for another user's
// activity, and changes nothing of it. The routes come from the router,
// so a new one is covered without editing this test.
func TestOtherUsersActivityIsNotFound(t *testing.T) {
	t.Parallel()
	f, ksbs := activityFixture(t)
	alice, bob := f.client(t, f.alice), f.client(t, f.bob)
	path := createActivity(t, f, alice, activityForm(ksbs[0].Code))
	var id int64
	fmt.Sscanf(path, "/activities/%d", &id)
	before, err := f.users.GetActivity(t.Context(), f.alice.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	routes, err := web.IDRoutes()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, rt := range routes {
		if !strings.HasPrefix(rt[1], "/activities/") {
			continue
		}
		n++
		u := f.srv.URL + strings.Replace(rt[1], "{id}", fmt.Sprint(id), 1)
		var code int
		var body string
		if rt[0] == http.MethodGet {
			code, body = getBody(t, bob, u)
		} else {
			// A valid form, so that only ownership stops it.
			var resp *http.Response
			resp, body = testsupport.PostForm(t, bob, u, activityForm())
			code = resp.StatusCode
		}
		if code != http.StatusNotFound || !strings.Contains(body, "not yours to see") {
			t.Errorf("bob's %s %s = %d, want 404", rt[0], rt[1], code)
		}
		if strings.Contains(body, "Pairing on the deploy pipeline") {
			t.Errorf("bob's %s %s shows alice's activity", rt[0], rt[1])
		}
	}
	if n < 4 {
		t.Fatalf("walked only %d activity routes", n)
	}
	after, err := f.users.GetActivity(t.Context(), f.alice.ID, id)
	if err != nil || !reflect.DeepEqual(after, before) {
		t.Fatalf("bob changed alice's activity:\n before %+v\n after  %+v (%v)", before, after, err)
	}
	if _, list := getBody(t, bob, f.srv.URL+"/activities"); strings.Contains(list, path) {
		t.Error("alice's activity on bob's list")
	}
}

// The new POST routes are behind the cross-origin check.
func TestActivityPostsRefuseCrossSite(t *testing.T) {
	t.Parallel()
	f, ksbs := activityFixture(t)
	alice := f.client(t, f.alice)
	path := createActivity(t, f, alice, activityForm(ksbs[0].Code))
	for _, p := range []string{"/activities/new", path + "/edit", path + "/delete"} {
		for _, hdr := range [][]string{{"Sec-Fetch-Site", "cross-site"}, {"Origin", "https://evil.example"}} {
			resp, _ := testsupport.PostForm(t, alice, f.srv.URL+p, activityForm(), hdr...)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("POST %s with %s: %s = %d, want 403", p, hdr[0], hdr[1], resp.StatusCode)
			}
		}
	}
	if pg, err := f.users.ListActivities(t.Context(), f.alice.ID, activity.Filter{}, 1, 10); err != nil || pg.Total != 1 || pg.Activities[0].Title != "Pairing on the deploy pipeline" {
		t.Fatalf("after refused posts: %+v %v", pg, err)
	}
}

// The list filters by KSB, type and tag, with totals of the filtered set,
// and its pager keeps the filters.
func TestActivityListFilters(t *testing.T) {
	t.Parallel()
	f, ksbs := activityFixture(t)
	alice := f.client(t, f.alice)
	mk := func(title, typ, tags, hours, date, notes string, ksb ...string) {
		form := activityForm(ksb...)
		form.Set("title", title)
		form.Set("activity_type", typ)
		form.Set("tags", tags)
		form.Set("duration_hours", hours)
		form.Set("activity_date", date)
		form.Set("notes", notes)
		createActivity(t, f, alice, form)
	}
	mk("one", "workshop", "go", "1", "2026-03-01", "", ksbs[0].Code)
	mk("two", "research", "go, db", "2", "2026-03-02", "Read about Postgres vacuum", ksbs[1].Code)
	mk("three", "workshop", "db", "4", "2026-03-03", "")
	tests := []struct {
		query     string
		want      []string
		wantTotal string
	}{
		{"", []string{"one", "two", "three"}, "3 activities, 7.0 hours"},
		{"?type=workshop", []string{"one", "three"}, "2 matching activities, 5.0 hours"},
		{"?tag=go", []string{"one", "two"}, "2 matching activities, 3.0 hours"},
		{"?ksb=" + ksbs[1].NaturalCode, []string{"two"}, "1 matching activity, 2.0 hours"},
		{"?type=workshop&tag=db", []string{"three"}, "1 matching activity, 4.0 hours"},
		{"?q=VACUUM", []string{"two"}, "1 matching activity, 2.0 hours"},
		{"?q=+thRE+", []string{"three"}, "1 matching activity, 4.0 hours"},
		{"?from=2026-03-02", []string{"two", "three"}, "2 matching activities, 6.0 hours"},
		{"?from=2026-03-01&to=2026-03-02&q=o", []string{"one", "two"}, "2 matching activities, 3.0 hours"},
	}
	for _, tt := range tests {
		code, page := getBody(t, alice, f.srv.URL+"/activities"+tt.query)
		if code != 200 || !strings.Contains(page, tt.wantTotal) {
			t.Errorf("%s = %d, want %q:\n%s", tt.query, code, tt.wantTotal, page)
		}
		for _, title := range []string{"one", "two", "three"} {
			has := strings.Contains(page, "<strong>"+title+"</strong>")
			if want := slices.Contains(tt.want, title); has != want {
				t.Errorf("%s: %q listed %v, want %v", tt.query, title, has, want)
			}
		}
	}
	for _, q := range []string{"type=napping", "from=1.3.2026", "to=2026-13-01", "from=2026-03-02&to=2026-03-01", "q=" + strings.Repeat("x", 201)} {
		if code, _ := getBody(t, alice, f.srv.URL+"/activities?"+q); code != http.StatusBadRequest {
			t.Errorf("%.40s = %d, want 400", q, code)
		}
	}
	// The pager keeps the search and the dates.
	for range 50 {
		mk("more", "research", "", "1", "2026-03-02", "")
	}
	_, page := getBody(t, alice, f.srv.URL+"/activities?q=o&from=2026-03-02")
	if !strings.Contains(page, "Page 1 of 2") || !strings.Contains(page, `href="/activities?from=2026-03-02&amp;page=2&amp;q=o"`) {
		t.Errorf("the pager of a search lacks page 2 with the search:\n%s", page)
	}
}

// A form body past the limit is refused with a plain sentence, and
// nothing is stored.
func TestOversizedActivityFormIsRefused(t *testing.T) {
	t.Parallel()
	f, ksbs := activityFixture(t)
	alice := f.client(t, f.alice)
	form := activityForm(ksbs[0].Code)
	form.Set("description", strings.Repeat("a", 600<<10))
	resp, page := testsupport.PostForm(t, alice, f.srv.URL+"/activities/new", form)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(page, "larger than an activity can be") {
		t.Fatalf("oversized form = %d:\n%.500s", resp.StatusCode, page)
	}
	if pg, err := f.users.ListActivities(t.Context(), f.alice.ID, activity.Filter{}, 1, 10); err != nil || pg.Total != 0 {
		t.Fatalf("stored: %+v %v", pg, err)
	}
}
