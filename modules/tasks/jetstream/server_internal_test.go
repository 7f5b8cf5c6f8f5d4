package jetstream

import "testing"

func TestServerVersionBelowMinimumIsRefused(t *testing.T) {
	for _, tc := range []struct {
		version string
		ok      bool // parses and is at least MinServerVersion
	}{
		{"2.9.10", false},
		{"2.10.24", false},
		{"2.11.0", true},
		{"2.11.0-RC.1", true},
		{"v2.12.3", true},
		{"2.15.2", true},
		{"3.0.0", true},
		{"1.99.99", false},
		{"", false},
		{"2.11", false},
		{"two.eleven.zero", false},
	} {
		v, parsed := parseServerVersion(tc.version)
		if got := parsed && !v.less(MinServerVersion); got != tc.ok {
			t.Errorf("version %q: usable %v, want %v", tc.version, got, tc.ok)
		}
	}
}
