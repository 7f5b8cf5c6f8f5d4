package tasks

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Policy says how a job type is retried and how long an attempt may run.
// Zero fields take the defaults below.
type Policy struct {
	// MaxAttempts is how many times a job runs before it is failed for
	// good. Default 3, as in rq's Retry(max=3) spirit; 1 means no retry.
	MaxAttempts int
	// Timeout cancels an attempt's context after this long; the attempt
	// then fails and may be retried. Default 10 minutes.
	Timeout time.Duration
	// BackoffMin and BackoffMax bound the wait before a retry. The wait
	// doubles with each attempt from BackoffMin, is capped at BackoffMax,
	// and is drawn at random from its upper half so that jobs failing
	// together do not return together. Defaults 2s and 5m.
	BackoffMin time.Duration
	BackoffMax time.Duration
}

// Policy defaults.
const (
	DefaultMaxAttempts = 3
	DefaultTimeout     = 10 * time.Minute
	DefaultBackoffMin  = 2 * time.Second
	DefaultBackoffMax  = 5 * time.Minute
)

func (p Policy) withDefaults() Policy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.Timeout <= 0 {
		p.Timeout = DefaultTimeout
	}
	if p.BackoffMin <= 0 {
		p.BackoffMin = DefaultBackoffMin
	}
	if p.BackoffMax <= 0 {
		p.BackoffMax = DefaultBackoffMax
	}
	return p
}

func (p Policy) validate() error {
	if p.BackoffMin > p.BackoffMax {
		return fmt.Errorf("policy: BackoffMin %s is above BackoffMax %s", p.BackoffMin, p.BackoffMax)
	}
	return nil
}

// Backoff is the wait before the attempt after failed attempt n (from 1).
// It lies in [max(BackoffMin, c/2), c] where c = min(BackoffMax,
// BackoffMin·2^(n-1)).
func (p Policy) Backoff(n int) time.Duration {
	p = p.withDefaults()
	c := p.BackoffMin
	for i := 1; i < n && c < p.BackoffMax; i++ {
		c *= 2
	}
	c = min(c, p.BackoffMax)
	lo := max(p.BackoffMin, c/2)
	if c <= lo {
		return c
	}
	return lo + rand.N(c-lo+1)
}

// PermanentError marks a failure that retrying cannot fix, such as a
// payload that names something that does not exist. The job fails at
// once, whatever attempts remain.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so that the job is not retried.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err, or an error it wraps, is permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}
