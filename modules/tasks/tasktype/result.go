package tasktype

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
)

// ResultObjectName names the stored result of one attempt of a job. Each
// attempt has its own, so that an attempt superseded by another (its
// worker presumed lost) can never overwrite or delete the result on
// record. It is the one naming rule: the worker names what it stores with
// it, and the projection and the download check every reference against
// it, so that no event can point a task at another job's file.
func ResultObjectName(jobID string, attempt int) string {
	return jobID + "-a" + strconv.Itoa(attempt)
}

// LosingAttempts is how many of an ended job's attempts, counted from
// the first, may have stored a result file that no event names, given
// the event that ended it: those before a success, and every one up to
// a failure for good. Each attempt's file is named by ResultObjectName;
// the success's own (Result) is the winner's. 0 for any other event.
func LosingAttempts(end Event) int {
	switch end.Kind {
	case EventSucceeded:
		return max(end.Attempt-1, 0)
	case EventFailed:
		return max(end.Attempt, 0)
	}
	return 0
}

// OwnsResult reports whether object is the result of attempt of job
// jobID, by ResultObjectName.
func OwnsResult(jobID string, attempt int, object string) bool {
	return jobID != "" && attempt > 0 && object == ResultObjectName(jobID, attempt)
}

// ErrResultMissing means a stored result is not there (any more): it
// expired, was pruned, or was never stored.
var ErrResultMissing = errors.New("result not stored")

// ErrResultStoreFull means the result store has no room for another
// file. Retrying soon will not help; the store frees room only as old
// results expire, or when the operator raises its bound.
var ErrResultStoreFull = errors.New("result store full")

// StoredResult is an open stored result: its bytes, and what the store
// recorded about it when it was put.
type StoredResult struct {
	io.ReadCloser
	Size   uint64
	Digest string // as the store reports it, e.g. SHA-256=...
}

// Retention is how long results are kept (the store expires them after
// TTL) and how many of each job type a user keeps (older ones are
// deleted after a newer one is stored). Readers use it to tell, without
// asking the store, that a completed task's result is gone.
type Retention struct {
	TTL  time.Duration // 0: results do not expire
	Keep int           // 0: every result is kept until it expires
}

// Expired reports whether the result of a task completed at completed
// is gone by now, given that newer of the same user's results of its
// type were completed after it. A result can also be missing for other
// reasons (deleted by hand, a store rebuilt): whoever opens it treats
// ErrResultMissing as expired too.
func (r Retention) Expired(completed time.Time, newer int, now time.Time) bool {
	if r.TTL > 0 && !now.Before(completed.Add(r.TTL)) {
		return true
	}
	return r.Keep > 0 && newer >= r.Keep
}

// HexDigest is how a digest is shown to people: a store's "SHA-256="
// followed by base64url, as results have always been recorded, becomes
// "sha256:" and lowercase hex, which compares at a glance with what
// sha256sum prints for the downloaded file. Stored digests stay as they
// are; only their display changes, so no stored data needs converting. A
// digest in any other form is returned as it is.
func HexDigest(d string) string {
	b64, ok := strings.CutPrefix(d, "SHA-256=")
	if !ok {
		return d
	}
	sum, err := base64.URLEncoding.DecodeString(b64)
	if err != nil {
		if sum, err = base64.RawURLEncoding.DecodeString(b64); err != nil {
			return d
		}
	}
	if len(sum) != sha256.Size {
		return d
	}
	return "sha256:" + hex.EncodeToString(sum)
}
