package web_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/otjhelper/otj/modules/web"
	"github.com/otjhelper/otj/platform/testsupport"
)

// Issue 27 §10: the console's job list, filtered in Chromium by its form
// (state "failed"), shows the failed job and only it, then its page; at
// 1280 and 390 px, light and dark, each fits without sideways scrolling
// and is kept as a screenshot, and axe-core finds no serious or critical
// violation, light at 1280 px and dark at 390 px. The browser is the
// operator (DEV_AUTO_LOGIN_EMAIL), under the app's own CSP.
func TestBrowserAdminJobsFilter(t *testing.T) {
	testsupport.RequireAxe(t)
	ctx := testsupport.Browser(t)
	db, _ := testsupport.DB(t)
	a := newAdminFixtureWith(t, db, func(c *web.Config) { c.DevAutoLoginEmail = operatorEmail })

	check := func(name string) {
		t.Helper()
		for _, scheme := range []string{"light", "dark"} {
			for _, width := range []int64{1280, 390} {
				if err := chromedp.Do(ctx, testsupport.ColorScheme(scheme)); err != nil {
					t.Fatal(err)
				}
				if sw := testsupport.ScreenshotAt(t, ctx, name+"-"+scheme, width); sw > int(width) {
					t.Errorf("%s (%s) is %d px wide at %d px: it scrolls sideways", name, scheme, sw, width)
				}
				if (scheme == "light") == (width == 1280) {
					testsupport.CheckAxe(t, ctx, fmt.Sprintf("%s (%s, %d px)", name, scheme, width))
				}
			}
		}
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(a.srv.URL+"/admin/jobs"),
		chromedp.WaitVisible(chromedp.CSS(`table.admin-jobs`))); err != nil {
		t.Fatal(err)
	}
	rows := func() string {
		t.Helper()
		ids, err := chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('table.admin-jobs tbody tr')].map(r => r.id).sort().join(' ')`))
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	if got := rows(); !strings.Contains(got, a.done) || !strings.Contains(got, a.failed) || !strings.Contains(got, a.held) {
		t.Fatalf("unfiltered list shows %q, want all three jobs", got)
	}
	check("admin-jobs")

	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 900),
		chromedp.SetValue(chromedp.CSS(`.task-filters select[name=state]`), "failed"),
		chromedp.Click(chromedp.CSS(`.task-filters button[type=submit]`))); err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, 20*time.Second, "the filtered list never loaded", func() bool {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`location.search.includes("state=failed") && document.readyState === "complete" && !!document.querySelector("table.admin-jobs")`))
		return err == nil && ok
	})
	loc, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`))
	if err != nil {
		t.Fatal(err)
	}
	if got := rows(); got != "job-"+a.failed || !strings.Contains(loc, "state=failed") {
		t.Fatalf("filtered by state failed at %s: rows %q, want job-%s", loc, got, a.failed)
	}
	check("admin-jobs-failed")

	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#job-`+a.failed+` a`)),
		chromedp.WaitVisible(chromedp.CSS(`dd.operator-detail`))); err != nil {
		t.Fatal(err)
	}
	detail, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`dd.operator-detail`)))
	if err != nil {
		t.Fatal(err)
	}
	if detail != adminInternal {
		t.Errorf("the job's page shows the operator %q, want %q", detail, adminInternal)
	}
	check("admin-job")
}
