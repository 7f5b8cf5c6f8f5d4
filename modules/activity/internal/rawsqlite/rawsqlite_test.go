package rawsqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/otjhelper/otj/modules/activity/internal/rawsqlite"
)

// newFile makes a database file through the driver, as the app does, with
// one table of a few rows.
func newFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "t.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, hours REAL)`,
		`INSERT INTO t VALUES (1, 'naïve "café"', 2.25), (2, NULL, 1), (3, '', 0.5)`,
	} {
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func TestReadRows(t *testing.T) {
	c, err := rawsqlite.Open(newFile(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := c.Prepare(`SELECT id, name, hours FROM t WHERE id >= ? ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.BindInt64(1, 1); err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		ok, err := st.Step()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got = append(got, fmt.Sprintf("%d|%s|%g", st.Int64(0), st.Text(1), st.Float64(2)))
	}
	// NULL reads as empty text.
	want := []string{`1|naïve "café"|2.25`, "2||1", "3||0.5"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestQueryOnly(t *testing.T) {
	c, err := rawsqlite.Open(newFile(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Exec(`DELETE FROM t`); err == nil || !strings.Contains(err.Error(), "readonly") {
		t.Errorf("a write: err = %v, want it refused", err)
	}
}

func TestErrors(t *testing.T) {
	if _, err := rawsqlite.Open(filepath.Join(t.TempDir(), "missing.db")); err == nil {
		t.Error("opened a database file that does not exist")
	}
	c, err := rawsqlite.Open(newFile(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Prepare(`SELECT nope FROM t`); err == nil || !strings.Contains(err.Error(), "no such column: nope") {
		t.Errorf("prepare: err = %v, want SQLite's message", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c.Interrupt() // after Close: nothing to interrupt, no crash
	if err := c.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}

func TestInterrupt(t *testing.T) {
	c, err := rawsqlite.Open(newFile(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Endless unless interrupted.
	st, err := c.Prepare(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT i FROM n`)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := 0; ; i++ {
		if i == 1000 {
			c.Interrupt()
		}
		if _, err := st.Step(); err != nil {
			if !errors.Is(err, rawsqlite.ErrInterrupted) {
				t.Fatalf("err = %v, want ErrInterrupted", err)
			}
			return
		}
	}
}
