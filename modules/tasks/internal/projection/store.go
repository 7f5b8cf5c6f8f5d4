package projection

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/uptrace/bun"
)

// Store reads the task_result projection. It writes nothing but
// DeleteFinished's deletes of tasks past their retention: the rest is the
// Projection's.
type Store struct{ db *bun.DB }

// NewStore returns a Store over db.
func NewStore(db *bun.DB) *Store { return &Store{db: db} }

// ListForUser returns the user's most recent tasks, newest first.
func (s *Store) ListForUser(ctx context.Context, userID int64, limit int) ([]tasktype.Task, error) {
	var rows []taskRow
	err := s.db.NewSelect().Model(&rows).
		Where("user_id = ?", userID).
		OrderExpr("created_at DESC, id DESC").
		Limit(int64(limit)).
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("list tasks of user %d: %w", userID, err)
	}
	return tasksOf(rows), nil
}

// GetForUser returns the user's task id. Another user's task is
// ErrNotFound, exactly like a task that does not exist.
func (s *Store) GetForUser(ctx context.Context, userID int64, id string) (tasktype.Task, error) {
	var row taskRow
	err := s.db.NewSelect().Model(&row).
		Where("id = ?", id).
		Where("user_id = ?", userID).
		Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return tasktype.Task{}, fmt.Errorf("task %s: %w", id, tasktype.ErrNotFound)
	}
	if err != nil {
		return tasktype.Task{}, fmt.Errorf("get task %s: %w", id, err)
	}
	return row.task(), nil
}

// NewerResults counts the user's completed tasks of the given type with a
// result that completed after the task id, which completed at completed:
// the task's place among the results Retention.Keep keeps.
func (s *Store) NewerResults(ctx context.Context, userID int64, taskType, id string, completed time.Time) (int, error) {
	n, err := s.db.NewSelect().Model((*taskRow)(nil)).
		Where("user_id = ?", userID).Where("task_type = ?", taskType).
		Where("status = ?", tasktype.StatusCompleted).Where("result_path IS NOT NULL").
		Where("(completed_at > ? OR (completed_at = ? AND id > ?))", completed, completed, id).
		Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("count newer results than task %s: %w", id, err)
	}
	return int(n), nil
}

// All returns every row ordered by id, for comparing projections.
func (s *Store) All(ctx context.Context) ([]tasktype.Task, error) {
	var rows []taskRow
	if err := s.db.NewSelect().Model(&rows).Order("id").Scan(ctx); err != nil {
		return nil, fmt.Errorf("list all tasks: %w", err)
	}
	return tasksOf(rows), nil
}

// List returns the tasks matching f, newest first (created_at, then id,
// both descending): every user's for operators, or with f.UserID one
// user's. Each combination of filters is served by an index of
// migration 013 (TestListQueriesUseIndexes holds them to it).
func (s *Store) List(ctx context.Context, f tasktype.Filter) ([]tasktype.Task, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	var rows []taskRow
	q := s.db.NewSelect().Model(&rows).Limit(int64(f.Limit))
	q = filtered(q, f)
	newer := f.After != nil && f.After.Newer
	switch {
	case f.After == nil:
		q = q.OrderExpr("created_at DESC, id DESC")
	case newer:
		// The nearest newer ones first, reversed below.
		q = q.Where("(created_at, id) > (?, ?)", f.After.CreatedAt, f.After.ID).OrderExpr("created_at ASC, id ASC")
	default:
		q = q.Where("(created_at, id) < (?, ?)", f.After.CreatedAt, f.After.ID).OrderExpr("created_at DESC, id DESC")
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	if newer {
		slices.Reverse(rows)
	}
	return tasksOf(rows), nil
}

// filtered narrows q to f's status, user, type and creation times.
func filtered(q *bun.SelectQuery, f tasktype.Filter) *bun.SelectQuery {
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.UserID != 0 {
		q = q.Where("user_id = ?", f.UserID)
	}
	if f.Type != "" {
		q = q.Where("task_type = ?", f.Type)
	}
	if !f.UpdatedFrom.IsZero() {
		q = q.Where("updated_at >= ?", f.UpdatedFrom)
	}
	if !f.CreatedFrom.IsZero() {
		q = q.Where("created_at >= ?", f.CreatedFrom)
	}
	if !f.CreatedBefore.IsZero() {
		q = q.Where("created_at < ?", f.CreatedBefore)
	}
	if f.ErrorContains != "" {
		// Lowered on both sides: SQLite's LIKE ignores ASCII case,
		// PostgreSQL's does not. The pattern's own wildcards are
		// escaped, so the text is matched as written.
		q = q.Where(`LOWER(error_message) LIKE ? ESCAPE '\'`, "%"+likeEscaper.Replace(strings.ToLower(f.ErrorContains))+"%")
	}
	return q
}

// likeEscaper escapes LIKE's wildcards, and its escape character.
var likeEscaper = strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`)

// Get returns task id whoever owns it, for operators, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (tasktype.Task, error) {
	var row taskRow
	err := s.db.NewSelect().Model(&row).Where("id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return tasktype.Task{}, fmt.Errorf("task %s: %w", id, tasktype.ErrNotFound)
	}
	if err != nil {
		return tasktype.Task{}, fmt.Errorf("get task %s: %w", id, err)
	}
	return row.task(), nil
}

// CountMatching returns how many rows match f's filters; f.Limit and
// f.After do not apply.
func (s *Store) CountMatching(ctx context.Context, f tasktype.Filter) (int64, error) {
	n, err := filtered(s.db.NewSelect().Model((*taskRow)(nil)), f).Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("count tasks: %w", err)
	}
	return n, nil
}

// Count returns how many rows the projection holds.
func (s *Store) Count(ctx context.Context) (int64, error) {
	n, err := s.db.NewSelect().Model((*taskRow)(nil)).Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("count tasks: %w", err)
	}
	return n, nil
}

// tasksOf is rows as readers see them.
func tasksOf(rows []taskRow) []tasktype.Task {
	ts := make([]tasktype.Task, len(rows))
	for i := range rows {
		ts[i] = rows[i].task()
	}
	return ts
}

// Finished is a finished task's row as retention reads it: who owns it,
// and what names its result files.
type Finished struct {
	ID         string          `bun:"id"`
	UserID     int64           `bun:"user_id"`
	Status     tasktype.Status `bun:"status"`
	Attempts   int             `bun:"attempts"`
	ResultPath string          `bun:"result_path,nullzero"`
}

// finishedStatuses are the states no event moves a task out of but an
// operator's retry.
var finishedStatuses = []tasktype.Status{tasktype.StatusCompleted, tasktype.StatusFailed, tasktype.StatusCancelled}

// FinishedBefore returns up to limit finished tasks whose newest event
// is older than before, oldest first.
func (s *Store) FinishedBefore(ctx context.Context, before time.Time, limit int) ([]Finished, error) {
	var rows []Finished
	err := s.db.NewSelect().TableExpr("task_result").Column("id", "user_id", "status", "attempts", "result_path").
		Where("status IN (?)", bun.List(finishedStatuses)).Where("updated_at < ?", before.UTC()).
		OrderExpr("updated_at, id").Limit(int64(limit)).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("read finished tasks before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	return rows, nil
}

// DeleteFinished deletes the task's row if it is still finished: a row
// the projection has meanwhile moved on (a retry applied) stays. A
// missing row is no error.
func (s *Store) DeleteFinished(ctx context.Context, id string) error {
	_, err := s.db.NewDelete().TableExpr("task_result").Where("id = ?", id).
		Where("status IN (?)", bun.List(finishedStatuses)).Exec(ctx)
	if err != nil {
		return fmt.Errorf("delete task %s: %w", id, err)
	}
	return nil
}
