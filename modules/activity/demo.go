package activity

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"io"
	"time"

	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/platform/database"
)

// DemoOptions control Fill.
type DemoOptions struct {
	// Email is the user to create or refill.
	Email string
	// Activities is how many activities to create (0 just empties the log).
	Activities int
	// Spec is the user's apprenticeship standard; "" means "ST0787".
	Spec string
	// Now anchors the dates: the log ends on Now's date and reaches back
	// as many weeks as its activities need (see demoPerWeek); zero means
	// time.Now().
	Now time.Time
	// Seed picks the data: the same seed gives the same activities.
	Seed int64
	// Progress, when not nil, receives a progress line while Fill works
	// and a summary line at the end.
	Progress io.Writer
}

const (
	// The demo user's targets: a typical off-the-job commitment for a
	// level 7 apprenticeship, and the usual six hours a week.
	demoTargetHours = 312
	demoWeeklyHours = 6
	// demoPerWeek is how many activities the apprentice logs in a week
	// they work at it: four of about an hour and a half make the weekly
	// target. The log reaches back as many weeks as n activities need at
	// that rate, holidays and gaps left out, up to demoMaxWeeks.
	demoPerWeek = 4
	// demoMaxWeeks bounds how far back a log goes (ten years): a log too
	// large for it (the benchmarks' million activities) packs its weeks
	// fuller, and is far past the weekly target.
	demoMaxWeeks = 520
	// demoGapWeeks is the share of weeks, holidays aside, the apprentice
	// logs nothing (ill, busy, forgot), in percent.
	demoGapWeeks = 6
	// demoUnevidenced is how many of the standard's KSBs no demo activity
	// evidences: a real portfolio has a few still to do.
	demoUnevidenced = 3
	demoDefaultSpec = "ST0787"
	// demoDefaultName is given to a demo user that has no name yet.
	demoDefaultName = "Demo Apprentice"
)

// Fill creates the user with opt.Activities realistic activities, or
// refills it: the user's existing activities, tags and links are deleted
// first. It sets the user's standard and hour targets, and returns the user.
//
// The log is a plausible apprentice's: about the weekly target in the
// weeks they log anything, none in the holidays (Christmas, Easter,
// August) and in a few weeks besides; KSBs evidenced a few at first and
// more as the months go by, with better evidence later, so that the
// portfolio's readiness grows; and demoUnevidenced KSBs without evidence
// at all. Up to about demoPerWeek × 442 activities (2,000 or so) the
// weekly hours stay near the target; a larger log is a benchmark's.
//
// opt.Spec must be a seeded standard, else the error wraps ErrNotFound.
//
// It is built for large data sets (a million activities in well under a
// minute): one write transaction on one connection, multi-row INSERTs through prepared
// statements, and ids it assigns itself so join rows need no lookups. That
// transaction holds the database's write lock throughout, so other writers
// wait (up to their busy timeout); and it is all or nothing, so a cancelled
// Fill leaves the user as it was.
func Fill(ctx context.Context, db *bun.DB, opt DemoOptions) (User, error) {
	started := time.Now()
	if opt.Spec == "" {
		opt.Spec = demoDefaultSpec
	}
	if opt.Now.IsZero() {
		opt.Now = started
	}
	if opt.Activities < 0 {
		return User{}, fmt.Errorf("fill demo data: %d activities: must be 0 or more", opt.Activities)
	}
	store := NewStore(db)
	// Fill's KSB codes and the user's selected_spec need the reference
	// data, and Fill may run against a database nothing has seeded yet.
	if err := store.SeedReference(ctx); err != nil {
		return User{}, fmt.Errorf("fill demo data: %w", err)
	}
	userID, err := fillTx(ctx, db, opt)
	if err != nil {
		if opt.Progress != nil {
			fmt.Fprintln(opt.Progress) // end the progress line
		}
		return User{}, fmt.Errorf("fill demo data for %s: %w", normalizeEmail(opt.Email), err)
	}
	u, err := store.UserByID(ctx, userID)
	if err != nil {
		return User{}, fmt.Errorf("fill demo data: %w", err)
	}
	if opt.Progress != nil {
		elapsed := time.Since(started)
		// Spaces cover the longer "committing" line this one overwrites.
		fmt.Fprintf(opt.Progress, "\rdemo: %d/%d activities (100%%) in %s, %.0f activities/s          \n",
			opt.Activities, opt.Activities, elapsed.Round(time.Millisecond), float64(opt.Activities)/elapsed.Seconds())
	}
	return u, nil
}

// fillTx does Fill's writing on a connection of its own and returns the
// user's id.
func fillTx(ctx context.Context, db *bun.DB, opt DemoOptions) (int64, error) {
	if database.DialectOf(db) == database.Postgres {
		return fillPG(ctx, db, opt)
	}
	return fillSQLite(ctx, db, opt)
}

// fillSQLite is fillTx on SQLite.
func fillSQLite(ctx context.Context, db *bun.DB, opt DemoOptions) (int64, error) {
	conn, err := db.DB.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	// The pragmas below suit a bulk load, not the app, so the connection
	// is closed rather than returned to the pool.
	defer discardConn(conn)
	// Foreign keys off: every id Fill writes comes from rows it has just
	// read or written in the same transaction, so the checks (an index
	// probe per key, per row) would only cost time; they would stop
	// DELETE without WHERE from emptying a table wholesale; and each
	// table's batches go in when full, so a batch of join rows can reach
	// the database before the batch holding their activities. The pragma
	// must be set outside a transaction to have any effect. (A bigger page
	// cache or synchronous=OFF measured no faster: the inserts append.)
	if _, err := conn.ExecContext(ctx, `PRAGMA foreign_keys = OFF`); err != nil {
		return 0, fmt.Errorf("foreign keys off: %w", err)
	}
	tx, err := conn.BeginTx(ctx, nil) // BEGIN IMMEDIATE, from the DSN
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() // no-op after Commit

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
	if err := deleteUserLog(ctx, tx, u.ID); err != nil {
		return 0, err
	}
	tagIDs, err := insertTags(ctx, tx, u.ID)
	if err != nil {
		return 0, err
	}
	// AUTOINCREMENT never reuses an id, even of a deleted row, so start
	// past both the highest id and the sequence. Inserting explicit ids
	// moves the sequence on, so later ordinary inserts stay clear of them.
	var lastID int64
	if err := tx.QueryRowContext(ctx, `SELECT max(
			coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'activity'), 0),
			coalesce((SELECT max(id) FROM activity), 0))`).Scan(&lastID); err != nil {
		return 0, fmt.Errorf("next activity id: %w", err)
	}

	g := newDemoGen(opt, u.ID, lastID, tagIDs, ksbCodes)
	if err := g.insert(ctx, bulkWriter{tx}); err != nil {
		return 0, err
	}
	if opt.Progress != nil {
		fmt.Fprintf(opt.Progress, "\rdemo: %d/%d activities (100%%), committing", opt.Activities, opt.Activities)
	}
	if err := tx.Commit(); err != nil {
		// A cancelled ctx rolls the transaction back from another
		// goroutine, so Commit may report ErrTxDone instead of ctx's
		// error; the cancellation is the cause either way.
		if cerr := ctx.Err(); cerr != nil {
			err = cerr
		}
		return 0, fmt.Errorf("commit: %w", err)
	}
	return u.ID, nil
}

// discardConn closes conn's driver connection instead of returning it to
// the pool: database/sql discards a connection when Raw's function reports
// it bad.
func discardConn(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close() // already closed by Raw; this only marks conn done
}

// sqlTx is what Fill's helpers need of a transaction: a *sql.Tx on
// SQLite (? placeholders as SQLite reads them), a bun.Tx on PostgreSQL
// (bun formats the ? placeholders).
type sqlTx interface {
	queryRower
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// specKSBs returns the stored codes of a standard's KSBs, in code order.
func specKSBs(ctx context.Context, tx sqlTx, spec string) ([]string, error) {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM spec WHERE code = ?`, spec).Scan(&n); err != nil {
		return nil, fmt.Errorf("standard %s: %w", spec, err)
	}
	if n == 0 {
		return nil, fmt.Errorf("standard %q: %w", spec, ErrNotFound)
	}
	rows, err := tx.QueryContext(ctx, `SELECT code FROM ksb WHERE spec_code = ? ORDER BY code`, spec)
	if err != nil {
		return nil, fmt.Errorf("KSBs of %s: %w", spec, err)
	}
	defer rows.Close()
	var codes []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, fmt.Errorf("KSBs of %s: %w", spec, err)
		}
		codes = append(codes, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("KSBs of %s: %w", spec, err)
	}
	return codes, nil
}

// deleteUserLog deletes the user's activities, their join rows and links,
// and the user's tags. Foreign keys are off on Fill's connection, so the
// children are deleted explicitly rather than by ON DELETE CASCADE.
//
// When the user owns every activity (the usual demo database), whole
// tables are emptied instead: a DELETE without WHERE on a table without
// triggers (and with foreign keys off) drops its pages wholesale, where a
// per-user DELETE visits and rewrites every row and index entry, which
// for a million activities takes longer than writing them did.
func deleteUserLog(ctx context.Context, tx sqlTx, userID int64) error {
	var others bool
	// Two range probes on activity_user_date; "user_id <> ?" would scan
	// the user's own entries to find there are no others.
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM activity WHERE user_id < ?)
		OR EXISTS (SELECT 1 FROM activity WHERE user_id > ?)`, userID, userID).Scan(&others); err != nil {
		return fmt.Errorf("delete old data: %w", err)
	}
	if !others {
		for _, table := range []string{"activity_tags", "activity_ksbs", "resource_link", "activity"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table); err != nil {
				return fmt.Errorf("delete old data: %w", err)
			}
		}
	}
	for _, q := range []string{
		`DELETE FROM activity_tags WHERE activity_id IN (SELECT id FROM activity WHERE user_id = ?)`,
		`DELETE FROM activity_ksbs WHERE activity_id IN (SELECT id FROM activity WHERE user_id = ?)`,
		`DELETE FROM resource_link WHERE activity_id IN (SELECT id FROM activity WHERE user_id = ?)`,
		`DELETE FROM activity WHERE user_id = ?`,
		`DELETE FROM tag WHERE user_id = ?`,
	} {
		// After the wholesale delete these find nothing, cheaply.
		if _, err := tx.ExecContext(ctx, q, userID); err != nil {
			return fmt.Errorf("delete old data: %w", err)
		}
	}
	return nil
}

// insertTags creates the demo tags and returns their ids.
func insertTags(ctx context.Context, tx sqlTx, userID int64) ([]int64, error) {
	ids := make([]int64, len(demoTags))
	for i, name := range demoTags {
		if err := tx.QueryRowContext(ctx, `INSERT INTO tag (user_id, name) VALUES (?, ?) RETURNING id`, userID, name).
			Scan(&ids[i]); err != nil {
			return nil, fmt.Errorf("insert tag %q: %w", name, err)
		}
	}
	return ids, nil
}
