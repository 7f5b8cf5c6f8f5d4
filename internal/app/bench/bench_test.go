package bench

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// noEnv is the app's settings for a bench that must stop at its flags:
// loading them is an error of its own.
func noEnv(t *testing.T) func() (Env, error) {
	return func() (Env, error) {
		t.Error("the settings were loaded")
		return Env{}, errNoEnv
	}
}

// TestBenchBadFlags checks each bad flag is refused in one line naming it,
// before anything starts.
func TestBenchBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"--broker", "kafka"}, "--broker"},
		{[]string{"--jobs", "0"}, "--jobs"},
		{[]string{"--jobs", "many"}, "-jobs"},
		{[]string{"--concurrency", "0"}, "--concurrency"},
		{[]string{"--concurrency", "5000"}, "--concurrency"},
		{[]string{"--batch", "-1"}, "--batch"},
		{[]string{"--rate", "0"}, "--rate"},
		{[]string{"--rate", "10", "--duration", "50ms"}, "--duration"},
		{[]string{"--duration", "soon"}, "-duration"},
		{[]string{"--runs", "0"}, "--runs"},
		{[]string{"--fast"}, "-fast"},
		{[]string{"extra"}, "extra"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := Run(t.Context(), tc.args, noEnv(t), &stdout, &stderr)
			if err == nil {
				t.Fatal("no error")
			}
			if msg := err.Error(); !strings.Contains(msg, tc.flag) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line naming %s", msg, tc.flag)
			}
			if stdout.Len()+stderr.Len() > 0 {
				t.Errorf("printed something:\n%s%s", stdout.String(), stderr.String())
			}
		})
	}
}

// TestBenchHelp checks -h prints the help and the flags, and is no error.
func TestBenchHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := Run(t.Context(), []string{"-h"}, noEnv(t), &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"usage: app bench", "NATS_URL", "-concurrency", "-json"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, stdout.String())
		}
	}
}

var errNoEnv = errors.New("no settings in this test")

// TestBenchDrainFlag checks the drain phase is on unless --drain=false.
func TestBenchDrainFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{nil, true},
		{[]string{"--drain=false"}, false},
		{[]string{"--drain"}, true},
	} {
		o, err := parseBenchFlags(tc.args, io.Discard)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if o.drain != tc.want {
			t.Errorf("%q: drain %v, want %v", tc.args, o.drain, tc.want)
		}
		if s := newBenchSettings(o, Env{}); s.Drain != tc.want || strings.Contains(s.describe(), "no drain phase") == tc.want {
			t.Errorf("%q: settings %+v say %q", tc.args, s, s.describe())
		}
	}
}

// TestBenchSummarizeDrain checks the drain figures get a median and a
// spread like the others, keep their batch size, and are printed; and
// that runs without a drain phase show none.
func TestBenchSummarizeDrain(t *testing.T) {
	runs := make([]benchFigures, 3)
	for i, v := range []float64{30, 10, 20} {
		runs[i].EndToEndPerS = v
		runs[i].Drain = &drainFigures{EnqueuePerS: v * 10, DrainPerS: v, ProjectionCaughtUpS: v / 1000, CPUPerJobUS: v * 2, EnqueueBatch: 500}
	}
	rep := summarize(runs)
	med, lo, hi := rep.Drain, rep.Spread.Min.Drain, rep.Spread.Max.Drain
	if med == nil || lo == nil || hi == nil {
		t.Fatalf("no drain in the summary: %+v", rep)
	}
	want := []drainFigures{
		{EnqueuePerS: 200, DrainPerS: 20, ProjectionCaughtUpS: 0.02, CPUPerJobUS: 40, EnqueueBatch: 500},
		{EnqueuePerS: 100, DrainPerS: 10, ProjectionCaughtUpS: 0.01, CPUPerJobUS: 20, EnqueueBatch: 500},
		{EnqueuePerS: 300, DrainPerS: 30, ProjectionCaughtUpS: 0.03, CPUPerJobUS: 60, EnqueueBatch: 500},
	}
	for i, got := range []*drainFigures{med, lo, hi} {
		if *got != want[i] {
			t.Errorf("drain %d: got %+v, want %+v", i, *got, want[i])
		}
	}
	if rep.EndToEndPerS != 20 {
		t.Errorf("end to end median %v, want 20 beside the drain", rep.EndToEndPerS)
	}
	var table strings.Builder
	if err := printBenchTable(&table, rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "drain, worker started on a full queue") {
		t.Errorf("table lacks the drain:\n%s", table.String())
	}

	for i := range runs {
		runs[i].Drain = nil
	}
	rep = summarize(runs)
	table.Reset()
	if err := printBenchTable(&table, rep); err != nil {
		t.Fatal(err)
	}
	if rep.Drain != nil || strings.Contains(table.String(), "drain, worker") {
		t.Errorf("runs without a drain phase show one: %+v\n%s", rep.Drain, table.String())
	}
}
