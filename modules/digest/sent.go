package digest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// The states of a digest_sent row.
const (
	stateSending = "sending"
	stateSent    = "sent"
)

// dbTimeout bounds each query on digest_sent.
const dbTimeout = 10 * time.Second

// claim is a digest_sent row as a job that found it sees it.
type claim struct {
	State string
	At    time.Time
}

// sentLog is the digest_sent table: which user's week has been claimed
// for sending, and whether it went.
type sentLog struct{ db *bun.DB }

// claim takes the user's week for this job. The insert does nothing when
// the row is there, whichever process put it there, so that of two jobs
// racing for one week exactly one sends; the other is told what it found.
func (s sentLog) claim(ctx context.Context, userID int64, week, msgID string, now time.Time) (bool, claim, error) {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	res, err := s.db.ExecContext(ctx,
		`INSERT INTO digest_sent (user_id, week, message_id, state, at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (user_id, week) DO NOTHING`,
		userID, week, msgID, stateSending, now.UTC())
	if err != nil {
		return false, claim{}, fmt.Errorf("claim %s for user %d: %w", week, userID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return false, claim{}, fmt.Errorf("claim %s for user %d: %w", week, userID, err)
	} else if n == 1 {
		return true, claim{}, nil
	}
	var c claim
	err = s.db.QueryRowContext(ctx, `SELECT state, at FROM digest_sent WHERE user_id = ? AND week = ?`, userID, week).Scan(&c.State, &c.At)
	if errors.Is(err, sql.ErrNoRows) {
		// Released between the two statements: the next attempt claims it.
		return false, claim{}, fmt.Errorf("claim %s for user %d: released meanwhile, try again", week, userID)
	}
	if err != nil {
		return false, claim{}, fmt.Errorf("claim %s for user %d: %w", week, userID, err)
	}
	return false, c, nil
}

// markSent records that the user's week went out.
func (s sentLog) markSent(ctx context.Context, userID int64, week string, now time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	if _, err := s.db.ExecContext(ctx, `UPDATE digest_sent SET state = ?, at = ? WHERE user_id = ? AND week = ?`,
		stateSent, now.UTC(), userID, week); err != nil {
		return fmt.Errorf("mark %s sent for user %d: %w", week, userID, err)
	}
	return nil
}

// release drops a claim whose mail surely did not go.
func (s sentLog) release(ctx context.Context, userID int64, week string) error {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	if _, err := s.db.ExecContext(ctx, `DELETE FROM digest_sent WHERE user_id = ? AND week = ? AND state = ?`,
		userID, week, stateSending); err != nil {
		return fmt.Errorf("release %s for user %d: %w", week, userID, err)
	}
	return nil
}
