package tasks

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/modules/tasks/internal/projection"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// Reader reads the task_result projection, and nothing else: what a tool
// with the database and no broker can see. A Client is a Reader too.
type Reader struct {
	db    *bun.DB
	store *projection.Store
}

// NewReader returns a Reader of db's task_result.
func NewReader(db *bun.DB) *Reader {
	return &Reader{db: db, store: projection.NewStore(db)}
}

// ListForUser returns the user's most recent tasks, newest first.
func (r *Reader) ListForUser(ctx context.Context, userID int64, limit int) ([]tasktype.Task, error) {
	return r.store.ListForUser(ctx, userID, limit)
}

// GetForUser returns the user's task id. Another user's task is
// tasktype.ErrNotFound, exactly like a task that does not exist.
func (r *Reader) GetForUser(ctx context.Context, userID int64, id string) (tasktype.Task, error) {
	return r.store.GetForUser(ctx, userID, id)
}

// NewerResults counts the user's completed tasks of taskType with a
// result that completed after task id, which completed at completed: the
// task's place among the results Retention.Keep keeps.
func (r *Reader) NewerResults(ctx context.Context, userID int64, taskType, id string, completed time.Time) (int, error) {
	return r.store.NewerResults(ctx, userID, taskType, id, completed)
}

// List returns the tasks matching f, newest first: every user's for
// operators, one user's with f.UserID (the web's task list, a page at a
// time with f.After).
func (r *Reader) List(ctx context.Context, f tasktype.Filter) ([]tasktype.Task, error) {
	return r.store.List(ctx, f)
}

// Get returns task id whoever owns it, for operators, or
// tasktype.ErrNotFound.
func (r *Reader) Get(ctx context.Context, id string) (tasktype.Task, error) {
	return r.store.Get(ctx, id)
}

// All returns every task ordered by id, for comparing projections.
func (r *Reader) All(ctx context.Context) ([]tasktype.Task, error) { return r.store.All(ctx) }

// Count returns how many tasks task_result holds.
func (r *Reader) Count(ctx context.Context) (int64, error) { return r.store.Count(ctx) }

// CountMatching returns how many tasks match f's filters, whoever owns
// them unless f.UserID says; f.Limit and f.After do not apply. It counts
// in the database, where List would fetch every row: an operator's
// totals, or the bench checking that task_result shows each of its jobs
// completed.
func (r *Reader) CountMatching(ctx context.Context, f tasktype.Filter) (int64, error) {
	return r.store.CountMatching(ctx, f)
}

// Offset is the stream sequence task_result has applied up to.
func (r *Reader) Offset(ctx context.Context) (uint64, error) { return projection.Offset(ctx, r.db) }
