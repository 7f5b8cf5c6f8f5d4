package activity

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/platform/database"
	"github.com/otjhelper/otj/platform/testsupport"
)

// TestEachReportRowMatchesListActivities checks the merge join against
// the correlated subqueries of activitySelect, which ListActivities still
// runs: on a realistic log, with a second user's rows interleaved, every
// row must be the same.
func TestEachReportRowMatchesListActivities(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *bun.DB) {
		s := NewStore(db)
		// Bob first, so that Demo's activities are not the whole table.
		bob, err := Fill(t.Context(), db, DemoOptions{Email: "bob@example.org", Activities: 300, Spec: "ST0763", Now: demoNow, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		demo, err := Fill(t.Context(), db, DemoOptions{Email: "demo@example.org", Activities: 2*reportBatchRows + 17, Now: demoNow, Seed: 9})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range []User{bob, demo} {
			pg, err := s.ListActivities(t.Context(), u.ID, Filter{}, 1, 10_000)
			if err != nil {
				t.Fatal(err)
			}
			got := collect(t, s, u.ID)
			if len(got) != len(pg.Activities) {
				t.Fatalf("%s: %d report rows, %d activities", u.Email, len(got), len(pg.Activities))
			}
			for i, a := range pg.Activities {
				want := ReportRow{Date: a.Date, Title: a.Title, Hours: a.Hours, TypeLabel: TypeLabel(a.Type), QualityLabel: QualityLabel(a.Quality),
					Tags: cloneList(a.Tags), KSBs: cloneList(a.KSBs), Links: cloneList(a.Links), Description: a.Description, Notes: a.Notes}
				if !reflect.DeepEqual(got[i], want) {
					t.Fatalf("%s row %d:\n got  %#v\n want %#v", u.Email, i, got[i], want)
				}
			}
		}
	})
}

// TestEachReportRowOneSnapshot adds and deletes activities, tags and links
// while a report runs: the report shows the log as it was when it began,
// each row with its own lists.
func TestEachReportRowOneSnapshot(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *bun.DB) {
		s := NewStore(db)
		u := newUser(t, db, "snap@example.org")
		const n = 4 * reportBatchRows
		var fs []fixture
		for i := range n {
			fs = append(fs, snapFixture(i))
		}
		insert(t, db, u, fs...)

		rows := 0
		err := s.EachReportRow(t.Context(), u, func(r *ReportRow) error {
			if rows == 0 {
				// While the first row is with fn, other connections change
				// activities the reader has not reached yet, and commit.
				for i := n; i < n+50; i++ {
					insert(t, db, u, snapFixture(i))
				}
				mustExec(t, db, `DELETE FROM activity_tags WHERE activity_id IN (SELECT id FROM activity WHERE user_id = ? AND title = 'act-5')`, u)
				mustExec(t, db, `DELETE FROM resource_link WHERE activity_id IN (SELECT id FROM activity WHERE user_id = ?)`, u)
			}
			rows++
			var k int
			if _, err := fmt.Sscanf(r.Title, "act-%d", &k); err != nil || k >= n {
				return fmt.Errorf("row %d: title %q: not an activity of the snapshot", rows, r.Title)
			}
			want := snapFixture(k)
			if !reflect.DeepEqual(cloneList(r.Tags), want.tags) || !reflect.DeepEqual(cloneList(r.Links), want.links) {
				return fmt.Errorf("row %q: tags %q links %q, want %q %q", r.Title, r.Tags, r.Links, want.tags, want.links)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if rows != n {
			t.Errorf("%d rows, want %d", rows, n)
		}
		// The writes did land: a new report sees them.
		got := collect(t, s, u)
		if len(got) != n+50 {
			t.Errorf("a later report has %d rows, want %d", len(got), n+50)
		}
		for _, r := range got {
			if len(r.Links) != 0 {
				t.Fatalf("a later report has links %q", r.Links)
			}
		}
	})
}

// snapFixture is activity k of TestEachReportRowOneSnapshot, its lists
// worked out from k. Dates repeat, so ties are ordered by id.
func snapFixture(k int) fixture {
	return fixture{
		date: time.Date(2025, 1, 1+k%40, 0, 0, 0, 0, time.UTC).Format(dateLayout), title: fmt.Sprintf("act-%d", k),
		typ: "other", hours: 1, tags: []string{fmt.Sprintf("t%d", k%7)}, links: []string{fmt.Sprintf("https://example.org/%d", k)},
	}
}

// TestEachReportRowCancelledWhileReading cancels a large report in the
// middle: it ends with ctx's error, soon, with its reader gone (the
// package's goleak check sees to that).
func TestEachReportRowCancelledWhileReading(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *bun.DB) {
		u := fillOnce(t, db, 20*reportBatchRows)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		rows := 0
		start := time.Now()
		err := NewStore(db).EachReportRow(ctx, u.ID, func(*ReportRow) error {
			if rows++; rows == reportBatchRows+1 {
				cancel()
			}
			return nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if rows != reportBatchRows+1 {
			t.Errorf("fn called %d times after the cancel, want none", rows-reportBatchRows-1)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("took %s", d)
		}
	})
}

// TestEachReportRowNeedsAFile: the report reads the database file through
// a connection of its own, so a database in memory is refused, plainly.
func TestEachReportRowNeedsAFile(t *testing.T) {
	t.Parallel()
	db, err := database.Open(t.Context(), ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	err = NewStore(db).EachReportRow(t.Context(), 1, func(*ReportRow) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "in memory") {
		t.Errorf("err = %v, want one saying the database is in memory", err)
	}
}

// TestReportStatementsStream checks how SQLite runs the report's
// statements: in the order of activity_user_date, each list joined by its
// index, nothing sorted, nothing buffered, whatever the log's size.
func TestReportStatementsStream(t *testing.T) {
	t.Parallel()
	db := newSQLiteDB(t) // SQLite's plans; PostgreSQL runs one statement (report_pg.go)
	for _, q := range reportStatements {
		rows, err := db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q, 1)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		p := strings.Join(plan, "; ")
		if strings.Contains(p, "TEMP B-TREE") || !strings.HasPrefix(p, "SEARCH a USING ") || !strings.Contains(p, "INDEX activity_user_date (user_id=?)") {
			t.Errorf("plan of %s\n  %s", strings.Join(strings.Fields(q), " "), p)
		}
		if strings.Contains(q, "resource_link") && !strings.Contains(p, "COVERING INDEX resource_link_activity") {
			t.Errorf("links are not read from the index alone: %s", p)
		}
	}
}

// TestEachReportRowSameOnBothDialects fills the same demo log into SQLite
// and PostgreSQL: the two report readers (report_read.go, report_pg.go)
// must give the same rows, lists and order included.
func TestEachReportRowSameOnBothDialects(t *testing.T) {
	t.Parallel()
	lite := newSQLiteDB(t)
	pg := testsupport.PostgresDB(t)
	seed(t, pg)
	var rows [2][]ReportRow
	for i, db := range []*bun.DB{lite, pg} {
		u, err := Fill(t.Context(), db, DemoOptions{Email: "demo@example.org", Activities: 3*reportBatchRows + 5, Now: demoNow, Seed: 7})
		if err != nil {
			t.Fatal(err)
		}
		rows[i] = collect(t, NewStore(db), u.ID)
	}
	if len(rows[0]) != len(rows[1]) {
		t.Fatalf("%d rows on SQLite, %d on PostgreSQL", len(rows[0]), len(rows[1]))
	}
	for i := range rows[0] {
		if !reflect.DeepEqual(rows[0][i], rows[1][i]) {
			t.Fatalf("row %d:\n sqlite   %#v\n postgres %#v", i, rows[0][i], rows[1][i])
		}
	}
}
