package apptest

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/otjhelper/otj/platform/testsupport"
)

// TestBrowserEveryPageFitsAPhone opens every page of the app in
// Chromium at 1280 and at 390 px wide, light and dark, saves each as a
// screenshot (testsupport.ScreenshotAt) and fails when one needs sideways
// scrolling, breaks a word in a table or lacks a working skip link, or
// when axe-core finds a serious or critical violation, light at 1280 px
// and dark at 390 px (issue 24 §7).
func TestBrowserEveryPageFitsAPhone(t *testing.T) {
	ctx := testsupport.Browser(t)
	env := baseEnv(t)
	env["DEV_AUTO_LOGIN_EMAIL"] = "apprentice@example.org"
	app := startApp(t, env, "all")
	base := app.waitOutput(t, runningRE)
	dir := env["OTJ_DATA_DIR"]
	u := ensureUser(t, dir, "apprentice@example.org")
	db := dataDB(t, dir)
	if _, err := db.ExecContext(testsupport.Context(t), `UPDATE app_user SET selected_spec = 'ST0787', otj_target_hours = 300 WHERE id = ?`, u.ID); err != nil {
		t.Fatal(err)
	}
	today := time.Now().In(mustLondon(t)).Format(time.DateOnly)
	insertActivities(t, dir, u.ID, []activityFixture{{
		date: today, title: "A rather long activity title about systems thinking in practice, with café notes", typ: "workshop", quality: "good", hours: 3,
		tags: []string{"systems", "mapping"}, ksbs: []string{"K1", "S2"}, links: []string{"https://example.org/a/very/long/path/that/could/push/the/page/wider/than/a/phone/screen?with=query&and=more"},
	}})
	var actID int64
	if err := db.QueryRowContext(testsupport.Context(t), `SELECT id FROM activity WHERE user_id = ?`, u.ID).Scan(&actID); err != nil {
		t.Fatal(err)
	}
	c := testsupport.Client(t, base, testsupport.Signer(t), u.ID)
	jobs := map[string]string{}
	for _, start := range []string{"generate-report", "send-digest", "run-analytics"} {
		_, page := testsupport.Get(t, c, base+"/tasks/")
		resp, _ := testsupport.PostForm(t, c, base+"/tasks/"+start, url.Values{"key": {keyRE.FindStringSubmatch(page)[1]}})
		loc, _ := url.Parse(resp.Header.Get("Location"))
		jobs[start] = loc.Query().Get("queued")
	}
	for start, view := range map[string]string{"send-digest": "digest", "run-analytics": "analytics"} {
		testsupport.Eventually(t, 30*time.Second, start+" never completed", func() bool {
			r, _ := testsupport.Get(t, c, base+"/tasks/"+jobs[start]+"/"+view)
			return r.StatusCode == http.StatusOK
		})
	}

	pages := []struct{ name, path string }{
		{"tasks", "/tasks/"},
		{"digests", "/tasks/?type=weekly_digest"},
		{"task", "/tasks/" + jobs["generate-report"]},
		{"digest", "/tasks/" + jobs["send-digest"] + "/digest"},
		{"analytics", "/tasks/" + jobs["run-analytics"] + "/analytics"},
		{"activities", "/activities"},
		{"activity", fmt.Sprintf("/activities/%d", actID)},
		{"activity-edit", fmt.Sprintf("/activities/%d/edit", actID)},
		{"activity-new", "/activities/new"},
		{"import", "/activities/import"},
		{"settings", "/settings"},
		{"account", "/account"},
		{"not-found", "/tasks/no-such-task"},
	}
	for _, p := range pages {
		if err := chromedp.Do(ctx, testsupport.ColorScheme("light"), chromedp.EmulateViewport(1280, 900), chromedp.Navigate(base+p.path), chromedp.WaitVisible(chromedp.CSS(`main h1`))); err != nil {
			t.Fatalf("open %s: %v", p.path, err)
		}
		checkSkipLink(t, ctx, p.name)
		for _, scheme := range []string{"light", "dark"} {
			if err := chromedp.Do(ctx, testsupport.ColorScheme(scheme)); err != nil {
				t.Fatal(err)
			}
			for _, width := range []int64{1280, 390} {
				name := p.name
				if scheme == "dark" {
					name += "-dark"
				}
				if sw := testsupport.ScreenshotAt(t, ctx, name, width); sw > int(width) {
					t.Errorf("%s (%s, %s) is %d px wide at %d px: it scrolls sideways", p.name, p.path, scheme, sw, width)
				}
				checkWordsWhole(t, ctx, fmt.Sprintf("%s at %d px", p.name, width))
				if (scheme == "light") == (width == 1280) { // each scheme once, each width once
					t.Run(fmt.Sprintf("axe/%s/%s/%d", p.name, scheme, width), func(t *testing.T) {
						testsupport.RequireAxe(t)
						testsupport.CheckAxe(t, ctx, fmt.Sprintf("%s (%s, %s, %d px)", p.name, p.path, scheme, width))
					})
				}
			}
		}
	}
	app.shutdown(t)
}

// checkSkipLink presses Tab on a fresh page: the first stop must be the
// skip link, visible and outlined, and following it must put the focus
// in main.
func checkSkipLink(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\t")); err != nil {
		t.Fatal(err)
	}
	first, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
		const a = document.activeElement, r = a.getBoundingClientRect(), st = getComputedStyle(a);
		return [a.className, r.top >= 0 && r.bottom > 0 && r.width > 0, st.outlineStyle !== 'none' && parseFloat(st.outlineWidth) >= 2].join(' ');
	})()`))
	if err != nil || first != "skip-link true true" {
		t.Errorf("%s: the first Tab stop is not a visible, outlined skip link: %q (%v)", page, first, err)
		return
	}
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\r")); err != nil {
		t.Fatal(err)
	}
	in, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.activeElement.id === 'main' && location.hash === '#main'`))
	if err != nil || !in {
		t.Errorf("%s: following the skip link did not move the focus to main (%v)", page, err)
	}
}

// checkWordsWhole fails the test for each word of a table cell that the
// layout broke across two lines: a word of up to 24 letters must fit a
// cell ("Conferenc/e" was seen); longer strings, such as links, may wrap.
func checkWordsWhole(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	broken, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(() => {
		const out = [], walk = document.createTreeWalker(document.querySelector('main'), NodeFilter.SHOW_TEXT);
		for (let n = walk.nextNode(); n; n = walk.nextNode()) {
			if (!n.parentElement.closest('td, th') || n.parentElement.closest('.visually-hidden')) continue;
			// Parts of a string of up to 24 characters, split at hyphens and
			// slashes, where a line may end: longer strings (links) may wrap.
			for (const m of n.data.matchAll(/[^\s\u2014\u2013\-\/]+/g)) {
				const token = n.data.slice(0, m.index).split(/\s/).pop() + n.data.slice(m.index).split(/\s/)[0];
				if (token.length > 24) continue;
				const r = document.createRange();
				r.setStart(n, m.index); r.setEnd(n, m.index + m[0].length);
				const lines = new Set([...r.getClientRects()].filter(x => x.width > 0).map(x => Math.round(x.top)));
				if (lines.size > 1) out.push(m[0]);
			}
		}
		return out;
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range broken {
		t.Errorf("%s: the word %q is broken across lines in a table", page, w)
	}
}
