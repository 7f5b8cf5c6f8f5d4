package apptest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/otjhelper/otj/internal/app/bench"
	"github.com/otjhelper/otj/platform/testsupport"
)

// TestBenchMillion runs app bench million small: a web process and two
// worker processes (this test binary, which runs main for them: see
// TestMain), and checks the figures are there and hang together. It does
// not judge them: a benchmark is not a timed test.
func TestBenchMillion(t *testing.T) {
	// The children inherit the environment; this makes them run main.
	t.Setenv(runMainEnv, "1")
	var stdout, stderr bytes.Buffer
	args := []string{"million", "--jobs", "2000", "--workers", "2", "--concurrency", "5", "--batch", "500", "--json"}
	if err := runBench(testsupport.Context(t), args, mapEnv(nil), &stdout, &stderr); err != nil {
		t.Fatalf("bench million: %v\n%s", err, stderr.String())
	}
	var rep bench.MillionResult
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
	}
	if rep.Jobs != 2000 || rep.Workers != 2 || rep.Concurrency != 5 || rep.Batch != 500 {
		t.Errorf("settings %+v, want those asked for", rep)
	}
	if rep.EnqueuePerS <= 0 || rep.DrainPerS <= 0 || rep.DrainS <= 0 || rep.QueuedS < rep.EnqueueS || rep.ProjectionCaughtUpS < 0 {
		t.Errorf("figures: enqueue %v/s in %v s (queued %v s), drain %v/s in %v s, caught up %v s",
			rep.EnqueuePerS, rep.EnqueueS, rep.QueuedS, rep.DrainPerS, rep.DrainS, rep.ProjectionCaughtUpS)
	}
	if sum := rep.SucceededPerWorker[0] + rep.SucceededPerWorker[1]; rep.Succeeded != 2000 || len(rep.SucceededPerWorker) != 2 || sum != 2000 {
		t.Errorf("succeeded %d %v, want 2000 across two workers", rep.Succeeded, rep.SucceededPerWorker)
	}
	if rep.WebPeakRSSMB <= 1 || len(rep.WorkerPeakRSSMBs) != 2 || rep.WorkerPeakRSSMB <= 1 {
		t.Errorf("peak RSS: web %v MB, workers %v MB (largest %v)", rep.WebPeakRSSMB, rep.WorkerPeakRSSMBs, rep.WorkerPeakRSSMB)
	}
	if d := rep.DataDir; d.Files == 0 || d.Bytes <= 0 || d.AllocatedBytes <= 0 {
		t.Errorf("data dir %+v: want its files counted", d)
	}
	c := rep.Consumer
	if c.Created.IsZero() || c.MaxAckPending <= 0 || c.Samples < 2 || c.PendingAtEnd != 0 || c.PeakPending == 0 {
		t.Errorf("consumer %+v", c)
	}
	if len(rep.Timeline) == 0 || rep.Timeline[len(rep.Timeline)-1].Completed != 2000 {
		t.Errorf("timeline %+v: want it to end with every job completed", rep.Timeline)
	}
	for _, want := range []string{"web process", "2 workers ready", "drained in"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("no %q on stderr:\n%s", want, stderr.String())
		}
	}
}
