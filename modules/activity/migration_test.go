package activity

import (
	"context"
	"io/fs"
	"reflect"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/migrations"
	"github.com/otjhelper/otj/platform/database"
)

// runMigrationFile runs one embedded migration file of db's dialect the
// way bun runs a .tx. file: its statements in one transaction.
func runMigrationFile(t *testing.T, db *bun.DB, name string) {
	t.Helper()
	b, err := fs.ReadFile(migrations.For(database.DialectOf(db).String()), name)
	if err != nil {
		t.Fatal(err)
	}
	err = db.RunInTx(t.Context(), nil, func(ctx context.Context, tx bun.Tx) error {
		for _, q := range strings.Split(string(b), "--bun:split") {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// logState is everything of the log 009 must keep: rows of every table
// the rebuild touches, ids included.
func logState(t *testing.T, db *bun.DB) map[string][]string {
	t.Helper()
	st := map[string][]string{}
	for name, q := range map[string]string{
		"activity": `SELECT id || '|' || user_id || '|' || title || '|' || description || '|' || activity_date || '|' || duration_hours ||
			'|' || activity_type || '|' || evidence_quality || '|' || notes FROM activity ORDER BY id`,
		"tags":  `SELECT activity_id || '|' || tag_id FROM activity_tags ORDER BY activity_id, tag_id`,
		"ksbs":  `SELECT activity_id || '|' || ksb_code FROM activity_ksbs ORDER BY activity_id, ksb_code`,
		"links": `SELECT id || '|' || activity_id || '|' || url || '|' || title FROM resource_link ORDER BY id`,
	} {
		rows, err := db.QueryContext(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			st[name] = append(st[name], s)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// Migration 009 rebuilds activity on SQLite (a CHECK cannot be altered
// there): on a log with data, every activity, tag, KSB and link row is
// kept with its id, the indexes and foreign keys still work, and no id of
// a deleted activity comes back. Down and up again keeps them too.
func TestMigration009KeepsTheLog(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *bun.DB) {
		const up, down = "009_activity_crud.tx.up.sql", "009_activity_crud.tx.down.sql"
		runMigrationFile(t, db, down) // the schema before 009
		alice := newUser(t, db, "alice@example.org")
		bob := newUser(t, db, "bob@example.org")
		ids := insert(t, db, alice,
			fixture{date: "2025-05-01", title: "a", hours: 2.5, typ: "research", tags: []string{"zeta", "alpha"}, ksbs: []string{"AK1", "AS2"}, links: []string{"https://example.org/1", "https://example.org/2"}},
			fixture{date: "2025-05-02", title: "b", hours: 24, typ: "workshop", desc: "d", notes: "n", quality: "good", tags: []string{"alpha"}},
			fixture{date: "2025-05-03", title: "gone", hours: 1, typ: "other"},
		)
		insert(t, db, bob, fixture{date: "2025-05-04", title: "c", hours: 3, typ: "other", ksbs: []string{"AK1"}, links: []string{"https://example.org/3"}})
		// The highest id deleted: a rebuild that lost the AUTOINCREMENT
		// mark would hand it out again.
		mustExec(t, db, `DELETE FROM activity WHERE id = ?`, ids[2])
		before := logState(t, db)
		if len(before["tags"]) != 3 || len(before["ksbs"]) != 3 || len(before["links"]) != 3 {
			t.Fatalf("fixture: %v", before)
		}

		runMigrationFile(t, db, up)
		if after := logState(t, db); !reflect.DeepEqual(after, before) {
			t.Fatalf("009 changed the log:\n before %v\n after  %v", before, after)
		}
		if n := count(t, db, `SELECT count(*) FROM activity WHERE updated_at IS NULL OR updated_at <> created_at`); n != 0 {
			t.Errorf("%d activities without updated_at = created_at", n)
		}
		// The indexes are back.
		idx := `SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN ('activity_user_date', 'activity_user_hours')`
		if database.DialectOf(db) == database.Postgres {
			idx = `SELECT count(*) FROM pg_indexes WHERE indexname IN ('activity_user_date', 'activity_user_hours')`
			// The rebuild is SQLite's; on PostgreSQL a misnamed constraint would fail the up file.
		} else if n := count(t, db, `SELECT count(*) FROM pragma_foreign_key_check`); n != 0 {
			t.Errorf("%d rows break a foreign key", n)
		}
		if n := count(t, db, idx); n != 2 {
			t.Errorf("%d of the activity indexes after 009", n)
		}
		// The new limit, and a fresh id above every id ever used.
		var id int64
		if err := db.QueryRowContext(t.Context(), `INSERT INTO activity (user_id, title, activity_date, duration_hours, activity_type)
			VALUES (?, 'long', '2025-05-05', 100, 'training_course') RETURNING id`, alice).Scan(&id); err != nil {
			t.Fatalf("100 hours after 009: %v", err)
		}
		if id <= ids[2] {
			t.Errorf("new activity got id %d, reusing the deleted %d", id, ids[2])
		}
		if _, err := db.ExecContext(t.Context(), `INSERT INTO activity (user_id, title, activity_date, duration_hours, activity_type)
			VALUES (?, 'too long', '2025-05-05', 100.5, 'other')`, alice); err == nil {
			t.Error("an activity of 100.5 hours was stored")
		}
		// The children still point at activity: deleting one cascades.
		mustExec(t, db, `DELETE FROM activity WHERE id = ?`, ids[0])
		if n := count(t, db, `SELECT count(*) FROM resource_link WHERE activity_id = ?`, ids[0]); n != 0 {
			t.Errorf("%d links of a deleted activity left", n)
		}
		if n := count(t, db, `SELECT count(*) FROM activity_ksbs WHERE activity_id = ?`, ids[0]); n != 0 {
			t.Errorf("%d KSBs of a deleted activity left", n)
		}
		if _, err := db.ExecContext(t.Context(), `INSERT INTO activity_ksbs (activity_id, ksb_code) VALUES (999999, 'AK1')`); err == nil {
			t.Error("a KSB of no activity was stored: the foreign key is gone")
		}
		mustExec(t, db, `DELETE FROM activity WHERE id = ?`, id)

		// Down and up again, on data that fits the old limit.
		before = logState(t, db)
		runMigrationFile(t, db, down)
		runMigrationFile(t, db, up)
		if after := logState(t, db); !reflect.DeepEqual(after, before) {
			t.Fatalf("009 down and up changed the log:\n before %v\n after  %v", before, after)
		}
	})
}
