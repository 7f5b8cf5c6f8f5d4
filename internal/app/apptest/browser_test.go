package apptest

import (
	"context"
	"encoding/csv"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/otjhelper/otj/modules/reports"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// TestBrowserReportFlow is the newcomer's flow in a real browser against
// app all with DEV_AUTO_LOGIN_EMAIL: press Generate Full Report, watch the
// page refresh itself until the task is completed, download the CSV.
func TestBrowserReportFlow(t *testing.T) {
	ctx := testsupport.Browser(t)
	env := baseEnv(t)
	env["DEV_AUTO_LOGIN_EMAIL"] = "apprentice@example.org"
	app := startApp(t, env, "all")
	base := app.waitOutput(t, runningRE)
	u := ensureUser(t, env["OTJ_DATA_DIR"], "apprentice@example.org")
	insertActivities(t, env["OTJ_DATA_DIR"], u.ID, []activityFixture{
		{date: "2026-05-01", title: "Shadowed the data team, café visit", typ: "shadowing", quality: "good", hours: 4, tags: []string{"data"}},
		{date: "2026-05-02", title: "=cmd|' /C calc'!A0", typ: "other", quality: "draft", hours: 1},
	})

	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/tasks/"),
		chromedp.WaitVisible(chromedp.CSS(`button[type=submit]`)),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`p.notice`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	notice, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`p.notice`)))
	if err != nil || !strings.Contains(notice, "being generated") && !strings.Contains(notice, "ready") {
		t.Fatalf("notice %q, %v", notice, err)
	}
	// No clicks from here: the page's own refresh must bring the result.
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`a.download`))); err != nil {
		t.Fatalf("download link never appeared: %v", err)
	}
	badge, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`.badge`)))
	if err != nil || !strings.EqualFold(strings.TrimSpace(badge), "completed") {
		t.Fatalf("badge %q, %v", badge, err)
	}
	color, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector('.badge')).backgroundColor`))
	if err != nil || color != "rgb(21, 128, 61)" { // #15803d: white text on it has 4.5:1
		t.Errorf("completed badge colour %q (%v), want green", color, err)
	}
	testsupport.Screenshot(t, ctx, "tasks")
	body, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`fetch(document.querySelector('a.download').href).then(r => r.text())`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	// fetch's text() drops a byte-order mark, as UTF-8 decoding does;
	// TestFullReportEndToEnd checks the file's own bytes.
	records, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(body, reports.BOM))).ReadAll()
	if err != nil || len(records) != 3 {
		t.Fatalf("downloaded CSV (%v): %q", err, body)
	}
	if records[1][1] != "'=cmd|' /C calc'!A0" || records[2][1] != "Shadowed the data team, café visit" {
		t.Errorf("rows %q", records[1:])
	}
	app.shutdown(t)
}

// TestBrowserCancelAndRetry drives cancel and retry by hand in a real
// browser, against app web and app worker: cancel a running task from the
// list, then retry a failed one from its page and watch the page refresh
// itself to completed, with the whole history on it.
func TestBrowserCancelAndRetry(t *testing.T) {
	ctx := testsupport.Browser(t)
	n := startNATSNode(t)
	b := openBroker(t, n, 5*time.Second)
	env := baseEnv(t)
	maps.Copy(env, n.join().env())
	env["DEV_AUTO_LOGIN_EMAIL"] = "apprentice@example.org"
	web := startApp(t, env, "web")
	base := web.waitOutput(t, runningRE)
	startApp(t, env, "worker")
	u := ensureUser(t, env["OTJ_DATA_DIR"], "apprentice@example.org")

	long := enqueueSleep(t, b, u.ID, 120_000)
	failing, err := b.Enqueue(testsupport.Context(t), tasktype.EnqueueRequest{Type: testFail, UserID: u.ID, Payload: []byte(`{"times":3}`)})
	if err != nil {
		t.Fatal(err)
	}
	row := func(id string) string { return "#task-" + id }
	// The list refreshes itself only while it shows an active task: open
	// it once the projection has the long task running.
	store := readTasks(t, dataDB(t, env["OTJ_DATA_DIR"]))
	testsupport.Eventually(t, 30*time.Second, "long task never running in the projection", func() bool {
		r, err := store.GetForUser(testsupport.Context(t), u.ID, long.ID)
		return err == nil && r.Status == tasktype.StatusRunning
	})

	// Cancel the running task from the list.
	step, cancelStep := context.WithTimeout(ctx, 30*time.Second)
	defer cancelStep()
	err = chromedp.Do(step,
		chromedp.Navigate(base+"/tasks/"),
		chromedp.WaitVisible(chromedp.CSS(row(long.ID)+` .badge-running`)),
		chromedp.Click(chromedp.CSS(row(long.ID)+` form[action$="/cancel"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`h1 .badge-cancelled`)),
	)
	if err != nil {
		html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
		t.Fatalf("cancel from the list: %v; the page:\n%s", err, html)
	}
	notice, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`p.notice`)))
	if err != nil || !strings.Contains(notice, "Cancelled") {
		t.Fatalf("notice after cancel %q, %v", notice, err)
	}
	if last := waitJobDone(t, b, u.ID, long.ID, 10*time.Second); last.Kind != tasktype.EventCancelled {
		t.Fatalf("the cancelled task ended %s", last.Kind)
	}

	// The failing task ends failed after its three attempts; retry it
	// from its page, then no more clicks: the page's own refresh must
	// bring the outcome.
	err = chromedp.Do(ctx,
		chromedp.Navigate(base+"/tasks/"+failing.ID),
		chromedp.WaitVisible(chromedp.CSS(`h1 .badge-failed`)),
		chromedp.Click(chromedp.CSS(`form[action$="/retry"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`h1 .badge-completed`)),
	)
	if err != nil {
		t.Fatalf("retry from the task page: %v", err)
	}
	history, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`ol.timeline`)))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Queued", "This is planned failure 1 of 3", "This is planned failure 3 of 3", "Retried by you", "Attempt 4 of 6", "succeeded"} {
		if !strings.Contains(history, want) {
			t.Errorf("timeline lacks %q:\n%s", want, history)
		}
	}
	testsupport.Screenshot(t, ctx, "task")
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/tasks/"), chromedp.WaitVisible(chromedp.CSS(`table.tasks`))); err != nil {
		t.Fatal(err)
	}
	testsupport.Screenshot(t, ctx, "tasks-states")
}

// TestBrowserExpiredResultGeneratedAgain: with RESULT_KEEP=1, a second
// report makes the first one's row show Expired with a Generate again
// button instead of a download link; pressing it makes a new report,
// which the page's own refresh brings to a download.
func TestBrowserExpiredResultGeneratedAgain(t *testing.T) {
	ctx := testsupport.Browser(t)
	env := baseEnv(t)
	env["DEV_AUTO_LOGIN_EMAIL"] = "apprentice@example.org"
	env["RESULT_KEEP"] = "1"
	app := startApp(t, env, "all")
	base := app.waitOutput(t, runningRE)
	u := ensureUser(t, env["OTJ_DATA_DIR"], "apprentice@example.org")
	insertActivities(t, env["OTJ_DATA_DIR"], u.ID, []activityFixture{
		{date: "2026-05-01", title: "Shadowed the data team", typ: "shadowing", quality: "good", hours: 4},
	})
	generate := chromedp.CSS(`form[action="/tasks/generate-report"] button`)
	newest := `table.tasks tbody tr:first-child`
	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/tasks/"),
		chromedp.Click(generate),
		chromedp.WaitVisible(chromedp.CSS(newest+` a.download`)),
		chromedp.Click(generate),
		// The list refreshes until the second is done; the first is then
		// the second row, expired.
		chromedp.WaitVisible(chromedp.CSS(`table.tasks tbody tr:nth-child(2) form[action$="/regenerate"] button`)),
	)
	if err != nil {
		html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
		t.Fatalf("two reports: %v; the page:\n%s", err, html)
	}
	old, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS(`table.tasks tbody tr:nth-child(2)`)))
	if err != nil || !strings.Contains(old, "Expired") || strings.Contains(old, "/download") {
		t.Fatalf("the older report's row (%v):\n%s", err, old)
	}
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`table.tasks tbody tr:nth-child(2) form[action$="/regenerate"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`p.notice`)),
		chromedp.WaitVisible(chromedp.CSS(`table.tasks tbody tr:nth-child(3) form[action$="/regenerate"] button`)),
		chromedp.WaitVisible(chromedp.CSS(newest+` a.download`)),
	)
	if err != nil {
		html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
		t.Fatalf("generate again: %v; the page:\n%s", err, html)
	}
	body, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`fetch(document.querySelector('`+newest+` a.download').href).then(r => r.text())`, chromedp.EvalAwaitPromise))
	if err != nil || !strings.Contains(body, "Shadowed the data team") {
		t.Fatalf("the new report (%v): %q", err, body)
	}
	app.shutdown(t)
}

// TestBrowserAnalyticsOnPhone presses Run analytics in a real browser at
// a phone's 390 px, waits for the task list to offer the charts, opens
// them, and checks that every chart and table fits the screen.
func TestBrowserAnalyticsOnPhone(t *testing.T) {
	ctx := testsupport.Browser(t)
	env := baseEnv(t)
	env["DEV_AUTO_LOGIN_EMAIL"] = "apprentice@example.org"
	app := startApp(t, env, "all")
	base := app.waitOutput(t, runningRE)
	u := ensureUser(t, env["OTJ_DATA_DIR"], "apprentice@example.org")
	if _, err := dataDB(t, env["OTJ_DATA_DIR"]).ExecContext(testsupport.Context(t), `UPDATE app_user SET selected_spec = 'ST0787' WHERE id = ?`, u.ID); err != nil {
		t.Fatal(err)
	}
	insertActivities(t, env["OTJ_DATA_DIR"], u.ID, []activityFixture{
		{date: "2026-05-01", title: "Systems mapping workshop", typ: "workshop", quality: "good", hours: 4, ksbs: []string{"K1", "S2"}},
		{date: "2026-05-08", title: "Reading", typ: "self_study", quality: "draft", hours: 1.5, ksbs: []string{"K2"}},
	})
	err := chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(base+"/tasks/"),
		chromedp.Click(chromedp.CSS(`form[action="/tasks/run-analytics"] button`)),
		// No clicks from here until the page's own refresh brings the link.
		chromedp.WaitVisible(chromedp.CSS(`a[href$="/analytics"]`)),
		chromedp.Click(chromedp.CSS(`a[href$="/analytics"]`)),
		chromedp.WaitVisible(chromedp.CSS(`svg.chart`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	charts, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('svg.chart').length`))
	if err != nil || charts != 4 {
		t.Errorf("%d charts (%v), want 4: weeks, types, seminars, KSBs", charts, err)
	}
	// Each chart and table ends inside the 390 px viewport.
	over, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('.analytics svg.chart, .analytics table')]
		.filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5 || e.getBoundingClientRect().width < 200)
		.map(e => e.outerHTML.slice(0, 60) + ' ' + e.getBoundingClientRect().right)`))
	if err != nil || len(over) != 0 {
		t.Errorf("at 390 px these overflow or shrink to nothing (%v): %q", err, over)
	}
	testsupport.Screenshot(t, ctx, "analytics-390")
	app.shutdown(t)
}
