// Package clock holds the task system's one way of waiting: every retry
// loop (the worker's pulls and outcome writes, the projection's restarts,
// the drivers' feeds) waits through Sleep, so that each stops at once
// when its context ends.
package clock

import (
	"context"
	"time"
)

// Sleep waits for d or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
