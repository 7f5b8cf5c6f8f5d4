// Package database opens the app's SQLite database through bun and applies
// the embedded migrations.
package database

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/migrate"
	_ "modernc.org/sqlite" // registers the "sqlite" driver (pure Go, no cgo)

	"github.com/otjhelper/otj/migrations"
	"github.com/otjhelper/otj/platform/filelock"
)

// FileName is the database file inside the data directory.
const FileName = "otj.db"

// Open opens (creating if needed) the SQLite database at path.
//
// WAL lets the web process read while a worker writes; busy_timeout makes
// concurrent writers from several processes wait instead of failing; and
// _txlock=immediate takes the write lock at BEGIN, so two transactions never
// deadlock upgrading a read lock. synchronous=NORMAL is the usual WAL
// setting: a committed transaction survives a process crash, and a power
// loss can lose only the last few commits, never corrupt the file.
func Open(ctx context.Context, path string) (*bun.DB, error) {
	q := url.Values{}
	for _, p := range []string{
		"journal_mode(WAL)",
		"busy_timeout(10000)",
		"foreign_keys(ON)",
		"synchronous(NORMAL)",
	} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	dsn := "file:" + filepath.ToSlash(path) + "?" + q.Encode()
	sqldb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if err := sqldb.PingContext(ctx); err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	return bun.NewDB(sqldb, sqlitedialect.New()), nil
}

// Migrate applies every migration not yet applied. Several processes may
// call it at once (app web and app worker starting together): a file lock
// beside the database serialises them. bun's own lock row is not used
// because a process that crashed while holding it would block every later
// start.
func Migrate(ctx context.Context, db *bun.DB, dbPath string) (applied []string, err error) {
	lock, err := filelock.Wait(ctx, dbPath+".migrate.lock")
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	defer lock.Unlock()
	ms := migrate.NewMigrations()
	if err := ms.Discover(migrations.FS); err != nil {
		return nil, fmt.Errorf("migrate: discover: %w", err)
	}
	m := migrate.NewMigrator(db, ms, migrate.WithMarkAppliedOnSuccess(true))
	if err := m.Init(ctx); err != nil {
		return nil, fmt.Errorf("migrate: init: %w", err)
	}
	group, err := m.Migrate(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	for _, mg := range group.Migrations {
		applied = append(applied, mg.Name)
	}
	return applied, nil
}
