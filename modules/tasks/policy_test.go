package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

func TestBackoffStaysWithinItsBounds(t *testing.T) {
	p := tasktype.Policy{BackoffMin: time.Second, BackoffMax: 30 * time.Second}
	tests := []struct {
		attempt int
		lo, hi  time.Duration
	}{
		{1, time.Second, time.Second},
		{2, time.Second, 2 * time.Second},
		{3, 2 * time.Second, 4 * time.Second},
		{5, 8 * time.Second, 16 * time.Second},
		{6, 15 * time.Second, 30 * time.Second}, // capped at the maximum
		{60, 15 * time.Second, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.attempt), func(t *testing.T) {
			seen := map[time.Duration]bool{}
			for range 200 {
				d := p.Backoff(tt.attempt)
				if d < tt.lo || d > tt.hi {
					t.Fatalf("backoff %s, want %s..%s", d, tt.lo, tt.hi)
				}
				seen[d] = true
			}
			// Jitter: jobs failing together spread out.
			if tt.lo < tt.hi && len(seen) < 100 {
				t.Errorf("only %d distinct waits in 200", len(seen))
			}
		})
	}
	if d := (tasktype.Policy{}).Backoff(1); d != tasktype.DefaultBackoffMin {
		t.Errorf("default first backoff %s, want %s", d, tasktype.DefaultBackoffMin)
	}
}

func TestRegisterChecksThePolicy(t *testing.T) {
	r := tasks.NewRegistry()
	err := r.Register("x", func(_ context.Context, _ tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
		return tasktype.Result{}, nil
	},
		tasktype.Policy{BackoffMin: time.Minute, BackoffMax: time.Second})
	if err == nil {
		t.Fatal("a minimum backoff above the maximum was accepted")
	}
	if err := r.Register("y", func(_ context.Context, _ tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
		return tasktype.Result{}, nil
	}, tasktype.Policy{}); err != nil {
		t.Fatal(err)
	}
	_, p, ok := r.Lookup("y")
	if !ok || p.MaxAttempts != tasktype.DefaultMaxAttempts || p.Timeout != tasktype.DefaultTimeout {
		t.Fatalf("defaults not filled: %+v", p)
	}
}

func TestPermanentErrors(t *testing.T) {
	base := errors.New("bad payload")
	err := fmt.Errorf("report: %w", tasktype.Permanent(base))
	if !tasktype.IsPermanent(err) || !errors.Is(err, base) {
		t.Fatalf("wrapped permanent error lost its mark or cause: %v", err)
	}
	if tasktype.IsPermanent(base) || tasktype.Permanent(nil) != nil {
		t.Fatal("plain errors are not permanent; Permanent(nil) is nil")
	}
}

func FuzzValidID(f *testing.F) {
	for _, s := range []string{"", "job1", "a.b", "*", ">", "tasks.*.1.x.>", "é", "6tQ1CvBzPq3c3WQqpQ8wRk"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if !tasktype.ValidID(id) {
			return
		}
		// An accepted id must be one plain subject token: no wildcard,
		// separator or space can reach the broker's filters.
		for _, c := range id {
			if c == '.' || c == '*' || c == '>' || c <= ' ' || c > '~' {
				t.Fatalf("accepted %q", id)
			}
		}
	})
}
