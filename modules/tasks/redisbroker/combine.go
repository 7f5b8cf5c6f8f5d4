package redisbroker

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// combiner sends together the calls made at about the same time: while
// one batch is on its way to Redis, the calls made meanwhile wait and go
// together in the next. Many concurrent callers (a worker's jobs ending,
// the relay's loops) then cost one round trip for several calls, and a
// lone caller waits for nothing.
//
// A call that finds nothing on its way is sent at once, by its caller.
// Calls made while something is on its way wait, and are sent by a
// flusher goroutine, which the call on its way starts when it is done
// if any are waiting. The combiner owns the flusher; it exits once no
// call has come for combineLinger, and each of its sends is bounded by
// timeout.
type combiner[T, R any] struct {
	max     int           // calls in one batch at most
	timeout time.Duration // bounds one send
	// send makes the calls of one batch and returns their results, in
	// order, or one error for all of them.
	send func(ctx context.Context, batch []T) ([]R, error)

	wake    chan struct{} // a call came while the flusher waited
	mu      sync.Mutex
	waiting []combined[T, R]
	running bool // a flusher goroutine is running
}

// combineLinger is how long a flusher waits for more calls before it
// exits: calls that come a few at a time, as the acks of a busy worker
// do, then reuse one goroutine rather than start one each.
const combineLinger = 2 * time.Millisecond

func newCombiner[T, R any](max int, timeout time.Duration, send func(ctx context.Context, batch []T) ([]R, error)) *combiner[T, R] {
	return &combiner[T, R]{max: max, timeout: timeout, send: send, wake: make(chan struct{}, 1)}
}

// combined is one call waiting to be sent.
type combined[T, R any] struct {
	in T
	// done is buffered: the flusher never waits for a caller gone. It
	// is nil for a call posted, whose result no one waits for.
	done chan combinedResult[R]
}

type combinedResult[R any] struct {
	out R
	err error
}

// do makes the call in, with others if any are waiting, and returns its
// result, or ctx's error if ctx ends first (the call may still be made).
func (c *combiner[T, R]) do(ctx context.Context, in T) (R, error) {
	c.mu.Lock()
	if !c.running {
		c.running = true
		c.mu.Unlock()
		return c.sendAlone(ctx, in)
	}
	call := combined[T, R]{in: in, done: make(chan combinedResult[R], 1)}
	c.waiting = append(c.waiting, call)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // the flusher has a wake-up coming already
	}
	select {
	case r := <-call.done:
		return r.out, r.err
	case <-ctx.Done():
		var zero R
		return zero, ctx.Err()
	}
}

// post makes the call in, with others waiting if any, without waiting
// for it: the flusher sends it, starting if none is running, and the
// result goes to no one, so send itself must act on it.
func (c *combiner[T, R]) post(in T) {
	c.mu.Lock()
	c.waiting = append(c.waiting, combined[T, R]{in: in})
	if !c.running {
		c.running = true
		c.mu.Unlock()
		go c.flush()
		return
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// pending is how many calls wait to be sent.
func (c *combiner[T, R]) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiting)
}

// sendAlone sends one call found alone, then hands the calls that came
// meanwhile to a flusher.
func (c *combiner[T, R]) sendAlone(ctx context.Context, in T) (R, error) {
	sctx, cancel := context.WithTimeout(ctx, c.timeout)
	outs, err := c.send(sctx, []T{in})
	cancel()
	c.mu.Lock()
	if len(c.waiting) > 0 {
		go c.flush() // running stays set
	} else {
		c.running = false
	}
	c.mu.Unlock()
	var out R
	switch {
	case err != nil:
	case len(outs) != 1:
		err = fmt.Errorf("%d results for 1 call", len(outs))
	default:
		out = outs[0]
	}
	return out, err
}

// flush sends the waiting calls, a batch at a time, until none has come
// for combineLinger.
func (c *combiner[T, R]) flush() {
	var batch []combined[T, R]
	var ins []T
	idle := time.NewTimer(combineLinger)
	defer idle.Stop()
	for {
		c.mu.Lock()
		if len(c.waiting) == 0 {
			c.mu.Unlock()
			idle.Reset(combineLinger)
			select {
			case <-c.wake:
				continue
			case <-idle.C:
			}
			c.mu.Lock()
			if len(c.waiting) == 0 {
				c.running = false
				c.mu.Unlock()
				return
			}
		}
		n := min(len(c.waiting), c.max)
		batch = append(batch[:0], c.waiting[:n]...)
		c.waiting = append(c.waiting[:0], c.waiting[n:]...)
		c.mu.Unlock()

		ins = ins[:0]
		for _, call := range batch {
			ins = append(ins, call.in)
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		outs, err := c.send(ctx, ins)
		cancel()
		if err == nil && len(outs) != len(ins) {
			err = fmt.Errorf("%d results for %d calls", len(outs), len(ins))
		}
		for i, call := range batch {
			switch {
			case call.done == nil: // posted
			case err != nil:
				call.done <- combinedResult[R]{err: err}
			default:
				call.done <- combinedResult[R]{out: outs[i]}
			}
		}
		clear(batch) // let the channels and items go
	}
}
