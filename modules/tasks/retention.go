package tasks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/otjhelper/otj/modules/tasks/internal/clock"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// retentionBatch is how many finished tasks one pass of PruneFinished
// reads at a time.
const retentionBatch = 500

// retentionEvery is how often RunProjection prunes: a tenth of the
// retention, so that a task outlives it by at most that, within a second
// and a minute.
func retentionEvery(retention time.Duration) time.Duration {
	return min(max(retention/10, time.Second), time.Minute)
}

// PruneStats says what a PruneFinished did.
type PruneStats struct {
	// Pruned is how many finished tasks went, events, row and results.
	Pruned int
	// Kept is how many tasks past the retention by their row were kept:
	// the log had them unfinished again (retried), or finished since.
	Kept int
}

// PruneFinished removes every task that finished longer than
// Config.TaskRetention ago: its events from the log, its result files,
// then its task_result row. Pending, running, retrying and scheduled
// tasks are never touched, however old, and a task retried after it
// finished is unfinished again. Each step is idempotent, so any number of
// processes may run it at once, and a run cut short is finished by the
// next. It does nothing without a TaskRetention.
//
// A task is found by its row, and judged by its newest event in the log,
// which is the truth where the projection lags: only a task whose newest
// event ended it before the cutoff goes, and the purge takes its events
// up to that one only, so a retry stored meanwhile stays, and so does
// the task.
func (c *Client) PruneFinished(ctx context.Context) (PruneStats, error) {
	var st PruneStats
	if c.cfg.TaskRetention <= 0 {
		return st, nil
	}
	cutoff := c.now().Add(-c.cfg.TaskRetention)
	for {
		qctx, cancel := context.WithTimeout(ctx, c.storeTimeout())
		rows, err := c.store.FinishedBefore(qctx, cutoff, retentionBatch)
		cancel()
		if err != nil {
			return st, fmt.Errorf("prune finished tasks: %w", err)
		}
		for _, r := range rows {
			pruned, err := c.pruneTask(ctx, r.ID, r.UserID, r.Attempts, r.ResultPath, cutoff)
			if err != nil {
				return st, fmt.Errorf("prune finished tasks: %w", err)
			}
			if pruned {
				st.Pruned++
			} else {
				st.Kept++
			}
		}
		// Kept rows are read again by the next pass, when the projection
		// has moved them on: this one ends at a batch it did not empty.
		if len(rows) < retentionBatch || st.Kept > 0 {
			return st, nil
		}
	}
}

// pruneTask removes one task whose row says it finished before cutoff,
// if its log agrees, and reports whether it did.
func (c *Client) pruneTask(ctx context.Context, id string, userID int64, attempts int, resultPath string, cutoff time.Time) (bool, error) {
	last, err := c.cfg.Log.Last(ctx, userID, id)
	switch {
	case errors.Is(err, tasktype.ErrNotFound):
		// Purged already, by a run cut short or another process; or a
		// projection that read the events before the purge wrote the
		// row again. What the row names goes.
	case err != nil:
		return false, err
	case tasktype.StatusAfter(last.Kind).Active():
		return false, nil
	case !last.Time.Before(cutoff) && last.Kind != tasktype.EventResultRead:
		// Finished again since its row said: the row lags. An operator's
		// read of the result changes nothing, so the task still ended
		// when its row says, before the cutoff; timed by the read, it
		// would stay a retention past every read, and a pass's first
		// batch could fill with such rows and hold back the rest.
		return false, nil
	default:
		if err := c.cfg.Log.PurgeJob(ctx, userID, id, last.Seq); err != nil {
			return false, err
		}
		// A retry that won the race to follow the end stays, and with it
		// the task, its row and its result files, for its run.
		after, err := c.cfg.Log.Last(ctx, userID, id)
		if err == nil {
			c.log.InfoContext(ctx, "task retried as it aged out: its earlier events went, the task stays", "job_id", id, "event", after.Kind)
			return false, nil
		}
		if !errors.Is(err, tasktype.ErrNotFound) {
			return false, err
		}
		attempts = max(attempts, last.Attempt)
	}
	if err := c.deleteTaskFiles(ctx, id, attempts, resultPath); err != nil {
		return false, err
	}
	qctx, cancel := context.WithTimeout(ctx, c.storeTimeout())
	defer cancel()
	if err := c.store.DeleteFinished(qctx, id); err != nil {
		return false, err
	}
	return true, nil
}

// runRetention prunes finished tasks at start and every retentionEvery
// until ctx ends. A failed pass is logged and tried again at the next.
func (c *Client) runRetention(ctx context.Context) {
	every := retentionEvery(c.cfg.TaskRetention)
	for ctx.Err() == nil {
		st, err := c.PruneFinished(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			c.log.WarnContext(ctx, "could not prune finished tasks; trying again later", "err", err)
		case st.Pruned > 0:
			c.log.DebugContext(ctx, "pruned finished tasks", "pruned", st.Pruned, "retention", c.cfg.TaskRetention)
		}
		clock.Sleep(ctx, every)
	}
}
