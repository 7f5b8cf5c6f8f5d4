package activity

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// reportPG is the full report's one statement on PostgreSQL. A
// connection runs one statement at a time, so rather than SQLite's merge
// join of four statements (report_read.go) each activity's lists come
// from correlated subqueries, each a short index scan of the list's
// primary key or index. The rows stream from the server as pgx reads
// them from the socket; nothing holds the whole log.
//
// The lists are folded without ORDER BY inside the aggregate and without
// joins: an aggregate's own ORDER BY costs PostgreSQL a sort per row,
// and the joins a probe of tag or ksb per item, which together made the
// statement more than twice as slow (a million activities: 14.5 s
// against 6.6 s, measured with psql). Tags come as ids and KSBs as
// stored codes, named and ordered in Go from the user's tags and the KSB
// reference data read first in the same snapshot, as the SQLite reader
// does; links come in id order from a subquery ordered by the index
// resource_link_activity, which string_agg keeps. chr(31) separates
// items; the schema keeps it out of tags and links.
const reportPG = `
SELECT a.activity_date, a.title, a.description, a.duration_hours,
	a.activity_type, a.evidence_quality, a.notes,
	(SELECT string_agg(atg.tag_id::text, ',') FROM activity_tags atg WHERE atg.activity_id = a.id),
	(SELECT string_agg(ak.ksb_code, chr(31)) FROM activity_ksbs ak WHERE ak.activity_id = a.id),
	(SELECT string_agg(l.url, chr(31)) FROM (
		SELECT l.url FROM resource_link l WHERE l.activity_id = a.id ORDER BY l.activity_id, l.id) l)
FROM activity a
WHERE a.user_id = $1
ORDER BY a.activity_date DESC, a.id DESC`

// reportPGTags and reportPGKSBs are read before reportPG, in its snapshot.
const (
	reportPGTags = `SELECT id, name FROM tag WHERE user_id = $1`
	reportPGKSBs = `SELECT code, natural_code, sort_order FROM ksb`
)

// reportPGFormats asks for the date and the hours in binary, which reads
// the same whatever the server's DateStyle or float settings, and the
// texts as text, which are their bytes.
var reportPGFormats = pgx.QueryResultFormats{
	pgx.BinaryFormatCode, pgx.TextFormatCode, pgx.TextFormatCode, pgx.BinaryFormatCode,
	pgx.TextFormatCode, pgx.TextFormatCode, pgx.TextFormatCode,
	pgx.TextFormatCode, pgx.TextFormatCode, pgx.TextFormatCode,
}

// pgReport returns the reading function of EachReportRow on PostgreSQL:
// on a connection of its own from the pool, through pgx beneath
// database/sql, one statement whose rows it fills batches from. The
// connection is returned to the pool when the read ends; a read stopped
// by its context cancels the statement on the server (pgx's doing), and
// database/sql then drops the connection.
func (s *Store) pgReport(ctx context.Context, userID int64) (readFunc, error) {
	conn, err := s.db.DB.Conn(ctx)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, filled chan<- *reportBatch, free <-chan *reportBatch) error {
		defer conn.Close()
		return conn.Raw(func(dc any) error {
			sc, ok := dc.(*stdlib.Conn)
			if !ok {
				return fmt.Errorf("database driver %T is not pgx", dc)
			}
			pc := sc.Conn()
			// One snapshot for the reference reads and the log.
			tx, err := pc.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
			if err != nil {
				return err
			}
			// Read only: nothing to commit. Its own deadline, as ctx may be
			// done; a connection that cannot roll back is dropped.
			defer func() {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				_ = tx.Rollback(rctx)
			}()
			r := &pgReportReader{tags: make(map[int64]string), ksbRefs: make(map[string]ksbRef)}
			if err := r.readRefs(ctx, tx, userID); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, reportPG, reportPGFormats, userID)
			if err != nil {
				return err
			}
			defer rows.Close()
			r.rows = rows
			if err := readBatches(ctx, r, filled, free); err != nil {
				return err
			}
			rows.Close()
			return rows.Err()
		})
	}, nil
}

// pgReportReader fills report batches from reportPG's rows.
type pgReportReader struct {
	rows       pgx.Rows
	tags       map[int64]string // the user's tags by id
	ksbRefs    map[string]ksbRef
	ksbScratch []ksbRef
}

// readRefs reads the user's tags and the KSB reference data: a few
// hundred rows, held rather than joined for every row.
func (r *pgReportReader) readRefs(ctx context.Context, tx pgx.Tx, userID int64) error {
	rows, err := tx.Query(ctx, reportPGTags, userID)
	if err != nil {
		return fmt.Errorf("tags: %w", err)
	}
	var (
		id   int64
		name string
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &name}, func() error { r.tags[id] = name; return nil }); err != nil {
		return fmt.Errorf("tags: %w", err)
	}
	if rows, err = tx.Query(ctx, reportPGKSBs); err != nil {
		return fmt.Errorf("KSBs: %w", err)
	}
	var k ksbRef
	if _, err := pgx.ForEachRow(rows, []any{&k.code, &k.natural, &k.sortOrder}, func() error { r.ksbRefs[k.code] = k; return nil }); err != nil {
		return fmt.Errorf("KSBs: %w", err)
	}
	return nil
}

// pgEpoch is day 0 of PostgreSQL's binary dates.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// fill reads the next rows into b (emptied first, its rows' slices
// reused) and reports whether there may be more.
func (r *pgReportReader) fill(b *reportBatch) (more bool, err error) {
	b.ids = b.ids[:0]
	b.rows = b.rows[:0]
	b.arena = b.arena[:0] // fn is done with the strings of the batch's last use
	for len(b.rows) < reportBatchRows {
		if !r.rows.Next() {
			return false, r.rows.Err()
		}
		v := r.rows.RawValues()
		if len(v) != 10 || len(v[0]) != 4 || len(v[3]) != 8 {
			return false, errors.New("activities: unexpected row shape")
		}
		b.rows = extend(b.rows)
		row := &b.rows[len(b.rows)-1]
		row.Date = pgEpoch.AddDate(0, 0, int(int32(binary.BigEndian.Uint32(v[0]))))
		row.Title = b.text(v[1])
		row.Description = b.text(v[2])
		row.Hours = math.Float64frombits(binary.BigEndian.Uint64(v[3]))
		row.TypeLabel = labelOf(ActivityTypes, v[4], "")
		row.QualityLabel = labelOf(EvidenceQualities, v[5], defaultQuality)
		row.Notes = b.text(v[6])
		if row.Tags, err = r.tagNames(row.Tags, v[7]); err != nil {
			return false, err
		}
		row.KSBs = r.ksbs(row.KSBs, v[8])
		row.Links = row.Links[:0]
		if v[9] != nil {
			for item := range bytes.SplitSeq(v[9], []byte(listSep)) {
				row.Links = append(row.Links, b.text(item))
			}
		}
	}
	return true, nil
}

// tagNames appends the names of a row's tag ids (decimal, comma
// separated; NULL for none) to dst[:0], sorted by bytes as SQLite's
// BINARY collation sorts them. An id the snapshot has no tag for cannot
// be (a foreign key), and is left out as a join would.
func (r *pgReportReader) tagNames(dst []string, v []byte) ([]string, error) {
	dst = dst[:0]
	if v == nil {
		return dst, nil
	}
	for item := range bytes.SplitSeq(v, []byte(",")) {
		id, ok := digits(item)
		if !ok {
			return dst, fmt.Errorf("tags: unexpected tag id %q", item)
		}
		if name, ok := r.tags[int64(id)]; ok {
			dst = append(dst, name)
		}
	}
	slices.Sort(dst)
	return dst, nil
}

// ksbs appends the natural codes of a row's stored KSB codes to dst[:0],
// K, S, B in number order; a code missing from ksb is left out.
func (r *pgReportReader) ksbs(dst []string, v []byte) []string {
	dst = dst[:0]
	if v == nil {
		return dst
	}
	r.ksbScratch = r.ksbScratch[:0]
	for item := range bytes.SplitSeq(v, []byte(listSep)) {
		if k, ok := r.ksbRefs[string(item)]; ok {
			r.ksbScratch = append(r.ksbScratch, k)
		}
	}
	slices.SortFunc(r.ksbScratch, func(a, b ksbRef) int {
		return cmp.Or(cmp.Compare(a.sortOrder, b.sortOrder), strings.Compare(a.code, b.code))
	})
	for _, k := range r.ksbScratch {
		dst = append(dst, k.natural)
	}
	return dst
}

// readFunc reads a report's batches: filled gets them, free brings them
// back to be refilled. It returns when the log ends, a read fails or ctx
// ends.
type readFunc func(ctx context.Context, filled chan<- *reportBatch, free <-chan *reportBatch) error
