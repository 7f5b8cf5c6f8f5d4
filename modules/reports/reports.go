// Package reports holds the report jobs built from a user's activity log;
// for now the full CSV report (the seed's generate_full_report).
package reports

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// FullReport is the job type of the full CSV report.
const FullReport = "full_report"

// FullReportLabel is how users see a full report's task.
const FullReportLabel = "Full report (CSV)"

// Source is what the report needs from the activity log. Its rows are
// the log's own type, activity.ReportRow: one activity as the report shows
// it, labels rather than stored values, KSBs by their shown code. The log
// owns the row because it fills it (and reuses it between rows, see
// Store.EachReportRow); had the report owned it, the log would import the
// report, and through it the task engine, and so would everything that
// reads the log, the web included.
type Source interface {
	// EachReportRow calls fn for each of the user's activities, newest
	// first, without holding them all in memory. fn must not keep row
	// or anything in it: its slices and strings may be reused for the
	// next row.
	EachReportRow(ctx context.Context, userID int64, fn func(row *activity.ReportRow) error) error
	// CountActivities returns how many activities the user has, for
	// the report's progress. When the log has no such user it returns
	// an error wrapping activity.ErrNotFound: the report would be empty,
	// and look like a user's empty log. A worker whose database is not
	// the one its jobs came from finds that; such a report fails for
	// good.
	CountActivities(ctx context.Context, userID int64) (int, error)
}

// progressEvery is how many rows pass between progress reports; the
// worker records at most one a second whatever the rate.
const progressEvery = 1000

// Header is the report's first line: the seed's columns, in its order.
var Header = []string{"date", "title", "hours", "type", "evidence_quality", "tags", "ksbs", "links", "description", "notes"}

// Policy is how report jobs are retried: the task defaults, with time
// for a million-row log on a slow disk.
var Policy = tasktype.Policy{MaxAttempts: 3, Timeout: 30 * time.Minute}

// Options tune the report jobs; the zero value is the app's default.
type Options struct {
	// MinDuration, when set, makes a full report take at least this long
	// (REPORT_MIN_DURATION): it waits between rows, in a hundred even
	// steps, each with its progress. For a demo, whose log a report would
	// otherwise finish before the task page has loaded: the page then
	// shows the task pending, running with its progress, and completed.
	MinDuration time.Duration
}

// Register adds the report job types to reg.
func Register(reg *tasks.Registry, src Source) error { return RegisterWith(reg, src, Options{}) }

// RegisterWith is Register with options.
func RegisterWith(reg *tasks.Registry, src Source, opt Options) error {
	if err := registerReport(reg, src, opt); err != nil {
		return err
	}
	return reg.Describe(fullReportKind)
}

// fullReportKind is how users see and start a full report, and the
// Excel file its CSV also downloads as.
var fullReportKind = tasktype.Kind{
	Type: FullReport, Label: FullReportLabel, Noun: "report",
	Start: &tasktype.StartButton{Path: "generate-report", Label: "Generate Full Report",
		Hint:   "A CSV of your whole activity log, built in the background.",
		Queued: "Your full report is being generated in the background. It will appear below when it is ready."},
	Formats: []tasktype.ResultFormat{{Name: "xlsx", Label: "Excel (.xlsx)", Ext: ".xlsx", ContentType: XLSXContentType,
		Convert: func(ctx context.Context, src io.Reader, dst io.Writer) error {
			_, err := CSVToXLSX(ctx, src, dst)
			return err
		}}},
}

// registerReport registers the full report's handler.
func registerReport(reg *tasks.Registry, src Source, opt Options) error {
	return reg.Register(FullReport, func(ctx context.Context, job tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
		total, err := src.CountActivities(ctx, job.UserID)
		if errors.Is(err, activity.ErrNotFound) {
			// Another attempt would read the same database, and so would
			// a retry by hand: only the operator can mend it.
			err = fmt.Errorf("full report: user %d is not in this worker's database (is it the web's? OTJ_DATA_DIR): %w", job.UserID, err)
			return tasktype.Result{}, tasktype.Permanent(tasktype.UserMessage(err,
				"Your activity log could not be found by the service that builds reports, so no report was made. Please tell the operator; trying again will not help until they fix it."))
		}
		if err != nil {
			return tasktype.Result{}, fmt.Errorf("full report: %w", err)
		}
		name := "otj-full-report-" + job.EnqueuedAt.Format("2006-01-02") + ".csv"
		w, err := out.Create(name, "text/csv; charset=utf-8")
		if err != nil {
			return tasktype.Result{}, err
		}
		out.Progress(0, "0 of "+plural(total, "activity", "activities"))
		n, err := WriteCSV(ctx, w, progressSource{Source: src, total: total, out: out, pace: opt.MinDuration}, job.UserID)
		if err != nil {
			return tasktype.Result{}, fmt.Errorf("full report: %w", err)
		}
		return tasktype.Result{Summary: plural(n, "activity", "activities")}, nil
	}, Policy)
}

// progressSource reports every progressEvery rows how many of total
// have been read; paced (Options.MinDuration), every hundredth of total,
// after waiting until that share of pace has passed.
type progressSource struct {
	Source
	total int
	out   tasktype.Output
	pace  time.Duration
}

func (p progressSource) EachReportRow(ctx context.Context, userID int64, fn func(*activity.ReportRow) error) error {
	n := 0
	every := progressEvery
	start := time.Now()
	if p.pace > 0 {
		every = max(1, p.total/100)
	}
	return p.Source.EachReportRow(ctx, userID, func(r *activity.ReportRow) error {
		if n++; n%every == 0 && p.total > 0 {
			if p.pace > 0 {
				if err := sleepUntil(ctx, start.Add(time.Duration(float64(p.pace)*float64(min(n, p.total))/float64(p.total)))); err != nil {
					return err
				}
			}
			// The log may grow while the report runs: never past 99 %
			// until the file is done.
			p.out.Progress(min(n*100/p.total, 99), groupThousands(n)+" of "+plural(p.total, "activity", "activities"))
		}
		return fn(r)
	})
}

// sleepUntil waits until t, or until ctx ends, when it returns ctx's error.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// BOM is the UTF-8 byte-order mark every report starts with: without it
// Excel reads the file in the machine's legacy code page, so that "café"
// and "£" come out garbled; with it every spreadsheet knows the file is
// UTF-8. Readers that parse the file themselves skip it.
const BOM = "\ufeff"

// WriteCSV writes the user's full report to w and returns the number of
// activities. It streams: one row is in memory at a time.
//
// The CSV starts with BOM, then is RFC 4180 (CRLF line ends), UTF-8, each field as
// encoding/csv's Writer with UseCRLF writes it, except that a field is
// quoted also when it holds a ';' or a tab: quoted, it stays one cell in
// a spreadsheet that splits at ';' or tabs (as European locales do). Text
// is guarded against formula injection by Neutralize.
func WriteCSV(ctx context.Context, w io.Writer, src Source, userID int64) (int, error) {
	e := &csvEncoder{w: w, buf: make([]byte, 0, csvFlushAt+4<<10)}
	e.buf = append(e.buf, BOM...)
	for i, h := range Header {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.buf = appendField(e.buf, h)
	}
	e.buf = append(e.buf, '\r', '\n')
	n := 0
	err := src.EachReportRow(ctx, userID, func(r *activity.ReportRow) error {
		n++
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		e.row(r)
		if len(e.buf) >= csvFlushAt {
			return e.flush()
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	return n, e.flush()
}

// csvFlushAt is how much CSV is gathered before it is written to w: the
// JetStream object store's default chunk, so that each write through the
// task output's pipe becomes one full chunk rather than two halves.
const csvFlushAt = 128 << 10

// csvEncoder writes the report's rows as encoding/csv would, without its
// cost per field: no []string record to build, no strings to join,
// neutralize or format for each row, and one buffer between the rows and
// w. For a million rows that was most of the time WriteCSV took.
type csvEncoder struct {
	w       io.Writer
	buf     []byte // CSV not yet written to w
	scratch []byte // a list being joined
	// date and dateText are the last date written and its text: rows
	// come newest first, so runs of one date are common.
	date     time.Time
	dateText []byte
}

// row appends one record.
func (e *csvEncoder) row(r *activity.ReportRow) {
	// A date or a number never needs quoting: it is digits, '-', '+', '.'
	// or the letters of NaN and Inf.
	// == and not Equal: the same instant in another location is another
	// date; identical values format identically.
	if r.Date != e.date || e.dateText == nil {
		e.date, e.dateText = r.Date, r.Date.AppendFormat(e.dateText[:0], time.DateOnly)
	}
	e.buf = append(e.buf, e.dateText...)
	e.buf = append(e.buf, ',')
	e.text(r.Title)
	e.buf = append(e.buf, ',')
	e.buf = strconv.AppendFloat(e.buf, r.Hours, 'f', 1, 64)
	e.buf = append(e.buf, ',')
	e.text(r.TypeLabel)
	e.buf = append(e.buf, ',')
	e.text(r.QualityLabel)
	e.buf = append(e.buf, ',')
	e.list(r.Tags)
	e.buf = append(e.buf, ',')
	e.list(r.KSBs)
	e.buf = append(e.buf, ',')
	e.list(r.Links)
	e.buf = append(e.buf, ',')
	e.text(r.Description)
	e.buf = append(e.buf, ',')
	e.text(r.Notes)
	e.buf = append(e.buf, '\r', '\n')
}

// text appends Neutralize(s) as a field.
func (e *csvEncoder) text(s string) {
	e.buf = appendField(e.buf, s)
}

// list appends Neutralize(JoinList(items)) as a field.
func (e *csvEncoder) list(items []string) {
	e.scratch = appendList(e.scratch[:0], items)
	e.buf = appendField(e.buf, e.scratch)
}

// JoinList is a list cell of the report (tags, KSBs, links): the items
// joined with "; ", each with its backslashes and semicolons escaped by
// a backslash ("a;b" is written a\;b), so that an item holding ';' comes
// back from the import (SplitList) as one item.
func JoinList(items []string) string { return string(appendList(nil, items)) }

func appendList(dst []byte, items []string) []byte {
	for i, it := range items {
		if i > 0 {
			dst = append(dst, "; "...)
		}
		for j := 0; j < len(it); j++ {
			if c := it[j]; c == '\\' || c == ';' {
				dst = append(dst, '\\')
			}
			dst = append(dst, it[j])
		}
	}
	return dst
}

// SplitList undoes JoinList: it splits a list cell at each ';' not
// escaped, undoes the escapes, trims each item's spaces and leaves out
// empty items. A backslash before anything but a backslash or ';' is
// kept, so that a report written before lists were escaped reads as it
// did, its items holding a backslash included.
func SplitList(s string) []string {
	var items []string
	var b strings.Builder
	end := func() {
		if it := strings.TrimSpace(b.String()); it != "" {
			items = append(items, it)
		}
		b.Reset()
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s) && (s[i+1] == '\\' || s[i+1] == ';'):
			i++
			b.WriteByte(s[i])
		case c == ';':
			end()
		default:
			b.WriteByte(c)
		}
	}
	end()
	return items
}

// appendField appends Neutralize(body) as a field, as encoding/csv's
// Writer (comma ',', UseCRLF) writes a field, and quoted also when it
// holds ';' or a tab: as it is, or quoted with quotes doubled, each line
// feed written as CRLF and carriage returns dropped. encoding/csv quotes
// a field that holds the comma, a quote, CR or LF, starts with a
// (Unicode) space, or is \. (which Postgres would read as the end of
// data); after a leading apostrophe only the first reason can hold.
func appendField[S string | []byte](dst []byte, body S) []byte {
	i := 0
	for i < len(body) && !csvSpecial[body[i]] {
		i++
	}
	lead := leadGuard(body)
	quote := i < len(body) || lead != 0 && (string(body) == `\.` || startsWithSpace(body))
	if !quote {
		// No delimiter inside, and no leading space: only the cell's
		// first character can need the guard.
		if lead == 0 {
			dst = append(dst, '\'')
		}
		return append(dst, body...)
	}
	dst = append(dst, '"')
	if lead >= 0 {
		dst = appendSpaces(dst, body[:lead])
		dst = append(dst, '\'')
		body = body[lead:]
	}
	for len(body) > 0 {
		// Copy verbatim everything before the next quote, line break or
		// delimiter.
		i := 0
		for i < len(body) && !csvSpecial[body[i]] {
			i++
		}
		dst = append(dst, body[:i]...)
		body = body[i:]
		if len(body) == 0 {
			break
		}
		c := body[0]
		body = body[1:]
		switch c {
		case '"':
			dst = append(dst, '"', '"')
		case '\n':
			dst = append(dst, '\r', '\n')
		case '\r':
			// dropped, as encoding/csv does with UseCRLF
		default:
			dst = append(dst, c)
		}
		if partDelimiter(c) {
			if j := partGuard(body, 0); j >= 0 {
				dst = appendSpaces(dst, body[:j])
				dst = append(dst, '\'')
				body = body[j:]
			}
		}
	}
	return append(dst, '"')
}

// appendSpaces appends what a guard skipped, spaces and CRs, without
// the CRs, which a quoted field drops.
func appendSpaces[S string | []byte](dst []byte, skipped S) []byte {
	for i := 0; i < len(skipped); i++ {
		if skipped[i] == ' ' {
			dst = append(dst, ' ')
		}
	}
	return dst
}

// csvSpecial marks the bytes that make a field quoted wherever they are:
// those that make encoding/csv quote it, and ';' and tab.
var csvSpecial = func() (special [256]bool) {
	for _, c := range []byte{',', '"', '\r', '\n', ';', '\t'} {
		special[c] = true
	}
	return special
}()

// startsWithSpace reports whether s starts with a Unicode space.
func startsWithSpace[S string | []byte](s S) bool {
	if len(s) == 0 {
		return false
	}
	if s[0] < utf8.RuneSelf {
		return unicode.IsSpace(rune(s[0]))
	}
	var r rune
	switch v := any(s).(type) {
	case string:
		r, _ = utf8.DecodeRuneInString(v)
	case []byte:
		r, _ = utf8.DecodeRune(v)
	}
	return unicode.IsSpace(r)
}

func (e *csvEncoder) flush() error {
	if len(e.buf) == 0 {
		return nil
	}
	_, err := e.w.Write(e.buf)
	e.buf = e.buf[:0]
	return err
}

// Neutralize makes a cell safe to open in a spreadsheet, whichever of
// ',', ';' or tab the spreadsheet splits cells at, and whether or not it
// honours quotes or trims spaces: an apostrophe goes before the cell's
// first character if that is =, +, -, @ or tab (CRs do not count: the
// writer drops them), and before the
// first character other than a space after any ',', ';', tab or line
// feed if that is =, +, -, or @ (and so before the first one past
// leading spaces). CRs count as spaces here: the writer drops them. Spreadsheets show such a cell as text, with the
// apostrophe, and do not evaluate it (OWASP's advice on CSV injection).
//
// So that Unneutralize can undo it, apostrophes a user typed in those
// places get a guard too: a run of them before a formula character
// ("'=x" becomes "”=x"), and at the cell's start before a tab.
// Other apostrophes ("it's", "'quoted") are left as they are.
func Neutralize(s string) string {
	var out []byte // nil while s needs no guard
	from := 0
	guard := func(at int) {
		out = append(out, s[from:at]...)
		out = append(out, '\'')
		from = at
	}
	if j := leadGuard(s); j >= 0 {
		guard(j)
	}
	for i := 0; i < len(s); i++ {
		if partDelimiter(s[i]) {
			if j := partGuard(s, i+1); j >= 0 {
				guard(j)
			}
		}
	}
	if out == nil {
		return s
	}
	return string(append(out, s[from:]...))
}

// leadGuard says where in a cell the guard of its start goes: 0 when the
// cell starts like a formula or with a tab (past apostrophes and CRs), the first character past leading spaces
// when that starts one, and -1 when none is needed.
func leadGuard[S string | []byte](s S) int {
	if k := pastApostrophes(s, 0); k < len(s) && s[k] == '\t' {
		return 0
	}
	return partGuard(s, 0)
}

// partGuard says where the guard of the part of a cell from p goes: at
// its first character other than a space or CR (which the writer drops),
// if that is =, +, - or @, or if it is a run of apostrophes before one
// of these; -1 when none is needed. The apostrophes are what makes the
// guard reversible: "'=x" is written "”=x", and Unneutralize, which
// drops one apostrophe there, gives back "'=x", not "=x".
func partGuard[S string | []byte](s S, p int) int {
	for p < len(s) && (s[p] == ' ' || s[p] == '\r') {
		p++
	}
	if q := pastApostrophes(s, p); q < len(s) && isFormulaStart(s[q]) {
		return p
	}
	return -1
}

// pastApostrophes returns the index past the apostrophes and CRs at
// s[i:]: what is left of them once the writer dropped the CRs is a run
// of apostrophes, which a guard before it keeps apart from the guard.
func pastApostrophes[S string | []byte](s S, i int) int {
	for i < len(s) && (s[i] == '\'' || s[i] == '\r') {
		i++
	}
	return i
}

// partDelimiter reports whether a spreadsheet may start a new cell or
// line after c.
func partDelimiter(c byte) bool {
	return c == ',' || c == ';' || c == '\t' || c == '\n'
}

// isFormulaStart reports whether a cell starting with c would be run as a
// formula by some spreadsheet (LibreOffice runs only '='; Excel all four).
func isFormulaStart(c byte) bool {
	switch c {
	case '=', '+', '-', '@':
		return true
	}
	return false
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return groupThousands(n) + " " + many
}

func groupThousands(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
