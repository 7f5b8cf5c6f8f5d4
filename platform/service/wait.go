package service

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Backoff bounds the pauses between WaitFor's attempts: the first pause
// is First, each next one twice the last, never more than Max, each
// shortened or lengthened at random by up to a fifth, so that processes
// started together do not retry in step.
type Backoff struct {
	First time.Duration
	Max   time.Duration
}

// DefaultBackoff starts quick, for a dependency that is a moment behind,
// and settles at one attempt every 10s, for one that is down for long.
var DefaultBackoff = Backoff{First: 250 * time.Millisecond, Max: 10 * time.Second}

// WaitFor calls try until it succeeds, so that processes can start in any
// order: a worker before its NATS server, a web server before its
// database. Between attempts it pauses as DefaultBackoff says and logs,
// once per failed attempt (so ever more rarely), what it waits for and
// why. An error permanent says is permanent (refused credentials, a wrong
// CA, a malformed address: waiting would not mend them) is returned at
// once; so is ctx's error when ctx ends first, wrapped with what was
// awaited. permanent may be nil: then every error is waited out.
func WaitFor(ctx context.Context, log *slog.Logger, what string, try func(context.Context) error, permanent func(error) bool) error {
	return DefaultBackoff.WaitFor(ctx, log, what, try, permanent)
}

// WaitFor is the package's WaitFor with b's pauses.
func (b Backoff) WaitFor(ctx context.Context, log *slog.Logger, what string, try func(context.Context) error, permanent func(error) bool) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pause := b.First
	for attempt := 1; ; attempt++ {
		err := try(ctx)
		if err == nil {
			if attempt > 1 {
				log.Info("reached "+what, "attempts", attempt)
			}
			return nil
		}
		if permanent != nil && permanent(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("stopped waiting for %s: %w", what, ctx.Err())
		}
		wait := jitter(pause)
		log.Warn("waiting for "+what, "attempt", attempt, "retry_in", wait.Round(time.Millisecond), "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("stopped waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
		if pause = 2 * pause; pause > b.Max {
			pause = b.Max
		}
	}
}

// jitter is d changed at random by up to a fifth either way.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	spread := int64(d) * 2 / 5
	if spread <= 0 {
		return d
	}
	return d - time.Duration(spread/2) + time.Duration(rand.Int64N(spread+1))
}
