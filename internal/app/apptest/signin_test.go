package apptest

import (
	"encoding/csv"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/otjhelper/otj/platform/testsupport"
)

// oidcEnv is a complete set of OIDC settings, without the one named
// missing ("" for none missing).
func oidcEnv(missing string) map[string]string {
	env := map[string]string{
		"OIDC_ISSUER": "https://accounts.google.com", "OIDC_CLIENT_ID": "otj-client",
		"OIDC_CLIENT_SECRET": "otj-secret", "OIDC_REDIRECT_URL": "https://otj.example.org/auth/callback",
	}
	delete(env, missing)
	return env
}

// The README's first command, DEV_AUTO_LOGIN_EMAIL and no SECRET_KEY,
// starts; with HOST beyond loopback it warns, in the log at WARN and on
// stdout beside the URL.
func TestDevLoginWithoutSecretKeyStartsAndWarnsBeyondLoopback(t *testing.T) {
	env := baseEnv(t)
	delete(env, "SECRET_KEY")
	env["DEV_AUTO_LOGIN_EMAIL"] = "you@example.org"
	env["HOST"] = "0.0.0.0"
	app := startApp(t, env, "all")
	app.waitOutput(t, regexp.MustCompile(`(WARNING: DEV_AUTO_LOGIN_EMAIL is set and HOST 0\.0\.0\.0 is beyond loopback)`))
	if !strings.Contains(app.stdout.String(), "running at") {
		t.Errorf("stdout has no URL: %q", app.stdout.String())
	}
	testsupport.Eventually(t, 10*time.Second, "no WARN log of the exposed dev sign-in", func() bool {
		return regexp.MustCompile(`level=WARN msg="DEV_AUTO_LOGIN_EMAIL is set and HOST 0\.0\.0\.0`).MatchString(app.logs.String())
	})
	app.shutdown(t)
}

// TestBrowserOIDCSignInReport is sign-in in a real browser against app
// all configured for a mock OIDC provider: the sign-in page's button,
// the provider, back to the tasks page; Generate Full Report, and watch
// it complete.
func TestBrowserOIDCSignInReport(t *testing.T) {
	ctx := testsupport.Browser(t)
	p := testsupport.OIDC(t)
	p.QueueUser("apprentice@example.org", true)
	port := freePort(t)
	env := baseEnv(t)
	env["PORT"] = port
	env["OIDC_ISSUER"], env["OIDC_CLIENT_ID"], env["OIDC_CLIENT_SECRET"] = p.Issuer, p.ClientID, p.ClientSecret
	env["OIDC_REDIRECT_URL"] = "http://127.0.0.1:" + port + "/auth/callback"
	env["ALLOWED_EMAILS"] = "@example.org"
	app := startApp(t, env, "all")
	base := app.waitOutput(t, runningRE)

	generate := chromedp.CSS(`form[action="/tasks/generate-report"] button`)
	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/tasks/"),
		chromedp.WaitVisible(chromedp.CSS(`a.button[href="/login"]`)),
		chromedp.Click(chromedp.CSS(`a.button[href="/login"]`)),
		chromedp.WaitVisible(generate),
	)
	if err != nil {
		t.Fatal(err)
	}
	who, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`.who`)))
	if err != nil || who != "apprentice@example.org" {
		t.Fatalf("signed in as %q (%v)", who, err)
	}
	// The new user chooses a standard, then logs an activity with two
	// of its KSBs and a link, through the forms.
	err = chromedp.Do(ctx,
		chromedp.Navigate(base+"/settings"),
		chromedp.WaitVisible(chromedp.CSS(`#selected_spec`)),
		chromedp.SetValue(chromedp.CSS(`#selected_spec`), "ST0763"),
		chromedp.SetValue(chromedp.CSS(`#otj_target_hours`), "300"),
		chromedp.Click(chromedp.CSS(`form.settings button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`p.notice`)),
		chromedp.Navigate(base+"/activities/new"),
		chromedp.WaitVisible(chromedp.CSS(`#f-title`)),
		chromedp.SendKeys(chromedp.CSS(`#f-title`), "Pairing on the deploy pipeline"),
		chromedp.SetValue(chromedp.CSS(`#f-date`), "2026-11-30"),
		chromedp.SendKeys(chromedp.CSS(`#f-hours`), "2.5"),
		chromedp.SetValue(chromedp.CSS(`#f-type`), "shadowing"),
		chromedp.Click(chromedp.CSS(`input[name=ksbs][value="AK1"]`)),
		chromedp.Click(chromedp.CSS(`input[name=ksbs][value="AS2"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=link_url]`), "https://example.org/pipeline-notes"),
		chromedp.SendKeys(chromedp.CSS(`input[name=link_title]`), "Pipeline notes"),
		chromedp.Click(chromedp.CSS(`.activity-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`h1.activity-heading`)),
		chromedp.Navigate(base+"/activities"),
		chromedp.WaitVisible(chromedp.CSS(`table.activities`)),
	)
	if err != nil {
		t.Fatalf("settings and a new activity: %v", err)
	}
	list, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`table.activities`)))
	if err != nil || !strings.Contains(list, "Pairing on the deploy pipeline") || !strings.Contains(list, "Pipeline notes") {
		t.Fatalf("the list does not show the new activity (%v): %q", err, list)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/tasks/"), chromedp.WaitVisible(generate),
		chromedp.Click(generate), chromedp.WaitVisible(chromedp.CSS(`p.notice`))); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`a.download`))); err != nil {
		t.Fatalf("download link never appeared: %v", err)
	}
	csvText, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`fetch(document.querySelector('a.download').href).then(r => r.text())`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(csvText, "\ufeff"))).ReadAll()
	if err != nil || len(records) != 2 {
		t.Fatalf("report CSV (%v): %q", err, csvText)
	}
	row := records[1]
	if row[0] != "2026-11-30" || row[1] != "Pairing on the deploy pipeline" || row[2] != "2.5" ||
		!strings.Contains(row[6], "K1") || !strings.Contains(row[6], "S2") || !strings.Contains(row[7], "https://example.org/pipeline-notes") {
		t.Errorf("report row %q", row)
	}
	badge, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`.badge`)))
	if err != nil || !strings.EqualFold(strings.TrimSpace(badge), "completed") {
		t.Fatalf("badge %q, %v", badge, err)
	}
	// Signing out leads to the sign-in page, and the tasks are out of reach.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`a.button[href="/login"]`)),
		chromedp.Navigate(base+"/tasks/"),
		chromedp.WaitVisible(chromedp.CSS(`a.button[href="/login"]`)),
	)
	if err != nil {
		t.Fatalf("sign out: %v", err)
	}
	app.shutdown(t)
}
