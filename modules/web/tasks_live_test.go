package web_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/modules/web"
	"github.com/otjhelper/otj/platform/testsupport"
)

// These tests run the task page and its actions over the real path: the
// JetStream broker, a worker, the projection and SQLite (or PostgreSQL).

// startReport presses Generate Full Report and returns the new task's id.
func startReport(t *testing.T, f *fixture, c *http.Client) string {
	t.Helper()
	resp := post(t, c, f.srv.URL+"/tasks/generate-report", url.Values{"key": {rand.Text()}}, nil)
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || err != nil || loc.Query().Get("queued") == "" {
		t.Fatalf("generate = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query().Get("queued")
}

// waitForStatus polls the task's page until its badge shows status, and
// returns that page.
func waitForStatus(t *testing.T, f *fixture, c *http.Client, path string, status tasktype.Status) string {
	t.Helper()
	var page string
	testsupport.Eventually(t, 20*time.Second, "task never became "+string(status)+" on "+path, func() bool {
		var code int
		code, page = getBody(t, c, f.srv.URL+path)
		return code == http.StatusOK && strings.Contains(page, `class="badge badge-`+string(status)+`"`)
	})
	return page
}

// kinds is the task's history as stored in the event log.
func kinds(t *testing.T, f *fixture, id string) []tasktype.EventKind {
	t.Helper()
	h, err := f.broker.History(testsupport.Context(t), 0, id)
	if err != nil {
		t.Fatal(err)
	}
	var ks []tasktype.EventKind
	for _, e := range h {
		ks = append(ks, e.Kind)
	}
	return ks
}

// blocker is a handler that reports each attempt it starts and then
// holds it until released or until its context ends, reporting that.
type blocker struct {
	started   chan string // job ids, one per attempt started
	ended     chan error  // the context's error, when it ended first
	release   chan struct{}
	releaseFn func()
	fail      error // returned once released, if set
}

func newBlocker(t *testing.T) *blocker {
	b := &blocker{started: make(chan string, 10), ended: make(chan error, 10), release: make(chan struct{})}
	b.releaseFn = sync.OnceFunc(func() { close(b.release) })
	// Release before the fixture's cleanup stops the worker, so that no
	// test ends waiting out the worker's shutdown grace.
	t.Cleanup(b.releaseFn)
	return b
}

func (b *blocker) handle(ctx context.Context, job tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
	b.started <- job.ID
	select {
	case <-b.release:
		return tasktype.Result{Summary: "done"}, b.fail
	case <-ctx.Done():
		b.ended <- ctx.Err()
		return tasktype.Result{}, ctx.Err()
	}
}

// next waits for the next attempt to start and returns its job id.
func (b *blocker) next(t *testing.T) string {
	t.Helper()
	select {
	case id := <-b.started:
		return id
	case <-time.After(10 * time.Second):
		t.Fatal("no attempt started within 10s")
		return ""
	}
}

func TestCancelPendingTaskNeverRuns(t *testing.T) {
	t.Parallel()
	b := newBlocker(t)
	// One slot: while the first task holds it, the second stays pending.
	f := liveFixture(t, 1, func(r *tasks.Registry) error { return r.Register(reportType, b.handle, tasktype.Policy{}) })
	c := f.client(t, f.alice)

	first := startReport(t, f, c)
	if got := b.next(t); got != first {
		t.Fatalf("started %s, want %s", got, first)
	}
	second := startReport(t, f, c)
	var list string
	testsupport.Eventually(t, 20*time.Second, "second task never listed", func() bool {
		_, list = getBody(t, c, f.srv.URL+"/tasks/")
		return strings.Contains(list, `<tr id="task-`+second+`">`)
	})
	if tr := rowHTML(t, list, second); !strings.Contains(tr, "badge-pending") || !strings.Contains(tr, cancelForm(second)) {
		t.Fatalf("second task not pending with a Cancel button:\n%s", tr)
	}

	// The list's Cancel button, as the browser sends it.
	resp := post(t, c, f.srv.URL+"/tasks/"+second+"/cancel", nil, nil)
	if want := "/tasks/" + second + "?done=cancelled"; resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
		t.Fatalf("cancel = %d to %q, want 303 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	// The POST waited for the projection, so the page normally shows the
	// change at once; the wait is bounded, though, so poll for a loaded
	// machine.
	page := waitForStatus(t, f, c, "/tasks/"+second+"?done=cancelled", tasktype.StatusCancelled)
	inOrder(t, page, "Cancelled.", `class="badge badge-cancelled"`, retryForm(second), "Queued", "Cancelled by you")
	if strings.Contains(page, cancelForm(second)) || strings.Contains(page, `http-equiv="refresh"`) {
		t.Errorf("cancelled task still offers Cancel, or refreshes:\n%s", page)
	}

	// Free the slot and queue a third task. The queue hands out work in
	// stream order, so once the third has run the worker has been offered
	// the cancelled one too, and must have dropped it.
	third := startReport(t, f, c)
	b.releaseFn()
	waitForStatus(t, f, c, "/tasks/"+third, tasktype.StatusCompleted)
	waitForStatus(t, f, c, "/tasks/"+first, tasktype.StatusCompleted)
	if got := b.next(t); got != third {
		t.Fatalf("after the first task, %s ran; want %s (the cancelled %s must never run)", got, third, second)
	}
	select {
	case id := <-b.started:
		t.Fatalf("%s ran as well", id)
	default:
	}
	if got, want := kinds(t, f, second), []tasktype.EventKind{tasktype.EventEnqueued, tasktype.EventCancelled}; !slices.Equal(got, want) {
		t.Fatalf("cancelled task's history %v, want %v", got, want)
	}
}

func TestCancelRunningTaskCancelsItsHandler(t *testing.T) {
	t.Parallel()
	b := newBlocker(t)
	f := liveFixture(t, 0, func(r *tasks.Registry) error { return r.Register(reportType, b.handle, tasktype.Policy{}) })
	c := f.client(t, f.alice)
	id := startReport(t, f, c)
	b.next(t)
	page := waitForStatus(t, f, c, "/tasks/"+id, tasktype.StatusRunning)
	inOrder(t, page, "<dt>Attempt</dt><dd>1 of 3", cancelForm(id), "Queued", "Attempt 1 of 3 started on "+testWorker)
	if !strings.Contains(page, `http-equiv="refresh"`) {
		t.Error("running task's page does not refresh")
	}

	// Another site's forged form is refused and changes nothing.
	before := kinds(t, f, id)
	for _, hdr := range [][]string{{"Sec-Fetch-Site", "cross-site"}, {"Origin", "https://evil.example"}} {
		if resp, _ := testsupport.PostForm(t, c, f.srv.URL+"/tasks/"+id+"/cancel", nil, hdr...); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("cross-site cancel (%s) = %d, want 403", hdr[0], resp.StatusCode)
		}
	}
	if after := kinds(t, f, id); !slices.Equal(after, before) {
		t.Fatalf("cross-site cancel changed history from %v to %v", before, after)
	}
	select {
	case err := <-b.ended:
		t.Fatalf("handler ended (%v) after a refused cancel", err)
	default:
	}

	resp := post(t, c, f.srv.URL+"/tasks/"+id+"/cancel", nil, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("cancel = %d", resp.StatusCode)
	}
	select {
	case err := <-b.ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("handler's context ended with %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler's context not cancelled within 5s of the cancel")
	}
	page = waitForStatus(t, f, c, "/tasks/"+id, tasktype.StatusCancelled)
	inOrder(t, page, "Attempt 1 of 3 started on "+testWorker, "Cancelled by you")
	_, list := getBody(t, c, f.srv.URL+"/tasks/")
	if tr := rowHTML(t, list, id); !strings.Contains(tr, "cancelled by you") || !strings.Contains(tr, retryForm(id)) {
		t.Errorf("list row of the cancelled task:\n%s", tr)
	}
}

func TestRetryFailedTaskRunsAgain(t *testing.T) {
	t.Parallel()
	flaky := func(_ context.Context, job tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
		if job.Attempt < 3 {
			return tasktype.Result{}, tasktype.UserMessage(fmt.Errorf("activity source: dial unix: connection refused (attempt %d)", job.Attempt),
				fmt.Sprintf("The activity log could not be read (attempt %d).", job.Attempt))
		}
		w, err := out.Create("report.csv", "text/csv")
		if err != nil {
			return tasktype.Result{}, err
		}
		io.WriteString(w, "date,hours\n2026-03-05,1.5\n")
		return tasktype.Result{Summary: "1,204 activities"}, nil
	}
	testsupport.EachDialect(t, func(t *testing.T, db *bun.DB) {
		f := liveFixtureWith(t, liveOptions{db: db, register: func(r *tasks.Registry) error {
			return r.Register(reportType, flaky, tasktype.Policy{MaxAttempts: 2, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
		}})
		c := f.client(t, f.alice)
		id := startReport(t, f, c)
		page := waitForStatus(t, f, c, "/tasks/"+id, tasktype.StatusFailed)
		inOrder(t, page, `<dt>What happened</dt><dd class="error">The activity log could not be read (attempt 2).`, retryForm(id))
		if strings.Contains(page, cancelForm(id)) {
			t.Error("failed task offers Cancel")
		}

		resp := post(t, c, f.srv.URL+"/tasks/"+id+"/retry", nil, nil)
		if want := "/tasks/" + id + "?done=retried"; resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
			t.Fatalf("retry = %d to %q, want 303 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
		}
		page = waitForStatus(t, f, c, "/tasks/"+id+"?done=retried", tasktype.StatusCompleted)

		// The retrying event's time for attempt 2, as the user reads it.
		h, err := f.broker.History(testsupport.Context(t), f.alice.ID, id)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(h, func(e tasktype.Event) bool { return e.Kind == tasktype.EventRetrying })
		if i < 0 {
			t.Fatalf("no retrying event in %+v", h)
		}
		london, _ := time.LoadLocation("Europe/London")
		next := h[i].RetryAt.In(london).Format("15:04:05")

		inOrder(t, page,
			"The retry succeeded.",
			`<dt>Attempt</dt><dd>3 of 4`,
			`href="/tasks/`+id+`/download"`,
			"<span>Queued",
			"Attempt 1 of 2 started on "+testWorker,
			"Attempt 1 failed: The activity log could not be read (attempt 1). Next attempt at "+next,
			"Attempt 2 of 2 started on "+testWorker,
			"Failed for good after attempt 2: The activity log could not be read (attempt 2).",
			"Retried by you",
			"Attempt 3 of 4 started on "+testWorker,
			"Attempt 3 succeeded: 1,204 activities",
		)
		// One entry a stored event, and one for each start an outcome
		// carries (these attempts ended before their first heartbeat).
		if got, want := strings.Count(page, "<li class="), len(tasktype.WithStarts(h)); got != want {
			t.Errorf("timeline has %d entries, the log %d with the starts its outcomes carry", got, want)
		}
		code, csv := getBody(t, c, f.srv.URL+"/tasks/"+id+"/download")
		if code != http.StatusOK || csv != "date,hours\n2026-03-05,1.5\n" {
			t.Fatalf("download = %d %q", code, csv)
		}
	})
}

func TestOtherUsersTaskIsNotFound(t *testing.T) {
	t.Parallel()
	b := newBlocker(t)
	b.fail = errors.New("stopped by the test")
	f := liveFixture(t, 0, func(r *tasks.Registry) error {
		return r.Register(reportType, b.handle, tasktype.Policy{MaxAttempts: 1})
	})
	alice, bob := f.client(t, f.alice), f.client(t, f.bob)
	id := startReport(t, f, alice)
	b.next(t)
	waitForStatus(t, f, alice, "/tasks/"+id, tasktype.StatusRunning)

	// Bob tries each route while alice's task is in a state that would
	// allow it, so that only ownership stops him.
	tryAll := func(t *testing.T, method, op string) {
		t.Helper()
		before := kinds(t, f, id)
		var code int
		var body string
		if method == http.MethodGet {
			code, body = getBody(t, bob, f.srv.URL+"/tasks/"+id+op)
		} else {
			var resp *http.Response
			resp, body = testsupport.PostForm(t, bob, f.srv.URL+"/tasks/"+id+op, nil)
			code = resp.StatusCode
		}
		if code != http.StatusNotFound || !strings.Contains(body, "not yours to see") {
			t.Fatalf("bob's %s %s = %d, want 404", method, op, code)
		}
		if after := kinds(t, f, id); !slices.Equal(after, before) {
			t.Fatalf("bob's %s %s changed alice's task from %v to %v", method, op, before, after)
		}
	}
	tryAll(t, http.MethodGet, "")
	tryAll(t, http.MethodPost, "/cancel")
	if select1(b.ended) {
		t.Fatal("bob's cancel reached alice's handler")
	}
	waitForStatus(t, f, alice, "/tasks/"+id, tasktype.StatusRunning)

	b.releaseFn()
	waitForStatus(t, f, alice, "/tasks/"+id, tasktype.StatusFailed)
	tryAll(t, http.MethodPost, "/retry")
	tryAll(t, http.MethodGet, "/download")
	tryAll(t, http.MethodPost, "/regenerate")
	waitForStatus(t, f, alice, "/tasks/"+id, tasktype.StatusFailed)

	// Every task route the router has is tried above, or, for a kind's
	// result page, by TestResultViewShowsOnlyTheOwnersTaskOfItsKind, and
	// for a kind's other download formats by TestDownloadInAnotherFormat:
	// a new route fails here until it is covered.
	covered := map[string]bool{
		"GET /tasks/{id}": true, "POST /tasks/{id}/cancel": true, "POST /tasks/{id}/retry": true,
		"GET /tasks/{id}/download": true, "POST /tasks/{id}/regenerate": true,
		"GET /tasks/{id}/view":              true, // IDRoutes' stand-in for every kind's result page
		"GET /tasks/{id}/download/{format}": true,
	}
	routes, err := web.IDRoutes()
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range routes {
		if strings.HasPrefix(rt[1], "/tasks/") && !covered[rt[0]+" "+rt[1]] {
			t.Errorf("%s %s takes a task id and no test tries it with another user's task", rt[0], rt[1])
		}
	}
	if _, list := getBody(t, bob, f.srv.URL+"/tasks/"); strings.Contains(list, id) {
		t.Error("alice's task on bob's list")
	}
}

// select1 reports whether ch has a value ready, taking it.
func select1(ch chan error) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestActionInWrongStateIs409(t *testing.T) {
	t.Parallel()
	quick := func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
		return tasktype.Result{Summary: "3 activities"}, nil
	}
	f := liveFixture(t, 0, func(r *tasks.Registry) error { return r.Register(reportType, quick, tasktype.Policy{}) })
	c := f.client(t, f.alice)
	id := startReport(t, f, c)
	waitForStatus(t, f, c, "/tasks/"+id, tasktype.StatusCompleted)
	before := kinds(t, f, id)

	tests := []struct{ op, want string }{
		{"cancel", "The task is completed; only pending, retrying or running tasks can be cancelled."},
		{"retry", "The task is completed; only failed or cancelled tasks can be retried."},
	}
	for _, tt := range tests {
		t.Run(tt.op, func(t *testing.T) {
			resp, body := testsupport.PostForm(t, c, f.srv.URL+"/tasks/"+id+"/"+tt.op, nil)
			if resp.StatusCode != http.StatusConflict || !strings.Contains(body, tt.want) {
				t.Fatalf("%s = %d, want 409 saying %q:\n%s", tt.op, resp.StatusCode, tt.want, body)
			}
			if strings.Contains(body, id) {
				t.Error("error page shows the wrapped error (task id)")
			}
		})
	}
	if after := kinds(t, f, id); !slices.Equal(after, before) {
		t.Fatalf("history changed from %v to %v", before, after)
	}
	waitForStatus(t, f, c, "/tasks/"+id, tasktype.StatusCompleted)
}

func TestRetryingTaskOnList(t *testing.T) {
	t.Parallel()
	down := func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
		return tasktype.Result{}, tasktype.UserMessage(errors.New("smtp timeout"), "The mail server did not answer.")
	}
	// A minute's backoff keeps the task retrying for the whole test.
	f := liveFixture(t, 0, func(r *tasks.Registry) error {
		return r.Register(reportType, down, tasktype.Policy{MaxAttempts: 3, BackoffMin: time.Minute, BackoffMax: time.Minute})
	})
	c := f.client(t, f.alice)
	id := startReport(t, f, c)
	var list string
	testsupport.Eventually(t, 20*time.Second, "task never showed as retrying on the list", func() bool {
		_, list = getBody(t, c, f.srv.URL+"/tasks/")
		return strings.Contains(list, `class="badge badge-retrying"`)
	})
	row, err := readTasks(t, f.db).GetForUser(testsupport.Context(t), f.alice.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	london, _ := time.LoadLocation("Europe/London")
	next := row.NextAttemptAt.In(london).Format("2 Jan 2006, 15:04:05 MST")
	if row.NextAttemptAt.IsZero() {
		t.Fatal("retrying row without a next attempt time")
	}
	tr := rowHTML(t, list, id)
	for _, want := range []string{"Attempt 1 of 3 failed. Next attempt at " + next, `class="error">The mail server did not answer.`, cancelForm(id)} {
		if !strings.Contains(tr, want) {
			t.Errorf("retrying row lacks %q:\n%s", want, tr)
		}
	}
	if !strings.Contains(list, `http-equiv="refresh"`) {
		t.Error("list does not refresh while a task is retrying")
	}

	// Cancelling a retrying task stops it for good.
	if resp := post(t, c, f.srv.URL+"/tasks/"+id+"/cancel", nil, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("cancel = %d", resp.StatusCode)
	}
	testsupport.Eventually(t, 20*time.Second, "task never showed as cancelled on the list", func() bool {
		_, list = getBody(t, c, f.srv.URL+"/tasks/")
		return strings.Contains(rowHTML(t, list, id), `class="badge badge-cancelled"`)
	})
	if strings.Contains(list, `http-equiv="refresh"`) {
		t.Fatalf("list still refreshing with no active task:\n%s", list)
	}
}
