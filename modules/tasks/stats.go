package tasks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// QueueStats reports the work queue of the driver that carries the jobs,
// asking its server once: what is waiting, what is held by workers, and
// when a worker last asked for work.
func (c *Client) QueueStats(ctx context.Context) (tasktype.QueueStats, error) {
	return c.cfg.Transport.QueueStats(ctx)
}

// ProjectionLag is how far task_result is behind the event stream.
type ProjectionLag struct {
	// Applied is the sequence task_result has applied up to, and Last
	// the stream's newest.
	Applied, Last uint64
	// Events is Last - Applied: events stored and not yet applied.
	Events uint64
	// Behind is how long the oldest event not yet applied has been
	// stored: 0 when there is none.
	Behind time.Duration
}

// ProjectionLag compares task_result's stored position with the stream:
// a read of the position, one request for the stream's newest sequence,
// and when behind one more for the time of the first event not applied.
// It reads the position every process's projection shares in the
// database, so it is the deployment's lag, not one process's.
func (c *Client) ProjectionLag(ctx context.Context) (ProjectionLag, error) {
	var lag ProjectionLag
	var err error
	if lag.Applied, err = c.proj.Offset(ctx); err != nil {
		return lag, fmt.Errorf("projection lag: %w", err)
	}
	if lag.Last, err = c.cfg.Log.LastSeq(ctx); err != nil {
		return lag, fmt.Errorf("projection lag: %w", err)
	}
	if lag.Last <= lag.Applied {
		return lag, nil
	}
	lag.Events = lag.Last - lag.Applied
	e, err := c.cfg.Log.EventFrom(ctx, lag.Applied+1)
	switch {
	case errors.Is(err, tasktype.ErrNotFound):
		return lag, nil // gone between the two requests: caught up, or expired
	case err != nil:
		return lag, fmt.Errorf("projection lag: %w", err)
	}
	lag.Behind = max(c.now().Sub(e.Time), 0)
	return lag, nil
}

// CheckWorkers reports, as an error whose text is a sentence for
// /healthz, when jobs are waiting and no worker has asked for work for
// longer than after: workers that are all gone, stuck, or refused by the
// server at start. A worker with a free slot always holds a request for
// work (JetStream) or reads again within a second (Redis), so a quiet
// spell well beyond that means no worker is free to take the jobs. It is
// nil when nothing waits, when a worker is asking now, or when the
// driver cannot tell; an error reading the queue is returned as is.
func (c *Client) CheckWorkers(ctx context.Context, after time.Duration) error {
	st, err := c.QueueStats(ctx)
	if err != nil {
		return fmt.Errorf("cannot read the work queue: %w", err)
	}
	if st.Pending == 0 || st.Waiting > 0 {
		return nil
	}
	since := st.LastPull
	if since.IsZero() {
		since = st.OldestWaiting
	}
	if since.IsZero() {
		return nil
	}
	quiet := c.now().Sub(since)
	if quiet < after {
		return nil
	}
	quiet = quiet.Round(time.Second)
	// The queue counts work items, and before a worker joins JetStream
	// counts every event: a job cancelled before it ran, or run in a
	// request while Redis was down, leaves its item there until a worker
	// reads and drops it. The task list counts the jobs.
	waiting, err := c.WaitingJobs(ctx)
	if err != nil {
		return fmt.Errorf("cannot count the waiting jobs: %w", err)
	}
	if waiting == 0 {
		return nil // only items of jobs that moved on
	}
	if !st.Joined {
		return fmt.Errorf("%d %s waiting for %s and no worker has joined yet", waiting, jobsWord(waiting), quiet)
	}
	return fmt.Errorf("%d %s waiting and no worker has asked for work for %s", waiting, jobsWord(waiting), quiet)
}

// WaitingJobs counts, in the task list, the jobs waiting for a worker:
// pending (never started, or retried by hand), and retrying. Unlike the
// queue's counts, which are of work items, it counts each job once, and
// none that moved on.
func (c *Client) WaitingJobs(ctx context.Context) (uint64, error) {
	var n uint64
	for _, s := range []tasktype.Status{tasktype.StatusPending, tasktype.StatusRetrying} {
		m, err := c.store.CountMatching(ctx, tasktype.Filter{Status: s})
		if err != nil {
			return 0, err
		}
		n += uint64(max(m, 0))
	}
	return n, nil
}

func jobsWord(n uint64) string {
	if n == 1 {
		return "job"
	}
	return "jobs"
}

func (c *Client) now() time.Time {
	if c.cfg.Worker.Now != nil {
		return c.cfg.Worker.Now()
	}
	return time.Now()
}
