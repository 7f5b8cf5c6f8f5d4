package web

import (
	"context"
	"errors"
	"io"
	"net/http"
)

// DefaultBodyLimit bounds a request's body unless its route says
// otherwise (Config.BodyLimit): forms are a few kilobytes.
const DefaultBodyLimit = 1 << 20

type bodyLimitKey struct{}

// bodyLimit is the bound of one request's body, which a route's own
// BodyLimit may change after the global middleware set the default.
type bodyLimit struct{ n int64 }

// limitBodies bounds every request's body, at Config.BodyLimit unless
// the route it reaches wraps its handler in BodyLimit. It runs before
// routing, so it cannot know the route: it puts the bound in the
// request's context and reads it only when the handler reads the body.
func (s *server) limitBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lim := &bodyLimit{n: s.cfg.BodyLimit}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &limitedBody{rc: r.Body, lim: lim, length: r.ContentLength}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), bodyLimitKey{}, lim)))
	})
}

// BodyLimit gives the routes it wraps their own bound of n bytes in
// place of the global one, such as a larger one for an upload:
//
//	r.With(web.BodyLimit(32<<20)).Post("/activities/import", s.importActivities)
//
// A body past the bound fails to read with *http.MaxBytesError; see
// TooLarge.
func BodyLimit(n int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if lim, ok := r.Context().Value(bodyLimitKey{}).(*bodyLimit); ok {
				lim.n = n
			} else {
				r.Body = http.MaxBytesReader(w, r.Body, n)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// TooLarge reports whether err, from reading a request's body, means the
// body was past its bound: the answer is then 413, not 400.
func TooLarge(err error) bool {
	var mb *http.MaxBytesError
	return errors.As(err, &mb)
}

// limitedBody is a request body that fails past its request's bound,
// read at each Read so that a route's BodyLimit applies.
type limitedBody struct {
	rc     io.ReadCloser
	lim    *bodyLimit
	length int64 // Content-Length, -1 if unknown
	read   int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n := b.lim.n
	if b.length > n || b.read > n {
		return 0, &http.MaxBytesError{Limit: n}
	}
	// Read one byte past the bound, to tell "exactly n" from "more".
	if left := n - b.read + 1; int64(len(p)) > left {
		p = p[:left]
	}
	k, err := b.rc.Read(p)
	b.read += int64(k)
	if b.read > n {
		return k - int(b.read-n), &http.MaxBytesError{Limit: n}
	}
	return k, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// formError answers a form that could not be read: 413 when it was past
// its bound, 400 otherwise.
func (s *server) formError(w http.ResponseWriter, r *http.Request, err error) {
	if TooLarge(err) {
		var mb *http.MaxBytesError
		errors.As(err, &mb)
		// The rest of the body is not read: close the connection after.
		w.Header().Set("Connection", "close")
		s.fail(w, r, http.StatusRequestEntityTooLarge, "Request too large",
			"What was sent is larger than this page accepts ("+humanSize(mb.Limit)+" at most).")
		return
	}
	s.fail(w, r, http.StatusBadRequest, "Bad request", "The form could not be read. Reload the page and try again.")
}
