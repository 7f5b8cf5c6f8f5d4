package web

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"

	"github.com/otjhelper/otj/platform/textcheck"
)

// checkInput passes every query parameter and urlencoded form field, name
// and value, through textcheck.Check before any handler reads it: a NUL
// byte, bytes that are not UTF-8 or a query value past textcheck.MaxBytes
// is a 400 with a plain sentence, never a value that a database refuses
// (a 500) or a form's own rules forget to look at. A form field's length
// is left to the request's body bound and the form's own limits, which
// say which field and how long it may be (a 413 or the form again). A
// multipart body (the import's upload) is left to its handler: its file
// is checked, cell by cell, by the import job, with the same check.
//
// It runs after limitBodies, so that reading the form here is bounded as
// it is in the handler, which then reads it again, as it was sent.
func (s *server) checkInput(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err == nil {
			err = checkValues(q)
		}
		if err == nil && r.Method == http.MethodPost && r.Body != nil && r.Body != http.NoBody {
			if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
				body, rerr := io.ReadAll(r.Body)
				r.Body = rewound(r, body, rerr)
				if rerr != nil {
					// Past the bound, or cut off: the handler meets the
					// error where it reads the form, and answers it as
					// it would have (a form's own bound and sentence).
					next.ServeHTTP(w, r)
					return
				}
				// A form that is not well formed is the handler's 400.
				form, _ := url.ParseQuery(string(body))
				if err = checkValues(form); errors.Is(err, textcheck.ErrTooLong) {
					err = nil
				}
			}
		}
		if err != nil {
			s.log.InfoContext(r.Context(), "request refused: bad input", "method", r.Method, "path", r.URL.Path, "err", err)
			s.fail(w, r, http.StatusBadRequest, "Bad request",
				"What was sent with this page could not be read: "+reason(err)+". Go back and try again without it.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// rewound is r's body again, for the handler, after checkInput read it:
// the bytes read, then the error the read ended with, if any; still
// under the request's bound, which the route may have changed by the
// time the handler reads it (BodyLimit), and still closing the original.
func rewound(r *http.Request, read []byte, err error) io.ReadCloser {
	var rest io.Reader = bytes.NewReader(read)
	if err != nil {
		rest = io.MultiReader(rest, errReader{err})
	}
	rc := readCloser{Reader: rest, Closer: r.Body}
	if lim, ok := r.Context().Value(bodyLimitKey{}).(*bodyLimit); ok {
		return &limitedBody{rc: rc, lim: lim, length: r.ContentLength}
	}
	return rc
}

type readCloser struct {
	io.Reader
	io.Closer
}

// errReader fails every read with err.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// checkValues checks every name and value of v; a NUL or bytes that are
// not UTF-8 anywhere come before a value that is too long.
func checkValues(v url.Values) error {
	var long error
	for name, vals := range v {
		for _, s := range append([]string{name}, vals...) {
			switch err := textcheck.Check(s); {
			case errors.Is(err, textcheck.ErrTooLong):
				long = err
			case err != nil:
				return err
			}
		}
	}
	return long
}

// reason is the part of the sentence that says what was wrong.
func reason(err error) string {
	switch {
	case errors.Is(err, textcheck.ErrNUL), errors.Is(err, textcheck.ErrNotUTF8), errors.Is(err, textcheck.ErrTooLong):
		return err.Error()
	}
	return "it is not a well-formed address" // a query url.ParseQuery refused
}
