package main

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/otjhelper/otj/platform/testsupport"
)

// TestBrowserEveryPageFitsAPhone opens every page of the app in
// Chromium at 1280 and at 390 px wide, saves each as a screenshot (under
// OTJ_ARTIFACTS when set) and fails when one needs sideways scrolling on
// the phone.
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
	shots := artefactDir(t)
	for _, p := range pages {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(base+p.path), chromedp.WaitVisible(chromedp.CSS(`main h1`))); err != nil {
			t.Fatalf("open %s: %v", p.path, err)
		}
		screenshotAt(t, ctx, shots, p.name+"-1280.png", 1280)
		if sw := screenshotAt(t, ctx, shots, p.name+"-390.png", 390); sw > 390 {
			t.Errorf("%s (%s) is %d px wide at 390 px: it scrolls sideways on a phone", p.name, p.path, sw)
		}
	}
	app.shutdown(t)
}
