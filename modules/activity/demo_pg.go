package activity

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
)

// fillPG is fillTx on PostgreSQL: one transaction on one connection, as
// on SQLite, with the rows going in by COPY (pgx's CopyFrom), which for a
// million activities is many times faster than INSERTs. Foreign keys stay
// on (PostgreSQL cannot turn them off for a session without superuser
// rights), so a table's rows go in only after the activities they refer
// to: see copyTable.
func fillPG(ctx context.Context, db *bun.DB, opt DemoOptions) (int64, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit

	u, err := ensureUser(ctx, tx, opt.Email)
	if err != nil {
		return 0, err
	}
	ksbCodes, err := specKSBs(ctx, tx, opt.Spec)
	if err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `
		UPDATE app_user SET selected_spec = ?, otj_target_hours = ?, weekly_target_hours = ?,
			name = CASE name WHEN '' THEN ? ELSE name END
		WHERE id = ?`, opt.Spec, demoTargetHours, demoWeeklyHours, demoDefaultName, u.ID); err != nil {
		return 0, fmt.Errorf("update user: %w", err)
	}
	if err := deleteUserLogPG(ctx, tx, u.ID); err != nil {
		return 0, err
	}
	tagIDs, err := insertTags(ctx, tx, u.ID)
	if err != nil {
		return 0, err
	}
	// The ids Fill assigns itself are taken from the identity sequence
	// in one step, so that later ordinary inserts (and another Fill)
	// stay clear of them.
	var first int64
	if err := tx.QueryRowContext(ctx, `SELECT nextval(pg_get_serial_sequence('activity', 'id'))`).Scan(&first); err != nil {
		return 0, fmt.Errorf("next activity id: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence('activity', 'id'), ?)`,
		first+int64(max(opt.Activities, 1))-1); err != nil {
		return 0, fmt.Errorf("reserve activity ids: %w", err)
	}

	g := newDemoGen(opt, u.ID, first-1, tagIDs, ksbCodes)
	if err := g.insert(ctx, copyWriter{conn: conn.Conn}); err != nil {
		return 0, err
	}
	if opt.Progress != nil {
		fmt.Fprintf(opt.Progress, "\rdemo: %d/%d activities (100%%), committing", opt.Activities, opt.Activities)
	}
	if err := tx.Commit(); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			err = cerr
		}
		return 0, fmt.Errorf("commit: %w", err)
	}
	return u.ID, nil
}

// deleteUserLogPG is deleteUserLog on PostgreSQL. When the user owns
// every activity the four tables are truncated, which drops their files
// rather than deleting (and checking the keys of) each row; it locks
// them until the transaction ends, which suits a demo load.
func deleteUserLogPG(ctx context.Context, tx bun.Tx, userID int64) error {
	var others bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM activity WHERE user_id <> ?)`, userID).Scan(&others); err != nil {
		return fmt.Errorf("delete old data: %w", err)
	}
	if !others {
		if _, err := tx.ExecContext(ctx, `TRUNCATE activity_tags, activity_ksbs, resource_link, activity`); err != nil {
			return fmt.Errorf("delete old data: %w", err)
		}
	}
	// ON DELETE CASCADE takes the join rows and links; after a truncate
	// these find nothing.
	for _, q := range []string{
		`DELETE FROM activity WHERE user_id = ?`,
		`DELETE FROM tag WHERE user_id = ?`,
	} {
		if _, err := tx.ExecContext(ctx, q, userID); err != nil {
			return fmt.Errorf("delete old data: %w", err)
		}
	}
	return nil
}

// copyWriter makes copyTables on conn, which holds Fill's transaction.
type copyWriter struct {
	conn interface{ Raw(func(any) error) error }
}

func (w copyWriter) table(parent rowSink, name string, cols []string, _ int) rowSink {
	p, _ := parent.(*copyTable)
	return &copyTable{conn: w.conn, parent: p, name: name, cols: cols}
}

// copyRows is how many rows one COPY sends: big enough that a COPY's
// round trips cost nothing per row, small enough that the buffered rows
// stay a few MB.
const copyRows = 8192

// copyTable sends one table's rows by COPY, copyRows at a time. Before
// it sends, its parent (the activities) sends what it holds, so that no
// row reaches the database before the activity it refers to.
type copyTable struct {
	conn   interface{ Raw(func(any) error) error }
	parent *copyTable
	name   string
	cols   []string
	rows   [][]any
	free   [][]any // rows' value slices, reused
}

func (c *copyTable) row(ctx context.Context, vals ...any) error {
	var r []any
	if n := len(c.free); n > 0 {
		r, c.free = c.free[n-1][:0], c.free[:n-1]
	}
	r = append(r, vals...)
	if c.name == "activity" {
		// The generator's dates are text; COPY's binary DATE wants a time.
		if day, ok := r[4].(string); ok {
			t, err := time.Parse(dateLayout, day)
			if err != nil {
				return fmt.Errorf("insert into %s: %w", c.name, err)
			}
			r[4] = t
		}
	}
	c.rows = append(c.rows, r)
	if len(c.rows) < copyRows {
		return nil
	}
	return c.flush(ctx)
}

func (c *copyTable) flush(ctx context.Context) error {
	if c.parent != nil {
		if err := c.parent.flush(ctx); err != nil {
			return err
		}
	}
	if len(c.rows) == 0 {
		return nil
	}
	err := c.conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("database driver %T is not pgx", dc)
		}
		_, err := sc.Conn().CopyFrom(ctx, pgx.Identifier{c.name}, c.cols, pgx.CopyFromRows(c.rows))
		return err
	})
	if err != nil {
		return fmt.Errorf("insert into %s: %w", c.name, err)
	}
	c.free = append(c.free, c.rows...)
	c.rows = c.rows[:0]
	return nil
}
