package tasks

import (
	"context"
	"fmt"
	"time"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// eraseSettle bounds how long EraseUser waits for a projection that is
// behind the purge, before it deletes the user's rows a second time.
const eraseSettle = 2 * time.Second

// EraseUser erases everything the task system keeps of a user: the result
// files of their tasks, their events in the log, and their task_result
// rows, in that order, so that a call cut short is finished by calling it
// again, and a Rebuild afterwards brings nothing back (there is nothing
// left to replay). A work item of theirs still queued elsewhere (Redis)
// finds no job in the log and is dropped by the worker.
func (c *Client) EraseUser(ctx context.Context, userID int64) (tasktype.Erased, error) {
	var out tasktype.Erased
	// The rows first name the results: after a run cut short between the
	// purge and the rows' deletion, they are all that still does.
	if err := c.deleteRowResults(ctx, userID); err != nil {
		return out, fmt.Errorf("erase tasks of user %d: %w", userID, err)
	}
	erased, err := c.cfg.Log.EraseUser(ctx, userID)
	if err != nil {
		return out, fmt.Errorf("erase tasks of user %d: %w", userID, err)
	}
	out.Events, out.Results = erased.Events, erased.Results
	// The newest event still stored is the one a projection will reach,
	// where the stream's last sequence may be an event just purged.
	purged, err := c.cfg.Log.LastStoredSeq(ctx)
	if err != nil {
		return out, fmt.Errorf("erase tasks of user %d: %w", userID, err)
	}
	if out.Rows, err = c.deleteRows(ctx, userID); err != nil {
		return out, fmt.Errorf("erase tasks of user %d: %w", userID, err)
	}
	// A projection that read one of the user's events before the purge
	// may still write its row: once it has passed the purge, delete again.
	if c.settle(ctx, purged) {
		n, err := c.deleteRows(ctx, userID)
		if err != nil {
			return out, fmt.Errorf("erase tasks of user %d: %w", userID, err)
		}
		out.Rows += n
	}
	return out, nil
}

// settle waits, up to eraseSettle, for task_result's stored position to
// reach seq, and reports whether it had to wait at all.
func (c *Client) settle(ctx context.Context, seq uint64) bool {
	ctx, cancel := context.WithTimeout(ctx, eraseSettle)
	defer cancel()
	waited := false
	for {
		off, err := c.proj.Offset(ctx)
		if err != nil || off >= seq {
			return waited
		}
		waited = true
		select {
		case <-ctx.Done():
			c.log.WarnContext(ctx, "erase user: the projection is behind the purge", "offset", off, "purged_at", seq)
			return waited
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// deleteRowResults deletes every attempt's result file of the tasks
// task_result holds for the user.
func (c *Client) deleteRowResults(ctx context.Context, userID int64) error {
	var rows []struct {
		ID         string `bun:"id"`
		Attempts   int    `bun:"attempts"`
		ResultPath string `bun:"result_path,nullzero"`
	}
	qctx, cancel := context.WithTimeout(ctx, c.storeTimeout())
	err := c.cfg.DB.NewSelect().TableExpr("task_result").Column("id", "attempts", "result_path").
		Where("user_id = ?", userID).Scan(qctx, &rows)
	cancel()
	if err != nil {
		return fmt.Errorf("read task rows: %w", err)
	}
	for _, r := range rows {
		if err := c.deleteTaskFiles(ctx, r.ID, r.Attempts, r.ResultPath); err != nil {
			return err
		}
	}
	return nil
}

// deleteTaskFiles deletes every attempt's result file of a task, and the
// file its row names: one already gone is no error.
func (c *Client) deleteTaskFiles(ctx context.Context, id string, attempts int, resultPath string) error {
	objects := []string{}
	for a := 1; a <= attempts; a++ {
		objects = append(objects, tasktype.ResultObjectName(id, a))
	}
	if resultPath != "" && tasktype.ValidID(id) {
		objects = append(objects, resultPath)
	}
	for _, o := range objects {
		if err := c.cfg.Log.Delete(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

// deleteRows deletes the user's task_result rows.
func (c *Client) deleteRows(ctx context.Context, userID int64) (int64, error) {
	qctx, cancel := context.WithTimeout(ctx, c.storeTimeout())
	defer cancel()
	res, err := c.cfg.DB.NewDelete().TableExpr("task_result").Where("user_id = ?", userID).Exec(qctx)
	if err != nil {
		return 0, fmt.Errorf("delete task rows: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete task rows: %w", err)
	}
	return n, nil
}

// storeTimeout bounds one database call of EraseUser, and the removal
// of a stopping worker's heartbeat.
func (c *Client) storeTimeout() time.Duration {
	if t := c.cfg.Worker.StoreTimeout; t > 0 {
		return t
	}
	return 10 * time.Second
}
