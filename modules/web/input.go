package web

import (
	"errors"
	"mime"
	"net/http"
	"net/url"

	"github.com/otjhelper/otj/platform/textcheck"
)

// checkInput passes every query parameter and urlencoded form field, name
// and value, through textcheck.Check before any handler reads it: a NUL
// byte, bytes that are not UTF-8 or a value past textcheck.MaxBytes is a
// 400 with a plain sentence, never a value that a database refuses (a
// 500) or a form's own rules forget to look at. A multipart body (the
// import's upload) is left to its handler: its file is checked, cell by
// cell, by the import job, with the same check.
//
// It runs after limitBodies, so that parsing the form here is bounded as
// it would be in the handler, which then finds it parsed.
func (s *server) checkInput(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err == nil {
			err = checkValues(q)
		}
		if err == nil && r.Method == http.MethodPost {
			if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
				if perr := r.ParseForm(); perr != nil {
					s.formError(w, r, perr)
					return
				}
				err = checkValues(r.PostForm)
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

// checkValues checks every name and value of v.
func checkValues(v url.Values) error {
	for name, vals := range v {
		if err := textcheck.Check(name); err != nil {
			return err
		}
		for _, val := range vals {
			if err := textcheck.Check(val); err != nil {
				return err
			}
		}
	}
	return nil
}

// reason is the part of the sentence that says what was wrong.
func reason(err error) string {
	switch {
	case errors.Is(err, textcheck.ErrNUL), errors.Is(err, textcheck.ErrNotUTF8), errors.Is(err, textcheck.ErrTooLong):
		return err.Error()
	}
	return "it is not a well-formed address" // a query url.ParseQuery refused
}
