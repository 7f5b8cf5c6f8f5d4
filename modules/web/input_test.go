package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/modules/web"
	"github.com/otjhelper/otj/platform/testsupport"
)

// badValues are the values no query parameter or form field may carry
// into the app: bytes a database refuses, and more than any field holds.
var badValues = map[string]string{
	"NUL":            "a\x00b",
	"invalid UTF-8":  "caf\xe9 \xff\xfe",
	"100 KB":         strings.Repeat("k", 100<<10),
	"NUL at the end": "K1\x00",
}

// queryNames are the query parameters the web package reads: every
// literal name passed to a Get in its sources, so that a parameter added
// later is walked too. A Get of a header or a form field adds a name no
// route reads, which costs a request and nothing more.
func queryNames(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	get := regexp.MustCompile(`\.Get\("([A-Za-z0-9_-]+)"\)`)
	names := []string{"unknown"}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range get.FindAllStringSubmatch(string(src), -1) {
			names = append(names, m[1])
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if !slices.Contains(names, "ksb") || !slices.Contains(names, "page") {
		t.Fatalf("found query names %v: the search for them is broken", names)
	}
	return names
}

// emptyEvents is a live event source with nothing to say.
type emptyEvents struct{}

func (emptyEvents) FollowUser(context.Context, int64, uint64, func(tasktype.Event) error) error {
	return nil
}
func (emptyEvents) Offset(context.Context) (uint64, error) { return 0, nil }

// Issue 23 §4: every GET route, as the router lists it, with each query
// parameter set to a NUL, bytes that are not UTF-8 or 100 KB, answers
// 400 with a plain message, never a 5xx.
func TestEveryGETRouteRefusesBadQueryBytes(t *testing.T) {
	db, _ := testsupport.DB(t)
	store := activity.NewStore(db)
	f := newFixtureOn(t, db, web.Config{
		Enqueuer: &fakeEnqueuer{}, Settings: store, Account: &recordingEraser{}, ExportType: exportType, Events: emptyEvents{},
		Import: &web.ActivityImport{Type: importType, Uploads: store, MaxBytes: 1 << 20,
			Payload: func(id int64) json.RawMessage { b, _ := json.Marshal(uploadPayload{id}); return b }},
	})
	if _, err := db.ExecContext(t.Context(), `UPDATE app_user SET selected_spec = 'ST0787'`); err != nil {
		t.Fatal(err)
	}
	ksbs, err := store.KSBs(t.Context(), "ST0787")
	if err != nil {
		t.Fatal(err)
	}
	alice := f.client(t, f.alice)
	activityPath := createActivity(t, f, alice, activityForm(ksbs[0].Code))

	var routes []string
	if err := chi.Walk(f.hs.Handler.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if method == http.MethodGet {
			routes = append(routes, route)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(routes, "/activities") || !slices.Contains(routes, "/tasks/{id}") || !slices.Contains(routes, "/settings") {
		t.Fatalf("walked GET routes %v: some are missing", routes)
	}
	names := queryNames(t)
	for _, route := range routes {
		path := strings.NewReplacer("{id}", "00000000000000000000000000", "/*", "/app.css").Replace(route)
		if strings.HasPrefix(route, "/activities/{id}") {
			path = strings.Replace(route, "/activities/{id}", activityPath, 1)
		}
		for _, name := range names {
			for what, v := range badValues {
				u := f.srv.URL + path + "?" + url.Values{name: {v}}.Encode()
				resp, body := testsupport.Get(t, alice, u)
				if resp.StatusCode != http.StatusBadRequest {
					t.Errorf("GET %s?%s=<%s>: %d", path, name, what, resp.StatusCode)
					continue
				}
				if !strings.Contains(body, "could not be read") {
					t.Errorf("GET %s?%s=<%s>: 400 without the plain message:\n%.300s", path, name, what, body)
				}
			}
		}
		// The name can be the bad part too.
		resp, _ := testsupport.Get(t, alice, f.srv.URL+path+"?a%00b=1")
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s with a NUL in a parameter's name: %d", path, resp.StatusCode)
		}
	}
}

// A posted form's fields pass the same check: a NUL or bytes that are
// not UTF-8, even where the form's own rules would not look (a field it
// does not read), is a 400, and the activity is not created. (A field's
// length is the body bound's and the form's business: see
// TestOversizedActivityFormIsRefused.)
func TestFormFieldsRefuseBadBytes(t *testing.T) {
	f, ksbs := activityFixture(t)
	alice := f.client(t, f.alice)
	for what, v := range badValues {
		if len(v) > 1000 {
			continue
		}
		form := activityForm(ksbs[0].Code)
		form.Set("unread_field", v)
		resp, body := testsupport.PostForm(t, alice, f.srv.URL+"/activities/new", form)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "could not be read") {
			t.Errorf("form with <%s> in a field: %d\n%.300s", what, resp.StatusCode, body)
		}
	}
	pg, err := f.users.ListActivities(t.Context(), f.alice.ID, activity.Filter{}, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	if pg.Total != 0 {
		t.Errorf("%d activities created by refused forms", pg.Total)
	}
	// A NUL in a long field is still a NUL.
	form := activityForm(ksbs[0].Code)
	form.Set("notes", strings.Repeat("n", 100<<10)+"\x00")
	if resp, body := testsupport.PostForm(t, alice, f.srv.URL+"/activities/new", form); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "NUL") {
		t.Errorf("a long field ending in a NUL: %d\n%.300s", resp.StatusCode, body)
	}
	// And a good form still goes through.
	createActivity(t, f, alice, activityForm(ksbs[0].Code))
}
