package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The global bound applies unless the route's own BodyLimit changes it,
// larger or smaller, whatever Content-Length says (or when it says
// nothing, as with a chunked body).
func TestBodyLimits(t *testing.T) {
	s := &server{cfg: Config{BodyLimit: 100}}
	tests := []struct {
		name    string
		route   int64 // 0: no BodyLimit on the route
		n       int
		chunked bool
		tooBig  bool
	}{
		{"global, within", 0, 100, false, false},
		{"global, past", 0, 101, false, true},
		{"global, past, chunked", 0, 101, true, true},
		{"route larger, within", 1000, 1000, false, false},
		{"route larger, past", 1000, 1001, true, true},
		{"route smaller, past", 10, 11, false, true},
		{"empty", 0, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got int
			var err error
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var b []byte
				b, err = io.ReadAll(r.Body)
				got = len(b)
			})
			var routed http.Handler = h
			if tt.route > 0 {
				routed = BodyLimit(tt.route)(h)
			}
			req := httptest.NewRequest("POST", "/", strings.NewReader(strings.Repeat("x", tt.n)))
			if tt.chunked {
				req.ContentLength = -1
			}
			s.limitBodies(routed).ServeHTTP(httptest.NewRecorder(), req)
			if TooLarge(err) != tt.tooBig {
				t.Fatalf("read %d of %d bytes: err %v, want too large: %v", got, tt.n, err, tt.tooBig)
			}
			if !tt.tooBig && got != tt.n {
				t.Errorf("read %d of %d bytes", got, tt.n)
			}
		})
	}
}
