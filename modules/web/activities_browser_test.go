package web_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/web"
	"github.com/otjhelper/otj/platform/testsupport"
)

// TestBrowserAddActivity adds an activity with two KSBs and a link through
// the form in a real Chromium, finds it in the list with the link's
// title, and opens the list, the activity and the form at 390 px wide:
// none scrolls sideways. Screenshots at 1280 and 390 px go where
// testsupport.Screenshot keeps them.
func TestBrowserAddActivity(t *testing.T) {
	ctx := testsupport.Browser(t)
	f := newFixture(t, web.Config{Enqueuer: &fakeEnqueuer{}, DevAutoLoginEmail: "alice@example.org"})
	if _, err := f.db.ExecContext(t.Context(), `UPDATE app_user SET selected_spec = 'ST0787' WHERE id = ?`, f.alice.ID); err != nil {
		t.Fatal(err)
	}
	ksbs, err := f.users.KSBs(t.Context(), "ST0787")
	if err != nil || len(ksbs) < 20 {
		t.Fatalf("ksbs %v %v", len(ksbs), err)
	}
	k1, s1 := ksbs[0], ksbs[len(ksbs)-15] // one knowledge, one skill
	shot := func(name string) { t.Helper(); testsupport.Screenshot(t, ctx, name) }
	check := func(code string) chromedp.Action[chromedp.Void] {
		return chromedp.Click(chromedp.CSS(`input[name=ksbs][value="` + code + `"]`))
	}
	err = chromedp.Do(ctx,
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(f.srv.URL+"/activities/new"),
		chromedp.WaitVisible(chromedp.CSS(`#f-title`)),
		chromedp.SendKeys(chromedp.CSS(`#f-title`), "Shadowed the platform team, café"),
		chromedp.SetValue(chromedp.CSS(`#f-date`), "2026-03-05"),
		chromedp.SendKeys(chromedp.CSS(`#f-hours`), "3.5"),
		chromedp.SetValue(chromedp.CSS(`#f-type`), "shadowing"),
		chromedp.SetValue(chromedp.CSS(`#f-quality`), "good"),
		chromedp.SendKeys(chromedp.CSS(`#f-tags`), "platform, oncall"),
		check(k1.Code), check(s1.Code),
		chromedp.SendKeys(chromedp.CSS(`input[name=link_url]`), "https://sre.google/sre-book/being-on-call/"),
		chromedp.SendKeys(chromedp.CSS(`input[name=link_title]`), "Being on call"),
		chromedp.SetValue(chromedp.CSS(`select[name=link_stage]`), "review"),
		chromedp.SetValue(chromedp.CSS(`select[name=link_source_type]`), "book"),
	)
	if err != nil {
		t.Fatal(err)
	}
	shot("activity-form-1280")
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`.activity-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`h1.activity-heading`)),
	); err != nil {
		t.Fatal(err)
	}
	page, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`main`)))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Shadowed the platform team, café", k1.NaturalCode + " " + k1.Title, s1.NaturalCode + " " + s1.Title, "Being on call", "Review · Book", "oncall, platform"} {
		if !strings.Contains(page, want) {
			t.Fatalf("activity page lacks %q:\n%s", want, page)
		}
	}
	activityURL, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	shot("activity-1280")

	if err := chromedp.Do(ctx, chromedp.Navigate(f.srv.URL+"/activities"), chromedp.WaitVisible(chromedp.CSS(`table.activities`))); err != nil {
		t.Fatal(err)
	}
	link, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`table.activities a.res-link`)))
	if err != nil || link != "Being on call" {
		t.Fatalf("list's link text %q (%v), want its title", link, err)
	}
	row, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`table.activities tbody tr`)))
	if err != nil || !strings.Contains(row, "Shadowed the platform team") || !strings.Contains(row, k1.NaturalCode+", "+s1.NaturalCode) {
		t.Fatalf("list row %q (%v)", row, err)
	}
	shot("activities-1280")

	// A phone: nothing may be wider than the screen.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct{ name, url, ready string }{
		{"activities-390", f.srv.URL + "/activities", `table.activities`},
		{"activity-390", activityURL, `h1.activity-heading`},
		{"activity-form-390", activityURL + "/edit", `#f-title`},
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
	pg, err := f.users.ListActivities(t.Context(), f.alice.ID, activity.Filter{}, 1, 10)
	if err != nil || pg.Total != 1 || len(pg.Activities[0].KSBs) != 2 || len(pg.Activities[0].Links) != 1 {
		t.Fatalf("stored: %+v %v", pg, err)
	}
}
