package activity

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// eraseStatements delete everything the activity log keeps of one user,
// children before parents, each taking the user's id once. Every one is
// explicit rather than left to ON DELETE CASCADE, which SQLite applies
// only with foreign keys switched on for the connection.
var eraseStatements = []struct{ what, query string }{
	{"links", `DELETE FROM resource_link WHERE activity_id IN (SELECT id FROM activity WHERE user_id = ?)`},
	{"activity tags", `DELETE FROM activity_tags WHERE activity_id IN (SELECT id FROM activity WHERE user_id = ?)`},
	{"activity KSBs", `DELETE FROM activity_ksbs WHERE activity_id IN (SELECT id FROM activity WHERE user_id = ?)`},
	{"activities", `DELETE FROM activity WHERE user_id = ?`},
	{"tags", `DELETE FROM tag WHERE user_id = ?`},
	{"digests sent", `DELETE FROM digest_sent WHERE user_id = ?`},
	{"uploads", `DELETE FROM import_upload WHERE user_id = ?`},
	{"user", `DELETE FROM app_user WHERE id = ?`},
}

// EraseUser deletes the user and everything of theirs in the activity
// log (activities, their KSBs and links, tags, settings) in one
// transaction, on SQLite and PostgreSQL alike: either all of it goes or
// none. A user already erased, or never there, is no error, so an erase
// cut short elsewhere can be run again.
func (s *Store) EraseUser(ctx context.Context, userID int64) error {
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for _, st := range eraseStatements {
			if _, err := tx.ExecContext(ctx, st.query, userID); err != nil {
				return fmt.Errorf("delete %s: %w", st.what, err)
			}
		}
		// Changes not relayed yet would publish the user's events
		// again after the stream's purge.
		if _, err := tx.ExecContext(ctx, `DELETE FROM activity_outbox WHERE subject LIKE ?`,
			fmt.Sprintf("activity.%d.%%", userID)); err != nil {
			return fmt.Errorf("delete outbox: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("erase user %d: %w", userID, err)
	}
	return nil
}
