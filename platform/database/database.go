// Package database opens the app's database through bun and applies the
// embedded migrations: SQLite in the data dir by default (no setup), or
// PostgreSQL when DATABASE_URL names one, so that web processes and
// workers on several hosts share one database.
package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/migrate"
	_ "modernc.org/sqlite" // registers the "sqlite" driver (pure Go, no cgo)

	"github.com/otjhelper/otj/migrations"
	"github.com/otjhelper/otj/platform/filelock"
)

// FileName is the database file inside the data directory.
const FileName = "otj.db"

// URLSetting is the setting that selects PostgreSQL; errors about the URL
// name it.
const URLSetting = "DATABASE_URL"

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

// IsPostgresURL reports whether s selects PostgreSQL: a postgres:// or
// postgresql:// URL.
func IsPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// pgConnectTimeout bounds connecting to PostgreSQL when the URL sets no
// connect_timeout: an address that drops packets fails a start in
// seconds, not after the kernel's minutes.
const pgConnectTimeout = 10 * time.Second

// ParsePostgresURL checks a DATABASE_URL. Its error is one line naming
// DATABASE_URL, with the password replaced by xxxxx.
func ParsePostgresURL(raw string) (*pgx.ConnConfig, error) {
	if !IsPostgresURL(raw) {
		return nil, fmt.Errorf("%s %s: not a postgres:// or postgresql:// URL", URLSetting, RedactURL(raw))
	}
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %s", URLSetting, RedactURL(raw), redactIn(err.Error(), raw))
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = pgConnectTimeout
	}
	return cfg, nil
}

// OpenPostgres connects to the PostgreSQL server at rawURL (DATABASE_URL)
// through pgx's database/sql driver, and checks that it answers.
//
// pgx rather than bun's pgdriver because the full report and the demo
// loader use pgx's own interface beneath database/sql: rows streamed
// straight from the socket, and COPY FROM for bulk loads.
func OpenPostgres(ctx context.Context, rawURL string) (*bun.DB, error) {
	cfg, err := ParsePostgresURL(rawURL)
	if err != nil {
		return nil, err
	}
	sqldb := stdlib.OpenDB(*cfg)
	if err := sqldb.PingContext(ctx); err != nil {
		sqldb.Close()
		msg := redactIn(err.Error(), rawURL)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) && ctx.Err() == nil {
			// No server said no (a refused password, a database that does
			// not exist): none answered, or the connection broke first.
			return nil, fmt.Errorf("%s %s: %w: %s", URLSetting, RedactURL(rawURL), ErrUnreachable, msg)
		}
		return nil, fmt.Errorf("%s %s: %s", URLSetting, RedactURL(rawURL), msg)
	}
	return bun.NewDB(sqldb, pgdialect.New()), nil
}

// ErrUnreachable marks an OpenPostgres error that waiting may mend: no
// PostgreSQL server answered at the URL yet. A server that answered and
// refused (credentials, a missing database) is not marked.
var ErrUnreachable = errors.New("no PostgreSQL server answers there yet")

// OpenEither opens PostgreSQL when databaseURL is set, else the SQLite
// file at sqlitePath: the app's one choice of database.
func OpenEither(ctx context.Context, databaseURL, sqlitePath string) (*bun.DB, error) {
	if databaseURL != "" {
		return OpenPostgres(ctx, databaseURL)
	}
	return Open(ctx, sqlitePath)
}

// RedactURL returns a database URL with its password replaced by xxxxx,
// for messages and logs.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		if err != nil {
			// An unparsable URL may still hold a password between "//"
			// and "@": drop everything up to the "@".
			if at := strings.LastIndex(raw, "@"); at >= 0 {
				if i := strings.Index(raw, "//"); i >= 0 && i < at {
					return raw[:i+2] + "xxxxx" + raw[at:]
				}
			}
		}
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// redactIn removes the password of rawURL from msg, which a driver may
// have built from the URL.
func redactIn(msg, rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil && u.User != nil {
		if pw, has := u.User.Password(); has && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
			if esc := url.QueryEscape(pw); esc != pw {
				msg = strings.ReplaceAll(msg, esc, "xxxxx")
			}
		}
	}
	msg = strings.ReplaceAll(msg, rawURL, RedactURL(rawURL))
	// pgx lists each address it tried on a line of its own: one line,
	// as startup errors are.
	msg = strings.ReplaceAll(msg, ":\n\t", ": ")
	msg = strings.ReplaceAll(msg, "\n\t", "; ")
	return strings.ReplaceAll(msg, "\n", " ")
}

// Dialect is which SQL a database speaks, for the few queries that differ.
type Dialect int

const (
	// SQLite is the default: a file in the data dir.
	SQLite Dialect = iota
	// Postgres is a shared server named by DATABASE_URL.
	Postgres
)

// DialectOf returns db's dialect.
func DialectOf(db bun.IDB) Dialect {
	if db.Dialect().Name() == dialect.PG {
		return Postgres
	}
	return SQLite
}

func (d Dialect) String() string {
	if d == Postgres {
		return "postgres"
	}
	return "sqlite"
}

// Rebind rewrites a query written with ? placeholders for the dialect:
// $1, $2, ... on PostgreSQL, unchanged on SQLite. It is for SQL that goes
// to database/sql directly (prepared statements, a *sql.Tx); queries
// through bun's own methods are formatted by bun and need no rebinding.
// A ? inside a quoted string or identifier is left alone.
func (d Dialect) Rebind(q string) string {
	if d != Postgres || !strings.Contains(q, "?") {
		return q
	}
	var sb strings.Builder
	sb.Grow(len(q) + 16)
	n := 0
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			fmt.Fprintf(&sb, "$%d", n)
			continue
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

// Migrate applies every migration not yet applied, from the set for db's
// dialect. Several processes may call it at once (app web and app worker
// starting together, on one host or several), so it runs under a lock:
// on SQLite a file lock beside the database at dbPath; on PostgreSQL a
// session advisory lock, which the server drops if the process holding
// it dies (dbPath is not used). bun's own lock row is not used because a
// process that crashed while holding it would block every later start.
func Migrate(ctx context.Context, db *bun.DB, dbPath string) (applied []string, err error) {
	d := DialectOf(db)
	if d == Postgres {
		unlock, err := advisoryLock(ctx, db)
		if err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
		defer unlock()
	} else {
		lock, err := filelock.Wait(ctx, dbPath+".migrate.lock")
		if err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
		defer lock.Unlock()
	}
	ms := migrate.NewMigrations()
	if err := ms.Discover(migrations.For(d.String())); err != nil {
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

// migrateLockKey is the advisory lock key the migrations run under: any
// fixed number, the same in every process of every version.
const migrateLockKey = 0x07a1_0001

// advisoryLock takes the migration lock on a connection of its own (an
// advisory lock belongs to a session) and returns what releases it. It
// waits as long as ctx allows for another process's migrations.
func advisoryLock(ctx context.Context, db *bun.DB) (unlock func(), err error) {
	conn, err := db.DB.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, int64(migrateLockKey)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("lock: %w", err)
	}
	return func() {
		// Its own deadline: the caller's ctx may be done by now, and a
		// lock left held would make the next start wait for this
		// session to end.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.ExecContext(uctx, `SELECT pg_advisory_unlock($1)`, int64(migrateLockKey)); err != nil {
			// Closing the session below releases it all the same.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		conn.Close()
	}, nil
}
