package activity

import (
	"reflect"
	"testing"
	"time"

	"github.com/uptrace/bun"
)

// TestAnalyticsTotals checks the database's sums against a log small
// enough to add up by hand, on SQLite and PostgreSQL.
func TestAnalyticsTotals(t *testing.T) {
	eachDB(t, func(t *testing.T, db *bun.DB) {
		ctx := t.Context()
		s := NewStore(db)
		id := newUser(t, db, "ana@example.org")
		other := newUser(t, db, "other@example.org")
		mustExec(t, db, `UPDATE app_user SET selected_spec = 'ST0787' WHERE id IN (?, ?)`, id, other)
		insert(t, db, id,
			fixture{date: "2026-11-30", title: "Course", typ: "training_course", quality: "good", hours: 2, ksbs: []string{"K1", "K2"}},
			fixture{date: "2026-12-02", title: "Workshop", typ: "workshop", quality: "draft", hours: 1.5, ksbs: []string{"K1"}},
			fixture{date: "2026-11-20", title: "Reading", typ: "self_study", quality: "review_ready", hours: 3, ksbs: []string{"S1"}},
			fixture{date: "2026-11-20", title: "More reading", typ: "self_study", quality: "draft", hours: 0.5},
			// Before the range of days: in the KSB and type sums only.
			fixture{date: "2025-01-01", title: "Old mentoring", typ: "mentoring", quality: "draft", hours: 4, ksbs: []string{"K3"}},
		)
		// Another user's log counts nowhere.
		insert(t, db, other, fixture{date: "2026-11-30", title: "Theirs", typ: "workshop", quality: "good", hours: 10, ksbs: []string{"K5", "K1"}})

		u, err := s.UserByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		day := func(s string) time.Time { d, _ := time.Parse(time.DateOnly, s); return d }
		got, err := s.AnalyticsTotals(ctx, u, day("2025-12-08"), day("2026-12-07"))
		if err != nil {
			t.Fatal(err)
		}
		if len(got.KSBs) != 22 {
			t.Fatalf("%d KSBs, want ST0787's 22", len(got.KSBs))
		}
		byCode := map[string]KSBTotal{}
		for _, k := range got.KSBs {
			byCode[k.Code] = KSBTotal{Code: k.Code, Activities: k.Activities, Hours: k.Hours, Assured: k.Assured}
		}
		want := map[string]KSBTotal{
			"K1": {Code: "K1", Activities: 2, Hours: 3.5, Assured: true},
			"K2": {Code: "K2", Activities: 1, Hours: 2, Assured: true},
			"K3": {Code: "K3", Activities: 1, Hours: 4},
			"K5": {Code: "K5"},
			"S1": {Code: "S1", Activities: 1, Hours: 3, Assured: true},
			"B6": {Code: "B6"},
		}
		for code, w := range want {
			if byCode[code] != w {
				t.Errorf("KSB %s = %+v, want %+v", code, byCode[code], w)
			}
		}
		if first, last := got.KSBs[0], got.KSBs[21]; first.Code != "K1" || first.Category != "knowledge" || first.Title != "Systems thinking" || last.Code != "B6" {
			t.Errorf("KSB order/labels: first %+v, last %+v", first, last)
		}
		wantDays := []DayHours{{day("2026-11-20"), 3.5}, {day("2026-11-30"), 2}, {day("2026-12-02"), 1.5}}
		if !reflect.DeepEqual(got.Days, wantDays) {
			t.Errorf("days = %+v, want %+v", got.Days, wantDays)
		}
		wantTypes := []TypeHours{{"mentoring", 1, 4}, {"self_study", 2, 3.5}, {"training_course", 1, 2}, {"workshop", 1, 1.5}}
		if !reflect.DeepEqual(got.Types, wantTypes) {
			t.Errorf("types = %+v, want %+v", got.Types, wantTypes)
		}

		// Without a standard there are no KSBs to cover, but the hours count.
		mustExec(t, db, `UPDATE app_user SET selected_spec = NULL WHERE id = ?`, id)
		u, _ = s.UserByID(ctx, id)
		got, err = s.AnalyticsTotals(ctx, u, day("2025-12-08"), day("2026-12-07"))
		if err != nil || len(got.KSBs) != 0 || len(got.Types) != 4 {
			t.Errorf("no standard: %d KSBs, %d types, %v", len(got.KSBs), len(got.Types), err)
		}
	})
}

func TestUserIDsAfter(t *testing.T) {
	eachDB(t, func(t *testing.T, db *bun.DB) {
		s := NewStore(db)
		var ids []int64
		for _, e := range []string{"a@example.org", "b@example.org", "c@example.org"} {
			ids = append(ids, newUser(t, db, e))
		}
		var got []int64
		after := int64(0)
		for pages := 0; ; pages++ {
			page, err := s.UserIDsAfter(t.Context(), after, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				if pages != 2 {
					t.Errorf("%d pages of 2, want 2", pages)
				}
				break
			}
			got = append(got, page...)
			after = page[len(page)-1]
		}
		if !reflect.DeepEqual(got, ids) {
			t.Errorf("ids %v, want %v", got, ids)
		}
	})
}
