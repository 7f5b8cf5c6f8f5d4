package activity

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// reportPG is the full report's one statement on PostgreSQL. Unlike
// SQLite, where a correlated subquery per list per row costs cursor opens
// and sorts (see report_read.go), PostgreSQL runs each subquery as a
// short index scan of a plan it made once, and a connection can run only
// one statement at a time anyway: so one statement, its lists folded by
// string_agg with chr(31) (which the schema keeps out of tags and links)
// as activitySelectPG does. The rows stream from the server as pgx reads
// them from the socket; nothing holds the whole log.
//
// Tags sort by bytes (COLLATE "C"), as SQLite's BINARY collation and the
// SQLite reader's Go sort do; KSBs by sort_order then code; links by id.
// A KSB code missing from ksb is left out by the join, as there.
const reportPG = `
SELECT a.activity_date, a.title, a.description, a.duration_hours,
	a.activity_type, a.evidence_quality, a.notes,
	(SELECT string_agg(t.name, chr(31) ORDER BY t.name COLLATE "C")
		FROM activity_tags atg JOIN tag t ON t.id = atg.tag_id
		WHERE atg.activity_id = a.id),
	(SELECT string_agg(k.natural_code, chr(31) ORDER BY k.sort_order, k.code COLLATE "C")
		FROM activity_ksbs ak JOIN ksb k ON k.code = ak.ksb_code
		WHERE ak.activity_id = a.id),
	(SELECT string_agg(l.url, chr(31) ORDER BY l.id)
		FROM resource_link l
		WHERE l.activity_id = a.id)
FROM activity a
WHERE a.user_id = $1
ORDER BY a.activity_date DESC, a.id DESC`

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
			rows, err := sc.Conn().Query(ctx, reportPG, reportPGFormats, userID)
			if err != nil {
				return err
			}
			defer rows.Close()
			r := &pgReportReader{rows: rows, interned: make(map[string]string)}
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
	rows     pgx.Rows
	interned map[string]string // tag names and KSB codes, see maxInternedTags
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
		row.Tags = r.splitInterned(row.Tags, v[7])
		row.KSBs = r.splitInterned(row.KSBs, v[8])
		row.Links = row.Links[:0]
		if v[9] != nil {
			for item := range bytes.SplitSeq(v[9], []byte(listSep)) {
				row.Links = append(row.Links, b.text(item))
			}
		}
	}
	return true, nil
}

// splitInterned is splitList for a raw list column of few distinct
// items, which rows share rather than each allocating: none for NULL.
func (r *pgReportReader) splitInterned(dst []string, v []byte) []string {
	dst = dst[:0]
	if v == nil {
		return dst
	}
	for item := range bytes.SplitSeq(v, []byte(listSep)) {
		if s, ok := r.interned[string(item)]; ok {
			dst = append(dst, s)
			continue
		}
		s := string(item)
		if len(r.interned) < maxInternedTags {
			r.interned[s] = s
		}
		dst = append(dst, s)
	}
	return dst
}

// readFunc reads a report's batches: filled gets them, free brings them
// back to be refilled. It returns when the log ends, a read fails or ctx
// ends.
type readFunc func(ctx context.Context, filled chan<- *reportBatch, free <-chan *reportBatch) error
