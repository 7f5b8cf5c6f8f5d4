package testsupport

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/platform/database"
)

// CaptureQueries returns db, as a handle that records every SELECT run
// through it, as bun sent it (arguments in place), so that a test can
// look at the plans of the queries the code itself makes: give the code
// the handle. take hands over the queries recorded since its last call.
func CaptureQueries(db *bun.DB) (recorded *bun.DB, take func() []string) {
	h := &queryCapture{}
	return db.WithQueryHook(h), h.take
}

type queryCapture struct {
	mu sync.Mutex
	qs []string
}

func (h *queryCapture) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return ctx
}

func (h *queryCapture) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	q := strings.TrimSpace(e.Query)
	if !strings.HasPrefix(strings.ToUpper(q), "SELECT") {
		return
	}
	h.mu.Lock()
	h.qs = append(h.qs, q)
	h.mu.Unlock()
}

func (h *queryCapture) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	qs := h.qs
	h.qs = nil
	return qs
}

// sqliteFullScan matches a line of SQLite's EXPLAIN QUERY PLAN that reads
// a whole table: "SCAN t", without "USING … INDEX" (a table named in
// the query's FROM or JOIN; SCAN CONSTANT ROW and the like are not tables).
var sqliteFullScan = regexp.MustCompile(`\bSCAN (\w+)\s*$`)

// QueryPlan returns the plan of query on db as its dialect prints it:
// SQLite's EXPLAIN QUERY PLAN (one line a step, "SCAN …" or "SEARCH …"),
// or PostgreSQL's EXPLAIN, planned with enable_seqscan off, so that a
// table of a test's few rows is still read through an index if one
// serves the query (a query no index serves still shows "Seq Scan").
func QueryPlan(t testing.TB, db *bun.DB, query string) string {
	t.Helper()
	ctx := Context(t)
	conn, err := db.Conn(ctx) // one session: SET holds for the EXPLAIN
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	explain := "EXPLAIN QUERY PLAN "
	if database.DialectOf(db) == database.Postgres {
		if _, err := conn.ExecContext(ctx, "SET enable_seqscan = off"); err != nil {
			t.Fatal(err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), "RESET enable_seqscan") //nolint:errcheck // the session is closed next
		explain = "EXPLAIN "
	}
	rows, err := conn.QueryContext(ctx, explain+query)
	if err != nil {
		t.Fatalf("explain %s: %v", query, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		// SQLite: id, parent, notused, detail; PostgreSQL: one line.
		line := vals[len(vals)-1]
		switch v := line.(type) {
		case []byte:
			lines = append(lines, string(v))
		case string:
			lines = append(lines, v)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// FullScans returns the steps of plan (from QueryPlan on db) that read a
// whole table rather than searching an index: SQLite's "SCAN t" without
// an index, PostgreSQL's "Seq Scan on t". None means every table the
// query touches is reached through an index.
func FullScans(db *bun.DB, plan string) []string {
	var bad []string
	for _, line := range strings.Split(plan, "\n") {
		if database.DialectOf(db) == database.Postgres {
			if strings.Contains(line, "Seq Scan") {
				bad = append(bad, strings.TrimSpace(line))
			}
			continue
		}
		if sqliteFullScan.MatchString(strings.TrimSpace(line)) {
			bad = append(bad, strings.TrimSpace(line))
		}
	}
	return bad
}
