// Package settings reads a process's settings from its environment, one
// variable at a time, each checked against its bounds. A bad value is an
// error that starts with the variable's name and fits on one line, so a
// misconfigured process can stop saying exactly what to fix.
package settings

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Getenv looks a variable up, as os.Getenv does; tests pass a map's.
type Getenv func(string) string

// String is the variable's value with spaces trimmed, or def when it is
// unset or blank.
func String(getenv Getenv, name, def string) string {
	if v := strings.TrimSpace(getenv(name)); v != "" {
		return v
	}
	return def
}

// Int reads a whole number from lo to hi; unset, it is def.
func Int(getenv Getenv, name string, def, lo, hi int) (int, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s %q: want a whole number from %d to %d", name, v, lo, hi)
	}
	return n, nil
}

// Duration reads a Go duration (30s, 5m) from lo to hi; unset, it is def.
func Duration(getenv Getenv, name string, def, lo, hi time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		return 0, fmt.Errorf("%s %q: want a duration from %s to %s, such as 30s", name, v, lo, hi)
	}
	return d, nil
}

// Bool reads true or false (and the other spellings strconv.ParseBool
// takes); unset, it is false.
func Bool(getenv Getenv, name string) (bool, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s %q: want true or false", name, v)
	}
	return b, nil
}

// Days reads a lifetime: whole days (30d) or a Go duration (12h), from lo
// to hi; unset, it is def.
func Days(getenv Getenv, name string, def, lo, hi time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(v, "d"); ok {
		var n int
		if n, err = strconv.Atoi(days); err == nil {
			d = time.Duration(n) * 24 * time.Hour
		}
	} else {
		d, err = time.ParseDuration(v)
	}
	if err != nil || d < lo || d > hi {
		return 0, fmt.Errorf("%s %q: want a duration from %s to %d days, such as 30d or 12h", name, v, lo, hi/(24*time.Hour))
	}
	return d, nil
}

// byteUnits are the suffixes Bytes accepts, longest first.
var byteUnits = []struct {
	suffix string
	n      int64
}{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1},
}

// Bytes reads a size, from lo to hi bytes: whole bytes, or a whole number
// with a unit such as 512MiB, 2GiB or 500MB; unset, it is def.
func Bytes(getenv Getenv, name string, def, lo, hi int64) (int64, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	num, unit := v, int64(1)
	for _, u := range byteUnits {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			num, unit = strings.TrimSpace(n), u.n
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < lo/unit || n > hi/unit || n*unit < lo {
		return 0, fmt.Errorf("%s %q: want a size from %s to %s, in bytes or such as 512MiB or 2GiB", name, v, size(lo), size(hi))
	}
	return n * unit, nil
}

// size writes n in the largest binary unit that divides it.
func size(n int64) string {
	for _, u := range byteUnits[:4] {
		if n >= u.n && n%u.n == 0 {
			return strconv.FormatInt(n/u.n, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
