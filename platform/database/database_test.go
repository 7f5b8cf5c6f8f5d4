package database_test

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/migrations"
	"github.com/otjhelper/otj/platform/database"
	"github.com/otjhelper/otj/platform/testsupport"
)

func TestRebind(t *testing.T) {
	for _, c := range []struct {
		d       database.Dialect
		in, out string
	}{
		{database.SQLite, `SELECT a FROM t WHERE x = ? AND y = ?`, `SELECT a FROM t WHERE x = ? AND y = ?`},
		{database.Postgres, `SELECT a FROM t WHERE x = ? AND y = ?`, `SELECT a FROM t WHERE x = $1 AND y = $2`},
		{database.Postgres, `SELECT '?', "a?" FROM t WHERE x = ?`, `SELECT '?', "a?" FROM t WHERE x = $1`},
		{database.Postgres, `SELECT 'it''s ?' WHERE x IN (?, ?)`, `SELECT 'it''s ?' WHERE x IN ($1, $2)`},
		{database.Postgres, `SELECT 1`, `SELECT 1`},
	} {
		if got := c.d.Rebind(c.in); got != c.out {
			t.Errorf("%s Rebind(%q) = %q, want %q", c.d, c.in, got, c.out)
		}
	}
}

func TestBadDatabaseURL(t *testing.T) {
	for _, raw := range []string{
		"postgres://alice:s3cret-pw@127.0.0.1:notaport/otj",
		"mysql://alice:s3cret-pw@127.0.0.1/otj",
		"postgres://alice:s3cret-pw@127.0.0.1:5432/otj?sslmode=bogus",
	} {
		_, err := database.ParsePostgresURL(raw)
		if err == nil {
			t.Errorf("%s: no error", raw)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "DATABASE_URL ") || strings.Contains(msg, "s3cret-pw") || strings.Contains(msg, "\n") {
			t.Errorf("%s: error %q: want one line naming DATABASE_URL without the password", raw, msg)
		}
	}
}

// TestUnreachableDatabase: a server that refuses the connection is one
// line naming DATABASE_URL, without the password, however many
// addresses pgx tried.
func TestUnreachableDatabase(t *testing.T) {
	_, err := database.OpenPostgres(t.Context(), "postgres://alice:s3cret-pw@127.0.0.1:1/otj?connect_timeout=5")
	if err == nil {
		t.Fatal("no error from a closed port")
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "DATABASE_URL ") || strings.Contains(msg, "s3cret-pw") || strings.Contains(msg, "\n") {
		t.Errorf("error %q: want one line naming DATABASE_URL without the password", msg)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://alice:pw@db.example:5432/otj?sslmode=require": "postgres://alice:xxxxx@db.example:5432/otj?sslmode=require",
		"postgres://alice@db.example/otj":                         "postgres://alice@db.example/otj",
		"postgres://alice:pw@db:bad/otj":                          "postgres://xxxxx@db:bad/otj",
	} {
		if got := database.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMigrationsBothDialects applies every migration on a fresh database
// of each dialect and checks the tables the app uses are there and a
// second run applies nothing.
func TestMigrationsBothDialects(t *testing.T) {
	testsupport.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testsupport.Context(t)
		for _, table := range []string{"app_user", "spec", "ksb", "activity", "tag", "activity_tags",
			"activity_ksbs", "resource_link", "task_result", "projection_offset"} {
			var n int
			if err := db.NewSelect().Table(table).ColumnExpr("count(*)").Scan(ctx, &n); err != nil {
				t.Errorf("table %s: %v", table, err)
			}
		}
		applied, err := database.Migrate(ctx, db, t.TempDir()+"/x.db")
		if err != nil || len(applied) != 0 {
			t.Errorf("second Migrate: applied %v, %v; want none", applied, err)
		}
	})
}

// TestMigrateConcurrentPostgres starts several migrators on one fresh
// PostgreSQL database at once, as processes on several hosts do: the
// advisory lock lets one apply the migrations and the rest find them
// applied. Without it they race to create the same tables and fail.
func TestMigrateConcurrentPostgres(t *testing.T) {
	u := testsupport.PostgresURL(t)
	const n = 4
	errs := make(chan error, n)
	applied := make(chan int, n)
	for range n {
		go func() {
			db, err := database.OpenPostgres(t.Context(), u)
			if err != nil {
				errs <- err
				return
			}
			defer db.Close()
			a, err := database.Migrate(t.Context(), db, "")
			applied <- len(a)
			errs <- err
		}()
	}
	total := 0
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
			continue
		}
		total += <-applied
	}
	files, err := fs.Glob(migrations.For("postgres"), "*.up.sql")
	if err != nil {
		t.Fatal(err)
	}
	if total != len(files) {
		t.Errorf("migrations applied %d times in all, want %d (each once)", total, len(files))
	}
}
