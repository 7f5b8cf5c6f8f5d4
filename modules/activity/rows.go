package activity

import (
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// listSep separates the items that group_concat folds into one column.
// char(31) is the ASCII unit separator: it cannot be typed into a form and
// has no meaning in tag names, URLs or KSB codes, so it never appears in the
// data, and splitting on it needs no escaping. The schema does not enforce
// this, so code that stores tag names or URLs must reject control characters.
const listSep = "\x1f"

// activitySelect selects a user's activities newest first, with their tags,
// KSBs and links each folded into one column by a correlated subquery: the
// log page's query, a page at a time. The index activity_user_date yields
// the rows already in order, so SQLite neither sorts nor buffers them, and
// each row's lists come from their own indexes (the join tables' primary
// keys and resource_link_activity). A list is NULL when the activity has
// none. Three subqueries a row cost too much for a whole log: the full
// report reads it with a merge join instead (see report_read.go), and
// TestEachReportRowMatchesListActivities holds the two to the same rows.
//
// Order inside the lists: tags by name, KSBs K, S, B by number (ksb.sort_order), links by id,
// and their titles in the links' order. The caller adds the filters
// (activityFilters) and the ORDER BY (activityOrder).
//
// PostgreSQL says the same with string_agg and chr(31); its tags sort by
// bytes (COLLATE "C"), as SQLite's BINARY collation does, whatever the
// database's locale.
const activitySelect = `
SELECT a.id, a.activity_date, a.title, a.description, a.duration_hours,
	a.activity_type, a.evidence_quality, a.notes,
	(SELECT group_concat(t.name, char(31) ORDER BY t.name)
		FROM activity_tags atg JOIN tag t ON t.id = atg.tag_id
		WHERE atg.activity_id = a.id),
	(SELECT group_concat(k.natural_code, char(31) ORDER BY k.sort_order, k.code)
		FROM activity_ksbs ak JOIN ksb k ON k.code = ak.ksb_code
		WHERE ak.activity_id = a.id),
	(SELECT group_concat(l.url, char(31) ORDER BY l.id)
		FROM resource_link l
		WHERE l.activity_id = a.id),
	(SELECT group_concat(l.title, char(31) ORDER BY l.id)
		FROM resource_link l
		WHERE l.activity_id = a.id)
FROM activity a
WHERE a.user_id = ?`

// activityOrder is the listing's order, newest first, which the index
// activity_user_date yields.
const activityOrder = ` ORDER BY a.activity_date DESC, a.id DESC`

// activitySelectPG is activitySelect in PostgreSQL.
const activitySelectPG = `
SELECT a.id, a.activity_date, a.title, a.description, a.duration_hours,
	a.activity_type, a.evidence_quality, a.notes,
	(SELECT string_agg(t.name, chr(31) ORDER BY t.name COLLATE "C")
		FROM activity_tags atg JOIN tag t ON t.id = atg.tag_id
		WHERE atg.activity_id = a.id),
	(SELECT string_agg(k.natural_code, chr(31) ORDER BY k.sort_order, k.code COLLATE "C")
		FROM activity_ksbs ak JOIN ksb k ON k.code = ak.ksb_code
		WHERE ak.activity_id = a.id),
	(SELECT string_agg(l.url, chr(31) ORDER BY l.id)
		FROM resource_link l
		WHERE l.activity_id = a.id),
	(SELECT string_agg(l.title, chr(31) ORDER BY l.id)
		FROM resource_link l
		WHERE l.activity_id = a.id)
FROM activity a
WHERE a.user_id = ?`

// activityRow receives one row of activitySelect. It is reused from row to
// row, so scanning allocates little beyond the strings themselves.
type activityRow struct {
	id                  int64
	date                civilDate
	title, description  string
	hours               float64
	typ, quality, notes string
	tags, ksbs, links   sql.NullString
	linkTitles          sql.NullString
	dest                []any
}

func (r *activityRow) scan(rows *sql.Rows) error {
	if r.dest == nil {
		r.dest = []any{&r.id, &r.date, &r.title, &r.description, &r.hours,
			&r.typ, &r.quality, &r.notes, &r.tags, &r.ksbs, &r.links, &r.linkTitles}
	}
	if err := rows.Scan(r.dest...); err != nil {
		return fmt.Errorf("scan activity: %w", err)
	}
	return nil
}

// splitList appends the items of a group_concat column to dst[:0]: none
// for NULL (no items), and otherwise every item, empty ones included. The
// items share s's memory, so this allocates nothing once dst is big enough.
func splitList(dst []string, s sql.NullString) []string {
	dst = dst[:0]
	if !s.Valid {
		return dst
	}
	rest := s.String
	for {
		item, after, found := strings.Cut(rest, listSep)
		dst = append(dst, item)
		if !found {
			return dst
		}
		rest = after
	}
}

// civilDate scans an activity_date. The driver turns a DATE column's text
// into a time.Time (in UTC, or in the offset the text carries); rows
// written by other tools may arrive as text. Either way only the calendar
// date is kept, as midnight UTC, because an activity happens on a day, not
// at an instant.
type civilDate struct{ t time.Time }

func (d *civilDate) Scan(src any) error {
	switch v := src.(type) {
	case time.Time:
		d.t = time.Date(v.Year(), v.Month(), v.Day(), 0, 0, 0, 0, time.UTC)
		return nil
	case string:
		return d.parse(v)
	case []byte:
		return d.parse(string(v))
	default:
		return fmt.Errorf("activity date: unexpected %T", src)
	}
}

func (d *civilDate) parse(s string) error {
	if len(s) < len(dateLayout) {
		return fmt.Errorf("activity date %q: not a date", s)
	}
	t, err := time.Parse(dateLayout, s[:len(dateLayout)])
	if err != nil {
		return fmt.Errorf("activity date %q: %w", s, err)
	}
	d.t = t
	return nil
}

// dateLayout is how activity_date is written: SQLite's own date format, so
// that the column sorts by date and SQLite's date functions understand it.
const dateLayout = "2006-01-02"
