package tasktype

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

// WithDefaults fills p's zero fields with the defaults.
func (p Policy) WithDefaults() Policy {
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

// Validate reports a policy whose bounds contradict each other.
func (p Policy) Validate() error {
	if p.BackoffMin > p.BackoffMax {
		return fmt.Errorf("policy: BackoffMin %s is above BackoffMax %s", p.BackoffMin, p.BackoffMax)
	}
	return nil
}

// Backoff is the wait before the attempt after failed attempt n (from 1).
// It lies in [max(BackoffMin, c/2), c] where c = min(BackoffMax,
// BackoffMin·2^(n-1)).
func (p Policy) Backoff(n int) time.Duration {
	p = p.WithDefaults()
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

// Fix says where a task's owner puts right the input a job refused: a
// page of the app (Href, a path such as "/settings") and the link's text.
type Fix struct {
	Href  string `json:"href"`
	Label string `json:"label"`
}

// RejectedError marks a failure whose cause is the job's input, which its
// owner gave: a file with bad rows, or settings it needs. It is
// permanent, as another attempt reads the same input; its task offers
// the way to fix the input instead of Retry, and metrics count it apart
// from failures of the system (see OutcomeRejected).
type RejectedError struct {
	Err error
	Fix Fix
}

func (e *RejectedError) Error() string { return e.Err.Error() }
func (e *RejectedError) Unwrap() error { return e.Err }

// Rejected wraps err as a refusal of the job's input, fixed at fix: the
// job fails at once, for good.
func Rejected(err error, fix Fix) error {
	if err == nil {
		return nil
	}
	return Permanent(&RejectedError{Err: err, Fix: fix})
}

// IsRejected reports whether err, or an error it wraps, is Rejected.
func IsRejected(err error) bool {
	var r *RejectedError
	return errors.As(err, &r)
}

// FixOf is where the input err refused is fixed, or nil when err is no
// rejection.
func FixOf(err error) *Fix {
	var r *RejectedError
	if errors.As(err, &r) {
		f := r.Fix
		return &f
	}
	return nil
}

// OutcomeRejected is the outcome a worker's observer is told of for an
// attempt whose handler failed with a Rejected error: the event on
// record is EventFailed, and this is no kind of event, only how the
// metrics tell a user's bad input from a failure of the system.
const OutcomeRejected EventKind = "rejected"

// MessageError carries, with a failure, the sentence its task's owner is
// shown instead of the error itself: errors are for operators (app tasks
// show, the log), and a chain such as "store result: nats: API error:
// code=503 err_code=10077" tells a user nothing they can act on.
type MessageError struct {
	Err     error
	Message string
}

func (e *MessageError) Error() string { return e.Err.Error() }
func (e *MessageError) Unwrap() error { return e.Err }

// UserMessage wraps err with the plain sentence the task's owner sees
// when the attempt fails with it, such as "Your activity log could not be
// read." Its Error is err's, unchanged, for operators.
func UserMessage(err error, sentence string) error {
	if err == nil {
		return nil
	}
	return &MessageError{Err: err, Message: sentence}
}

// MessageOf returns the sentence the outermost UserMessage in err's chain
// gave, or "" if none did.
func MessageOf(err error) string {
	var m *MessageError
	if errors.As(err, &m) {
		return m.Message
	}
	return ""
}

// FailureMessage is what a task's owner is shown for a failure whose
// handler gave no sentence of its own (and for events recorded before
// failures carried one): a plain sentence for the state the failure
// left the task in.
func FailureMessage(s Status) string {
	if s == StatusRetrying {
		return "This attempt did not succeed. It will be tried again automatically."
	}
	return "This task could not be completed. You can try again; if it keeps failing, an operator can see what went wrong."
}
