package tasks

import (
	"errors"
	"io"
	"strconv"
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
