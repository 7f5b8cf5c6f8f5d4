package activity

import (
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/platform/database"
	"github.com/otjhelper/otj/platform/testsupport"
)

// newDB returns a fresh migrated database (testsupport.DB: SQLite, or
// PostgreSQL under OTJ_TEST_DIALECT=postgres) with the reference data.
func newDB(tb testing.TB) *bun.DB {
	tb.Helper()
	db, _ := testsupport.DB(tb)
	seed(tb, db)
	return db
}

// newSQLiteDB is newDB on SQLite whatever OTJ_TEST_DIALECT says, for
// tests of SQLite's own behaviour.
func newSQLiteDB(tb testing.TB) *bun.DB {
	tb.Helper()
	db, _ := testsupport.SQLiteDB(tb)
	seed(tb, db)
	return db
}

// eachDB runs test on a fresh seeded database of each dialect, as
// subtests (testsupport.EachDialect).
func eachDB(t *testing.T, test func(t *testing.T, db *bun.DB)) {
	t.Helper()
	testsupport.EachDialect(t, func(t *testing.T, db *bun.DB) {
		seed(t, db)
		test(t, db)
	})
}

// freshLike returns another fresh seeded database of db's dialect.
func freshLike(tb testing.TB, db *bun.DB) *bun.DB {
	tb.Helper()
	if database.DialectOf(db) == database.Postgres {
		fresh := testsupport.PostgresDB(tb)
		seed(tb, fresh)
		return fresh
	}
	return newSQLiteDB(tb)
}

func seed(tb testing.TB, db *bun.DB) {
	tb.Helper()
	if err := NewStore(db).SeedReference(tb.Context()); err != nil {
		tb.Fatal(err)
	}
}

// newUser creates a user and returns its id.
func newUser(tb testing.TB, db *bun.DB, email string) int64 {
	tb.Helper()
	u, err := NewStore(db).EnsureUser(tb.Context(), email)
	if err != nil {
		tb.Fatal(err)
	}
	return u.ID
}

// fixture is one activity to insert the way the app's write path would:
// plain rows, dates as YYYY-MM-DD, tags created on first use.
type fixture struct {
	date, title, desc, typ, quality, notes string
	hours                                  float64
	tags, ksbs, links                      []string // ksbs: stored codes
}

// insert writes the fixtures for the user, in order, and returns their ids.
func insert(tb testing.TB, db *bun.DB, userID int64, fs ...fixture) []int64 {
	tb.Helper()
	ctx := tb.Context()
	var ids []int64
	for _, f := range fs {
		var id int64
		if err := db.QueryRowContext(ctx, `INSERT INTO activity (user_id, title, description, activity_date, duration_hours, activity_type, evidence_quality, notes)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`, userID, f.title, f.desc, f.date, f.hours, f.typ, f.quality, f.notes).Scan(&id); err != nil {
			tb.Fatal(err)
		}
		ids = append(ids, id)
		for _, tag := range f.tags {
			mustExec(tb, db, `INSERT INTO tag (user_id, name) VALUES (?, ?) ON CONFLICT DO NOTHING`, userID, tag)
			mustExec(tb, db, `INSERT INTO activity_tags (activity_id, tag_id) SELECT ?, id FROM tag WHERE user_id = ? AND name = ?`, id, userID, tag)
		}
		for _, k := range f.ksbs {
			mustExec(tb, db, `INSERT INTO activity_ksbs (activity_id, ksb_code) VALUES (?, ?)`, id, k)
		}
		for _, l := range f.links {
			mustExec(tb, db, `INSERT INTO resource_link (activity_id, url) VALUES (?, ?)`, id, l)
		}
	}
	return ids
}

func mustExec(tb testing.TB, db *bun.DB, q string, args ...any) {
	tb.Helper()
	if _, err := db.ExecContext(tb.Context(), q, args...); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
}

func count(tb testing.TB, db *bun.DB, q string, args ...any) int {
	tb.Helper()
	var n int
	if err := db.QueryRowContext(tb.Context(), q, args...).Scan(&n); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
	return n
}

// collect returns copies of all the user's report rows: EachReportRow
// reuses its row, lists and strings, so keeping them would see later rows.
func collect(tb testing.TB, s *Store, userID int64) []ReportRow {
	tb.Helper()
	var out []ReportRow
	err := s.EachReportRow(tb.Context(), userID, func(r *ReportRow) error {
		c := *r
		c.Title, c.Description, c.Notes = strings.Clone(r.Title), strings.Clone(r.Description), strings.Clone(r.Notes)
		c.TypeLabel, c.QualityLabel = strings.Clone(r.TypeLabel), strings.Clone(r.QualityLabel)
		c.Tags, c.KSBs, c.Links = cloneList(r.Tags), cloneList(r.KSBs), cloneList(r.Links)
		out = append(out, c)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// cloneList copies a list and its strings, nil when empty, so rows
// compare with reflect.DeepEqual whatever capacity the original had.
func cloneList(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	c := make([]string, len(s))
	for i, v := range s {
		c[i] = strings.Clone(v)
	}
	return c
}
