package settings_test

import (
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/platform/settings"
)

func env(v string) settings.Getenv {
	return func(name string) string {
		if name == "X" {
			return v
		}
		return ""
	}
}

func TestReaders(t *testing.T) {
	tests := []struct {
		value string
		read  func(settings.Getenv) (any, error)
		want  any    // the value read, when err is ""
		err   string // the error's text, which must start with the name
	}{
		{"", func(g settings.Getenv) (any, error) { return settings.Int(g, "X", 7, 1, 10) }, 7, ""},
		{" 3 ", func(g settings.Getenv) (any, error) { return settings.Int(g, "X", 7, 1, 10) }, 3, ""},
		{"11", func(g settings.Getenv) (any, error) { return settings.Int(g, "X", 7, 1, 10) }, nil, `X "11": want a whole number from 1 to 10`},
		{"2m", func(g settings.Getenv) (any, error) { return settings.Duration(g, "X", time.Second, 0, time.Hour) }, 2 * time.Minute, ""},
		{"2", func(g settings.Getenv) (any, error) { return settings.Duration(g, "X", time.Second, 0, time.Hour) }, nil, `X "2": want a duration from 0s to 1h0m0s, such as 30s`},
		{"", func(g settings.Getenv) (any, error) { return settings.Bool(g, "X") }, false, ""},
		{"true", func(g settings.Getenv) (any, error) { return settings.Bool(g, "X") }, true, ""},
		{"sure", func(g settings.Getenv) (any, error) { return settings.Bool(g, "X") }, nil, `X "sure": want true or false`},
		{"7d", func(g settings.Getenv) (any, error) {
			return settings.Days(g, "X", time.Hour, time.Hour, 30*24*time.Hour)
		}, 7 * 24 * time.Hour, ""},
		{"36h", func(g settings.Getenv) (any, error) {
			return settings.Days(g, "X", time.Hour, time.Hour, 30*24*time.Hour)
		}, 36 * time.Hour, ""},
		{"31d", func(g settings.Getenv) (any, error) {
			return settings.Days(g, "X", time.Hour, time.Hour, 30*24*time.Hour)
		}, nil, `X "31d": want a duration from 1h0m0s to 30 days, such as 30d or 12h`},
		{"512MiB", func(g settings.Getenv) (any, error) { return settings.Bytes(g, "X", 1, 1<<20, 1<<50) }, int64(512 << 20), ""},
		{"500MB", func(g settings.Getenv) (any, error) { return settings.Bytes(g, "X", 1, 1<<20, 1<<50) }, int64(500e6), ""},
		{"2097152", func(g settings.Getenv) (any, error) { return settings.Bytes(g, "X", 1, 1<<20, 1<<50) }, int64(2 << 20), ""},
		{"1KiB", func(g settings.Getenv) (any, error) { return settings.Bytes(g, "X", 1, 1<<20, 1<<50) }, nil, `X "1KiB": want a size from 1MiB to 1024TiB, in bytes or such as 512MiB or 2GiB`},
		{"lots", func(g settings.Getenv) (any, error) { return settings.Bytes(g, "X", 1, 1<<20, 1<<50) }, nil, `X "lots": want a size from 1MiB to 1024TiB, in bytes or such as 512MiB or 2GiB`},
	}
	for _, tt := range tests {
		got, err := tt.read(env(tt.value))
		switch {
		case tt.err != "":
			if err == nil || err.Error() != tt.err || !strings.HasPrefix(err.Error(), "X ") {
				t.Errorf("X=%q: err = %v, want %q", tt.value, err, tt.err)
			}
		case err != nil:
			t.Errorf("X=%q: %v", tt.value, err)
		case got != tt.want:
			t.Errorf("X=%q: got %v, want %v", tt.value, got, tt.want)
		}
	}
	if got := settings.String(env("  a "), "X", "def"); got != "a" {
		t.Errorf("String = %q, want a", got)
	}
	if got := settings.String(env(" "), "X", "def"); got != "def" {
		t.Errorf("String of a blank = %q, want the default", got)
	}
}
