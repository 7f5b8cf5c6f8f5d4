package main

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/otjhelper/otj/platform/testsupport"
)

// TestBenchReport runs app bench report at a small size, as its own child
// process (this test binary, which runs main for it: see TestMain), and
// checks the figures make sense. It does not judge them: a benchmark is
// not a timed test.
func TestBenchReport(t *testing.T) {
	// The child inherits the environment; this makes it run main.
	t.Setenv(runMainEnv, "1")
	var stdout, stderr bytes.Buffer
	err := runBenchReport(testsupport.Context(t), []string{"--activities", "500", "--runs", "1", "--json"}, mapEnv(nil), &stdout, &stderr)
	if err != nil {
		t.Fatalf("bench report: %v\n%s", err, stderr.String())
	}
	var rep benchReportResult
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
	}
	if len(rep.Sizes) != 1 || rep.Runs != 1 {
		t.Fatalf("report %+v, want one size of one run", rep)
	}
	s := rep.Sizes[0]
	if s.Activities != 500 || len(s.Runs) != 1 {
		t.Errorf("size %+v, want 500 activities, one run", s)
	}
	if s.Seconds.Median <= 0 || s.Seconds.Min != s.Seconds.Median || s.Seconds.Max != s.Seconds.Median {
		t.Errorf("seconds %+v: want one positive time", s.Seconds)
	}
	if want := 500 / s.Seconds.Median; s.RowsPerS < want*0.99 || s.RowsPerS > want*1.01 {
		t.Errorf("rows/s %.0f, want %.0f", s.RowsPerS, want)
	}
	if s.PeakRSSMB <= 1 || s.PeakRSSMB > 4096 || s.ProcessPeakRSSMB < s.PeakRSSMB*0.5 {
		t.Errorf("peak RSS %.1f MB, of the process %.1f MB", s.PeakRSSMB, s.ProcessPeakRSSMB)
	}
	if r := s.Runs[0]; r.Summary != "500 activities" || r.Bytes < 500*20 || s.CSVMB <= 0 {
		t.Errorf("run %+v: want the summary of 500 activities and their CSV", r)
	}
	if rep.Settings.GOMAXPROCS < 1 || rep.Settings.GoVersion == "" {
		t.Errorf("settings %+v", rep.Settings)
	}
	if !strings.Contains(stderr.String(), "500 activities, run 1:") {
		t.Errorf("no progress line on stderr:\n%s", stderr.String())
	}
}

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
