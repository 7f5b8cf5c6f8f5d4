package tasktype

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// MaxPayloadBytes bounds a job's payload. Payloads carry ids and options,
// never data: handlers read what they need from storage.
const MaxPayloadBytes = 64 << 10

// Job is one unit of deferred work as handlers and the runtime see it.
type Job struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	UserID     int64           `json:"user_id"`
	Payload    json.RawMessage `json:"payload,omitempty"`
	EnqueuedAt time.Time       `json:"enqueued_at"`
	// Attempt counts the runs of this job, from 1. A handler may use it,
	// for example to log that it is resuming.
	Attempt int `json:"attempt,omitempty"`
	// EventSeq is the event-stream sequence of the job's newest event
	// known to whoever returned the Job: the enqueued event, or the
	// outcome of a job run in the enqueuing call. Readers use it to wait
	// until the projection has seen the job.
	EventSeq uint64 `json:"-"`
}

// EnqueueRequest asks for a job to be run.
type EnqueueRequest struct {
	Type    string
	UserID  int64
	Payload json.RawMessage
	// Key makes the request idempotent: a second request with the same
	// type, user and key within the broker's dedupe window returns the
	// first job instead of making another. Empty means no dedupe.
	Key string
}

// Errors an Enqueuer returns, checked with errors.Is.
var (
	// ErrUnavailable means the broker could not be reached; nothing was
	// enqueued and the caller may try again.
	ErrUnavailable = errors.New("task broker unavailable")
	// ErrPayloadTooLarge means the payload exceeds MaxPayloadBytes.
	ErrPayloadTooLarge = errors.New("job payload too large")
	// ErrInvalidJob means the request itself is malformed.
	ErrInvalidJob = errors.New("invalid job")
)

// Validate checks what every broker needs of a request.
func (r EnqueueRequest) Validate() error {
	if !ValidType(r.Type) {
		return fmt.Errorf("%w: type %q must be 1-64 characters of a-z, 0-9 and _", ErrInvalidJob, r.Type)
	}
	if r.UserID <= 0 {
		return fmt.Errorf("%w: user id %d", ErrInvalidJob, r.UserID)
	}
	if len(r.Payload) > MaxPayloadBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrPayloadTooLarge, len(r.Payload), MaxPayloadBytes)
	}
	if len(r.Payload) > 0 && !json.Valid(r.Payload) {
		return fmt.Errorf("%w: payload is not JSON", ErrInvalidJob)
	}
	if len(r.Key) > 200 {
		return fmt.Errorf("%w: key longer than 200 bytes", ErrInvalidJob)
	}
	return nil
}

// ValidType reports whether s can name a job type: it is safe as one
// token of a subject or key.
func ValidType(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// ValidID reports whether id looks like a job id as brokers issue them
// (nuid: 1-64 letters and digits). Ids from outside (URLs, command lines)
// are checked with it before they reach storage or a subject filter, so
// that no caller can smuggle in wildcards.
func ValidID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
