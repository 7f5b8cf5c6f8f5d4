package tasktype_test

import (
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// TestHexDigestMatchesSha256sum takes a digest as the NATS object store
// records it and checks the shown form against sha256sum's answer for
// the same bytes; other forms are shown unchanged.
func TestHexDigestMatchesSha256sum(t *testing.T) {
	sha256sum, err := exec.LookPath("sha256sum")
	if err != nil {
		t.Skipf("no sha256sum: %v", err)
	}
	for _, content := range []string{"", "date,title\n2026-01-01,Réunion\n", strings.Repeat("x", 1<<16)} {
		h := sha256.New()
		h.Write([]byte(content))
		stored := jetstream.GetObjectDigestValue(h)
		file := filepath.Join(t.TempDir(), "report.csv")
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(sha256sum, file).Output()
		if err != nil {
			t.Fatal(err)
		}
		want := "sha256:" + strings.Fields(string(out))[0]
		if got := tasktype.HexDigest(stored); got != want {
			t.Errorf("HexDigest(%q) = %q, sha256sum says %q", stored, got, want)
		}
	}
	for _, d := range []string{"", "sha256:abcd", "SHA-256=not base64!", "SHA-256=AAAA", "MD5=xyz"} {
		if got := tasktype.HexDigest(d); got != d {
			t.Errorf("HexDigest(%q) = %q, want it unchanged", d, got)
		}
	}
}
