package web_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/otjhelper/otj/modules/web"
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
