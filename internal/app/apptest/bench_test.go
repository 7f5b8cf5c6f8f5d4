package apptest

import (
	"bytes"
	"encoding/json"
	"maps"
	"strings"
	"testing"

	"github.com/otjhelper/otj/platform/testsupport"
)

// TestBench runs app bench with small settings on each broker and checks
// its JSON: every figure there and positive, percentiles in order. The
// figures' sizes are not checked: a benchmark is not a timed test.
func TestBench(t *testing.T) {
	eachBroker(t, func(t *testing.T, broker map[string]string) {
		env := baseEnv(t)
		maps.Copy(env, broker)
		var stdout, stderr bytes.Buffer
		args := []string{"--jobs", "200", "--batch", "50", "--rate", "100", "--duration", "1s", "--runs", "1", "--json"}
		if err := runBench(testsupport.Context(t), args, mapEnv(env), &stdout, &stderr); err != nil {
			t.Fatalf("bench: %v\nstderr:\n%s", err, stderr.String())
		}
		var rep map[string]any
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			t.Fatalf("output is not one JSON object: %v\n%s", err, stdout.String())
		}
		checkFigures(t, "", rep)
		for _, key := range []string{"runs", "spread", "settings"} {
			if rep[key] == nil {
				t.Errorf("no %q in %s", key, stdout.String())
			}
		}
		if runs, _ := rep["runs"].([]any); len(runs) != 1 {
			t.Errorf("runs: got %d, want 1", len(runs))
		} else {
			checkFigures(t, "runs[0].", runs[0].(map[string]any))
		}
		spread, _ := rep["spread"].(map[string]any)
		lo, _ := spread["min"].(map[string]any)
		hi, _ := spread["max"].(map[string]any)
		checkFigures(t, "spread.min.", lo)
		checkFigures(t, "spread.max.", hi)
		for _, key := range []string{"enqueue_per_s", "end_to_end_per_s", "peak_rss_mb"} {
			if !(num(lo, key) <= num(rep, key) && num(rep, key) <= num(hi, key)) {
				t.Errorf("%s: median %v outside the spread %v-%v", key, rep[key], lo[key], hi[key])
			}
		}
		settings, _ := rep["settings"].(map[string]any)
		wantBroker := "jetstream"
		if broker["TASKS_BROKER"] != "" {
			wantBroker = broker["TASKS_BROKER"]
		}
		if settings["broker"] != wantBroker || settings["jobs"] != 200.0 || settings["go_version"] == "" {
			t.Errorf("settings: %v", settings)
		}
		if !strings.Contains(stderr.String(), "run 1 of 1") {
			t.Errorf("no progress on stderr:\n%s", stderr.String())
		}
	})
}

// checkFigures checks one set of figures: medians, a run's, or a bound
// of the spread.
func checkFigures(t *testing.T, where string, f map[string]any) {
	t.Helper()
	for _, key := range []string{"enqueue_per_s", "end_to_end_per_s", "latency_rate_per_s", "peak_rss_mb"} {
		if num(f, key) <= 0 {
			t.Errorf("%s%s: got %v, want a positive number", where, key, f[key])
		}
	}
	// The projection may commit a job's success the very moment the
	// worker hears it stored: zero is a possible measurement.
	if num(f, "projection_caught_up_s") < 0 {
		t.Errorf("%sprojection_caught_up_s: got %v, want 0 or more", where, f["projection_caught_up_s"])
	}
	batch, _ := f["batch"].(map[string]any)
	if batch == nil {
		t.Errorf("%sbatch: missing", where)
	}
	for _, key := range []string{"enqueue_per_s", "end_to_end_per_s"} {
		if num(batch, key) <= 0 {
			t.Errorf("%sbatch.%s: got %v, want a positive number", where, key, batch[key])
		}
	}
	// The drain phase runs by default.
	drain, _ := f["drain"].(map[string]any)
	for _, key := range []string{"enqueue_per_s", "drain_per_s", "cpu_us_per_job"} {
		if num(drain, key) <= 0 {
			t.Errorf("%sdrain.%s: got %v, want a positive number", where, key, drain[key])
		}
	}
	if num(drain, "projection_caught_up_s") < 0 {
		t.Errorf("%sdrain.projection_caught_up_s: got %v, want 0 or more", where, drain["projection_caught_up_s"])
	}
	start, _ := f["start_latency_ms"].(map[string]any)
	visible, _ := f["visible_latency_ms"].(map[string]any)
	for name, p := range map[string]map[string]any{"start_latency_ms": start, "visible_latency_ms": visible} {
		if !(0 < num(p, "p50") && num(p, "p50") <= num(p, "p95") && num(p, "p95") <= num(p, "p99")) {
			t.Errorf("%s%s: want 0 < p50 <= p95 <= p99, got %v", where, name, p)
		}
	}
	// Each job shows completed after its handler started, so every
	// percentile of the one is above the same of the other.
	for _, q := range []string{"p50", "p95", "p99"} {
		if num(visible, q) < num(start, q) {
			t.Errorf("%s%s: visible %v before start %v", where, q, visible[q], start[q])
		}
	}
}

// num is m[key] as a number; NaN-like -1 when missing, so checks fail.
func num(m map[string]any, key string) float64 {
	if v, ok := m[key].(float64); ok {
		return v
	}
	return -1
}
