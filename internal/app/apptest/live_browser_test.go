package apptest

import (
	"context"
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/uptrace/bun/dialect"

	"github.com/otjhelper/otj/modules/reports"
	"github.com/otjhelper/otj/platform/testsupport"
)

// insertManyActivities gives the user n activities in one statement: a
// log long enough that its report runs for a few seconds.
func insertManyActivities(t *testing.T, dataDir string, userID int64, n int) {
	t.Helper()
	db := dataDB(t, dataDir)
	date := "'2026-05-01'"
	if db.Dialect().Name() == dialect.PG {
		date = "'2026-05-01'::date"
	}
	_, err := db.ExecContext(testsupport.Context(t), `INSERT INTO activity (user_id, title, description, activity_date, duration_hours, activity_type, evidence_quality, notes)
		WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?)
		SELECT ?, 'Shadowed the data team, visit ' || i, 'Lunch at the café, £5', `+date+`, 1.5, 'shadowing', 'good', '' FROM seq`, n, userID)
	if err != nil {
		t.Fatal(err)
	}
}

// TestBrowserLiveTaskList presses Generate Full Report and watches the
// list without reloading: the stream opens, the meta refresh goes, the
// row shows the report running with its percentage, then the green
// badge and the download, all in the same page (a marker set on window
// survives, past the 5 s the meta refresh would have reloaded it at).
// Then the pages at 1280 and 390 px, saved as screenshots: at 390 nothing
// scrolls sideways.
func TestBrowserLiveTaskList(t *testing.T) {
	ctx := testsupport.Browser(t)
	env := baseEnv(t)
	env["DEV_AUTO_LOGIN_EMAIL"] = "apprentice@example.org"
	app := startApp(t, env, "all")
	base := app.waitOutput(t, runningRE)
	u := ensureUser(t, env["OTJ_DATA_DIR"], "apprentice@example.org")
	const acts = 300_000
	insertManyActivities(t, env["OTJ_DATA_DIR"], u.ID, acts)

	err := chromedp.Do(ctx,
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(base+"/tasks/"),
		chromedp.Click(chromedp.CSS(`form[action="/tasks/generate-report"] button`)),
		// The new page (after the POST's redirect: only it has the
		// notice) opens its stream.
		chromedp.WaitVisible(chromedp.CSS(`p.notice`)),
		chromedp.WaitVisible(chromedp.CSS(`body[data-live="open"]`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	opened := time.Now()
	// From here the page must change by itself: record what its rows
	// show as they change, and mark the window.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`
		window.liveMarker = "same page";
		window.seen = [(document.querySelector("#task-list tbody tr:first-child .badge") || {}).textContent];
		new MutationObserver(function () {
			document.querySelectorAll("#task-list tbody tr:first-child .badge, #task-list tbody tr:first-child .percent").forEach(function (el) {
				window.seen.push(el.textContent.trim());
			});
		}).observe(document.querySelector("main"), {subtree: true, childList: true, characterData: true});
		true`)); err != nil {
		t.Fatal(err)
	}
	if gone, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('meta[http-equiv="refresh"]') === null`)); err != nil || !gone {
		t.Errorf("the meta refresh is still there with the stream open (%v)", err)
	}
	step, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(step, chromedp.WaitVisible(chromedp.CSS(`#task-list tbody tr:first-child a.download`))); err != nil {
		html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("main")))
		t.Fatalf("download link never appeared: %v\n%s", err, html)
	}
	t.Logf("report of %d activities done %s after the stream opened", acts, time.Since(opened).Round(time.Millisecond))
	// Past the meta refresh's 5 s: a reload would have lost the marker.
	if wait := 6*time.Second - time.Since(opened); wait > 0 {
		time.Sleep(wait)
	}
	marker, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.liveMarker || "reloaded"`))
	if err != nil || marker != "same page" {
		t.Fatalf("the page was reloaded (marker %q, %v)", marker, err)
	}
	seen, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.seen`))
	if err != nil {
		t.Fatal(err)
	}
	// The page opened on the task active; the row then changed in place
	// to completed. How many steps between it caught depends on the
	// machine's speed (a busy one coalesces them): logged, not required.
	if len(seen) < 2 || seen[0] == "completed" || seen[len(seen)-1] != "completed" {
		t.Errorf("the row did not go from active to completed in place; it showed %q", seen)
	}
	t.Logf("the row showed, in turn: %q", seen)
	color, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector('#task-list tbody tr:first-child .badge')).backgroundColor`))
	if err != nil || color != "rgb(21, 128, 61)" { // #15803d: white text on it has 4.5:1
		t.Errorf("completed badge colour %q (%v), want green", color, err)
	}
	body, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`fetch(document.querySelector('#task-list a.download').href).then(r => r.text())`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	// fetch's text() drops the byte-order mark, as a browser decoding
	// UTF-8 does.
	records, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(body, reports.BOM))).ReadAll()
	if err != nil || len(records) != 1+acts || records[1][8] != "Lunch at the café, £5" {
		t.Fatalf("downloaded CSV (%v): %d records", err, len(records))
	}

	if sw := testsupport.ScreenshotAt(t, ctx, "tasks", 1280); sw > 1280 {
		t.Errorf("/tasks/ at 1280 px is %d px wide", sw)
	}
	if sw := testsupport.ScreenshotAt(t, ctx, "tasks", 390); sw > 390 {
		t.Errorf("/tasks/ at 390 px is %d px wide: it scrolls sideways", sw)
	}
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#task-list tbody tr:first-child td a`)),
		chromedp.WaitVisible(chromedp.CSS(`#task-live .badge-completed`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	if sw := testsupport.ScreenshotAt(t, ctx, "task", 390); sw > 390 {
		t.Errorf("the task page at 390 px is %d px wide: it scrolls sideways", sw)
	}
	if sw := testsupport.ScreenshotAt(t, ctx, "task", 1280); sw > 1280 {
		t.Errorf("the task page at 1280 px is %d px wide", sw)
	}
	app.shutdown(t)
}
