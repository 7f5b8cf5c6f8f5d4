package archtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// maxMainLines bounds every package main, counting its non-test Go
// files: a command is only wiring, and its program lives in a package
// that tests can import and drive (cmd/app's is internal/app).
const maxMainLines = 100

// moduleRoot is the directory of the module's go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(gomod)))
}

// listed is a package as go list names it: its name and directory.
type listed struct{ name, dir string }

// bigMains lists each package main among pkgs whose non-test .go files
// hold more than max lines, with the count.
func bigMains(pkgs []listed, max int) ([]string, error) {
	var out []string
	for _, p := range pkgs {
		if p.name != "main" {
			continue
		}
		files, err := filepath.Glob(filepath.Join(p.dir, "*.go"))
		if err != nil {
			return nil, err
		}
		n := 0
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			n += bytes.Count(b, []byte("\n"))
			if len(b) > 0 && b[len(b)-1] != '\n' {
				n++ // a last line without its newline
			}
		}
		if n > max {
			out = append(out, fmt.Sprintf("%s: package main has %d lines (at most %d): move the program into a package it calls", p.dir, n, max))
		}
	}
	return out, nil
}

// TestMainPackagesAreSmall holds every command of the module to wiring.
func TestMainPackagesAreSmall(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", "{{.Name}} {{.Dir}}", "./...")
	cmd.Dir = moduleRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []listed
	mains := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, dir, _ := strings.Cut(line, " ")
		pkgs = append(pkgs, listed{name, dir})
		if name == "main" {
			mains++
		}
	}
	if mains == 0 {
		t.Fatal("go list found no package main: the rule checks nothing")
	}
	big, err := bigMains(pkgs, maxMainLines)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range big {
		t.Error(b)
	}
}

// TestBigMainsCatch shows the rule failing on a package main of one line
// too many, and passing on one at the bound, on test files of any size,
// and on another package of any size.
func TestBigMainsCatch(t *testing.T) {
	write := func(dir, name string, lines int) {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		body := "package main\n" + strings.Repeat("// line\n", lines-1)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root := t.TempDir()
	big, atBound, withTests, lib := filepath.Join(root, "big"), filepath.Join(root, "bound"), filepath.Join(root, "tests"), filepath.Join(root, "lib")
	write(big, "main.go", 60)
	write(big, "more.go", 41)
	write(atBound, "main.go", 100)
	write(withTests, "main.go", 20)
	write(withTests, "main_test.go", 500)
	write(lib, "lib.go", 500)
	got, err := bigMains([]listed{{"main", big}, {"main", atBound}, {"main", withTests}, {"lib", lib}}, maxMainLines)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !strings.HasPrefix(got[0], big+": package main has 101 lines") {
		t.Errorf("bigMains = %q, want only %s, with 101 lines", got, big)
	}
}
