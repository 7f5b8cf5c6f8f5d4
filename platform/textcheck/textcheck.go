// Package textcheck is the one check every piece of text from outside
// passes before anything reads it: each query parameter and form field
// (the web's middleware) and each cell of an imported CSV (the import
// job). It refuses what a database refuses or mangles, a NUL byte or
// bytes that are not UTF-8 (PostgreSQL rejects both in text; bun and
// SQLite break on a NUL), and text longer than any field the app has,
// so that no such value reaches a query and comes back as a 500 or a
// retried job.
package textcheck

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxBytes is the longest value the check passes: well above the largest
// field a form or a report has (10,000 characters of a description, at
// most 40,000 bytes), so that a form's own limits, with their friendlier
// messages, are met first.
const MaxBytes = 64 << 10

// The reasons a value is refused; Check wraps one of them.
var (
	ErrNUL     = errors.New("it holds a NUL byte")
	ErrNotUTF8 = errors.New("it is not UTF-8 text")
	ErrTooLong = fmt.Errorf("it is longer than %d KiB", MaxBytes>>10)
)

// Check returns nil for text the app can store, or ErrNUL, ErrNotUTF8 or
// ErrTooLong, in that order of precedence (so that a caller with a length
// bound of its own can tell the bytes apart); its message is a plain
// phrase ("it holds a NUL byte") a caller can put in a sentence to the
// user.
func Check(s string) error {
	switch {
	case strings.IndexByte(s, 0) >= 0:
		return ErrNUL
	case !utf8.ValidString(s):
		return ErrNotUTF8
	case len(s) > MaxBytes:
		return ErrTooLong
	}
	return nil
}
