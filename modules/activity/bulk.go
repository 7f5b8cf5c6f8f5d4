package activity

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// bulkInsert batches rows into multi-row INSERT statements. A full batch
// goes through one prepared statement, so SQLite parses it once; the last,
// partial batch gets a statement of its own.
type bulkInsert struct {
	tx      *sql.Tx
	table   string
	head    string // INSERT INTO t (a, b) VALUES
	tuple   string // (?, ?)
	cols    int
	perStmt int // rows per full statement
	full    *sql.Stmt
	args    []any
}

// sqliteMaxParams is SQLite's default limit on bound parameters
// (SQLITE_MAX_VARIABLE_NUMBER) since 3.32.
const sqliteMaxParams = 32766

func newBulkInsert(tx *sql.Tx, table string, cols []string, perStmt int) *bulkInsert {
	perStmt = min(perStmt, sqliteMaxParams/len(cols))
	return &bulkInsert{
		tx:      tx,
		table:   table,
		head:    "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES ",
		tuple:   "(" + strings.Repeat("?, ", len(cols)-1) + "?)",
		cols:    len(cols),
		perStmt: perStmt,
		args:    make([]any, 0, perStmt*len(cols)),
	}
}

// row adds one row (len(vals) == number of columns), sending a full batch.
func (b *bulkInsert) row(ctx context.Context, vals ...any) error {
	b.args = append(b.args, vals...)
	if len(b.args) < b.perStmt*b.cols {
		return nil
	}
	if b.full == nil {
		st, err := b.tx.PrepareContext(ctx, b.statement(b.perStmt))
		if err != nil {
			return fmt.Errorf("insert into %s: %w", b.table, err)
		}
		b.full = st
	}
	if _, err := b.full.ExecContext(ctx, b.args...); err != nil {
		return fmt.Errorf("insert into %s: %w", b.table, err)
	}
	b.args = b.args[:0]
	return nil
}

// flush sends the rows not yet sent and closes the prepared statement.
func (b *bulkInsert) flush(ctx context.Context) error {
	if b.full != nil {
		defer b.full.Close()
	}
	if len(b.args) == 0 {
		return nil
	}
	if _, err := b.tx.ExecContext(ctx, b.statement(len(b.args)/b.cols), b.args...); err != nil {
		return fmt.Errorf("insert into %s: %w", b.table, err)
	}
	b.args = b.args[:0]
	return nil
}

// statement is the INSERT for that many rows.
func (b *bulkInsert) statement(rows int) string {
	var sb strings.Builder
	sb.Grow(len(b.head) + rows*(len(b.tuple)+1))
	sb.WriteString(b.head)
	for i := range rows {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(b.tuple)
	}
	return sb.String()
}
