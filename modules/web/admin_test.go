package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/modules/web"
	"github.com/otjhelper/otj/platform/testsupport"
)

// operatorEmail is the console fixture's one operator; alice and bob are
// users, not operators.
const operatorEmail = "ops@example.org"

// adminInternal is the operator's detail of the fixture's failing job,
// which its owner never sees.
const adminInternal = "smtp 550: mailbox unavailable"

// adminFixture is the web module with the operator console over the real
// JetStream path, and three jobs: alice's completed report with a
// result, alice's failed one, and bob's, held running until cancelled.
type adminFixture struct {
	*fixture
	ops                  activity.User
	done, failed, held   string
	alice, bob, operator *http.Client
}

func newAdminFixture(t *testing.T, db *bun.DB) *adminFixture {
	t.Helper()
	return newAdminFixtureWith(t, db, nil)
}

// newAdminFixtureWith is newAdminFixture with the web's settings changed
// by change, once the console's are filled in.
func newAdminFixtureWith(t *testing.T, db *bun.DB, change func(*web.Config)) *adminFixture {
	t.Helper()
	operators, err := web.ParseAllowlist(operatorEmail)
	if err != nil {
		t.Fatal(err)
	}
	f := liveFixtureWith(t, liveOptions{db: db, register: func(r *tasks.Registry) error {
		return r.Register(reportType, func(ctx context.Context, job tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
			switch string(job.Payload) {
			case `"fail"`:
				return tasktype.Result{}, tasktype.UserMessage(errors.New(adminInternal), "Your digest could not be sent.")
			case `"hold"`:
				<-ctx.Done()
				return tasktype.Result{}, ctx.Err()
			}
			w, err := out.Create("report.csv", "text/csv")
			if err != nil {
				return tasktype.Result{}, err
			}
			fmt.Fprintf(w, "the report of user %d\n", job.UserID)
			return tasktype.Result{Summary: "1 line"}, nil
		}, tasktype.Policy{MaxAttempts: 1})
	}, web: func(c *web.Config) {
		c.Admin = &web.AdminConfig{Operators: operators, Tasks: c.Tasks.(*tasks.Client), Users: activity.NewStore(db)}
		if change != nil {
			change(c)
		}
	}})
	ctx := testsupport.Context(t)
	ops, err := f.users.EnsureUser(ctx, operatorEmail)
	if err != nil {
		t.Fatal(err)
	}
	a := &adminFixture{fixture: f, ops: ops, alice: f.client(t, f.alice), bob: f.client(t, f.bob), operator: f.client(t, ops)}
	enqueue := func(u activity.User, payload string, want tasktype.Status) string {
		job, err := f.broker.Enqueue(ctx, tasktype.EnqueueRequest{Type: reportType, UserID: u.ID, Payload: json.RawMessage(payload)})
		if err != nil {
			t.Fatal(err)
		}
		testsupport.Eventually(t, 20*time.Second, "job "+payload+" never became "+string(want), func() bool {
			tk, err := f.proj.Get(ctx, job.ID)
			return err == nil && tk.Status == want
		})
		return job.ID
	}
	a.done = enqueue(f.alice, `"ok"`, tasktype.StatusCompleted)
	a.failed = enqueue(f.alice, `"fail"`, tasktype.StatusFailed)
	a.held = enqueue(f.bob, `"hold"`, tasktype.StatusRunning)
	return a
}

// history is job id's events as the log holds them.
func (a *adminFixture) history(t *testing.T, id string) []tasktype.Event {
	t.Helper()
	h, err := a.broker.History(testsupport.Context(t), 0, id)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// adminRoute is one route of the console, as the route walk names it,
// and how the table test asks for it.
type adminRoute struct {
	path string // with {id} filled in
	// operator is the status the operator gets.
	operator int
	// check, when set, looks at the operator's answer and at what it
	// did.
	check func(t *testing.T, a *adminFixture, resp *http.Response, body string)
}

// Issue 27 §1: two users and one operator walk every route of the
// console, pages and API alike, as the router lists them: a user who
// is not an operator, and a visitor not signed in, get a 404 on each,
// exactly as for a path that does not exist, and changes nothing; the
// operator gets the page, and each change and each read of another
// user's result is in the job's history, naming the operator. A route
// the table misses fails the test.
func TestAdminRoutesAreOperatorsOnly(t *testing.T) {
	testsupport.EachDialect(t, func(t *testing.T, db *bun.DB) {
		a := newAdminFixture(t, db)
		table := map[string]adminRoute{
			"GET /admin/":              {path: "/admin/", operator: http.StatusSeeOther},
			"GET /admin/jobs":          {path: "/admin/jobs?state=failed", operator: http.StatusOK, check: pageShows(a.failed, adminInternal)},
			"GET /admin/api/jobs":      {path: "/admin/api/jobs", operator: http.StatusOK, check: pageShows(a.done, a.failed, a.held)},
			"GET /admin/jobs/{id}":     {path: "/admin/jobs/" + a.failed, operator: http.StatusOK, check: pageShows(adminInternal, "Your digest could not be sent.", `"fail"`)},
			"GET /admin/api/jobs/{id}": {path: "/admin/api/jobs/" + a.failed, operator: http.StatusOK, check: pageShows(`"kind":"enqueued"`, `"kind":"failed"`, adminInternal)},
			"POST /admin/jobs/{id}/cancel": {path: "/admin/jobs/" + a.held + "/cancel", operator: http.StatusSeeOther,
				check: func(t *testing.T, a *adminFixture, _ *http.Response, _ string) {
					namesOperator(t, a, a.held, tasktype.EventCancelled)
				}},
			"POST /admin/jobs/{id}/retry": {path: "/admin/jobs/" + a.failed + "/retry", operator: http.StatusSeeOther,
				check: func(t *testing.T, a *adminFixture, _ *http.Response, _ string) {
					namesOperator(t, a, a.failed, tasktype.EventRetried)
				}},
			"GET /admin/jobs/{id}/download": {path: "/admin/jobs/" + a.done + "/download", operator: http.StatusOK,
				check: func(t *testing.T, a *adminFixture, resp *http.Response, body string) {
					if want := fmt.Sprintf("the report of user %d\n", a.fixture.alice.ID); body != want {
						t.Errorf("downloaded %q, want %q", body, want)
					}
					e := namesOperator(t, a, a.done, tasktype.EventResultRead)
					if e.Result == nil || e.Result.Name != "report.csv" {
						t.Errorf("the read names no result: %+v", e)
					}
				}},
			"GET /admin/workers": {path: "/admin/workers", operator: http.StatusOK, check: pageShows("Workers", testWorker)},
			"GET /admin/api/workers": {path: "/admin/api/workers", operator: http.StatusOK,
				check: func(t *testing.T, a *adminFixture, _ *http.Response, body string) {
					pageShows(`{"workers":[{"name":"`+testWorker+`","host":"`, `"concurrency":`, `"started_at":`, `"last_heartbeat":`)(t, a, nil, body)
					// The held job shows among the worker's running jobs
					// from its next heartbeat on.
					testsupport.Eventually(t, 10*time.Second, "the worker never listed the held job as running", func() bool {
						_, body := getBody(t, a.operator, a.srv.URL+"/admin/api/workers")
						return strings.Contains(body, `"running":["`+a.held+`"]`)
					})
				}},
			"GET /admin/types":     {path: "/admin/types", operator: http.StatusOK, check: pageShows("Job types", "("+reportType+")")},
			"GET /admin/api/types": {path: "/admin/api/types", operator: http.StatusOK, check: pageShows(`{"type":"`+reportType+`","paused":`, `"running":1`)},
			"POST /admin/types/{type}/{action:pause|resume}": {path: "/admin/types/" + reportType + "/pause", operator: http.StatusSeeOther,
				check: func(t *testing.T, a *adminFixture, _ *http.Response, _ string) {
					ps, err := a.fixture.broker.Pauses(testsupport.Context(t))
					if err != nil || len(ps) != 1 || ps[0].Type != reportType || ps[0].By != operatorEmail {
						t.Errorf("after the pause: %+v, %v; want %s paused by the operator", ps, err, reportType)
					}
				}},
			"POST /admin/api/types/{type}/{action:pause|resume}": {path: "/admin/api/types/" + reportType + "/resume", operator: http.StatusOK,
				check: func(t *testing.T, a *adminFixture, _ *http.Response, body string) {
					ps, err := a.fixture.broker.Pauses(testsupport.Context(t))
					if err != nil || len(ps) != 0 || body != `{"paused":false,"type":"`+reportType+`"}`+"\n" {
						t.Errorf("after the resume: %+v, %v, answered %q; want nothing paused", ps, err, body)
					}
				}},
		}
		var walked []string
		if err := chi.Walk(a.hs.Handler.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
			if strings.HasPrefix(route, "/admin") {
				walked = append(walked, method+" "+route)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for _, r := range walked {
			if _, ok := table[r]; !ok {
				t.Errorf("route %s is not in the table", r)
			}
		}
		for r := range table {
			if !slices.Contains(walked, r) {
				t.Errorf("table has %s, which the router does not serve", r)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
		slices.Sort(walked)
		before := map[string]int{}
		for _, id := range []string{a.done, a.failed, a.held} {
			before[id] = len(a.history(t, id))
		}
		_, notFound := getBody(t, a.alice, a.srv.URL+"/no/such/page")
		anonymous := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		for _, r := range walked {
			method := strings.Fields(r)[0]
			u := a.srv.URL + table[r].path
			for who, c := range map[string]*http.Client{"alice": a.alice, "bob": a.bob, "not signed in": anonymous} {
				resp, body := do(t, c, method, u)
				if resp.StatusCode != http.StatusNotFound || body != notFound {
					t.Errorf("%s %s as %s: %d, want the 404 of a path that does not exist:\n%.300s", method, table[r].path, who, resp.StatusCode, body)
				}
			}
		}
		for id, n := range before {
			if h := a.history(t, id); len(h) != n {
				t.Errorf("job %s: users who are not operators changed its history: %d events, had %d", id, len(h), n)
			}
		}
		for _, r := range walked {
			method := strings.Fields(r)[0]
			rt := table[r]
			resp, body := do(t, a.operator, method, a.srv.URL+rt.path)
			if resp.StatusCode != rt.operator {
				t.Errorf("%s %s as the operator: %d, want %d:\n%.500s", method, rt.path, resp.StatusCode, rt.operator, body)
				continue
			}
			if rt.check != nil {
				rt.check(t, a, resp, body)
			}
		}
	})
}

// do sends an empty request, as a browser's form would for the
// console's buttons; it follows no redirect.
func do(t *testing.T, c *http.Client, method, u string) (*http.Response, string) {
	t.Helper()
	if method == http.MethodGet {
		return testsupport.Get(t, c, u)
	}
	return testsupport.PostForm(t, c, u, url.Values{})
}

// pageShows checks that an answer holds every one of want.
func pageShows(want ...string) func(*testing.T, *adminFixture, *http.Response, string) {
	return func(t *testing.T, _ *adminFixture, _ *http.Response, body string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(body, w) && !strings.Contains(body, strings.ReplaceAll(w, `"`, "&#34;")) {
				t.Errorf("answer without %q:\n%.2000s", w, body)
			}
		}
	}
}

// namesOperator checks that job id's newest event is of kind, by the
// fixture's operator, and returns it.
func namesOperator(t *testing.T, a *adminFixture, id string, kind tasktype.EventKind) tasktype.Event {
	t.Helper()
	h := a.history(t, id)
	var e tasktype.Event
	for _, ev := range h {
		if ev.Kind == kind {
			e = ev
		}
	}
	if e.Kind != kind || e.Operator != operatorEmail || e.By != tasktype.ByOperator {
		t.Errorf("job %s: no %s event naming operator %s: %+v", id, kind, operatorEmail, h)
	}
	return e
}

// The API's documented shape (README.md, "Operators"): a list is
// exactly {"jobs":[…],"next":…}, each job exactly its eight fields, and
// paging by next walks every job once and ends with an empty next; the
// filters narrow it; a job is {"job":…,"events":[…]} with its history
// from the log; a malformed filter is a 400 with a sentence.
func TestAdminAPIShape(t *testing.T) {
	testsupport.EachDialect(t, func(t *testing.T, db *bun.DB) {
		a := newAdminFixture(t, db)
		list := func(query string) ([]map[string]json.RawMessage, string) {
			t.Helper()
			resp, body := testsupport.Get(t, a.operator, a.srv.URL+"/admin/api/jobs?"+query)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("GET /admin/api/jobs?%s: %d %s\n%s", query, resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			var top map[string]json.RawMessage
			if err := json.Unmarshal([]byte(body), &top); err != nil {
				t.Fatal(err)
			}
			if keys := sortedKeys(top); !slices.Equal(keys, []string{"jobs", "next"}) {
				t.Fatalf("list keys %v, want jobs and next", keys)
			}
			var jobs []map[string]json.RawMessage
			var next string
			if err := json.Unmarshal(top["jobs"], &jobs); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(top["next"], &next); err != nil {
				t.Fatal(err)
			}
			for _, j := range jobs {
				if keys := sortedKeys(j); !slices.Equal(keys, []string{"attempts", "created_at", "error", "id", "status", "type", "updated_at", "user_id"}) {
					t.Fatalf("job keys %v", keys)
				}
			}
			return jobs, next
		}
		str := func(j map[string]json.RawMessage, k string) string {
			var s string
			if err := json.Unmarshal(j[k], &s); err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			return s
		}
		ids := func(jobs []map[string]json.RawMessage) []string {
			var out []string
			for _, j := range jobs {
				out = append(out, str(j, "id"))
			}
			slices.Sort(out)
			return out
		}
		all := []string{a.done, a.failed, a.held}
		slices.Sort(all)

		// Paging, one at a time, to the end.
		var walked []string
		query := "limit=1"
		for range 10 {
			jobs, next := list(query)
			walked = append(walked, ids(jobs)...)
			if next == "" {
				break
			}
			query = "limit=1&after=" + url.QueryEscape(next)
		}
		slices.Sort(walked)
		if !slices.Equal(walked, all) {
			t.Errorf("paging walked %v, want %v", walked, all)
		}

		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"state=failed", []string{a.failed}},
			{"type=" + reportType + "&state=running", []string{a.held}},
			{"user=" + url.QueryEscape(a.fixture.alice.Email), []string{a.done, a.failed}},
			{"user=" + strconv.FormatInt(a.fixture.bob.ID, 10), []string{a.held}},
			{"user=nobody%40example.org", nil},
			{"error=SMTP+550", []string{a.failed}},
			{"from=2000-01-01&before=" + time.Now().UTC().Format(time.DateOnly), all},
			{"before=2000-01-01", nil},
		} {
			jobs, next := list(tc.query)
			if got := ids(jobs); !slices.Equal(got, tc.want) || next != "" {
				t.Errorf("?%s: %v next %q, want %v", tc.query, got, next, tc.want)
			}
		}
		jobs, _ := list("state=failed")
		if len(jobs) == 1 && (str(jobs[0], "error") != adminInternal || str(jobs[0], "status") != "failed" || str(jobs[0], "type") != reportType) {
			t.Errorf("failed job as listed: %s", jobs[0])
		}

		for _, bad := range []string{"state=lost", "type=a.b", "user=x%20y", "limit=0", "limit=101", "after=zz", "from=yesterday"} {
			resp, body := testsupport.Get(t, a.operator, a.srv.URL+"/admin/api/jobs?"+bad)
			var e map[string]string
			if resp.StatusCode != http.StatusBadRequest || json.Unmarshal([]byte(body), &e) != nil || e["error"] == "" {
				t.Errorf("?%s: %d %s, want 400 with {\"error\": sentence}", bad, resp.StatusCode, body)
			}
		}

		// A job, with its history.
		resp, body := testsupport.Get(t, a.operator, a.srv.URL+"/admin/api/jobs/"+a.failed)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /admin/api/jobs/{id}: %d %s", resp.StatusCode, body)
		}
		var detail map[string]json.RawMessage
		if err := json.Unmarshal([]byte(body), &detail); err != nil {
			t.Fatal(err)
		}
		if keys := sortedKeys(detail); !slices.Equal(keys, []string{"events", "job"}) {
			t.Fatalf("job keys %v, want events and job", keys)
		}
		var job map[string]json.RawMessage
		var events []struct {
			Seq   uint64             `json:"seq"`
			Kind  tasktype.EventKind `json:"kind"`
			Error string             `json:"error"`
		}
		if err := json.Unmarshal(detail["job"], &job); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(detail["events"], &events); err != nil {
			t.Fatal(err)
		}
		if str(job, "id") != a.failed || len(sortedKeys(job)) != 8 {
			t.Errorf("job %s", detail["job"])
		}
		var kinds []tasktype.EventKind
		for i, e := range events {
			kinds = append(kinds, e.Kind)
			if e.Seq == 0 || i > 0 && e.Seq < events[i-1].Seq {
				t.Errorf("events out of the log's order: %s", detail["events"])
			}
		}
		if kinds[0] != tasktype.EventEnqueued || kinds[len(kinds)-1] != tasktype.EventFailed || events[len(events)-1].Error != adminInternal {
			t.Errorf("history %v: want enqueued first and failed, with the error, last", kinds)
		}
		if resp, _ := testsupport.Get(t, a.operator, a.srv.URL+"/admin/api/jobs/nosuchjob"); resp.StatusCode != http.StatusNotFound {
			t.Errorf("unknown job: %d, want 404", resp.StatusCode)
		}

		// The console's changes are cross-site protected as the pages are.
		resp, _ = testsupport.PostForm(t, a.operator, a.srv.URL+"/admin/jobs/"+a.held+"/cancel", url.Values{}, "Sec-Fetch-Site", "cross-site")
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-site cancel: %d, want 403", resp.StatusCode)
		}
		if h := a.history(t, a.held); h[len(h)-1].Kind == tasktype.EventCancelled {
			t.Error("a cross-site cancel cancelled the job")
		}
	})
}

func sortedKeys[V any](m map[string]V) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
