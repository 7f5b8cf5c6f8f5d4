package activity

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/otjhelper/otj/modules/activity/internal/rawsqlite"
	"github.com/otjhelper/otj/platform/database"
)

// EachReportRow calls fn with each of the user's activities, newest first
// (activity_date DESC, id DESC), as the full report shows them: labels for
// type and quality, KSBs by natural code; tags ordered by name, KSBs by
// number (K2 before K10), links by id.
//
// It streams, so memory stays flat however long the log is. For the same
// reason the *ReportRow, its slices and their strings' backing are reused
// between calls: fn must not keep row, its slices or its strings after it
// returns (copy what it needs, with strings.Clone for a string), because
// their bytes will hold a later row's.
//
// The rows are read a few batches ahead of fn, by a goroutine of its own
// on a connection of its own, in one read transaction: one snapshot of the
// log, however others write to it meanwhile. On SQLite that connection
// is not one of database/sql's (see package rawsqlite for why), so the
// database must be a file, as the app's always is; on PostgreSQL it is
// one of the pool's, read through pgx (see report_pg.go).
//
// It stops and returns fn's error if fn returns one, and stops with ctx's
// error when ctx is done. It returns only after its goroutine has ended.
func (s *Store) EachReportRow(ctx context.Context, userID int64, fn func(*ReportRow) error) error {
	var (
		read readFunc
		err  error
	)
	if database.DialectOf(s.db) == database.Postgres {
		read, err = s.pgReport(ctx, userID)
	} else {
		read, err = s.sqliteReport(ctx, userID)
	}
	if err != nil {
		return fmt.Errorf("report rows: %w", err)
	}

	// filled carries batches to fn; free brings them back to be refilled,
	// so that only a few batches ever exist.
	filled := make(chan *reportBatch, reportBatchesAhead)
	free := make(chan *reportBatch, reportBatchesAhead+2)
	readCtx, cancel := context.WithCancel(ctx)
	var (
		wg      sync.WaitGroup
		readErr error // set before filled is closed
	)
	wg.Go(func() {
		defer close(filled)
		readErr = read(readCtx, filled, free)
	})
	// However fn's loop ends, the reader stops at its next batch (or its
	// statement is interrupted) and is waited for.
	defer wg.Wait()
	defer cancel()

	var out ReportRow
	for b := range filled {
		for i := range b.rows {
			// A batch already read would still reach fn without this.
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("report rows: %w", err)
			}
			out = b.rows[i]
			if err := fn(&out); err != nil {
				return err // fn's own error, as it gave it
			}
		}
		select {
		case free <- b:
		default:
		}
	}
	if readErr != nil {
		// A read interrupted because ctx ended: ctx's error says why.
		if err := ctx.Err(); err != nil {
			readErr = err
		}
		return fmt.Errorf("report rows: %w", readErr)
	}
	return nil
}

// sqliteReport returns the reading function of EachReportRow on SQLite:
// the merge join of report_read.go on a connection of its own.
func (s *Store) sqliteReport(ctx context.Context, userID int64) (readFunc, error) {
	path, err := s.fileName(ctx)
	if err != nil {
		return nil, err
	}
	conn, r, err := openReport(path, userID)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, filled chan<- *reportBatch, free <-chan *reportBatch) error {
		defer endRead(conn)
		defer r.close()
		// A statement running when the read is stopped stops at once.
		defer context.AfterFunc(ctx, conn.Interrupt)()
		return readBatches(ctx, r, filled, free)
	}, nil
}

const (
	// reportBatchRows is how many rows go to fn in one hand-over: enough
	// that the hand-over costs nothing per row and each statement runs
	// long enough at a time (see reportReader), few enough that a batch
	// is a few hundred kilobytes at most.
	reportBatchRows = 256
	// reportBatchesAhead is how many batches the reader may be ahead of
	// fn. Two keep both busy; more would only hold more memory.
	reportBatchesAhead = 2
	// reportCacheKiB is the reading connection's page cache. The report
	// walks the activities in date order, which is not quite the order
	// they are stored in (ids), so it revisits table pages within a
	// window of days; a cache smaller than that window costs a read from
	// the file for many rows. For a million activities over 18 months
	// (app demo's), 4 MiB reads the file's pages 1.0 to 1.3 times each
	// (the window varies with the demo's dates), 6 MiB once, 3 MiB up to
	// six times: 4 MiB made the report at most 5 % slower, usually not
	// at all.
	//
	// It is a big part of the report's peak memory, and costs about twice
	// its size: a cached 4 KiB page is one allocation of some 4.3 KB,
	// which modernc.org/libc's allocator serves from an 8 KiB slot. So
	// 4 MiB holds about 9 MB resident, 6 MiB held 13 MB (measured), for
	// each report running.
	reportCacheKiB = 4 << 10
	// maxInternedTags bounds the tag names a report shares between rows
	// rather than allocating each time: a log uses few tags, often.
	maxInternedTags = 4096
)

// openReport opens the reading connection, begins its transaction and
// prepares the report of userID.
func openReport(path string, userID int64) (*rawsqlite.Conn, *reportReader, error) {
	conn, err := rawsqlite.Open(path)
	if err != nil {
		return nil, nil, err
	}
	for _, p := range []string{
		fmt.Sprintf("PRAGMA cache_size = -%d", reportCacheKiB),
		"PRAGMA busy_timeout = 10000", // as the app's connections
		// Deferred: a read transaction, begun by the first read.
		"BEGIN",
	} {
		if err := conn.Exec(p); err != nil {
			endRead(conn)
			return nil, nil, err
		}
	}
	r, err := newReportReader(conn, userID)
	if err != nil {
		endRead(conn)
		return nil, nil, err
	}
	return conn, r, nil
}

// endRead ends the connection's read transaction and closes it. A failed
// rollback leaves nothing to undo.
func endRead(c *rawsqlite.Conn) {
	_ = c.Exec("ROLLBACK")
	_ = c.Close()
}

// batchFiller is a reader of either dialect: fill reads the next rows
// into a batch and reports whether there may be more.
type batchFiller interface {
	fill(b *reportBatch) (more bool, err error)
}

// readBatches fills batches (recycled ones when fn has handed them back)
// and sends them on filled until the log ends, a read fails or ctx ends.
func readBatches(ctx context.Context, r batchFiller, filled chan<- *reportBatch, free <-chan *reportBatch) error {
	for more := true; more; {
		var b *reportBatch
		select {
		case b = <-free:
		default:
			b = &reportBatch{rows: make([]ReportRow, 0, reportBatchRows)}
		}
		var err error
		if more, err = r.fill(b); err != nil {
			return err
		}
		if len(b.rows) == 0 {
			break
		}
		select {
		case filled <- b:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// fileName is the path of the database file behind s.db.
func (s *Store) fileName(ctx context.Context) (string, error) {
	rows, err := s.db.QueryContext(ctx, `PRAGMA database_list`)
	if err != nil {
		return "", fmt.Errorf("database file: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			seq        int
			name, file string
		)
		if err := rows.Scan(&seq, &name, &file); err != nil {
			return "", fmt.Errorf("database file: %w", err)
		}
		if name == "main" {
			if file == "" {
				return "", errors.New("database file: the database is in memory, not in a file")
			}
			return file, nil
		}
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("database file: %w", err)
	}
	return "", errors.New("database file: no main database")
}
