package testsupport_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/otjhelper/otj/platform/testsupport"
)

// TestAxeFindsViolations holds Axe to finding what it is there to find:
// on a page with an image without alt text (critical) and gray on gray
// text (serious) it reports both, served under a CSP as strict as the
// app's (no script at all), and on a plain page nothing.
func TestAxeFindsViolations(t *testing.T) {
	testsupport.RequireAxe(t)
	ctx := testsupport.Browser(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; img-src 'self'")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		body := `<main><h1>Fine</h1><p>Plain text.</p></main>`
		if r.URL.Path == "/bad" {
			body = `<main><h1>Bad</h1><img src="/x.png"><p><font color="#aaaaaa">faint text on white</font></p></main>`
		}
		w.Write([]byte(`<!doctype html><html lang="en"><head><title>t</title></head><body>` + body + `</body></html>`))
	}))
	t.Cleanup(srv.Close)

	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/bad"), chromedp.WaitVisible(chromedp.CSS(`h1`))); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, v := range testsupport.Axe(t, ctx) {
		ids = append(ids, v.ID)
	}
	if !slices.Contains(ids, "image-alt") || !slices.Contains(ids, "color-contrast") {
		t.Errorf("axe found %q on the bad page, want image-alt and color-contrast", ids)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/good"), chromedp.WaitVisible(chromedp.CSS(`h1`))); err != nil {
		t.Fatal(err)
	}
	if v := testsupport.Axe(t, ctx); len(v) != 0 {
		t.Errorf("axe found %+v on a plain page", v)
	}
}
