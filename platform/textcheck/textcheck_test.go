package textcheck_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/otjhelper/otj/platform/textcheck"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{"", nil},
		{"plain", nil},
		{"naïve café £5 🙂\n\ttab", nil},
		{strings.Repeat("x", textcheck.MaxBytes), nil},
		{strings.Repeat("x", textcheck.MaxBytes+1), textcheck.ErrTooLong},
		{"a\x00b", textcheck.ErrNUL},
		{"\x00", textcheck.ErrNUL},
		{"\xff\xfe", textcheck.ErrNotUTF8},
		{"caf\xe9", textcheck.ErrNotUTF8},      // Latin-1
		{"\xed\xa0\x80", textcheck.ErrNotUTF8}, // a surrogate
		{"\xff\x00", textcheck.ErrNUL},
		{strings.Repeat("x", textcheck.MaxBytes) + "\x00", textcheck.ErrNUL},
		{strings.Repeat("x", textcheck.MaxBytes) + "\xff", textcheck.ErrNotUTF8},
	}
	for _, tt := range tests {
		if err := textcheck.Check(tt.in); !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
			t.Errorf("Check(%.20q) = %v, want %v", tt.in, err, tt.want)
		}
	}
}
