package tasks

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/uptrace/bun"
)

// ErrNotFound means no such task, or not one the asker may see.
var ErrNotFound = errors.New("task not found")

// Store reads the task_result projection. It never writes: only the
// Projection does.
type Store struct{ db *bun.DB }

// NewStore returns a Store over db.
func NewStore(db *bun.DB) *Store { return &Store{db: db} }

// ListForUser returns the user's most recent tasks, newest first.
func (s *Store) ListForUser(ctx context.Context, userID int64, limit int) ([]TaskResult, error) {
	var rows []TaskResult
	err := s.db.NewSelect().Model(&rows).
		Where("user_id = ?", userID).
		OrderExpr("created_at DESC, id DESC").
		Limit(int64(limit)).
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("list tasks of user %d: %w", userID, err)
	}
	return rows, nil
}

// GetForUser returns the user's task id. Another user's task is
// ErrNotFound, exactly like a task that does not exist.
func (s *Store) GetForUser(ctx context.Context, userID int64, id string) (TaskResult, error) {
	var row TaskResult
	err := s.db.NewSelect().Model(&row).
		Where("id = ?", id).
		Where("user_id = ?", userID).
		Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return TaskResult{}, fmt.Errorf("task %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return TaskResult{}, fmt.Errorf("get task %s: %w", id, err)
	}
	return row, nil
}

// All returns every row ordered by id, for comparing projections.
func (s *Store) All(ctx context.Context) ([]TaskResult, error) {
	var rows []TaskResult
	if err := s.db.NewSelect().Model(&rows).Order("id").Scan(ctx); err != nil {
		return nil, fmt.Errorf("list all tasks: %w", err)
	}
	return rows, nil
}
