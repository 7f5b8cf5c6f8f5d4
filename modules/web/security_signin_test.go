package web_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/web"
	"github.com/otjhelper/otj/platform/testsupport"
)

// The sign-in, settings and logout pages carry the security headers too,
// refusals included, and a body past its bound is a 413 with them.
func TestSigninPagesCarrySecurityHeaders(t *testing.T) {
	p := testsupport.OIDC(t)
	db, _ := testsupport.DB(t)
	list, _ := web.ParseAllowlist("nobody@example.org")
	f := newFixtureOn(t, db, web.Config{Enqueuer: &fakeEnqueuer{}, Settings: activity.NewStore(db), OIDC: &web.OIDCConfig{
		Issuer: p.Issuer, ClientID: p.ClientID, ClientSecret: p.ClientSecret, Allowed: list,
	}})
	alice := f.client(t, f.alice)
	big := strings.Repeat("x", web.DefaultBodyLimit+1)
	tests := []struct {
		name         string
		c            *http.Client
		method, path string
		body         string
		status       int
	}{
		{"sign-in page", http.DefaultClient, "GET", "/signin", "", 200},
		{"sign-in start", stepClient(t), "GET", "/login", "", 303},
		{"callback without a sign-in", stepClient(t), "GET", "/auth/callback?state=x&code=y", "", 400},
		{"settings", alice, "GET", "/settings", "", 200},
		{"settings refused", alice, "POST", "/settings", "timezone=nowhere", 400},
		{"settings too large", alice, "POST", "/settings", "timezone=" + big, 413},
		{"report request too large", alice, "POST", "/tasks/generate-report", "key=" + big, 413},
		{"logout", alice, "POST", "/logout", "", 303},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, f.srv.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := tt.c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("%s %s = %d, want %d:\n%s", tt.method, tt.path, resp.StatusCode, tt.status, b)
			}
			if tt.status == 413 && !strings.Contains(string(b), "larger than this page accepts") {
				t.Errorf("413 without a sentence:\n%s", b)
			}
			wantSecurityHeaders(t, resp)
		})
	}
	// The denied page, through the provider.
	_, resp, body := p.SignIn(t, f.srv.URL, "eve@example.org", true)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "not allowed") {
		t.Fatalf("denied sign-in = %d:\n%s", resp.StatusCode, body)
	}
	wantSecurityHeaders(t, resp)
	// No inline style or script on the new pages (the CSP would block them).
	for _, path := range []string{"/settings", "/signin"} {
		_, page := getBody(t, alice, f.srv.URL+path)
		if strings.Contains(page, "style=") || strings.Contains(page, "<script") || strings.Contains(page, "<style") {
			t.Errorf("%s has inline style or script", path)
		}
	}
}
