package redisbroker

import (
	"sync/atomic"
	"time"
)

// healthyFor is how long after Redis last took a send it is still taken
// to be answering, if no send has failed since. Under load the sends come
// far more often; a process enqueuing now and then waits for each send,
// as it would without this.
const healthyFor = time.Second

// health is how Redis answered this process's latest sends of work
// items. It only steers whether Enqueue waits for its send: every send
// that fails leaves its item to the relay all the same.
type health struct {
	lastOK, lastFailed atomic.Int64 // Unix nanoseconds; 0: never
}

// record notes a send's outcome at now.
func (h *health) record(err error, now time.Time) {
	if err != nil {
		h.lastFailed.Store(now.UnixNano())
		return
	}
	h.lastOK.Store(now.UnixNano())
}

// good reports whether Redis took a send within healthyFor of now and
// has failed none since.
func (h *health) good(now time.Time) bool {
	ok := h.lastOK.Load()
	return ok != 0 && ok > h.lastFailed.Load() && now.UnixNano()-ok < int64(healthyFor)
}
