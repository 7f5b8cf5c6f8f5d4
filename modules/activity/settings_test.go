package activity

import (
	"errors"
	"testing"

	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/platform/testsupport"
)

// The settings page's store side, on both dialects: the standards on
// offer, a saved user's settings read back, and an unknown user.
func TestUpdateSettings(t *testing.T) {
	eachDB(t, func(t *testing.T, db *bun.DB) {
		ctx := testsupport.Context(t)
		s := NewStore(db)
		stds, err := s.Standards(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(stds) != 2 || stds[0].Code != "ST0763" || stds[1].Code != "ST0787" || stds[0].Name == "" {
			t.Fatalf("standards %+v, want ST0763 and ST0787", stds)
		}
		u, err := s.EnsureUser(ctx, "settings@example.org")
		if err != nil {
			t.Fatal(err)
		}
		want := Settings{SelectedSpec: "ST0787", OTJTargetHours: 420.5, SeminarTargetHours: 30, WeeklyTargetHours: 0, Timezone: "America/New_York"}
		if err := s.UpdateSettings(ctx, u.ID, want); err != nil {
			t.Fatal(err)
		}
		got, err := s.UserByID(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if g := (Settings{got.SelectedSpec, got.OTJTargetHours, got.SeminarTargetHours, got.WeeklyTargetHours, got.Timezone}); g != want {
			t.Errorf("read back %+v, want %+v", g, want)
		}
		if err := s.UpdateSettings(ctx, u.ID+1000, want); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown user: %v, want ErrNotFound", err)
		}
		if err := s.UpdateSettings(ctx, u.ID, Settings{SelectedSpec: "ST9999", Timezone: "UTC"}); err == nil {
			t.Error("a standard that is not in the reference data was saved")
		}
	})
}
