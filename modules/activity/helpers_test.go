package activity

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/platform/database"
)

// newDB opens a migrated database in a temp dir, with the reference data.
func newDB(tb testing.TB) *bun.DB {
	tb.Helper()
	ctx := tb.Context()
	path := filepath.Join(tb.TempDir(), "otj.db")
	db, err := database.Open(ctx, path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if _, err := database.Migrate(ctx, db, path); err != nil {
		tb.Fatal(err)
	}
	if err := NewStore(db).SeedReference(ctx); err != nil {
		tb.Fatal(err)
	}
	return db
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
