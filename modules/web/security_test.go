package web_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/web"
	"github.com/otjhelper/otj/platform/session"
	"github.com/otjhelper/otj/platform/testsupport"
)

// Every route taking a task id answers anything that is not a job id
// with the plain 404 page, before the id reaches storage or the broker.
func TestEveryIDRouteRefusesMalformedIDs(t *testing.T) {
	routes, err := web.IDRoutes()
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) < 4 {
		t.Fatalf("found only %v: the walk no longer sees the task routes", routes)
	}
	ctl := &fakeControl{}
	hist := &fakeHistory{}
	f := newFixture(t, web.Config{Enqueuer: &fakeEnqueuer{}, Control: ctl, History: hist})
	bad := map[string]string{
		"NUL":          "%00",
		"NUL inside":   "job%001",
		"overlong":     strings.Repeat("a", 65),
		"dotted":       "a.b",
		"dash":         "generate-report",
		"wildcard":     "%2A",
		"subject tail": "%3E",
		"space":        "a%20b",
		"non-ascii":    "%C3%A9",
		"percent":      "%25",
	}
	c := f.client(t, f.alice)
	for _, rt := range routes {
		for name, id := range bad {
			path := strings.Replace(rt[1], "{id}", id, 1)
			t.Run(rt[0]+" "+rt[1]+" "+name, func(t *testing.T) {
				req, err := http.NewRequest(rt[0], f.srv.URL+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				body := string(b)
				if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "not yours to see") {
					t.Fatalf("%s %s = %d:\n%s", rt[0], path, resp.StatusCode, body)
				}
			})
		}
	}
	if calls := ctl.Calls(); len(calls) != 0 {
		t.Errorf("malformed ids reached the broker: %+v", calls)
	}
}

// wantSecurityHeaders fails unless resp carries the headers every
// response of the app must.
func wantSecurityHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	for name, want := range map[string]string{
		"Content-Security-Policy": "default-src 'self'",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "same-origin",
	} {
		if got := resp.Header.Get(name); !strings.Contains(got, want) {
			t.Errorf("%s: %s = %q, want %q in it", resp.Request.URL.Path, name, got, want)
		}
	}
}

// Every kind of response carries the security headers, the refusals and
// errors included.
func TestEveryResponseCarriesSecurityHeaders(t *testing.T) {
	ctl := &fakeControl{err: errors.New("decode event 7: invalid character")}
	f := newFixture(t, web.Config{Enqueuer: &fakeEnqueuer{}, Control: ctl})
	alice := f.client(t, f.alice)
	tests := []struct {
		name   string
		c      *http.Client
		method string
		path   string
		header []string
		status int
	}{
		{"page", alice, "GET", "/tasks/", nil, 200},
		{"redirect", alice, "GET", "/", nil, 303},
		{"not signed in", http.DefaultClient, "GET", "/tasks/", nil, 401},
		{"cross-site refusal", alice, "POST", "/tasks/generate-report", []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"foreign origin refusal", alice, "POST", "/tasks/job1/cancel", []string{"Origin", "https://evil.example"}, 403},
		{"unknown path", alice, "GET", "/nope", nil, 404},
		{"malformed id", alice, "GET", "/tasks/%00/download", nil, 404},
		{"wrong method", alice, "GET", "/tasks/job1/cancel", nil, 405},
		{"server error", alice, "POST", "/tasks/job1/cancel", nil, 500},
		{"static file", http.DefaultClient, "GET", "/static/style.css", nil, 200},
		{"static file missing", http.DefaultClient, "GET", "/static/nope.css", nil, 404},
		{"health", http.DefaultClient, "GET", "/healthz", nil, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, f.srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i+1 < len(tt.header); i += 2 {
				req.Header.Set(tt.header[i], tt.header[i+1])
			}
			resp, err := tt.c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("%s %s = %d, want %d", tt.method, tt.path, resp.StatusCode, tt.status)
			}
			wantSecurityHeaders(t, resp)
		})
	}
}

// postWith posts a report request to path on f as alice, with the given
// Host and extra headers, and returns the status.
func postWith(t *testing.T, f *fixture, path, host string, header ...string) int {
	t.Helper()
	c := f.client(t, f.alice)
	if host != "" {
		// The client sends the cookies of the Host it names.
		c = testsupport.Client(t, "http://"+host, testsupport.Signer(t), f.alice.ID)
	}
	req, err := http.NewRequest("POST", f.srv.URL+path, strings.NewReader(url.Values{"key": {"K1"}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if host != "" {
		req.Host = host
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	wantSecurityHeaders(t, resp)
	return resp.StatusCode
}

// A browser too old to send Sec-Fetch-Site still sends Origin, which
// must name the app's own origin, scheme included: a page on
// https://<the app's host> is another origin than an app on plain HTTP.
// With BaseURL, the app's origin is BaseURL's scheme and host.
func TestOriginMustBeTheAppsOwn(t *testing.T) {
	tests := []struct {
		name    string
		baseURL string
		host    string // the request's Host; "" for the test server's
		origin  string // "{host}" stands for the test server's address
		status  int
	}{
		{"plain HTTP, same origin", "", "", "http://{host}", http.StatusSeeOther},
		{"plain HTTP, https on the same host", "", "", "https://{host}", http.StatusForbidden},
		{"plain HTTP, another port", "", "", "http://127.0.0.1:1", http.StatusForbidden},
		{"plain HTTP, no Origin (not a browser)", "", "", "", http.StatusSeeOther},
		{"BASE_URL https, its origin", "https://otj.example.org", "otj.example.org", "https://otj.example.org", http.StatusSeeOther},
		{"BASE_URL https, default port spelt out", "https://otj.example.org:443", "otj.example.org", "https://otj.example.org", http.StatusSeeOther},
		{"BASE_URL https, plain http origin", "https://otj.example.org", "otj.example.org", "http://otj.example.org", http.StatusForbidden},
		{"BASE_URL https, the server's own address", "https://otj.example.org", "", "http://{host}", http.StatusForbidden},
		{"BASE_URL http, its origin", "http://otj.example.org:8080/", "otj.example.org:8080", "http://otj.example.org:8080", http.StatusSeeOther},
		{"BASE_URL http, https origin", "http://otj.example.org:8080", "otj.example.org:8080", "https://otj.example.org:8080", http.StatusForbidden},
		{"opaque origin", "", "", "null", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enq := &fakeEnqueuer{}
			cfg := web.Config{Enqueuer: enq}
			if tt.baseURL != "" {
				u, err := url.Parse(tt.baseURL)
				if err != nil {
					t.Fatal(err)
				}
				cfg.BaseURL = u
				if u.Scheme == "https" {
					cfg.Sessions = secureSigner(t)
				}
			}
			f := newFixture(t, cfg)
			var hdr []string
			if tt.origin != "" {
				hdr = []string{"Origin", strings.ReplaceAll(tt.origin, "{host}", strings.TrimPrefix(f.srv.URL, "http://"))}
			}
			if got := postWith(t, f, "/tasks/generate-report", tt.host, hdr...); got != tt.status {
				t.Fatalf("POST with Origin %q = %d, want %d", tt.origin, got, tt.status)
			}
			if enqueued := len(enq.calls) == 1; enqueued != (tt.status == http.StatusSeeOther) {
				t.Errorf("enqueued %d reports on a %d", len(enq.calls), tt.status)
			}
		})
	}
}

// secureSigner signs with the test key and marks its cookies Secure.
func secureSigner(t *testing.T) *session.Signer {
	t.Helper()
	s, err := session.NewSigner([]byte(testsupport.TestSecretKey), session.Secure(true))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Served over HTTPS (BaseURL https), every response tells the browser to
// come back only over HTTPS; served over plain HTTP, none does, since
// browsers ignore it there and a test install on HTTP must stay reachable.
func TestHSTSOnlyOverHTTPS(t *testing.T) {
	for _, base := range []string{"", "http://otj.example.org", "https://otj.example.org"} {
		t.Run("BASE_URL="+base, func(t *testing.T) {
			cfg := web.Config{Enqueuer: &fakeEnqueuer{}}
			if base != "" {
				cfg.BaseURL, _ = url.Parse(base)
				if cfg.BaseURL.Scheme == "https" {
					cfg.Sessions = secureSigner(t)
				}
			}
			f := newFixture(t, cfg)
			alice := f.client(t, f.alice)
			for _, path := range []string{"/healthz", "/tasks/", "/nope", "/static/style.css"} {
				resp, _ := testsupport.Get(t, alice, f.srv.URL+path)
				wantSecurityHeaders(t, resp)
				got := resp.Header.Get("Strict-Transport-Security")
				if strings.HasPrefix(base, "https:") != strings.HasPrefix(got, "max-age=") {
					t.Errorf("GET %s: Strict-Transport-Security = %q", path, got)
				}
			}
			code := postWith(t, f, "/tasks/generate-report", "", "Sec-Fetch-Site", "cross-site")
			if code != http.StatusForbidden {
				t.Errorf("cross-site POST = %d", code)
			}
		})
	}
}

// An app served over HTTPS issues only Secure session cookies, and one
// on plain HTTP only cookies the browser will send back over it.
func TestSessionCookiesMatchTheScheme(t *testing.T) {
	tests := []struct {
		base    string
		secure  bool
		wantErr bool
	}{
		{"", false, false},
		{"", true, true},
		{"http://otj.example.org", false, false},
		{"https://otj.example.org", true, false},
		{"https://otj.example.org", false, true},
		{"http://otj.example.org", true, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s secure=%v", tt.base, tt.secure), func(t *testing.T) {
			signer := testsupport.Signer(t)
			if tt.secure {
				signer = secureSigner(t)
			}
			cfg := web.Config{
				Tasks: &fakeTasks{}, Enqueuer: &fakeEnqueuer{}, Control: &fakeControl{}, History: &fakeHistory{},
				Results: noResults{}, Sessions: signer, Kinds: reportKinds,
			}
			db, _ := testsupport.DB(t)
			store := activity.NewStore(db)
			cfg.Users, cfg.Activities = store, store
			if tt.base != "" {
				cfg.BaseURL, _ = url.Parse(tt.base)
			}
			_, err := web.New(cfg)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("web.New: %v, want an error: %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "Secure") {
				t.Errorf("error %q does not say what is wrong", err)
			}
		})
	}
}
