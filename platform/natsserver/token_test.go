package natsserver

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestTokenIsMadeOnceAndKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", TokenFileName)
	first, created, err := LoadOrCreateToken(path)
	if err != nil || !created {
		t.Fatalf("first call: created %v, err %v", created, err)
	}
	if len(first) < MinTokenLen {
		t.Errorf("token %d bytes", len(first))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("token file mode %o, want 600", mode)
	}
	again, created, err := LoadOrCreateToken(path)
	if err != nil || created || again != first {
		t.Errorf("second call: %q created %v err %v, want the first token kept", again, created, err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*.tmp")); len(leftovers) > 0 {
		t.Errorf("temp files left: %v", leftovers)
	}
}

func TestTokenRaceAgreesOnOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), TokenFileName)
	var wg sync.WaitGroup
	tokens := make([]string, 8)
	made := make([]bool, 8)
	for i := range tokens {
		wg.Go(func() {
			var err error
			if tokens[i], made[i], err = LoadOrCreateToken(path); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	n := 0
	for i := range tokens {
		if tokens[i] != tokens[0] {
			t.Errorf("caller %d got %q, caller 0 %q", i, tokens[i], tokens[0])
		}
		if made[i] {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d callers made the token, want 1", n)
	}
}

func TestBadTokenFileIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), TokenFileName)
	if err := os.WriteFile(path, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateToken(path); err == nil {
		t.Error("short token in the file: no error")
	}
}
