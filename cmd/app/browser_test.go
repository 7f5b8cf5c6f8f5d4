package main

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

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
	if err != nil || color != "rgb(22, 163, 74)" {
		t.Errorf("completed badge colour %q (%v), want green", color, err)
	}
	if os.Getenv("OTJ_SCREENSHOTS") != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err == nil {
			os.WriteFile(filepath.Join(os.Getenv("OTJ_SCREENSHOTS"), "tasks.png"), png, 0o644)
		}
	}
	body, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`fetch(document.querySelector('a.download').href).then(r => r.text())`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(records) != 3 {
		t.Fatalf("downloaded CSV (%v): %q", err, body)
	}
	if records[1][1] != "'=cmd|' /C calc'!A0" || records[2][1] != "Shadowed the data team, café visit" {
		t.Errorf("rows %q", records[1:])
	}
	app.shutdown(t)
}
