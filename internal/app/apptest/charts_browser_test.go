package apptest

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/otjhelper/otj/platform/testsupport"
)

// chartLabelsOutside lists each <text> of the page's SVG charts that
// does not lie inside its chart: in the browser's own layout, both the
// text's box in the SVG's user units (getBBox) against the viewBox and
// its box on the screen against the SVG's.
const chartLabelsOutside = `(() => {
	const out = [];
	document.querySelectorAll('svg').forEach((svg, i) => {
		const vb = svg.viewBox.baseVal, s = svg.getBoundingClientRect();
		svg.querySelectorAll('text').forEach(t => {
			const b = t.getBBox(), r = t.getBoundingClientRect();
			if (b.x < vb.x - 0.5 || b.y < vb.y - 0.5 || b.x + b.width > vb.x + vb.width + 0.5 || b.y + b.height > vb.y + vb.height + 0.5 ||
				r.left < s.left - 0.5 || r.top < s.top - 0.5 || r.right > s.right + 0.5 || r.bottom > s.bottom + 0.5) {
				out.push('chart ' + i + ' "' + t.textContent + '": box ' + [b.x, b.y, b.x + b.width, b.y + b.height].map(v => v.toFixed(1)).join(',') +
					' in viewBox ' + [vb.x, vb.y, vb.width, vb.height].join(','));
			}
		});
	});
	return out;
})()`

// TestBrowserChartLabelsInside runs analytics over an empty log, a
// small one (a quarter of an hour) and a huge one (about 112 hours a
// week, thousands in a type), opens each result's charts at 1280 and 390
// px, light and dark, and holds every label of every chart inside its
// chart (issue 24: "112.5 h" read "2.5 h", cut at the left edge), the
// page free of sideways scrolling at 390 px, and axe-core content. The
// task list the runs appear on updates in place inside its aria-live
// region.
func TestBrowserChartLabelsInside(t *testing.T) {
	testsupport.RequireAxe(t)
	ctx := testsupport.Browser(t)
	env := baseEnv(t)
	env["DEV_AUTO_LOGIN_EMAIL"] = "apprentice@example.org"
	app := startApp(t, env, "all")
	base := app.waitOutput(t, runningRE)
	dir := env["OTJ_DATA_DIR"]
	u := ensureUser(t, dir, "apprentice@example.org")
	if _, err := dataDB(t, dir).ExecContext(testsupport.Context(t), `UPDATE app_user SET selected_spec = 'ST0787' WHERE id = ?`, u.ID); err != nil {
		t.Fatal(err)
	}
	c := testsupport.Client(t, base, testsupport.Signer(t), u.ID)
	run := func() string {
		t.Helper()
		_, page := testsupport.Get(t, c, base+"/tasks/")
		resp, _ := testsupport.PostForm(t, c, base+"/tasks/run-analytics", url.Values{"key": {keyRE.FindStringSubmatch(page)[1]}})
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || loc.Query().Get("queued") == "" {
			t.Fatalf("run analytics: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		id := loc.Query().Get("queued")
		testsupport.Eventually(t, 60*time.Second, "analytics never completed", func() bool {
			r, _ := testsupport.Get(t, c, base+"/tasks/"+id+"/analytics")
			return r.StatusCode == http.StatusOK
		})
		return id
	}

	// The task list, open in the browser while the runs are started
	// elsewhere: each shows up in place, inside the list's live region.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(base+"/tasks/"),
		chromedp.WaitVisible(chromedp.CSS(`body[data-live="open"]`))); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById('task-list').liveMarker = 'same region'; true`)); err != nil {
		t.Fatal(err)
	}

	logs := map[string]string{"zero": run()}
	today := time.Now().In(mustLondon(t))
	insertActivities(t, dir, u.ID, []activityFixture{{date: today.Format(time.DateOnly), title: "Read one page", typ: "self_study", quality: "draft", hours: 0.25, ksbs: []string{"K1"}}})
	logs["small"] = run()
	var huge []activityFixture
	types := []string{"conference", "training_course", "workshop", "self_study", "other"}
	for d := range 52 * 7 {
		if day := today.AddDate(0, 0, -d); day.Weekday() != time.Sunday && day.Weekday() != time.Saturday {
			huge = append(huge, activityFixture{date: day.Format(time.DateOnly), title: "Long day", typ: types[d%len(types)], quality: "good", hours: 22.5})
		}
	}
	insertActivities(t, dir, u.ID, huge)
	logs["huge"] = run()

	// The three runs arrived without a reload, in the same live region.
	testsupport.Eventually(t, 30*time.Second, "the list never showed the three runs", func() bool {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#task-list a[href$="/analytics"]').length`))
		return err == nil && n == 3
	})
	region, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
		const l = document.getElementById('task-list'), row = l.querySelector('tbody tr');
		return [l.liveMarker, l.getAttribute('aria-live'), row && row.closest('[aria-live]') === l].join(' ');
	})()`))
	if err != nil || region != "same region polite true" {
		t.Errorf("task rows not updated inside the list's aria-live region: %q (%v)", region, err)
	}

	for name, id := range logs {
		for _, scheme := range []string{"light", "dark"} {
			for _, width := range []int64{1280, 390} {
				if err := chromedp.Do(ctx, testsupport.ColorScheme(scheme), chromedp.EmulateViewport(width, 900), chromedp.Navigate(base+"/tasks/"+id+"/analytics"),
					chromedp.WaitVisible(chromedp.CSS(`main h1`))); err != nil {
					t.Fatal(err)
				}
				if name != "zero" {
					if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('svg.chart').length`)); err != nil || n != 4 {
						t.Errorf("%s log: %d charts (%v), want 4", name, n, err)
					}
				}
				out, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](chartLabelsOutside))
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range out {
					t.Errorf("%s log, %d px, %s: label outside its chart: %s", name, width, scheme, o)
				}
				if sw := testsupport.ScreenshotAt(t, ctx, "analytics-"+name+"-"+scheme, width); sw > int(width) {
					t.Errorf("%s log, %s: the analytics page is %d px wide at %d px: it scrolls sideways", name, scheme, sw, width)
				}
				if width == 390 {
					testsupport.CheckAxe(t, ctx, "analytics of the "+name+" log, "+scheme)
				}
			}
		}
	}
	app.shutdown(t)
}
