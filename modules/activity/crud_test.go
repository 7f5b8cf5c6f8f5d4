package activity

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/platform/testsupport"
)

// withSpec creates a user following spec and returns its id and the
// stored codes of its standard's first KSBs.
func withSpec(t *testing.T, db *bun.DB, email, spec string) (int64, []KSB) {
	t.Helper()
	id := newUser(t, db, email)
	mustExec(t, db, `UPDATE app_user SET selected_spec = ? WHERE id = ?`, spec, id)
	ksbs, err := NewStore(db).KSBs(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(ksbs) < 3 {
		t.Fatalf("%s has %d KSBs", spec, len(ksbs))
	}
	return id, ksbs
}

// outbox returns the subjects and events waiting in the outbox, oldest first.
func outbox(t *testing.T, db *bun.DB) ([]string, []Event) {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `SELECT subject, payload FROM activity_outbox ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var subjects []string
	var events []Event
	for rows.Next() {
		var s, p string
		if err := rows.Scan(&s, &p); err != nil {
			t.Fatal(err)
		}
		var e Event
		if err := json.Unmarshal([]byte(p), &e); err != nil {
			t.Fatal(err)
		}
		subjects, events = append(subjects, s), append(events, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return subjects, events
}

func TestActivityCRUD(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *bun.DB) {
		s := NewStore(db)
		ctx := t.Context()
		alice, ksbs := withSpec(t, db, "alice@example.org", "ST0787")
		bob, _ := withSpec(t, db, "bob@example.org", "ST0787")
		in := Input{
			Title: "Kubernetes course", Date: time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC), Hours: 37.5,
			Type: "training_course", Quality: "good", Description: "A week's course", Notes: "ask for the certificate",
			KSBs: []string{ksbs[2].Code, ksbs[0].Code}, Tags: []string{"k8s", "cloud"},
			Links: []Link{
				{URL: "https://example.org/course", Title: "The course", SourceType: "course", Description: "syllabus", Stage: "capture"},
				{URL: "https://example.org/notes", Stage: "review", SourceType: "article"},
			},
		}
		id, err := s.CreateActivity(ctx, alice, in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.GetActivity(ctx, alice, id)
		if err != nil {
			t.Fatal(err)
		}
		want := in
		want.KSBs = []string{ksbs[0].Code, ksbs[2].Code} // K, S, B order
		want.Tags = []string{"cloud", "k8s"}
		if !reflect.DeepEqual(got.Input, want) {
			t.Errorf("stored\n got  %+v\n want %+v", got.Input, want)
		}
		if got.ID != id || got.UserID != alice || got.CreatedAt.IsZero() || got.UpdatedAt.IsZero() {
			t.Errorf("entry %+v", got)
		}

		pg, err := s.ListActivities(ctx, alice, Filter{}, 1, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(pg.Activities) != 1 || !reflect.DeepEqual(pg.Activities[0].LinkTitles, []string{"The course", ""}) {
			t.Fatalf("list: %+v", pg.Activities)
		}

		// Bob reaches none of it.
		if _, err := s.GetActivity(ctx, bob, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("bob's get: %v", err)
		}
		if err := s.UpdateActivity(ctx, bob, id, Input{Title: "mine", Date: in.Date, Hours: 1, Type: "other"}); !errors.Is(err, ErrNotFound) {
			t.Errorf("bob's update: %v", err)
		}
		if err := s.DeleteActivity(ctx, bob, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("bob's delete: %v", err)
		}

		edit := Input{Title: "Kubernetes course, day 1", Date: time.Date(2026, 3, 6, 0, 0, 0, 0, time.UTC), Hours: 7,
			Type: "workshop", KSBs: []string{ksbs[1].Code}, Tags: []string{"k8s"},
			Links: []Link{{URL: "http://example.org/day1", Stage: "engage", SourceType: "video"}}}
		if err := s.UpdateActivity(ctx, alice, id, edit); err != nil {
			t.Fatal(err)
		}
		got, err = s.GetActivity(ctx, alice, id)
		if err != nil {
			t.Fatal(err)
		}
		edit.Quality = "draft" // the default
		if !reflect.DeepEqual(got.Input, edit) {
			t.Errorf("edited\n got  %+v\n want %+v", got.Input, edit)
		}

		if err := s.DeleteActivity(ctx, alice, id); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetActivity(ctx, alice, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("get after delete: %v", err)
		}
		for _, q := range []string{`SELECT count(*) FROM activity_tags`, `SELECT count(*) FROM activity_ksbs`, `SELECT count(*) FROM resource_link`} {
			if n := count(t, db, q); n != 0 {
				t.Errorf("%s = %d after delete", q, n)
			}
		}
		if tags, err := s.Tags(ctx, alice); err != nil || !reflect.DeepEqual(tags, []string{"cloud", "k8s"}) {
			t.Errorf("alice's tags after delete: %v %v", tags, err)
		}

		subjects, events := outbox(t, db)
		wantSubjects := []string{Subject(alice, id, EventCreated), Subject(alice, id, EventEdited), Subject(alice, id, EventDeleted)}
		if !reflect.DeepEqual(subjects, wantSubjects) {
			t.Fatalf("outbox subjects %v, want %v (bob's refused changes wrote none)", subjects, wantSubjects)
		}
		for i, e := range events {
			if e.UserID != alice || e.ActivityID != id || e.Kind != []EventKind{EventCreated, EventEdited, EventDeleted}[i] || e.Time.IsZero() {
				t.Errorf("event %d: %+v", i, e)
			}
		}
	})
}

// A change that fails writes nothing: not the activity, not its event.
func TestActivityWriteIsAllOrNothing(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *bun.DB) {
		s := NewStore(db)
		alice, _ := withSpec(t, db, "alice@example.org", "ST0787")
		_, other := withSpec(t, db, "bob@example.org", "ST0763")
		day := time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC)
		tests := []struct {
			name    string
			in      Input
			wantErr error
		}{
			{"KSB of another standard", Input{Title: "t", Date: day, Hours: 1, Type: "other", Tags: []string{"new"}, KSBs: []string{other[0].Code}}, ErrUnknownKSB},
			{"no such KSB", Input{Title: "t", Date: day, Hours: 1, Type: "other", KSBs: []string{"ZZ9"}}, ErrUnknownKSB},
			{"over 100 hours", Input{Title: "t", Date: day, Hours: 100.25, Type: "other"}, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.CreateActivity(t.Context(), alice, tt.in)
				if err == nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("create: %v, want %v", err, tt.wantErr)
				}
				for _, q := range []string{`SELECT count(*) FROM activity`, `SELECT count(*) FROM activity_outbox`, `SELECT count(*) FROM tag`} {
					if n := count(t, db, q); n != 0 {
						t.Errorf("%s = %d after a failed create", q, n)
					}
				}
			})
		}
		// 100 hours is the most, and allowed now (it was 24).
		if _, err := s.CreateActivity(t.Context(), alice, Input{Title: "t", Date: day, Hours: 100, Type: "other"}); err != nil {
			t.Fatalf("100 hours: %v", err)
		}
	})
}

func TestListActivitiesFilters(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *bun.DB) {
		s := NewStore(db)
		ctx := t.Context()
		alice, ksbs := withSpec(t, db, "alice@example.org", "ST0787")
		bob, _ := withSpec(t, db, "bob@example.org", "ST0787")
		day := func(d int) time.Time { return time.Date(2026, 3, d, 0, 0, 0, 0, time.UTC) }
		for _, a := range []struct {
			user int64
			in   Input
		}{
			{alice, Input{Title: "a1", Date: day(1), Hours: 1, Type: "workshop", KSBs: []string{ksbs[0].Code}, Tags: []string{"cloud"}}},
			{alice, Input{Title: "a2", Date: day(2), Hours: 2, Type: "research", KSBs: []string{ksbs[0].Code, ksbs[1].Code}}},
			{alice, Input{Title: "a3", Date: day(3), Hours: 4, Type: "workshop", Tags: []string{"cloud", "go"},
				Description: "Kafka partitions, 100% of them", Notes: "Ask about consumer_groups"}},
			{bob, Input{Title: "b1", Date: day(4), Hours: 8, Type: "workshop", KSBs: []string{ksbs[0].Code}, Tags: []string{"cloud"}}},
		} {
			if _, err := s.CreateActivity(ctx, a.user, a.in); err != nil {
				t.Fatal(err)
			}
		}
		tests := []struct {
			name       string
			f          Filter
			perPage    int
			wantTitles []string
			wantTotal  int
			wantHours  float64
		}{
			{"none", Filter{}, 10, []string{"a3", "a2", "a1"}, 3, 7},
			{"type", Filter{Type: "workshop"}, 10, []string{"a3", "a1"}, 2, 5},
			{"ksb", Filter{KSB: ksbs[0].NaturalCode}, 10, []string{"a2", "a1"}, 2, 3},
			{"tag", Filter{Tag: "cloud"}, 10, []string{"a3", "a1"}, 2, 5},
			{"all three", Filter{Type: "workshop", KSB: ksbs[0].NaturalCode, Tag: "cloud"}, 10, []string{"a1"}, 1, 1},
			{"nothing matches", Filter{Tag: "nope"}, 10, nil, 0, 0},
			{"paged: totals of the whole filtered set", Filter{Type: "workshop"}, 1, []string{"a3"}, 2, 5},
			{"text in a title, any case", Filter{Text: "A2"}, 10, []string{"a2"}, 1, 2},
			{"text in a description", Filter{Text: "kafka"}, 10, []string{"a3"}, 1, 4},
			{"text in notes", Filter{Text: "CONSUMER_groups"}, 10, []string{"a3"}, 1, 4},
			{"% and _ are themselves", Filter{Text: "100%"}, 10, []string{"a3"}, 1, 4},
			{"a lone % matches no more", Filter{Text: "%"}, 10, []string{"a3"}, 1, 4},
			{"a lone _ matches no more", Filter{Text: "_"}, 10, []string{"a3"}, 1, 4},
			{"! is itself", Filter{Text: "!"}, 10, nil, 0, 0},
			{"not another user's", Filter{Text: "b1"}, 10, nil, 0, 0},
			{"from a day", Filter{From: "2026-03-02"}, 10, []string{"a3", "a2"}, 2, 6},
			{"to a day", Filter{To: "2026-03-02"}, 10, []string{"a2", "a1"}, 2, 3},
			{"one day", Filter{From: "2026-03-02", To: "2026-03-02"}, 10, []string{"a2"}, 1, 2},
			{"days and a text", Filter{From: "2026-03-01", To: "2026-03-03", Text: "a", Type: "workshop"}, 10, []string{"a3", "a1"}, 2, 5},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				pg, err := s.ListActivities(ctx, alice, tt.f, 1, tt.perPage)
				if err != nil {
					t.Fatal(err)
				}
				var titles []string
				for _, a := range pg.Activities {
					titles = append(titles, a.Title)
				}
				if !reflect.DeepEqual(titles, tt.wantTitles) || pg.Total != tt.wantTotal || pg.TotalHours != tt.wantHours {
					t.Errorf("got %v, %d, %v hours; want %v, %d, %v", titles, pg.Total, pg.TotalHours, tt.wantTitles, tt.wantTotal, tt.wantHours)
				}
			})
		}
	})
}

// Every list query of the log, with each filter, is answered through
// indexes on both dialects: no plan reads a whole table (SQLite: no
// "SCAN t" without an index; PostgreSQL, sequential scans priced out: no
// Seq Scan), and the user's rows are found by user. The queries checked
// are those ListActivities, Tags and KSBs send. A text search reads the
// user's rows (no index finds a part of a text), never the table's.
func TestActivityListQueriesUseIndexes(t *testing.T) {
	eachDB(t, func(t *testing.T, db *bun.DB) {
		ctx := t.Context()
		alice, ksbs := withSpec(t, db, "alice@example.org", "ST0787")
		// Other users' logs, and the planner's statistics of them.
		for i := range 5 {
			if _, err := Fill(ctx, db, DemoOptions{Email: fmt.Sprintf("other%d@example.org", i), Activities: 300, Seed: int64(i)}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := Fill(ctx, db, DemoOptions{Email: "alice@example.org", Activities: 100, Seed: 9}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "ANALYZE"); err != nil {
			t.Fatal(err)
		}
		recorded, take := testsupport.CaptureQueries(db)
		s := NewStore(recorded)
		for _, tc := range []struct {
			name string
			f    Filter
			page int
		}{
			{"all", Filter{}, 1},
			{"page 2", Filter{}, 2},
			{"a type", Filter{Type: "workshop"}, 1},
			{"a KSB", Filter{KSB: ksbs[0].NaturalCode}, 1},
			{"a tag", Filter{Tag: "kubernetes"}, 1},
			{"dates", Filter{From: "2025-01-01", To: "2025-06-30"}, 1},
			{"a text", Filter{Text: "kafka"}, 1},
			{"everything", Filter{Type: "workshop", KSB: ksbs[0].NaturalCode, Tag: "kubernetes", From: "2025-01-01", To: "2026-06-30", Text: "a"}, 1},
		} {
			if _, err := s.ListActivities(ctx, alice, tc.f, tc.page, 10); err != nil {
				t.Fatal(err)
			}
			// A KSB or a tag may be looked up first, then the user's
			// activities among those that have it.
			checkPlans(t, db, tc.name, tc.f.KSB == "" && tc.f.Tag == "", take())
		}
		if _, err := s.Tags(ctx, alice); err != nil {
			t.Fatal(err)
		}
		checkPlans(t, db, "tags", true, take())
		if _, err := s.KSBs(ctx, "ST0787"); err != nil {
			t.Fatal(err)
		}
		checkPlans(t, db, "KSBs", true, take())
	})
}

// checkPlans fails the test for each of the queries whose plan reads a
// whole table, or, with byUser, that reads activity other than by user.
func checkPlans(t *testing.T, db *bun.DB, name string, byUser bool, qs []string) {
	t.Helper()
	if len(qs) == 0 {
		t.Fatalf("%s: no query captured", name)
	}
	for _, q := range qs {
		plan := testsupport.QueryPlan(t, db, q)
		if bad := testsupport.FullScans(db, plan); len(bad) > 0 {
			t.Errorf("%s reads a whole table (%q):\n%s\nplan:\n%s", name, bad, q, plan)
		}
		if byUser && strings.Contains(q, "FROM activity a") && !activityByUser.MatchString(plan) {
			t.Errorf("%s does not find the user's activities by user:\n%s\nplan:\n%s", name, q, plan)
		}
		if testing.Verbose() {
			t.Logf("%s:\n%s", name, plan)
		}
	}
}

// activityByUser matches a plan that finds activity rows by user in an
// index: SQLite's "SEARCH a USING … INDEX … (user_id=?", PostgreSQL's
// "Index Cond: ((user_id = 7)" (or its Bitmap Index Scan).
var activityByUser = regexp.MustCompile(`SEARCH a USING (COVERING )?INDEX \w+ \(user_id=\?|Index Cond: \(+(a\.)?user_id = `)
