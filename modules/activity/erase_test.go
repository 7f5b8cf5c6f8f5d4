package activity

import (
	"testing"

	"github.com/uptrace/bun"
)

// EraseUser deletes the user's row and every row of theirs, and nothing
// of anyone else's; a second erase is no error. Both dialects.
func TestEraseUser(t *testing.T) {
	eachDB(t, func(t *testing.T, db *bun.DB) {
		s := NewStore(db)
		alice := newUser(t, db, "alice@example.org")
		bob := newUser(t, db, "bob@example.org")
		both := fixture{date: "2025-05-01", title: "t", typ: "research", quality: "draft", hours: 2,
			tags: []string{"x", "y"}, ksbs: []string{"AK1", "AK2"}, links: []string{"https://example.org/a"}}
		insert(t, db, alice, both, both)
		insert(t, db, bob, both)

		if err := s.EraseUser(t.Context(), alice); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name  string
			query string
			user  int64
			want  int
		}{
			{"alice's user row", `SELECT count(*) FROM app_user WHERE id = ?`, alice, 0},
			{"alice's activities", `SELECT count(*) FROM activity WHERE user_id = ?`, alice, 0},
			{"alice's tags", `SELECT count(*) FROM tag WHERE user_id = ?`, alice, 0},
			{"bob's user row", `SELECT count(*) FROM app_user WHERE id = ?`, bob, 1},
			{"bob's activities", `SELECT count(*) FROM activity WHERE user_id = ?`, bob, 1},
			{"bob's tags", `SELECT count(*) FROM tag WHERE user_id = ?`, bob, 2},
			{"bob's activity tags", `SELECT count(*) FROM activity_tags JOIN activity ON activity.id = activity_id WHERE user_id = ?`, bob, 2},
			{"bob's KSBs", `SELECT count(*) FROM activity_ksbs JOIN activity ON activity.id = activity_id WHERE user_id = ?`, bob, 2},
			{"bob's links", `SELECT count(*) FROM resource_link JOIN activity ON activity.id = activity_id WHERE user_id = ?`, bob, 1},
		} {
			if got := count(t, db, tc.query, tc.user); got != tc.want {
				t.Errorf("%s: %d rows; want %d", tc.name, got, tc.want)
			}
		}
		// No orphans of alice's are left: every child row left is bob's.
		for _, q := range []string{
			`SELECT count(*) FROM activity_tags`, `SELECT count(*) FROM activity_ksbs`, `SELECT count(*) FROM resource_link`,
		} {
			if got := count(t, db, q); got > 2 {
				t.Errorf("%s = %d after erase; want only bob's", q, got)
			}
		}
		if err := s.EraseUser(t.Context(), alice); err != nil {
			t.Errorf("second erase: %v; want no error", err)
		}
		if _, err := s.UserByID(t.Context(), alice); err == nil {
			t.Error("UserByID finds the erased user")
		}
	})
}
