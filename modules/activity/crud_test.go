package activity

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/uptrace/bun"
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
			{alice, Input{Title: "a3", Date: day(3), Hours: 4, Type: "workshop", Tags: []string{"cloud", "go"}}},
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
