// Package rawsqlite reads a SQLite database through the engine's C API,
// as modernc.org/sqlite transpiles it to Go, without database/sql.
//
// It exists for one job: streaming millions of rows for a report. Through
// database/sql and the modernc driver every row pays for the driver's
// per-call connection mutex (each column read takes it three times), a
// fresh Go string and an interface box per column, and database/sql's own
// locking and conversions; that is most of the time a large report takes.
// Here a connection is opened without SQLite's mutex (it is used by one
// goroutine at a time), and a text column is read as a view of SQLite's own
// memory, so the caller copies only what it keeps.
//
// It is the same engine, library and database file as the app's
// connections; only the Go-side plumbing differs. Writes are refused: the
// connection is query-only.
package rawsqlite

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"modernc.org/libc"
	"modernc.org/libc/sys/types"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrInterrupted is returned by Step after Interrupt.
var ErrInterrupted = errors.New("sqlite: interrupted")

// Conn is one read-only connection. It is not safe for concurrent use,
// except for Interrupt.
type Conn struct {
	tls *libc.TLS
	db  uintptr

	// mu guards db against Close while Interrupt uses it from another
	// goroutine, with a TLS of its own (a TLS is single-goroutine).
	mu       sync.Mutex
	closed   bool
	interTLS *libc.TLS
}

// Open opens the database file at path for reading. The file must exist
// (it is never created) and may be in use by other connections, of this
// process or others; in WAL mode they go on writing while c reads its
// snapshot.
func Open(path string) (_ *Conn, err error) {
	c := &Conn{tls: libc.NewTLS(), interTLS: libc.NewTLS()}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	name, err := libc.CString(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer libc.Xfree(c.tls, name)
	pdb, err := c.pointer()
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer libc.Xfree(c.tls, pdb)
	// READWRITE rather than READONLY so that the connection can take part
	// in WAL's shared memory like any other (a read-only one cannot
	// always); query_only below refuses writes. NOMUTEX: one goroutine at
	// a time uses the connection, so SQLite's per-call mutex is pure cost.
	rc := sqlite3.Xsqlite3_open_v2(c.tls, name, pdb, sqlite3.SQLITE_OPEN_READWRITE|sqlite3.SQLITE_OPEN_NOMUTEX, 0)
	c.db = *(*uintptr)(cmem(pdb))
	if rc != sqlite3.SQLITE_OK {
		return nil, fmt.Errorf("open %s: %w", path, c.errorOf(rc))
	}
	if err := c.Exec("PRAGMA query_only = ON"); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return c, nil
}

// Exec runs SQL statements that return no rows (PRAGMA, BEGIN, ROLLBACK).
func (c *Conn) Exec(sql string) error {
	z, err := libc.CString(sql)
	if err != nil {
		return err
	}
	defer libc.Xfree(c.tls, z)
	if rc := sqlite3.Xsqlite3_exec(c.tls, c.db, z, 0, 0, 0); rc != sqlite3.SQLITE_OK {
		return fmt.Errorf("%s: %w", sql, c.errorOf(rc))
	}
	return nil
}

// Prepare compiles one SQL statement.
func (c *Conn) Prepare(sql string) (*Stmt, error) {
	z, err := libc.CString(sql)
	if err != nil {
		return nil, err
	}
	defer libc.Xfree(c.tls, z)
	pp, err := c.pointer()
	if err != nil {
		return nil, err
	}
	defer libc.Xfree(c.tls, pp)
	if rc := sqlite3.Xsqlite3_prepare_v2(c.tls, c.db, z, -1, pp, 0); rc != sqlite3.SQLITE_OK {
		return nil, fmt.Errorf("prepare: %w", c.errorOf(rc))
	}
	return &Stmt{c: c, p: *(*uintptr)(cmem(pp))}, nil
}

// Interrupt makes the statement c is running stop: its Step returns
// ErrInterrupted. It may be called from any goroutine, also after Close
// (it then does nothing).
func (c *Conn) Interrupt() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed && c.db != 0 {
		sqlite3.Xsqlite3_interrupt(c.interTLS, c.db)
	}
}

// Close closes the connection; its statements must be closed first.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	var err error
	if c.db != 0 {
		if rc := sqlite3.Xsqlite3_close_v2(c.tls, c.db); rc != sqlite3.SQLITE_OK {
			err = fmt.Errorf("close: %w", c.errorOf(rc))
		}
		c.db = 0
	}
	c.tls.Close()
	c.interTLS.Close()
	return err
}

// cmem turns an address of C memory into a pointer. The memory comes from
// modernc's C allocator, outside the Go heap: the garbage collector
// neither moves nor frees it, so holding its address in a uintptr is
// safe, which is the concern of vet's check on uintptr conversions.
func cmem(p uintptr) unsafe.Pointer { return unsafe.Add(nil, p) }

// pointer allocates C memory for one pointer, which SQLite's constructors
// write their result to.
func (c *Conn) pointer() (uintptr, error) {
	p := libc.Xcalloc(c.tls, 1, types.Size_t(unsafe.Sizeof(uintptr(0))))
	if p == 0 {
		return 0, errors.New("sqlite: out of memory")
	}
	return p, nil
}

// errorOf describes a result code with the connection's error message.
func (c *Conn) errorOf(rc int32) error {
	if rc&0xff == sqlite3.SQLITE_INTERRUPT {
		return ErrInterrupted
	}
	msg := libc.GoString(sqlite3.Xsqlite3_errstr(c.tls, rc))
	if c.db != 0 {
		if m := libc.GoString(sqlite3.Xsqlite3_errmsg(c.tls, c.db)); m != "" && m != msg {
			msg += ": " + m
		}
	}
	return fmt.Errorf("sqlite: %s (%d)", msg, rc)
}

// Stmt is a prepared statement of a Conn.
type Stmt struct {
	c *Conn
	p uintptr
}

// BindInt64 sets the i-th parameter (from 1).
func (s *Stmt) BindInt64(i int, v int64) error {
	if rc := sqlite3.Xsqlite3_bind_int64(s.c.tls, s.p, int32(i), v); rc != sqlite3.SQLITE_OK {
		return fmt.Errorf("bind %d: %w", i, s.c.errorOf(rc))
	}
	return nil
}

// Step moves to the next row: true if there is one, false at the end.
func (s *Stmt) Step() (bool, error) {
	switch rc := sqlite3.Xsqlite3_step(s.c.tls, s.p); rc {
	case sqlite3.SQLITE_ROW:
		return true, nil
	case sqlite3.SQLITE_DONE:
		return false, nil
	default:
		return false, s.c.errorOf(rc)
	}
}

// Int64 is column i (from 0) of the current row as an integer.
func (s *Stmt) Int64(i int) int64 { return sqlite3.Xsqlite3_column_int64(s.c.tls, s.p, int32(i)) }

// Float64 is column i of the current row as a float.
func (s *Stmt) Float64(i int) float64 { return sqlite3.Xsqlite3_column_double(s.c.tls, s.p, int32(i)) }

// Text is column i of the current row as text (UTF-8; NULL reads as
// empty). The bytes are SQLite's own: valid only until the next Step,
// Reset or Close, and never to be written.
func (s *Stmt) Text(i int) []byte {
	p := sqlite3.Xsqlite3_column_text(s.c.tls, s.p, int32(i))
	// column_bytes after column_text: the length of the text form.
	n := sqlite3.Xsqlite3_column_bytes(s.c.tls, s.p, int32(i))
	if p == 0 || n <= 0 {
		return nil
	}
	return unsafe.Slice((*byte)(cmem(p)), n)
}

// Close finalizes the statement. Safe to call twice. It reports no
// error: finalize only repeats the last one of Step, already returned.
func (s *Stmt) Close() {
	if s.p != 0 {
		sqlite3.Xsqlite3_finalize(s.c.tls, s.p)
		s.p = 0
	}
}
