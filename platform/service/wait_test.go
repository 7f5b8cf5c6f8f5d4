package service_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/platform/service"
	"github.com/otjhelper/otj/platform/testsupport"
)

var errDown = errors.New("connection refused")
var errRefused = errors.New("authorization violation")

func TestWaitFor(t *testing.T) {
	fast := service.Backoff{First: time.Millisecond, Max: 8 * time.Millisecond}
	tests := []struct {
		name      string
		fails     int   // attempts that fail before one succeeds; -1 never
		failWith  error // what the failing attempts return
		cancelAt  int   // cancel the context at this attempt; 0 never
		wantErr   error
		wantTries int
		wantLogs  int // "waiting for" lines
	}{
		{"at once", 0, errDown, 0, nil, 1, 0},
		{"after three failures", 3, errDown, 0, nil, 4, 3},
		{"permanent error is not waited on", -1, errRefused, 0, errRefused, 1, 0},
		{"stopped while waiting", -1, errDown, 3, context.Canceled, 3, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var logs testsupport.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			tries := 0
			err := fast.WaitFor(ctx, log, "the thing", func(context.Context) error {
				tries++
				if tries == tt.cancelAt {
					cancel()
				}
				if tt.fails < 0 || tries <= tt.fails {
					return tt.failWith
				}
				return nil
			}, func(err error) bool { return errors.Is(err, errRefused) })
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("err %v, want %v", err, tt.wantErr)
			}
			if tries != tt.wantTries {
				t.Errorf("%d attempts, want %d", tries, tt.wantTries)
			}
			if n := strings.Count(logs.String(), `msg="waiting for the thing"`); n != tt.wantLogs {
				t.Errorf("%d waiting lines, want %d:\n%s", n, tt.wantLogs, logs.String())
			}
		})
	}
}

// The pauses grow to the cap and stay there, so that a long outage is
// logged ever more rarely, not in a flood.
func TestWaitForBacksOff(t *testing.T) {
	b := service.Backoff{First: 10 * time.Millisecond, Max: 40 * time.Millisecond}
	var at []time.Time
	err := b.WaitFor(context.Background(), nil, "x", func(context.Context) error {
		at = append(at, time.Now())
		if len(at) < 6 {
			return errDown
		}
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Wanted pauses 10, 20, 40, 40, 40ms, each within a fifth.
	want := []time.Duration{10, 20, 40, 40, 40}
	for i, w := range want {
		got := at[i+1].Sub(at[i])
		lo := w * time.Millisecond * 4 / 5
		if got < lo || got > w*time.Millisecond*3 {
			t.Errorf("pause %d: %s, want about %dms", i+1, got, w)
		}
	}
}
