package activity

import (
	"errors"
	"fmt"
	"testing"

	"github.com/uptrace/bun"
)

// Uploads are per user, and only each user's newest KeptUploads stay.
func TestUploadsAreKeptPerUserAndPruned(t *testing.T) {
	eachDB(t, func(t *testing.T, db *bun.DB) {
		s := NewStore(db)
		a, b := newUser(t, db, "a@example.org"), newUser(t, db, "b@example.org")
		other, err := s.SaveUpload(t.Context(), b, []byte("b's"))
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for i := range KeptUploads + 2 {
			id, err := s.SaveUpload(t.Context(), a, fmt.Appendf(nil, "file %d", i))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		for i, id := range ids {
			body, err := s.Upload(t.Context(), a, id)
			switch {
			case i < 2 && !errors.Is(err, ErrNotFound):
				t.Errorf("upload %d of %d: %q, %v; want it pruned", i, len(ids), body, err)
			case i >= 2 && (err != nil || string(body) != fmt.Sprintf("file %d", i)):
				t.Errorf("upload %d: %q, %v", i, body, err)
			}
		}
		if body, err := s.Upload(t.Context(), b, other); err != nil || string(body) != "b's" {
			t.Errorf("b's upload after a's pruning: %q, %v", body, err)
		}
		if _, err := s.Upload(t.Context(), a, other); !errors.Is(err, ErrNotFound) {
			t.Errorf("a reading b's upload: %v, want ErrNotFound", err)
		}
	})
}
