package bench

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func TestBenchReportFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args    []string
		want    []int
		wantErr string
	}{
		{nil, []int{10000, 100000, 1000000}, ""},
		{[]string{"--activities", "1_000, 20"}, []int{1000, 20}, ""},
		{[]string{"--activities", "ten"}, nil, "--activities"},
		{[]string{"--activities", "-5"}, nil, "--activities"},
		{[]string{"--runs", "0"}, nil, "--runs"},
		{[]string{"--child", "--activities", "1,2"}, nil, "--child runs one size"},
		{[]string{"extra"}, nil, "unexpected argument"},
	}
	for _, tt := range tests {
		o, err := parseBenchReportFlags(tt.args, &bytes.Buffer{})
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: err = %v, want one about %s", tt.args, err, tt.wantErr)
			}
		case err != nil:
			t.Errorf("%q: %v", tt.args, err)
		case !slices.Equal(o.sizes, tt.want) || o.runs < 1:
			t.Errorf("%q: sizes %v runs %d, want %v", tt.args, o.sizes, o.runs, tt.want)
		}
	}
	var help bytes.Buffer
	if _, err := parseBenchReportFlags([]string{"-h"}, &help); err == nil || !strings.Contains(help.String(), "--activities") || strings.Contains(help.String(), "--child") {
		t.Errorf("help %q, err %v: want the flags, not --child", help.String(), err)
	}
}
