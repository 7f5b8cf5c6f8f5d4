package tasktype_test

import (
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// WithStarts shows each attempt's start once: the recorded one, or the
// one its outcome carries, placed just before that outcome.
func TestWithStarts(t *testing.T) {
	t0 := time.Date(2026, 3, 5, 14, 0, 0, 0, time.UTC)
	// Each step is a kind, with "+" for an outcome that carries its start,
	// and the attempt.
	tests := []struct {
		name  string
		steps string
		want  string
	}{
		{"fast job", "enqueued:0 succeeded+:1", "enqueued started* succeeded"},
		{"slow job", "enqueued:0 started:1 progress:1 succeeded+:1", "enqueued started progress succeeded"},
		{"fast failures, retried by hand", "enqueued:0 retrying+:1 failed+:2 retried:2 succeeded+:3",
			"enqueued started* retrying started* failed retried started* succeeded"},
		{"handed back, run again", "enqueued:0 started:1 released+:1 succeeded+:1", "enqueued started released started* succeeded"},
		{"lost before its first heartbeat", "enqueued:0 retrying:1 succeeded+:2", "enqueued retrying started* succeeded"},
		{"nothing carried", "enqueued:0 started:1 succeeded:1", "enqueued started succeeded"},
		{"cancelled", "enqueued:0 cancelled:0", "enqueued cancelled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var events []tasktype.Event
			for i, step := range strings.Fields(tt.steps) {
				kind, attempt, _ := strings.Cut(step, ":")
				e := tasktype.Event{ID: "e" + step, Seq: uint64(i + 1), Time: t0.Add(time.Duration(i) * time.Second), Attempt: int(attempt[0] - '0'), Worker: "w"}
				if k, carried := strings.CutSuffix(kind, "+"); carried {
					kind, e.StartedAt = k, e.Time.Add(-time.Millisecond)
				}
				e.Kind = tasktype.EventKind(kind)
				events = append(events, e)
			}
			shown := tasktype.WithStarts(events)
			var got []string
			for i, e := range shown {
				k := string(e.Kind)
				if e.Implied {
					k += "*"
					next := shown[i+1]
					if e.Seq != next.Seq || !e.Time.Equal(next.StartedAt) || e.Attempt != next.Attempt || e.Worker != next.Worker || e.ID != "" {
						t.Errorf("implied start %+v does not match its outcome %+v", e, next)
					}
				}
				got = append(got, k)
			}
			if g := strings.Join(got, " "); g != tt.want {
				t.Errorf("shown %s, want %s", g, tt.want)
			}
			if len(events) != len(strings.Fields(tt.steps)) {
				t.Error("WithStarts changed its argument")
			}
		})
	}
}
