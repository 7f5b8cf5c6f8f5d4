package web_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/modules/web"
	"github.com/otjhelper/otj/platform/testsupport"
)

// t0 is when the fixed tasks below were created: 14:00 UTC, which is
// 14:00 GMT in London (the default zone) in March.
var t0 = time.Date(2026, 3, 5, 14, 0, 0, 0, time.UTC)

// row returns a task_result row of user in state s with the fields that
// state has, as the projection would write them.
func row(id string, user int64, s tasktype.Status) tasktype.Task {
	r := tasktype.Task{ID: id, UserID: user, TaskType: reportType, Status: s, CreatedAt: t0, UpdatedAt: t0}
	if s != tasktype.StatusPending {
		r.Attempts, r.MaxAttempts, r.StartedAt = 1, 3, t0.Add(time.Second)
	}
	switch s {
	case tasktype.StatusRunning:
		r.ProgressPercent, r.ProgressMessage = 40, "482 of 1,204 activities"
	case tasktype.StatusRetrying:
		r.Error, r.UserMessage, r.NextAttemptAt = "smtp timeout", "The mail server did not answer.", t0.Add(2*time.Minute+31*time.Second)
	case tasktype.StatusCompleted:
		r.ResultData, r.ResultPath, r.ResultName, r.ResultSize, r.CompletedAt = "1,204 activities", id, "report.csv", 2048, t0.Add(time.Minute)
	case tasktype.StatusFailed:
		r.Error, r.UserMessage, r.CompletedAt = "write /tmp/x: no space left on device", "The disk is full.", t0.Add(time.Minute)
	case tasktype.StatusCancelled:
		r.ChangedBy, r.CompletedAt = tasktype.ByUser, t0.Add(time.Minute)
	}
	return r
}

// rowHTML cuts one task's row out of the list page.
func rowHTML(t *testing.T, page, id string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<tr id="task-` + id + `">.*?</tr>`).FindString(page)
	if m == "" {
		t.Fatalf("no row for task %s in:\n%s", id, page)
	}
	return m
}

func cancelForm(id string) string { return `action="/tasks/` + id + `/cancel"` }
func retryForm(id string) string  { return `action="/tasks/` + id + `/retry"` }

func TestTaskListShowsEveryState(t *testing.T) {
	tests := []struct {
		status        tasktype.Status
		want          []string
		cancel, retry bool
	}{
		{tasktype.StatusPending, []string{"waiting for a worker"}, true, false},
		{tasktype.StatusRunning, []string{"attempt 1 of 3", `<progress max="100" value="40">40%</progress>`, "482 of 1,204 activities"}, true, false},
		{tasktype.StatusRetrying, []string{"Next attempt at 5 Mar 2026, 14:02:31 GMT", `class="error">The mail server did not answer.`}, true, false},
		{tasktype.StatusCompleted, []string{`href="/tasks/completed/download"`, "1,204 activities", "2.0 KB"}, false, false},
		{tasktype.StatusFailed, []string{`class="error">The disk is full.`}, false, true},
		{tasktype.StatusCancelled, []string{"cancelled by you"}, false, true},
	}
	var rows []tasktype.Task
	for _, tt := range tests {
		rows = append(rows, row(string(tt.status), 1, tt.status))
	}
	f := newFixture(t, web.Config{Enqueuer: &fakeEnqueuer{}, Tasks: &fakeTasks{rows: rows}})
	_, page := getBody(t, f.client(t, f.alice), f.srv.URL+"/tasks/")
	for _, internal := range []string{"smtp timeout", "no space left on device"} {
		if strings.Contains(page, internal) {
			t.Errorf("list shows the error %q, which is for operators", internal)
		}
	}
	for _, tt := range tests {
		t.Run(string(tt.status), func(t *testing.T) {
			id := string(tt.status)
			tr := rowHTML(t, page, id)
			want := append([]string{`class="badge badge-` + id + `"`, `href="/tasks/` + id + `"`}, tt.want...)
			for _, w := range want {
				if !strings.Contains(tr, w) {
					t.Errorf("row lacks %q:\n%s", w, tr)
				}
			}
			if got := strings.Contains(tr, cancelForm(id)); got != tt.cancel {
				t.Errorf("Cancel button shown = %v, want %v:\n%s", got, tt.cancel, tr)
			}
			if got := strings.Contains(tr, retryForm(id)); got != tt.retry {
				t.Errorf("Retry button shown = %v, want %v:\n%s", got, tt.retry, tr)
			}
		})
	}
}

// A task that failed because it refused its input offers, in the list as
// on its page, the way to fix the input instead of a Retry that would
// fail the same way; a fix that is no page of this app is never linked.
func TestTaskListOffersTheFixOfRefusedInput(t *testing.T) {
	refused := row("refused", 1, tasktype.StatusFailed)
	refused.Fix = &tasktype.Fix{Href: "/activities/import", Label: "Fix the file and upload it again"}
	elsewhere := row("elsewhere", 1, tasktype.StatusFailed)
	elsewhere.Fix = &tasktype.Fix{Href: "//evil.example/", Label: "Go here"}
	f := newFixture(t, web.Config{Enqueuer: &fakeEnqueuer{}, Tasks: &fakeTasks{rows: []tasktype.Task{refused, elsewhere}}})
	_, page := getBody(t, f.client(t, f.alice), f.srv.URL+"/tasks/")
	tr := rowHTML(t, page, "refused")
	if strings.Contains(tr, retryForm("refused")) {
		t.Errorf("a refused import offers Retry:\n%s", tr)
	}
	if !strings.Contains(tr, `href="/activities/import"`) || !strings.Contains(tr, "Fix the file and upload it again") {
		t.Errorf("a refused import does not offer its fix:\n%s", tr)
	}
	tr = rowHTML(t, page, "elsewhere")
	if strings.Contains(tr, "evil.example") || !strings.Contains(tr, retryForm("elsewhere")) {
		t.Errorf("a fix off this app is linked, or Retry withheld:\n%s", tr)
	}
}

func TestTaskListRefreshesWhileAnyTaskIsActive(t *testing.T) {
	tests := []struct {
		states  []tasktype.Status
		refresh bool
	}{
		{[]tasktype.Status{tasktype.StatusCompleted, tasktype.StatusFailed, tasktype.StatusCancelled}, false},
		{[]tasktype.Status{tasktype.StatusCompleted, tasktype.StatusRetrying}, true},
		{[]tasktype.Status{tasktype.StatusPending}, true},
		{[]tasktype.Status{tasktype.StatusRunning, tasktype.StatusFailed}, true},
	}
	for _, tt := range tests {
		t.Run(fmtStates(tt.states), func(t *testing.T) {
			var rows []tasktype.Task
			for _, s := range tt.states {
				rows = append(rows, row(string(s), 1, s))
			}
			f := newFixture(t, web.Config{Enqueuer: &fakeEnqueuer{}, Tasks: &fakeTasks{rows: rows}})
			_, page := getBody(t, f.client(t, f.alice), f.srv.URL+"/tasks/")
			if got := strings.Contains(page, `http-equiv="refresh"`); got != tt.refresh {
				t.Fatalf("refreshing = %v, want %v", got, tt.refresh)
			}
		})
	}
}

func fmtStates(ss []tasktype.Status) string {
	var names []string
	for _, s := range ss {
		names = append(names, string(s))
	}
	return strings.Join(names, "+")
}

// retriedHistory is a task that failed twice, was retried by its owner
// and then succeeded.
func retriedHistory(id string, user int64) []tasktype.Event {
	ev := func(sec int, k tasktype.EventKind, fill func(*tasktype.Event)) tasktype.Event {
		e := tasktype.Event{Kind: k, JobID: id, JobType: reportType, UserID: user, Time: t0.Add(time.Duration(sec) * time.Second)}
		if fill != nil {
			fill(&e)
		}
		return e
	}
	return []tasktype.Event{
		ev(0, tasktype.EventEnqueued, nil),
		ev(1, tasktype.EventStarted, func(e *tasktype.Event) { e.Attempt, e.MaxAttempts, e.Worker = 1, 2, "w1" }),
		ev(2, tasktype.EventRetrying, func(e *tasktype.Event) {
			e.Attempt, e.MaxAttempts, e.Error, e.RetryAt = 1, 2, "smtp timeout.", t0.Add(2*time.Minute+31*time.Second)
			e.Message = "The mail server did not answer."
		}),
		ev(151, tasktype.EventStarted, func(e *tasktype.Event) { e.Attempt, e.MaxAttempts, e.Worker = 2, 2, "w2" }),
		ev(152, tasktype.EventFailed, func(e *tasktype.Event) {
			e.Attempt, e.MaxAttempts, e.Error, e.Message = 2, 2, "smtp timeout", "The mail server did not answer"
		}),
		ev(200, tasktype.EventRetried, func(e *tasktype.Event) { e.Attempt, e.By = 2, tasktype.ByUser }),
		ev(201, tasktype.EventStarted, func(e *tasktype.Event) { e.Attempt, e.MaxAttempts, e.Worker = 3, 4, "w1" }),
		ev(202, tasktype.EventReleased, func(e *tasktype.Event) { e.Attempt, e.Worker = 3, "w1" }),
		ev(203, tasktype.EventStarted, func(e *tasktype.Event) { e.Attempt, e.MaxAttempts, e.Worker = 3, 4, "w2" }),
		ev(203, tasktype.EventProgress, func(e *tasktype.Event) { e.Attempt, e.Percent, e.Message = 3, 50, "602 of 1,204 activities" }),
		ev(204, tasktype.EventSucceeded, func(e *tasktype.Event) { e.Attempt, e.Summary = 3, "1,204 activities" }),
	}
}

// inOrder fails unless page holds each of want, in that order.
func inOrder(t *testing.T, page string, want ...string) {
	t.Helper()
	rest := page
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("page lacks %q after the lines before it:\n%s", w, page)
		}
		rest = rest[i+len(w):]
	}
}

func TestTaskPageShowsStateAndWholeHistory(t *testing.T) {
	done := row("job1", 0, tasktype.StatusCompleted)
	hist := &fakeHistory{}
	rows := &fakeTasks{}
	f := newFixture(t, web.Config{Enqueuer: &fakeEnqueuer{}, Tasks: rows, History: hist})
	done.UserID, done.Attempts, done.MaxAttempts = f.alice.ID, 3, 4
	rows.rows, hist.events = []tasktype.Task{done}, retriedHistory("job1", f.alice.ID)

	code, page := getBody(t, f.client(t, f.alice), f.srv.URL+"/tasks/job1?done=retried")
	if code != http.StatusOK {
		t.Fatalf("GET = %d:\n%s", code, page)
	}
	inOrder(t, page,
		"The retry succeeded.",
		`<h1>Full report (CSV) <span class="badge badge-completed">completed</span>`,
		"<dt>Created</dt><dd>5 Mar 2026, 14:00:00 GMT",
		"<dt>Started</dt><dd>5 Mar 2026, 14:00:01 GMT",
		"<dt>Completed</dt><dd>5 Mar 2026, 14:01:00 GMT",
		"<dt>Attempt</dt><dd>3 of 4",
		`href="/tasks/job1/download"`,
		"5 Mar 2026, 14:00:00 GMT</time> <span>Queued",
		"Attempt 1 of 2 started on w1",
		"Attempt 1 failed: The mail server did not answer. Next attempt at 14:02:31",
		"Attempt 2 of 2 started on w2",
		"Failed for good after attempt 2: The mail server did not answer",
		"Retried by you",
		"Attempt 3 of 4 started on w1",
		"Attempt 3 handed back by w1 as it shut down",
		"Attempt 3 of 4 started on w2",
		"5 Mar 2026, 14:03:24 GMT</time> <span>Attempt 3 succeeded: 1,204 activities",
	)
	if strings.Contains(page, "smtp timeout") {
		t.Error("the history shows an error, which is for operators")
	}
	if strings.Contains(page, "602 of 1,204") {
		t.Error("a progress report shows in the history; only the running task's latest should show")
	}
	if strings.Contains(page, `http-equiv="refresh"`) || strings.Contains(page, cancelForm("job1")) || strings.Contains(page, retryForm("job1")) {
		t.Errorf("a completed task's page refreshes or offers cancel or retry:\n%s", page)
	}
	if !strings.Contains(page, `href="/tasks/"`) {
		t.Error("no link back to the list")
	}
}

func TestTaskPageShowsTimesInUsersZone(t *testing.T) {
	rows := &fakeTasks{}
	hist := &fakeHistory{}
	f := newFixture(t, web.Config{Enqueuer: &fakeEnqueuer{}, Tasks: rows, History: hist})
	r := row("job1", f.alice.ID, tasktype.StatusRetrying)
	rows.rows, hist.events = []tasktype.Task{r}, retriedHistory("job1", f.alice.ID)[:3]
	if _, err := f.db.NewUpdate().Table("app_user").Set("timezone = ?", "America/New_York").Where("id = ?", f.alice.ID).Exec(testsupport.Context(t)); err != nil {
		t.Fatal(err)
	}
	_, page := getBody(t, f.client(t, f.alice), f.srv.URL+"/tasks/job1")
	inOrder(t, page,
		`<span class="badge badge-retrying">retrying</span>`,
		"<dt>Created</dt><dd>5 Mar 2026, 09:00:00 EST",
		"<dt>Next attempt</dt><dd>5 Mar 2026, 09:02:31 EST",
		`<dt>What happened</dt><dd class="error">The mail server did not answer.`,
		cancelForm("job1"),
		"Attempt 1 failed: The mail server did not answer. Next attempt at 09:02:31",
	)
	if !strings.Contains(page, `http-equiv="refresh"`) || strings.Contains(page, retryForm("job1")) {
		t.Errorf("a retrying task's page does not refresh, or offers retry:\n%s", page)
	}
}

func TestTaskPageNotFound(t *testing.T) {
	rows := &fakeTasks{}
	hist := &fakeHistory{}
	f := newFixture(t, web.Config{Enqueuer: &fakeEnqueuer{}, Tasks: rows, History: hist})
	rows.rows = []tasktype.Task{row("alices", f.alice.ID, tasktype.StatusRunning)}
	hist.events = retriedHistory("alices", f.alice.ID)
	tests := []struct{ name, path string }{
		{"unknown id", "/tasks/nosuchjob"},
		{"another user's task", "/tasks/alices"},
		{"wildcard id", "/tasks/" + url.PathEscape("*")},
		{"dotted id", "/tasks/a.b"},
		{"id too long", "/tasks/" + strings.Repeat("a", 65)},
		{"non-ascii id", "/tasks/" + url.PathEscape("é")},
		{"form route as id", "/tasks/generate-report"},
	}
	bob := f.client(t, f.bob)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, page := getBody(t, bob, f.srv.URL+tt.path)
			if code != http.StatusNotFound || !strings.Contains(page, "not yours to see") {
				t.Fatalf("GET %s = %d:\n%s", tt.path, code, page)
			}
		})
	}
}

// The projection may lag behind the log; the page then stands on the
// log, and the page only fails when neither can say the task exists.
func TestTaskPageWithOnePartMissing(t *testing.T) {
	unavailable := errors.Join(tasktype.ErrUnavailable, errors.New("nats: timeout"))
	tests := []struct {
		name    string
		row     bool
		histErr error
		status  int
		want    []string
		refresh bool
	}{
		{"projection lags", false, nil, 200, []string{"queued a moment ago", "badge-completed", "Attempt 3 succeeded"}, true},
		{"history unreachable", true, unavailable, 200, []string{"badge-running", "<dt>Progress</dt>", `value="40"`, "482 of 1,204 activities", "history of this task cannot be read right now"}, true},
		{"history purged", true, tasktype.ErrNotFound, 200, []string{"badge-running", "no longer kept"}, true},
		{"neither, log unreachable", false, unavailable, 503, []string{"cannot be shown until the background task queue can be reached"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows := &fakeTasks{}
			hist := &fakeHistory{err: tt.histErr}
			f := newFixture(t, web.Config{Enqueuer: &fakeEnqueuer{}, Tasks: rows, History: hist})
			hist.events = retriedHistory("job1", f.alice.ID)
			if tt.row {
				rows.rows = []tasktype.Task{row("job1", f.alice.ID, tasktype.StatusRunning)}
			}
			code, page := getBody(t, f.client(t, f.alice), f.srv.URL+"/tasks/job1")
			if code != tt.status {
				t.Fatalf("GET = %d, want %d:\n%s", code, tt.status, page)
			}
			for _, w := range tt.want {
				if !strings.Contains(page, w) {
					t.Errorf("page lacks %q:\n%s", w, page)
				}
			}
			if got := strings.Contains(page, `http-equiv="refresh"`); got != tt.refresh {
				t.Errorf("refreshing = %v, want %v", got, tt.refresh)
			}
			if strings.Contains(page, "nats: timeout") {
				t.Error("internal error text shown to the user")
			}
		})
	}
}

func TestCancelAndRetryAnswers(t *testing.T) {
	tests := []struct {
		name     string
		op, id   string
		err      error
		hang     bool
		header   []string
		status   int
		location string // for 303s
		want     string // in the body otherwise
		called   bool
	}{
		{"cancel", "cancel", "job1", nil, false, nil, 303, "/tasks/job1?done=cancelled", "", true},
		{"retry", "retry", "job1", nil, false, nil, 303, "/tasks/job1?done=retried", "", true},
		{"not found", "cancel", "job1", fmt.Errorf("cancel task job1: last event: %w", tasktype.ErrNotFound), false, nil, 404, "", "not yours to see", true},
		// As tasks.Control words them: the explanation is shown, what
		// wraps it is not.
		{"wrong state", "cancel", "job1", fmt.Errorf("cancel task job1: %w", &tasktype.StateError{Status: tasktype.StatusCompleted, Allowed: []tasktype.Status{tasktype.StatusPending, tasktype.StatusRetrying, tasktype.StatusRunning}, Action: "cancelled"}), false, nil, 409, "",
			"The task is completed; only pending, retrying or running tasks can be cancelled.", true},
		{"wrong state on retry", "retry", "job1", fmt.Errorf("retry task job1: %w", &tasktype.StateError{Status: tasktype.StatusRunning, Allowed: []tasktype.Status{tasktype.StatusFailed, tasktype.StatusCancelled}, Action: "retried"}), false, nil, 409, "",
			"The task is running; only failed or cancelled tasks can be retried.", true},
		{"wrong state, no explanation", "retry", "job1", tasktype.ErrWrongState, false, nil, 409, "", "not in a state in which it can be retried", true},
		{"conflict", "cancel", "job1", fmt.Errorf("cancel task job1: %w", tasktype.ErrConflict), false, nil, 409, "", "kept changing", true},
		{"broker down", "cancel", "job1", fmt.Errorf("cancel task job1: %w: nats: no responders", tasktype.ErrUnavailable), false, nil, 503, "", "so the task was not cancelled", true},
		{"broker hangs", "retry", "job1", nil, true, nil, 503, "", "so the task was not retried", true},
		{"other error", "cancel", "job1", errors.New("decode event 7: invalid character"), false, nil, 500, "", "quote reference", true},
		{"malformed id", "cancel", "a.b", nil, false, nil, 404, "", "not yours to see", false},
		{"cross-site", "cancel", "job1", nil, false, []string{"Sec-Fetch-Site", "cross-site"}, 403, "", "", false},
		{"foreign origin", "retry", "job1", nil, false, []string{"Origin", "https://evil.example"}, 403, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctl := &fakeControl{err: tt.err, hang: tt.hang}
			f := newFixture(t, web.Config{Enqueuer: &fakeEnqueuer{}, Control: ctl, EnqueueTimeout: 50 * time.Millisecond})
			resp, body := testsupport.PostForm(t, f.client(t, f.alice), f.srv.URL+"/tasks/"+tt.id+"/"+tt.op, nil, tt.header...)
			if resp.StatusCode != tt.status {
				t.Fatalf("POST = %d, want %d:\n%s", resp.StatusCode, tt.status, body)
			}
			if got := resp.Header.Get("Location"); got != tt.location {
				t.Errorf("Location %q, want %q", got, tt.location)
			}
			if !strings.Contains(body, tt.want) {
				t.Errorf("body lacks %q:\n%s", tt.want, body)
			}
			for _, leak := range []string{"nats:", "decode event", "job1:"} {
				if strings.Contains(body, leak) {
					t.Errorf("internal error text %q shown to the user", leak)
				}
			}
			want := []controlCall{{tt.op, f.alice.ID, tt.id, tasktype.ByUser}}
			if !tt.called {
				want = nil
			}
			if got := ctl.Calls(); !slices.Equal(got, want) {
				t.Errorf("control calls %+v, want %+v", got, want)
			}
		})
	}
}

// GET on the action routes changes nothing: they take POST only.
func TestCancelIsPostOnly(t *testing.T) {
	ctl := &fakeControl{}
	f := newFixture(t, web.Config{Enqueuer: &fakeEnqueuer{}, Control: ctl})
	for _, op := range []string{"cancel", "retry"} {
		code, _ := getBody(t, f.client(t, f.alice), f.srv.URL+"/tasks/job1/"+op)
		if code != http.StatusMethodNotAllowed {
			t.Errorf("GET %s = %d, want 405", op, code)
		}
	}
	if calls := ctl.Calls(); len(calls) != 0 {
		t.Fatalf("GET changed tasks: %+v", calls)
	}
}

// The history shows the job's life as the state machine took it: a
// failed event appended after the job succeeded changed nothing (the
// projection skipped it), so the page does not show it either, whether
// it stands on the projection's row or, while that lags, on the log.
func TestTaskPageHistoryHasOnlyAcceptedEvents(t *testing.T) {
	for _, lagging := range []bool{false, true} {
		t.Run(fmt.Sprintf("projection lagging=%v", lagging), func(t *testing.T) {
			rows := &fakeTasks{}
			hist := &fakeHistory{}
			f := newFixture(t, web.Config{Enqueuer: &fakeEnqueuer{}, Tasks: rows, History: hist})
			events := retriedHistory("job1", f.alice.ID)
			late := events[len(events)-1]
			late.Kind, late.Summary, late.Error, late.Message, late.Time = tasktype.EventFailed, "", "forged: disk full", "Forged failure.", late.Time.Add(time.Second)
			late2 := late
			late2.Kind, late2.Error, late2.Time = tasktype.EventStarted, "", late.Time.Add(time.Second) // a finished job never starts again
			hist.events = append(events, late, late2)
			if !lagging {
				done := row("job1", f.alice.ID, tasktype.StatusCompleted)
				done.Attempts, done.MaxAttempts = 3, 4
				rows.rows = []tasktype.Task{done}
			}
			code, page := getBody(t, f.client(t, f.alice), f.srv.URL+"/tasks/job1")
			if code != http.StatusOK {
				t.Fatalf("GET = %d:\n%s", code, page)
			}
			inOrder(t, page,
				`<span class="badge badge-completed">completed</span>`,
				"Failed for good after attempt 2: The mail server did not answer", // the real failure, before the retry
				"Retried by you",
				"Attempt 3 succeeded: 1,204 activities",
			)
			if strings.Contains(page, "Forged failure") || strings.Count(page, "<li class=") != len(events)-1 { // less the progress event
				t.Errorf("the history shows events the state machine refused:\n%s", page)
			}
		})
	}
}
