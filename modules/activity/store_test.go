package activity

import (
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"
)

func TestLabels(t *testing.T) {
	tests := []struct {
		name, got, want string
	}{
		{"type known", TypeLabel("self_study"), "Self-study"},
		{"type conference", TypeLabel("conference"), "Conference or event"},
		{"type unknown", TypeLabel("hackathon"), "hackathon"},
		{"type empty", TypeLabel(""), ""},
		{"quality known", QualityLabel("review_ready"), "Ready for review"},
		{"quality empty means draft", QualityLabel(""), "Draft"},
		{"quality unknown", QualityLabel("excellent"), "excellent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestSeedReferenceIdempotent(t *testing.T) {
	eachDB(t, func(t *testing.T, db *bun.DB) { // seeds once
		if err := NewStore(db).SeedReference(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := count(t, db, `SELECT count(*) FROM spec`); n != 2 {
			t.Errorf("%d standards, want 2", n)
		}
		if n := count(t, db, `SELECT count(*) FROM ksb`); n != 83 {
			t.Errorf("%d KSBs, want 83", n)
		}
		tests := []struct {
			code, natural, spec string
		}{
			{"AK1", "K1", "ST0763"}, // prefixed: stored code differs from what people see
			{"K1", "K1", "ST0787"},  // no prefix
		}
		for _, tt := range tests {
			var natural, spec string
			if err := db.QueryRowContext(t.Context(), `SELECT natural_code, spec_code FROM ksb WHERE code = ?`, tt.code).Scan(&natural, &spec); err != nil {
				t.Fatalf("KSB %s: %v", tt.code, err)
			}
			if natural != tt.natural || spec != tt.spec {
				t.Errorf("KSB %s: natural code %q of %s, want %q of %s", tt.code, natural, spec, tt.natural, tt.spec)
			}
		}
		var prefix string
		var level int
		if err := db.QueryRowContext(t.Context(), `SELECT ksb_prefix, level FROM spec WHERE code = 'ST0763'`).Scan(&prefix, &level); err != nil {
			t.Fatal(err)
		}
		if prefix != "A" || level != 7 {
			t.Errorf("ST0763: prefix %q, level %d", prefix, level)
		}
	})
}

func TestSeedReferenceRepairsChangedRows(t *testing.T) {
	eachDB(t, func(t *testing.T, db *bun.DB) {
		mustExec(t, db, `UPDATE ksb SET title = 'stale' WHERE code = 'AK1'`)
		if err := NewStore(db).SeedReference(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := count(t, db, `SELECT count(*) FROM ksb WHERE title = 'stale'`); n != 0 {
			t.Errorf("a stale KSB title survived seeding")
		}
	})
}

func TestEnsureUser(t *testing.T) {
	eachDB(t, func(t *testing.T, db *bun.DB) {
		s := NewStore(db)
		first, err := s.EnsureUser(t.Context(), "alice@example.org")
		if err != nil {
			t.Fatal(err)
		}
		if first.Email != "alice@example.org" || first.SelectedSpec != "" || first.WeeklyTargetHours != 6 ||
			first.Timezone != "Europe/London" || first.CreatedAt.IsZero() {
			t.Errorf("new user %+v: unexpected defaults", first)
		}
		tests := []struct {
			name, email string
		}{
			{"same", "alice@example.org"},
			{"upper case", "Alice@Example.ORG"},
			{"spaces", "  alice@example.org\t"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				u, err := s.EnsureUser(t.Context(), tt.email)
				if err != nil {
					t.Fatal(err)
				}
				if u != first {
					t.Errorf("EnsureUser(%q) = %+v, want %+v", tt.email, u, first)
				}
			})
		}
		if n := count(t, db, `SELECT count(*) FROM app_user`); n != 1 {
			t.Errorf("%d users, want 1", n)
		}
		if _, err := s.EnsureUser(t.Context(), "  "); err == nil {
			t.Error("EnsureUser with an empty email succeeded")
		}
	})
}

func TestEnsureUserConcurrent(t *testing.T) {
	eachDB(t, func(t *testing.T, db *bun.DB) {
		s := NewStore(db)
		const callers = 8
		ids := make([]int64, callers)
		errs := make([]error, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				u, err := s.EnsureUser(t.Context(), "bob@example.org")
				ids[i], errs[i] = u.ID, err
			})
		}
		wg.Wait()
		for i := range callers {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if ids[i] != ids[0] {
				t.Errorf("caller %d got user %d, caller 0 got %d", i, ids[i], ids[0])
			}
		}
		if n := count(t, db, `SELECT count(*) FROM app_user`); n != 1 {
			t.Errorf("%d users, want 1", n)
		}
	})
}

func TestUserByID(t *testing.T) {
	eachDB(t, func(t *testing.T, db *bun.DB) {
		s := NewStore(db)
		id := newUser(t, db, "carol@example.org")
		tests := []struct {
			name      string
			id        int64
			wantEmail string
			wantErr   error
		}{
			{"exists", id, "carol@example.org", nil},
			{"missing", id + 100, "", ErrNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				u, err := s.UserByID(t.Context(), tt.id)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if u.Email != tt.wantEmail {
					t.Errorf("email %q, want %q", u.Email, tt.wantEmail)
				}
			})
		}
	})
}

func TestUserByEmailNeverCreates(t *testing.T) {
	eachDB(t, func(t *testing.T, db *bun.DB) {
		s := NewStore(db)
		id := newUser(t, db, "dave@example.org")
		u, err := s.UserByEmail(t.Context(), "  Dave@Example.ORG ")
		if err != nil || u.ID != id {
			t.Fatalf("by email in other case: %+v, %v", u, err)
		}
		if _, err := s.UserByEmail(t.Context(), "nobody@example.org"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown email: %v, want ErrNotFound", err)
		}
		if n := count(t, db, `SELECT count(*) FROM app_user`); n != 1 {
			t.Errorf("%d users after lookups, want 1", n)
		}
	})
}

func TestListActivities(t *testing.T) {
	eachDB(t, func(t *testing.T, db *bun.DB) {
		s := NewStore(db)
		alice := newUser(t, db, "alice@example.org")
		bob := newUser(t, db, "bob@example.org")
		// Inserted out of date order; two share a date, so the later id
		// comes first.
		ids := insert(t, db, alice,
			fixture{date: "2025-03-01", title: "a", typ: "workshop", quality: "good", hours: 1},
			fixture{date: "2025-05-01", title: "b", typ: "research", quality: "draft", hours: 2.5,
				tags: []string{"zeta", "alpha"}, ksbs: []string{"AK2", "AK10", "AK1"},
				links: []string{"https://example.org/2", "https://example.org/1"}},
			fixture{date: "2025-04-01", title: "c", typ: "other", quality: "", hours: 0.75},
			fixture{date: "2025-05-01", title: "d", typ: "mentoring", quality: "review_ready", hours: 4},
			fixture{date: "2024-12-31", title: "e", typ: "self_study", quality: "good", hours: 0.5},
		)
		insert(t, db, bob, fixture{date: "2025-06-01", title: "bob's", typ: "other", hours: 8})

		tests := []struct {
			name           string
			page, perPage  int
			wantTitles     []string
			wantTotal      int
			wantTotalHours float64
			wantErr        bool
		}{
			{name: "first page", page: 1, perPage: 2, wantTitles: []string{"d", "b"}, wantTotal: 5, wantTotalHours: 8.75},
			{name: "middle page", page: 2, perPage: 2, wantTitles: []string{"c", "a"}, wantTotal: 5, wantTotalHours: 8.75},
			{name: "last page, partial", page: 3, perPage: 2, wantTitles: []string{"e"}, wantTotal: 5, wantTotalHours: 8.75},
			{name: "past the end", page: 4, perPage: 2, wantTitles: nil, wantTotal: 5, wantTotalHours: 8.75},
			{name: "huge page number", page: 1 << 62, perPage: 50, wantTitles: nil, wantTotal: 5, wantTotalHours: 8.75},
			{name: "all on one page", page: 1, perPage: 50, wantTitles: []string{"d", "b", "c", "a", "e"}, wantTotal: 5, wantTotalHours: 8.75},
			{name: "page zero", page: 0, perPage: 2, wantErr: true},
			{name: "per page zero", page: 1, perPage: 0, wantErr: true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				pg, err := s.ListActivities(t.Context(), alice, Filter{}, tt.page, tt.perPage)
				if tt.wantErr {
					if err == nil {
						t.Fatal("no error")
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				var titles []string
				for _, a := range pg.Activities {
					titles = append(titles, a.Title)
				}
				if !reflect.DeepEqual(titles, tt.wantTitles) {
					t.Errorf("titles %q, want %q", titles, tt.wantTitles)
				}
				if pg.Total != tt.wantTotal || pg.TotalHours != tt.wantTotalHours || pg.Page != tt.page || pg.PerPage != tt.perPage {
					t.Errorf("page %d/%d, total %d, %v hours; want %d/%d, %d, %v",
						pg.Page, pg.PerPage, pg.Total, pg.TotalHours, tt.page, tt.perPage, tt.wantTotal, tt.wantTotalHours)
				}
			})
		}

		t.Run("details", func(t *testing.T) {
			pg, err := s.ListActivities(t.Context(), alice, Filter{}, 1, 2)
			if err != nil {
				t.Fatal(err)
			}
			want := Activity{
				ID: ids[1], Date: time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC), Title: "b", Hours: 2.5,
				Type: "research", Quality: "draft",
				Tags:  []string{"alpha", "zeta"},
				KSBs:  []string{"K1", "K2", "K10"}, // by number, not as text (AK10 < AK2)
				Links: []string{"https://example.org/2", "https://example.org/1"},
				// The fixtures' links have no titles: one "" each.
				LinkTitles: []string{"", ""},
			}
			if got := pg.Activities[1]; !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
			if got := pg.Activities[0]; got.Tags != nil || got.KSBs != nil || got.Links != nil {
				t.Errorf("activity without tags, KSBs or links: %+v", got)
			}
		})

		t.Run("empty log", func(t *testing.T) {
			carol := newUser(t, db, "carol@example.org")
			pg, err := s.ListActivities(t.Context(), carol, Filter{}, 1, 50)
			if err != nil {
				t.Fatal(err)
			}
			if pg.Total != 0 || pg.TotalHours != 0 || len(pg.Activities) != 0 {
				t.Errorf("empty log gave %+v", pg)
			}
		})
	})
}

func TestKSBCodes(t *testing.T) {
	tests := []struct {
		prefix, code, stored, natural string
		wantErr                       bool
	}{
		{"", "K1", "K1", "K1", false},
		{"", "S11", "S11", "S11", false},
		{"A", "K1", "AK1", "K1", false},  // bare code: the prefix is added
		{"A", "AK1", "AK1", "K1", false}, // already prefixed, as standards.json has ST0763
		{"A", "AB12", "AB12", "B12", false},
		{"K", "K1", "KK1", "K1", false}, // a prefix that is also a category letter
		{"K", "KK1", "KK1", "K1", false},
		{"", "AK1", "", "", true}, // prefixed with an unknown prefix
		{"A", "X1", "", "", true},
		{"A", "K", "", "", true},
		{"A", "K1a", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.prefix+"/"+tt.code, func(t *testing.T) {
			stored, natural, err := ksbCodes(tt.prefix, tt.code)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if stored != tt.stored || natural != tt.natural {
				t.Errorf("got %q, %q; want %q, %q", stored, natural, tt.stored, tt.natural)
			}
		})
	}
}

// A user's count is their activities; a user this database lacks is
// ErrNotFound, not an empty log (a worker on another database than the
// web's would otherwise report nothing as a success).
func TestCountActivities(t *testing.T) {
	eachDB(t, func(t *testing.T, db *bun.DB) {
		s := NewStore(db)
		busy := newUser(t, db, "busy@example.org")
		idle := newUser(t, db, "idle@example.org")
		insert(t, db, busy, fixture{date: "2026-03-01", title: "a", typ: "workshop", quality: "good", hours: 1},
			fixture{date: "2026-03-02", title: "b", typ: "workshop", quality: "good", hours: 2})
		tests := []struct {
			name    string
			id      int64
			want    int
			wantErr error
		}{
			{"two activities", busy, 2, nil},
			{"none yet", idle, 0, nil},
			{"no such user", idle + 100, 0, ErrNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				n, err := s.CountActivities(t.Context(), tt.id)
				if !errors.Is(err, tt.wantErr) || n != tt.want {
					t.Fatalf("CountActivities = %d, %v; want %d, %v", n, err, tt.want, tt.wantErr)
				}
			})
		}
	})
}

// UserEmails finds the emails of many users in one query, and leaves out
// ids it does not know.
func TestUserEmails(t *testing.T) {
	eachDB(t, func(t *testing.T, db *bun.DB) {
		s := NewStore(db)
		erin := newUser(t, db, "erin@example.org")
		frank := newUser(t, db, "frank@example.org")
		tests := []struct {
			name string
			ids  []int64
			want map[int64]string
		}{
			{"none", nil, map[int64]string{}},
			{"both, repeated", []int64{frank, erin, frank}, map[int64]string{erin: "erin@example.org", frank: "frank@example.org"}},
			{"a missing user is left out", []int64{erin, frank + 100}, map[int64]string{erin: "erin@example.org"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.UserEmails(t.Context(), tt.ids)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("got %v, want %v", got, tt.want)
				}
			})
		}
		t.Run("more ids than SQLite takes variables", func(t *testing.T) {
			ids := make([]int64, 40000)
			for i := range ids {
				ids[i] = frank + int64(i)
			}
			got, err := s.UserEmails(t.Context(), ids)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[int64]string{frank: "frank@example.org"}; !reflect.DeepEqual(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	})
}
