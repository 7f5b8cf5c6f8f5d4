package web_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/otjhelper/otj/modules/web"
	"github.com/otjhelper/otj/platform/testsupport"
)

// TestBrowserSignedOutPagesAccessible opens in Chromium the pages a
// visitor sees before or after signing in, which internal/app/apptest's
// TestBrowserEveryPageFitsAPhone (signed in) cannot reach: sign-in with
// no provider configured, sign-in with one, the refusal of an address
// not on the allowlist, and the page after deleting the account. Each,
// at 1280 and 390 px, light and dark, has a skip link and no sideways
// scrolling, and is kept as a screenshot; axe-core finds no serious or
// critical violation light at 1280 px and dark at 390 px.
func TestBrowserSignedOutPagesAccessible(t *testing.T) {
	testsupport.RequireAxe(t)
	ctx := testsupport.Browser(t)
	p := testsupport.OIDC(t)
	bare := newFixture(t, web.Config{Enqueuer: &fakeEnqueuer{}})
	withOIDC := oidcFixture(t, p, "alice@example.org", func(c *web.Config) { c.Account = &recordingEraser{} })

	check := func(name string) {
		t.Helper()
		if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('a.skip-link[href="#main"]').length + document.querySelectorAll('main#main').length`)); err != nil || n != 2 {
			t.Errorf("%s: no skip link to main (%v)", name, err)
		}
		for _, scheme := range []string{"light", "dark"} {
			for _, width := range []int64{1280, 390} {
				if err := chromedp.Do(ctx, testsupport.ColorScheme(scheme)); err != nil {
					t.Fatal(err)
				}
				if sw := testsupport.ScreenshotAt(t, ctx, name+"-"+scheme, width); sw > int(width) {
					t.Errorf("%s (%s) is %d px wide at %d px: it scrolls sideways", name, scheme, sw, width)
				}
				if (scheme == "light") == (width == 1280) { // each scheme once, each width once
					testsupport.CheckAxe(t, ctx, fmt.Sprintf("%s (%s, %d px)", name, scheme, width))
				}
			}
		}
	}
	open := func(url string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(`main h1`))); err != nil {
			t.Fatalf("open %s: %v", url, err)
		}
	}
	heading := func(want string) {
		t.Helper()
		if h, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`main h1`))); err != nil || h != want {
			t.Fatalf("heading %q (%v), want %q", h, err, want)
		}
	}

	open(bare.srv.URL + "/tasks/")
	heading("Sign in")
	check("signin-unconfigured")

	open(withOIDC.srv.URL + "/tasks/")
	heading("Sign in")
	check("signin")

	// The mock provider signs in whoever is queued, with no page of its
	// own: the browser comes back to the callback at once.
	p.QueueUser("mallory@example.net", true)
	open(withOIDC.srv.URL + "/login")
	heading("Not allowed")
	check("denied")

	p.QueueUser("alice@example.org", true)
	open(withOIDC.srv.URL + "/login")
	open(withOIDC.srv.URL + "/account")
	heading("Your data")
	step, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(step, chromedp.SendKeys(chromedp.CSS(`#confirm`), "alice@example.org"),
		chromedp.Click(chromedp.CSS(`button.danger`)),
		chromedp.WaitNotPresent(chromedp.CSS(`form.logout`))); err != nil {
		html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("main")))
		t.Fatalf("delete the account: %v\n%s", err, html)
	}
	heading("Your account is deleted")
	check("goodbye")
}
