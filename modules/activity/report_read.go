package activity

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/otjhelper/otj/modules/activity/internal/rawsqlite"
)

// The report's statements. Each walks the user's activities in the
// report's order through the index activity_user_date; the list ones join
// one kind of list item to each activity. Read side by side in one
// transaction they are a merge join: an activity's items are the next rows
// of each list statement that carry its id. That replaces a correlated
// subquery per list per activity, which costs SQLite several cursor opens
// and a sort for every row.
//
// CROSS JOIN fixes the join order (SQLite never reorders it), so that
// whatever statistics the planner has, each statement streams in index
// order and never sorts the whole log. Items are ordered within an
// activity by the reader: tags by name and KSBs by number in Go, links by
// id through the index on resource_link.
const (
	reportActivities = `
SELECT a.id, a.activity_date, a.title, a.description, a.duration_hours,
	a.activity_type, a.evidence_quality, a.notes
FROM activity a
WHERE a.user_id = ?
ORDER BY a.activity_date DESC, a.id DESC`
	reportTags = `
SELECT a.id, t.name
FROM activity a CROSS JOIN activity_tags atg ON atg.activity_id = a.id CROSS JOIN tag t ON t.id = atg.tag_id
WHERE a.user_id = ?
ORDER BY a.activity_date DESC, a.id DESC`
	reportKSBs = `
SELECT a.id, ak.ksb_code
FROM activity a CROSS JOIN activity_ksbs ak ON ak.activity_id = a.id
WHERE a.user_id = ?
ORDER BY a.activity_date DESC, a.id DESC`
	reportLinks = `
SELECT a.id, l.url
FROM activity a CROSS JOIN resource_link l ON l.activity_id = a.id
WHERE a.user_id = ?
ORDER BY a.activity_date DESC, a.id DESC, l.id`
	reportKSBRefs = `SELECT code, natural_code, sort_order FROM ksb`
)

// reportStatements are the statements that read the log, for tests that
// check how SQLite runs them.
var reportStatements = []string{reportActivities, reportTags, reportKSBs, reportLinks}

// reportBatch is up to reportBatchRows report rows, on their way to fn.
//
// Its rows' texts (titles, descriptions, notes, links) are strings over
// arena, which is reused when the batch is refilled, so that reading makes
// next to no garbage of its own (else some 300 bytes a row, 300 MB for a
// million): fewer collections, and a few MB less peak heap, measured. It
// is why fn must not keep a row's strings.
type reportBatch struct {
	ids   []int64
	rows  []ReportRow
	arena []byte
}

// minArena is the first arena's size: about what a batch of demo rows
// needs, so that it rarely grows.
const minArena = 96 << 10

// text returns p as a string over b's arena.
func (b *reportBatch) text(p []byte) string {
	if len(p) == 0 {
		return ""
	}
	if len(b.arena)+len(p) > cap(b.arena) {
		// A bigger arena from here on. The strings made from the old one
		// keep it alive, unchanged, until their rows are refilled.
		b.arena = make([]byte, 0, max(2*cap(b.arena), len(p), minArena))
	}
	start := len(b.arena)
	b.arena = append(b.arena, p...)
	return unsafe.String(&b.arena[start], len(p))
}

// reportReader reads report rows in batches: the merge join of the
// activities with their three lists, on one connection in one read
// transaction, so one snapshot. A batch is read one statement at a time
// (its activities, then their tags, their KSBs, their links), so that
// each statement runs hundreds of steps in a row, with its pages and
// SQLite's code for it at hand, rather than four statements taking turns
// at every row.
type reportReader struct {
	acts              *rawsqlite.Stmt
	tags, ksbs, links listCursor

	ksbRefs    map[string]ksbRef
	tagNames   map[string]string // interned, see maxInternedTags
	ksbScratch []ksbRef
}

// ksbRef is how a stored KSB code is shown and ordered.
type ksbRef struct {
	code, natural string
	sortOrder     int64
}

// newReportReader prepares the statements on conn, which must be in a
// transaction (BEGIN), for the report of userID.
func newReportReader(conn *rawsqlite.Conn, userID int64) (_ *reportReader, err error) {
	r := &reportReader{tagNames: make(map[string]string)}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	// Read first, so in the snapshot the rows are read in.
	if r.ksbRefs, err = readKSBRefs(conn); err != nil {
		return nil, err
	}
	if r.acts, err = prepareBound(conn, reportActivities, userID); err != nil {
		return nil, fmt.Errorf("activities: %w", err)
	}
	for _, c := range []struct {
		cur       *listCursor
		name, sql string
	}{{&r.tags, "tags", reportTags}, {&r.ksbs, "KSBs", reportKSBs}, {&r.links, "links", reportLinks}} {
		if err := c.cur.open(conn, c.name, c.sql, userID); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// readKSBRefs reads the KSB reference data: a few hundred rows at most,
// so it is held rather than joined for every row.
func readKSBRefs(conn *rawsqlite.Conn) (map[string]ksbRef, error) {
	st, err := conn.Prepare(reportKSBRefs)
	if err != nil {
		return nil, fmt.Errorf("KSBs: %w", err)
	}
	defer st.Close()
	refs := make(map[string]ksbRef)
	for {
		ok, err := st.Step()
		if err != nil {
			return nil, fmt.Errorf("KSBs: %w", err)
		}
		if !ok {
			return refs, nil
		}
		code := string(st.Text(0))
		refs[code] = ksbRef{code: code, natural: string(st.Text(1)), sortOrder: st.Int64(2)}
	}
}

// close finalizes the statements. Safe on a partly made reader.
func (r *reportReader) close() {
	if r.acts != nil {
		r.acts.Close()
	}
	r.tags.close()
	r.ksbs.close()
	r.links.close()
}

// fill reads the next rows into b (emptied first, its rows' slices
// reused) and reports whether there may be more.
func (r *reportReader) fill(b *reportBatch) (more bool, err error) {
	b.ids = b.ids[:0]
	b.rows = b.rows[:0]
	b.arena = b.arena[:0] // fn is done with the strings of the batch's last use
	more = true
	for more && len(b.rows) < reportBatchRows {
		if more, err = r.acts.Step(); err != nil {
			return false, fmt.Errorf("activities: %w", err)
		}
		if !more {
			break
		}
		st := r.acts
		b.ids = append(b.ids, st.Int64(0))
		b.rows = extend(b.rows)
		row := &b.rows[len(b.rows)-1]
		if row.Date, err = parseDate(st.Text(1)); err != nil {
			return false, err
		}
		row.Title = b.text(st.Text(2))
		row.Description = b.text(st.Text(3))
		row.Hours = st.Float64(4)
		row.TypeLabel = labelOf(ActivityTypes, st.Text(5), "")
		row.QualityLabel = labelOf(EvidenceQualities, st.Text(6), defaultQuality)
		row.Notes = b.text(st.Text(7))
	}

	for i, id := range b.ids {
		row := &b.rows[i]
		row.Tags = row.Tags[:0]
		for r.tags.at(id) {
			row.Tags = append(row.Tags, r.tagName(r.tags.stmt.Text(1)))
			if err := r.tags.step(); err != nil {
				return false, err
			}
		}
		slices.Sort(row.Tags) // by bytes, as SQLite's BINARY collation
	}
	for i, id := range b.ids {
		r.ksbScratch = r.ksbScratch[:0]
		for r.ksbs.at(id) {
			// A code missing from ksb is left out, as a join would.
			if k, ok := r.ksbRefs[string(r.ksbs.stmt.Text(1))]; ok {
				r.ksbScratch = append(r.ksbScratch, k)
			}
			if err := r.ksbs.step(); err != nil {
				return false, err
			}
		}
		slices.SortFunc(r.ksbScratch, func(a, b ksbRef) int {
			return cmp.Or(cmp.Compare(a.sortOrder, b.sortOrder), strings.Compare(a.code, b.code))
		})
		row := &b.rows[i]
		row.KSBs = row.KSBs[:0]
		for _, k := range r.ksbScratch {
			row.KSBs = append(row.KSBs, k.natural)
		}
	}
	for i, id := range b.ids {
		row := &b.rows[i]
		row.Links = row.Links[:0]
		for r.links.at(id) {
			row.Links = append(row.Links, b.text(r.links.stmt.Text(1)))
			if err := r.links.step(); err != nil {
				return false, err
			}
		}
	}
	if !more {
		// In one snapshot every list ends with the activities. If one
		// did not, a list row was out of step and lists were lost, which
		// must not pass as a report.
		return false, errors.Join(r.tags.finish(), r.ksbs.finish(), r.links.finish())
	}
	return true, nil
}

// tagName returns name as a string, shared between rows when it has been
// seen before.
func (r *reportReader) tagName(name []byte) string {
	if s, ok := r.tagNames[string(name)]; ok {
		return s
	}
	s := string(name)
	if len(r.tagNames) < maxInternedTags {
		r.tagNames[s] = s
	}
	return s
}

// listCursor is one list statement, positioned on its next unread row.
type listCursor struct {
	name  string
	stmt  *rawsqlite.Stmt
	more  bool  // stmt is on a row
	actID int64 // that row's activity
}

func (c *listCursor) open(conn *rawsqlite.Conn, name, sql string, userID int64) error {
	c.name = name
	var err error
	if c.stmt, err = prepareBound(conn, sql, userID); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return c.step()
}

// at reports whether the cursor's row is an item of activity id.
func (c *listCursor) at(id int64) bool { return c.more && c.actID == id }

func (c *listCursor) step() error {
	var err error
	if c.more, err = c.stmt.Step(); err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	if c.more {
		c.actID = c.stmt.Int64(0)
	}
	return nil
}

// finish checks that the list was read to its end.
func (c *listCursor) finish() error {
	if c.more {
		return fmt.Errorf("%s out of step at activity %d", c.name, c.actID)
	}
	return nil
}

func (c *listCursor) close() {
	if c.stmt != nil {
		c.stmt.Close()
	}
}

func prepareBound(conn *rawsqlite.Conn, sql string, userID int64) (*rawsqlite.Stmt, error) {
	st, err := conn.Prepare(sql)
	if err != nil {
		return nil, err
	}
	if err := st.BindInt64(1, userID); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// extend lengthens s by one. The new last element is what that slot held
// in an earlier use of s, if any, so that its slices' memory is reused.
func extend[T any](s []T) []T {
	if len(s) < cap(s) {
		return s[:len(s)+1]
	}
	var zero T
	return append(s, zero)
}

// labelOf is label for a value read as bytes: empty counts as the value
// empty (when not ""), and an unknown value is returned as it is. It
// allocates only for the unknown.
func labelOf(opts []Option, v []byte, empty string) string {
	if len(v) == 0 && empty != "" {
		return label(opts, empty)
	}
	for _, o := range opts {
		if o.Value == string(v) {
			return o.Label
		}
	}
	return string(v)
}

// parseDate reads a stored activity_date (YYYY-MM-DD, see dateLayout) as
// midnight UTC. The fast path covers what the schema lets in; anything
// else goes through civilDate, for the same result or error as ever.
func parseDate(b []byte) (time.Time, error) {
	if len(b) >= len(dateLayout) && b[4] == '-' && b[7] == '-' {
		y, ok1 := digits(b[0:4])
		m, ok2 := digits(b[5:7])
		d, ok3 := digits(b[8:10])
		if ok1 && ok2 && ok3 && m >= 1 && m <= 12 && d >= 1 && d <= daysIn(time.Month(m), y) {
			return time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC), nil
		}
	}
	var cd civilDate
	if err := cd.parse(string(b)); err != nil {
		return time.Time{}, err
	}
	return cd.t, nil
}

// digits parses a run of ASCII digits.
func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// daysIn is the number of days in month m of year y.
func daysIn(m time.Month, y int) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
