package web_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/web"
	"github.com/otjhelper/otj/platform/testsupport"
)

// TestBrowserFindingThings pages and filters the task list, and searches
// and pages the activity log, in a real Chromium, by clicking the pages'
// own links and submitting their own forms; then opens both, filtered,
// at 390 px wide, where neither may scroll sideways. Screenshots at 1280
// and 390 px go to the test's artefact dir (go test -artifacts keeps
// them).
func TestBrowserFindingThings(t *testing.T) {
	ctx := testsupport.Browser(t)
	f := newFixture(t, web.Config{Enqueuer: &fakeEnqueuer{}, Kinds: twoKinds, DevAutoLoginEmail: "alice@example.org"})
	all := seedTasks(t, f.db, f.alice.ID, "a", 120, time.Date(2026, 3, 5, 23, 0, 0, 0, time.UTC))
	seedTasks(t, f.db, f.bob.ID, "b", 30, time.Date(2026, 3, 5, 23, 0, 0, 0, time.UTC))
	if _, err := activity.Fill(testsupport.Context(t), f.db, activity.DemoOptions{Email: "alice@example.org", Activities: 120, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.users.CreateActivity(testsupport.Context(t), f.alice.ID, activity.Input{
		Title: "Reading group", Date: time.Date(2025, 11, 3, 0, 0, 0, 0, time.UTC), Hours: 1.5, Type: "self_study",
		Notes: "Chapter on the zebra-striping of B-tree pages",
	}); err != nil {
		t.Fatal(err)
	}
	dir := t.ArtifactDir()
	t.Logf("screenshots in %s", dir)
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	count := func(sel string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+"`"+sel+"`"+`).length`))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	firstRow := func() string {
		t.Helper()
		id, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("table.tasks tbody tr").id`))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimPrefix(id, "task-")
	}
	// waitFor waits until the page the browser went to has the query
	// text in its address and has loaded. Asked again and again: a
	// question asked while the old page goes finds no page to answer.
	waitFor := func(query string) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`location.search.includes(%q) && document.readyState === "complete"`, query)))
			if err == nil && ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the browser did not reach a page with %q (%v)", query, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	click := func(sel, query string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
			t.Fatal(err)
		}
		waitFor(query)
	}

	// The task list: the newest 50, then the next 50 through Older.
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(f.srv.URL+"/tasks/"),
		chromedp.WaitVisible(chromedp.CSS(`table.tasks`)),
	); err != nil {
		t.Fatal(err)
	}
	if n, first := count(`table.tasks tbody tr`), firstRow(); n != 50 || first != all[0].ID {
		t.Fatalf("first page: %d rows from %s, want 50 from %s", n, first, all[0].ID)
	}
	shot("tasks-1280")
	click(`a[rel=next]`, "before=")
	if n, first := count(`table.tasks tbody tr`), firstRow(); n != 50 || first != all[50].ID {
		t.Fatalf("second page: %d rows from %s, want 50 from %s", n, first, all[50].ID)
	}
	click(`a[rel=prev]`, "after=")
	if first := firstRow(); first != all[0].ID {
		t.Fatalf("back to the newest: from %s, want %s", first, all[0].ID)
	}
	// Failed digests only: the form's own selects.
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS(`.task-filters select[name=type]`), digestType),
		chromedp.SetValue(chromedp.CSS(`.task-filters select[name=state]`), "failed"),
	); err != nil {
		t.Fatal(err)
	}
	click(`.task-filters button[type=submit]`, "state=failed")
	want := len(idsOfRows(all, func(r listedTask) bool { return r.TaskType == digestType && r.Status == "failed" }))
	if n, failed := count(`table.tasks tbody tr`), count(`table.tasks .badge-failed`); n != want || failed != want || want == 0 {
		t.Fatalf("failed digests: %d rows, %d failed, want %d", n, failed, want)
	}
	shot("tasks-filtered-1280")

	// The activity log: 121 activities, 3 pages; a search finds the one.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(f.srv.URL+"/activities"),
		chromedp.WaitVisible(chromedp.CSS(`table.activities`)),
	); err != nil {
		t.Fatal(err)
	}
	pager, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`nav.pager`)))
	if err != nil || !strings.Contains(pager, "Page 1 of 3") {
		t.Fatalf("pager %q (%v), want page 1 of 3", pager, err)
	}
	click(`nav.pager a[rel=next]`, "page=2")
	if pager, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`nav.pager`))); err != nil || !strings.Contains(pager, "Page 2 of 3") {
		t.Fatalf("pager %q (%v), want page 2 of 3", pager, err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`.log-filters input[name=q]`), "ZEBRA"),
	); err != nil {
		t.Fatal(err)
	}
	click(`.log-filters button[type=submit]`, "q=ZEBRA")
	main, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`main`)))
	if err != nil {
		t.Fatal(err)
	}
	if n := count(`table.activities tbody tr`); n != 1 || !strings.Contains(main, "Reading group") || !strings.Contains(main, "1 matching activity") || !strings.Contains(main, "Page 1 of 1") {
		t.Fatalf("search for zebra: %d rows:\n%s", n, main)
	}
	shot("activities-search-1280")

	// A phone: the filters wrap, nothing is wider than the screen.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct{ name, url, ready string }{
		{"tasks-filtered-390", f.srv.URL + "/tasks/?type=" + digestType + "&state=completed&from=2026-03-05", `table.tasks`},
		{"activities-search-390", f.srv.URL + "/activities?q=a&from=2025-01-01&to=2026-12-31", `table.activities`},
	} {
		if err := chromedp.Do(ctx, chromedp.Navigate(p.url), chromedp.WaitVisible(chromedp.CSS(p.ready))); err != nil {
			t.Fatal(err)
		}
		w, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
		if err != nil {
			t.Fatal(err)
		}
		shot(p.name)
		if w > 390 {
			t.Errorf("%s is %d px wide at 390 px: it scrolls sideways", p.url, w)
		}
	}
}
