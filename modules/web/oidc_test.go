package web_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/web"
	"github.com/otjhelper/otj/platform/session"
	"github.com/otjhelper/otj/platform/testsupport"
)

// oidcFixture serves the web with sign-in through p, admitting allowed
// (ALLOWED_EMAILS); mod, if set, changes the configuration first.
func oidcFixture(t *testing.T, p *testsupport.OIDCProvider, allowed string, mod func(*web.Config)) *fixture {
	t.Helper()
	list, err := web.ParseAllowlist(allowed)
	if err != nil {
		t.Fatal(err)
	}
	cfg := web.Config{Enqueuer: &fakeEnqueuer{}, OIDC: &web.OIDCConfig{
		Issuer: p.Issuer, ClientID: p.ClientID, ClientSecret: p.ClientSecret, Allowed: list, ProviderName: "Mock",
	}}
	if mod != nil {
		mod(&cfg)
	}
	return newFixture(t, cfg)
}

// stepClient keeps cookies but follows no redirect, so a test can take
// a sign-in apart.
func stepClient(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// get fetches u with c and returns the response, its body read.
func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// beginSignin starts a sign-in as email and stops at the callback: it
// returns the client (holding the sign-in cookie), the callback URL the
// provider sent the browser to, and the sign-in cookie itself.
func beginSignin(t *testing.T, f *fixture, p *testsupport.OIDCProvider, email string) (*http.Client, *url.URL, *http.Cookie) {
	t.Helper()
	p.QueueUser(email, true)
	c := stepClient(t)
	resp, _ := get(t, c, f.srv.URL+"/login")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("GET /login = %d", resp.StatusCode)
	}
	var state *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "otj_signin" {
			state = ck
		}
	}
	if state == nil || !state.HttpOnly || state.SameSite != http.SameSiteLaxMode {
		t.Fatalf("sign-in cookie %+v, want one, HttpOnly and SameSite=Lax", state)
	}
	authURL, _ := url.Parse(resp.Header.Get("Location"))
	q := authURL.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("state") == "" {
		t.Fatalf("authorization request without PKCE, nonce or state: %s", authURL)
	}
	resp, _ = get(t, c, authURL.String())
	cb, err := resp.Location()
	if err != nil {
		t.Fatalf("provider answered %d, no redirect: %v", resp.StatusCode, err)
	}
	return c, cb, state
}

// sessionOf is the session cookie resp sets, or nil.
func sessionOf(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == session.CookieName && c.MaxAge >= 0 && c.Value != "" {
			return c
		}
	}
	return nil
}

// Who gets in: ALLOWED_EMAILS's exact addresses and domains, or anyone
// verified without a list; an unverified email never. Each sign-in goes
// through the mock provider, and an admitted user's first visit creates
// their row with the token's email.
func TestOIDCSignIn(t *testing.T) {
	p := testsupport.OIDC(t)
	tests := []struct {
		name     string
		allowed  string
		email    string
		verified bool
		admitted bool
		says     string // on the page of a refusal
	}{
		{"exact address", "carol@example.org, @school.ac.uk", "Carol@Example.org", true, true, ""},
		{"domain", "carol@example.org,@school.ac.uk", "dan@school.ac.uk", true, true, ""},
		{"another address", "carol@example.org,@school.ac.uk", "eve@example.org", true, false, "is not allowed"},
		{"a subdomain is not the domain", "@school.ac.uk", "eve@evil.school.ac.uk", true, false, "is not allowed"},
		{"no list, verified", "", "frank@anywhere.example", true, true, ""},
		{"no list, unverified", "", "grace@anywhere.example", false, false, "not verified"},
		{"listed but unverified", "heidi@example.org", "heidi@example.org", false, false, "not verified"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := oidcFixture(t, p, tt.allowed, nil)
			c, resp, body := p.SignIn(t, f.srv.URL, tt.email, tt.verified)
			_, userErr := f.users.UserByEmail(testsupport.Context(t), tt.email)
			if !tt.admitted {
				if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, tt.says) {
					t.Fatalf("refused sign-in = %d, want 403 saying %q:\n%s", resp.StatusCode, tt.says, body)
				}
				if !errors.Is(userErr, activity.ErrNotFound) {
					t.Errorf("a refused sign-in made a user row: %v", userErr)
				}
				if code, _ := getBody(t, c.Client, f.srv.URL+"/tasks/"); code != http.StatusUnauthorized {
					t.Errorf("after a refused sign-in /tasks/ = %d, want 401", code)
				}
				return
			}
			if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/tasks/" {
				t.Fatalf("sign-in ended at %s with %d:\n%s", resp.Request.URL, resp.StatusCode, body)
			}
			if userErr != nil {
				t.Fatalf("no user row after sign-in: %v", userErr)
			}
			if !strings.Contains(body, strings.ToLower(tt.email)) {
				t.Errorf("the tasks page does not name %s", tt.email)
			}
		})
	}
}

// The callback completes only the sign-in this browser started: another
// state, a tampered or missing sign-in cookie, or a code used once
// already is a 400 that signs nobody in.
func TestOIDCCallbackRefusals(t *testing.T) {
	p := testsupport.OIDC(t)
	f := oidcFixture(t, p, "", nil)
	cases := []struct {
		name   string
		change func(c *http.Client, cb *url.URL, state *http.Cookie) *url.URL
	}{
		{"wrong state", func(c *http.Client, cb *url.URL, _ *http.Cookie) *url.URL {
			q := cb.Query()
			q.Set("state", "not-the-state")
			cb.RawQuery = q.Encode()
			return cb
		}},
		{"tampered sign-in cookie", func(c *http.Client, cb *url.URL, st *http.Cookie) *url.URL {
			bad := *st
			bad.Value = "A" + st.Value[1:]
			c.Jar.SetCookies(cb, []*http.Cookie{&bad})
			return cb
		}},
		{"no sign-in cookie (another browser)", func(_ *http.Client, cb *url.URL, _ *http.Cookie) *url.URL {
			return cb
		}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			c, cb, state := beginSignin(t, f, p, "ivan@example.org")
			if tt.name == "no sign-in cookie (another browser)" {
				c = stepClient(t)
			}
			resp, body := get(t, c, tt.change(c, cb, state).String())
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Please sign in again") || sessionOf(resp) != nil {
				t.Fatalf("callback = %d, session %v:\n%s", resp.StatusCode, sessionOf(resp), body)
			}
		})
	}

	t.Run("replayed code", func(t *testing.T) {
		c, cb, state := beginSignin(t, f, p, "judy@example.org")
		resp, _ := get(t, c, cb.String())
		if resp.StatusCode != http.StatusSeeOther || sessionOf(resp) == nil {
			t.Fatalf("first use of the code = %d, session %v", resp.StatusCode, sessionOf(resp))
		}
		// The same callback again: the sign-in cookie is gone (single use) ...
		again := stepClient(t)
		resp, _ = get(t, again, cb.String())
		if resp.StatusCode != http.StatusBadRequest || sessionOf(resp) != nil {
			t.Errorf("replay without the sign-in cookie = %d", resp.StatusCode)
		}
		// ... and with it put back, the provider refuses the used code.
		again.Jar.SetCookies(cb, []*http.Cookie{state})
		resp, body := get(t, again, cb.String())
		if resp.StatusCode != http.StatusBadRequest || sessionOf(resp) != nil {
			t.Errorf("replay with the sign-in cookie = %d:\n%s", resp.StatusCode, body)
		}
	})
}

// The session cookie is new at every sign-in, whatever cookie the browser
// brought (session fixation), lasts SessionTTL, and is HttpOnly and Lax.
func TestOIDCRenewsTheSession(t *testing.T) {
	p := testsupport.OIDC(t)
	f := oidcFixture(t, p, "", func(c *web.Config) { c.SessionTTL = 3 * time.Hour })
	c, cb, _ := beginSignin(t, f, p, "alice@example.org")
	planted := testsupport.Signer(t).Cookie(f.bob.ID, time.Hour)
	c.Jar.SetCookies(cb, []*http.Cookie{planted})
	resp, _ := get(t, c, cb.String())
	got := sessionOf(resp)
	if got == nil || got.Value == planted.Value || !got.HttpOnly || got.SameSite != http.SameSiteLaxMode || got.Secure {
		t.Fatalf("session cookie after sign-in: %+v", got)
	}
	if left := time.Until(got.Expires); left < 3*time.Hour-time.Minute || left > 3*time.Hour+time.Minute {
		t.Errorf("session lasts %s, want SessionTTL 3h", left)
	}
	code, body := getBody(t, c, f.srv.URL+"/tasks/")
	if code != http.StatusOK || !strings.Contains(body, "alice@example.org") || strings.Contains(body, "bob@example.org") {
		t.Errorf("after sign-in /tasks/ = %d, not alice's:\n%s", code, body)
	}
}

// Behind a TLS proxy that the app trusts (TrustProxyHeaders), a request
// that came over HTTPS gets Secure cookies; an untrusted header changes
// nothing.
func TestOIDCSecureBehindTrustedProxy(t *testing.T) {
	p := testsupport.OIDC(t)
	for _, trust := range []bool{false, true} {
		f := oidcFixture(t, p, "", func(c *web.Config) { c.TrustProxyHeaders = trust })
		req, _ := http.NewRequest("GET", f.srv.URL+"/login", nil)
		req.Header.Set("X-Forwarded-Proto", "https")
		resp, err := stepClient(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var secure bool
		for _, ck := range resp.Cookies() {
			secure = secure || ck.Secure
		}
		if secure != trust {
			t.Errorf("TrustProxyHeaders %v: Secure cookie %v", trust, secure)
		}
	}
}

// A provider that cannot be reached is a plain 503 page at sign-in, not
// a crash; the rest of the app keeps answering.
func TestOIDCProviderDown(t *testing.T) {
	f := newFixture(t, web.Config{Enqueuer: &fakeEnqueuer{}, OIDC: &web.OIDCConfig{
		Issuer: "http://127.0.0.1:1/oidc", ClientID: "id", ClientSecret: "secret", Timeout: 2 * time.Second,
	}})
	resp, body := get(t, stepClient(t), f.srv.URL+"/login")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "cannot be reached") || strings.Contains(body, "127.0.0.1:1") {
		t.Fatalf("GET /login with the provider down = %d:\n%s", resp.StatusCode, body)
	}
	code, body := getBody(t, http.DefaultClient, f.srv.URL+"/tasks/")
	if code != http.StatusUnauthorized || !strings.Contains(body, `href="/login"`) {
		t.Errorf("sign-in page = %d, without the provider's button:\n%s", code, body)
	}
}

// A provider that was down at the first sign-in is looked up again at
// the next: once it is up, sign-in works without a restart.
func TestOIDCProviderComesBack(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	f := oidcFixture(t, &testsupport.OIDCProvider{Issuer: "http://" + addr + "/oidc", ClientID: "otj", ClientSecret: "otj-secret"}, "", nil)
	if resp, _ := get(t, stepClient(t), f.srv.URL+"/login"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("GET /login with the provider down = %d, want 503", resp.StatusCode)
	}
	p := testsupport.OIDCAt(t, addr, "otj", "otj-secret")
	_, resp, body := p.SignIn(t, f.srv.URL, "alice@example.org", true)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/tasks/" {
		t.Fatalf("sign-in once the provider is up = %d at %s:\n%s", resp.StatusCode, resp.Request.URL, body)
	}
}

// POST /logout deletes the session cookie and leads to the sign-in page;
// from another site it is refused and the user stays signed in.
func TestLogout(t *testing.T) {
	p := testsupport.OIDC(t)
	f := oidcFixture(t, p, "", nil)
	c, resp, _ := p.SignIn(t, f.srv.URL, "alice@example.org", true)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in = %d", resp.StatusCode)
	}
	noFollow := &http.Client{Jar: c.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	refused := post(t, noFollow, f.srv.URL+"/logout", nil, map[string]string{"Sec-Fetch-Site": "cross-site"})
	if refused.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site logout = %d, want 403", refused.StatusCode)
	}
	if code, _ := getBody(t, noFollow, f.srv.URL+"/tasks/"); code != http.StatusOK {
		t.Fatalf("a refused logout signed out: /tasks/ = %d", code)
	}
	out := post(t, noFollow, f.srv.URL+"/logout", nil, map[string]string{"Sec-Fetch-Site": "same-origin"})
	if out.StatusCode != http.StatusSeeOther || out.Header.Get("Location") != "/signin" {
		t.Fatalf("logout = %d to %q", out.StatusCode, out.Header.Get("Location"))
	}
	cleared := false
	for _, ck := range out.Cookies() {
		cleared = cleared || (ck.Name == session.CookieName && ck.MaxAge < 0)
	}
	if !cleared {
		t.Error("logout did not delete the session cookie")
	}
	code, body := getBody(t, noFollow, f.srv.URL+"/tasks/")
	if code != http.StatusUnauthorized || !strings.Contains(body, "Sign in with Mock") {
		t.Errorf("after logout /tasks/ = %d:\n%s", code, body)
	}
}

// A session past its lifetime, or one whose cookie was changed, is no
// session: the user signs in again.
func TestExpiredOrTamperedSession(t *testing.T) {
	p := testsupport.OIDC(t)
	f := oidcFixture(t, p, "", nil)
	signer := testsupport.Signer(t)
	expired := signer.Cookie(f.alice.ID, -time.Second)
	tampered := signer.Cookie(f.alice.ID, time.Hour)
	tampered.Value = strings.Replace(tampered.Value, ".", ".x", 1)
	for name, ck := range map[string]*http.Cookie{"expired": expired, "tampered": tampered} {
		req, _ := http.NewRequest("GET", f.srv.URL+"/tasks/", nil)
		req.AddCookie(ck)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), "Sign in with Mock") {
			t.Errorf("%s session: /tasks/ = %d", name, resp.StatusCode)
		}
	}
}

func TestParseAllowlist(t *testing.T) {
	for _, bad := range []string{"nobody", "a@b@c", "@", "x@", "two words@example.org"} {
		if _, err := web.ParseAllowlist(bad); err == nil {
			t.Errorf("ParseAllowlist(%q) accepted", bad)
		}
	}
	a, err := web.ParseAllowlist(" A@Example.org , ,@Uni.AC.uk")
	if err != nil {
		t.Fatal(err)
	}
	for email, want := range map[string]bool{"a@example.org": true, "b@example.org": false, "x@uni.ac.uk": true, "x@uni.ac.uk.evil": false} {
		if got := a.Admits(email); got != want {
			t.Errorf("Admits(%q) = %v", email, got)
		}
	}
}
