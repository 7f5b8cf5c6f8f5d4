package apptest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/otjhelper/otj/internal/app/bench"
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
	err := runBench(testsupport.Context(t), []string{"report", "--activities", "500", "--runs", "1", "--json"}, mapEnv(nil), &stdout, &stderr)
	if err != nil {
		t.Fatalf("bench report: %v\n%s", err, stderr.String())
	}
	var rep bench.ReportResult
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
	if r := s.Runs[0]; r.XLSXSeconds <= 0 || s.XLSXSeconds != r.XLSXSeconds || r.XLSXBytes < 500*10 || s.XLSXMB <= 0 || s.XLSXPeakRSSMB <= 1 || s.XLSXPeakRSSMB > 4096 {
		t.Errorf("xlsx figures %+v: want a positive time, a workbook and its peak RSS", r)
	}
	if rep.Settings.GOMAXPROCS < 1 || rep.Settings.GoVersion == "" {
		t.Errorf("settings %+v", rep.Settings)
	}
	if !strings.Contains(stderr.String(), "500 activities, run 1:") {
		t.Errorf("no progress line on stderr:\n%s", stderr.String())
	}
}
