package testsupport

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nuid"
	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/platform/database"
)

// PostgresURLEnv names the setting that points the tests at a PostgreSQL
// server, as a URL whose user may create databases. scripts/test starts
// a server of its own on a free port and sets it. Each test gets a fresh
// database of its own there.
const PostgresURLEnv = "OTJ_TEST_DATABASE_URL"

// DialectEnv names the setting that runs the whole suite on PostgreSQL:
// with OTJ_TEST_DIALECT=postgres, DB gives PostgreSQL databases and
// AppDatabaseURL gives app processes a DATABASE_URL.
const DialectEnv = "OTJ_TEST_DIALECT"

// onPostgres reports whether OTJ_TEST_DIALECT asks for PostgreSQL.
func onPostgres() bool { return os.Getenv(DialectEnv) == database.Postgres.String() }

// DB returns a fresh migrated database and, for SQLite, its file's path.
// It is SQLite in a temp dir, or with OTJ_TEST_DIALECT=postgres a fresh
// PostgreSQL database (path ""), so that the suite runs on either.
// EachDialect runs a test on both.
func DB(t testing.TB) (*bun.DB, string) {
	t.Helper()
	if onPostgres() {
		return PostgresDB(t), ""
	}
	return SQLiteDB(t)
}

// SQLiteDB returns a migrated SQLite database in a temp dir and its path.
func SQLiteDB(t testing.TB) (*bun.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), database.FileName)
	db, err := database.Open(Context(t), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := database.Migrate(Context(t), db, path); err != nil {
		t.Fatal(err)
	}
	return db, path
}

// PostgresDB returns a fresh migrated PostgreSQL database, dropped when
// the test ends (see PostgresURL).
func PostgresDB(t testing.TB) *bun.DB {
	t.Helper()
	u := PostgresURL(t)
	db, err := database.OpenPostgres(Context(t), u)
	if err != nil {
		t.Fatal(err)
	}
	// Registered after PostgresURL's cleanup, so it runs first: the
	// database is closed before it is dropped.
	t.Cleanup(func() { db.Close() })
	if _, err := database.Migrate(Context(t), db, ""); err != nil {
		t.Fatal(err)
	}
	return db
}

// EachDialect runs test as two subtests, "sqlite" and "postgres", each on
// a fresh migrated database of that dialect. Without OTJ_TEST_DATABASE_URL
// the postgres subtest is skipped, saying so; under CI=true it fails.
func EachDialect(t *testing.T, test func(t *testing.T, db *bun.DB)) {
	t.Helper()
	t.Run(database.SQLite.String(), func(t *testing.T) {
		db, _ := SQLiteDB(t)
		test(t, db)
	})
	t.Run(database.Postgres.String(), func(t *testing.T) {
		test(t, PostgresDB(t))
	})
}

// serverURL is OTJ_TEST_DATABASE_URL. Without it the test is skipped,
// naming the setting; under CI=true (or with OTJ_TEST_DIALECT=postgres,
// which asks for it) a missing server fails it.
func serverURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(PostgresURLEnv)
	if u == "" {
		if os.Getenv("CI") == "true" || onPostgres() {
			t.Fatalf("%s is not set: the PostgreSQL tests must run (scripts/test starts a PostgreSQL server)", PostgresURLEnv)
		}
		t.Skipf("%s is not set: skipping the tests that need a real PostgreSQL (scripts/test starts one)", PostgresURLEnv)
	}
	return u
}

// PostgresURL creates a fresh, empty database on the test PostgreSQL
// server and returns its URL, for tests that start app processes with
// DATABASE_URL. The database is dropped when the test ends, with any
// session still on it.
func PostgresURL(t testing.TB) string {
	t.Helper()
	server := serverURL(t)
	admin, err := database.OpenPostgres(Context(t), server)
	if err != nil {
		t.Fatalf("%s: %v", PostgresURLEnv, err)
	}
	defer admin.Close()
	name := "otj_test_" + strings.ToLower(nuid.Next())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.DB.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		t.Fatalf("%s: create database %s: %v", PostgresURLEnv, name, err)
	}
	t.Cleanup(func() { dropDatabase(t, server, name) })
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("%s: %v", PostgresURLEnv, err)
	}
	u.Path = "/" + name
	return u.String()
}

// dropDatabase drops a test's database, ending its sessions (a process
// the test killed may have left one).
func dropDatabase(t testing.TB, server, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sqldb, err := database.OpenPostgres(ctx, server)
	if err != nil {
		t.Errorf("drop test database %s: %v", name, err)
		return
	}
	defer sqldb.Close()
	if _, err := sqldb.DB.ExecContext(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
		t.Errorf("drop test database %s: %v", name, err)
	}
}

// AppDatabaseURL returns the DATABASE_URL app processes started by a
// test should get: "" (SQLite in their data dir) normally, or a fresh
// PostgreSQL database's URL with OTJ_TEST_DIALECT=postgres.
func AppDatabaseURL(t testing.TB) string {
	t.Helper()
	if !onPostgres() {
		return ""
	}
	return PostgresURL(t)
}
