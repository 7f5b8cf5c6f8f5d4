package reports

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/textcheck"
)

// ActivityImport is the job type that imports an uploaded CSV, in the
// full report's format, into the user's activity log.
const ActivityImport = "activity_import"

// ActivityImportLabel is how users see an import's task.
const ActivityImportLabel = "Activity import"

// ImportPolicy is how imports are retried: a failed transaction leaves
// nothing behind, so another attempt is safe.
var ImportPolicy = tasktype.Policy{MaxAttempts: 3, Timeout: 10 * time.Minute}

// Importer is what the import needs from the activity log
// (activity.Store).
type Importer interface {
	// Upload returns the body of the user's upload, or an error wrapping
	// activity.ErrNotFound.
	Upload(ctx context.Context, userID, id int64) ([]byte, error)
	// ImportActivities adds rows in one transaction; refused rows come
	// back as *activity.RowsError, by index.
	ImportActivities(ctx context.Context, userID int64, rows []activity.ImportRow, progress func(done int)) (activity.ImportResult, error)
}

// importPayload is an import job's payload: only the id of the upload,
// which lives in the shared database, so that any worker can read it and
// the payload stays far below the broker's bound.
type importPayload struct {
	UploadID int64 `json:"upload_id"`
}

// ImportPayload is the payload of an import job for the upload id.
func ImportPayload(uploadID int64) json.RawMessage {
	b, _ := json.Marshal(importPayload{UploadID: uploadID}) // cannot fail
	return b
}

// uploadReadTimeout bounds reading the upload: one row of a few MiB.
const uploadReadTimeout = time.Minute

// maxListedErrors bounds how many bad rows the user's message names.
const maxListedErrors = 20

// RegisterImport adds the import job type to reg.
func RegisterImport(reg *tasks.Registry, im Importer) error {
	if err := registerImport(reg, im); err != nil {
		return err
	}
	// Started from its own page, ImportPage, not the task list.
	return reg.Describe(tasktype.Kind{Type: ActivityImport, Label: ActivityImportLabel, Noun: "import"})
}

// registerImport registers the import's handler.
func registerImport(reg *tasks.Registry, im Importer) error {
	return reg.Register(ActivityImport, func(ctx context.Context, job tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
		var p importPayload
		if err := json.Unmarshal(job.Payload, &p); err != nil || p.UploadID <= 0 {
			return tasktype.Result{}, tasktype.Permanent(fmt.Errorf("activity import: bad payload %q: %v", job.Payload, err))
		}
		uctx, cancel := context.WithTimeout(ctx, uploadReadTimeout)
		body, err := im.Upload(uctx, job.UserID, p.UploadID)
		cancel()
		if errors.Is(err, activity.ErrNotFound) {
			return tasktype.Result{}, tasktype.Permanent(tasktype.UserMessage(fmt.Errorf("activity import: %w", err),
				"The uploaded file could not be found, so nothing was imported. Please upload it again."))
		}
		if err != nil {
			return tasktype.Result{}, fmt.Errorf("activity import: %w", err)
		}
		out.Progress(0, "Reading the file")
		rows, lines, err := ParseCSV(bytes.NewReader(body))
		if err != nil {
			return tasktype.Result{}, badFile(err)
		}
		// A report lists the newest first, and the last of one date
		// first: added last row first, the activities get ids in the
		// order the log had them, and a report of the import lists
		// them as the file did.
		slices.Reverse(rows)
		slices.Reverse(lines)
		total := len(rows)
		out.Progress(10, "0 of "+plural(total, "row", "rows")+" imported")
		res, err := im.ImportActivities(ctx, job.UserID, rows, func(done int) {
			out.Progress(10+done*89/max(total, 1), groupThousands(done)+" of "+plural(total, "row", "rows")+" imported")
		})
		if errors.Is(err, activity.ErrNoStandard) {
			return tasktype.Result{}, tasktype.Rejected(tasktype.UserMessage(fmt.Errorf("activity import: %w", err),
				"Nothing was imported: the file names KSBs, and you have not chosen your apprenticeship standard yet. Choose it in Settings, then upload the file again."),
				tasktype.Fix{Href: SettingsPage, Label: "Choose your standard in Settings"})
		}
		var refused *activity.RowsError
		if errors.As(err, &refused) {
			le := &LinesError{}
			for _, r := range refused.Rows {
				le.Lines = append(le.Lines, LineError{Line: lines[r.Row], Reason: r.Reason})
			}
			return tasktype.Result{}, badFile(le)
		}
		if errors.Is(err, activity.ErrNotFound) {
			return tasktype.Result{}, tasktype.Permanent(tasktype.UserMessage(fmt.Errorf("activity import: %w", err),
				"Your activity log could not be found by the service that imports, so nothing was imported. Please tell the operator."))
		}
		if err != nil {
			return tasktype.Result{}, fmt.Errorf("activity import: %w", err)
		}
		summary := plural(res.Added, "activity", "activities") + " imported"
		if res.Skipped > 0 {
			summary += ", " + groupThousands(res.Skipped) + " already in the log"
		}
		return tasktype.Result{Summary: summary}, nil
	}, ImportPolicy)
}

// badFile is the failure of a file that cannot be imported as it is: for
// good, since another attempt reads the same file, with the bad rows in
// the sentence the user sees, and the upload form as the way to fix it
// (a Retry would read the same file).
func badFile(err error) error {
	msg := "Nothing was imported: the file could not be read as a report (" + err.Error() + ")."
	var le *LinesError
	if errors.As(err, &le) {
		msg = le.message()
	}
	return tasktype.Rejected(tasktype.UserMessage(fmt.Errorf("activity import: %w", err), msg),
		tasktype.Fix{Href: ImportPage, Label: "Fix the file and upload it again"})
}

// The web's pages a refused import sends its owner to: the upload form,
// and the settings where the standard is chosen.
const (
	ImportPage   = "/activities/import"
	SettingsPage = "/settings"
)

// LineError is one bad row of an imported file: its line number in the
// file (the header is line 1) and why it was refused.
type LineError struct {
	Line   int
	Reason string
}

// LinesError lists every bad row of an imported file.
type LinesError struct{ Lines []LineError }

func (e *LinesError) Error() string {
	parts := make([]string, len(e.Lines))
	for i, l := range e.Lines {
		parts[i] = fmt.Sprintf("line %d: %s", l.Line, l.Reason)
	}
	return strings.Join(parts, "; ")
}

// message is the sentence the user sees: how many rows are bad, and the
// first maxListedErrors of them.
func (e *LinesError) message() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Nothing was imported: %s could not be read. ", plural(len(e.Lines), "row", "rows"))
	for i, l := range e.Lines {
		if i == maxListedErrors {
			fmt.Fprintf(&b, "And %d more.", len(e.Lines)-i)
			break
		}
		fmt.Fprintf(&b, "Line %d: %s. ", l.Line, l.Reason)
	}
	return strings.TrimSpace(b.String())
}

// maxTitle is the longest title the log takes, in characters.
const maxTitle = 200

// ParseCSV reads a file in the full report's format (Header's columns,
// in any order; date, title, hours and type required, the rest optional),
// with or without a UTF-8 byte order mark, with CRLF or LF line ends, and
// returns its rows with the line each starts on. Text comes back as it
// was before the report guarded it (Unneutralize), types and qualities
// as stored values, lists split as SplitList splits them.
//
// Every bad row is reported, in a *LinesError; a file that is not CSV
// at all stops at the first line that is not.
func ParseCSV(r io.Reader) ([]activity.ImportRow, []int, error) {
	br := &bomSkipper{r: r}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, nil, errors.New("the file is empty")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("header: %w", err)
	}
	for _, h := range header {
		if err := textcheck.Check(h); err != nil {
			return nil, nil, fmt.Errorf("the first line cannot be read: %w", err)
		}
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	var missing []string
	for _, h := range []string{"date", "title", "hours", "type"} {
		if _, ok := col[h]; !ok {
			missing = append(missing, h)
		}
	}
	if len(missing) > 0 {
		return nil, nil, fmt.Errorf("the first line must name the report's columns (%s); %s missing", strings.Join(Header, ", "), strings.Join(missing, ", "))
	}
	var rows []activity.ImportRow
	var lines []int
	bad := &LinesError{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				// Past a broken quote the rest cannot be trusted.
				bad.Lines = append(bad.Lines, LineError{Line: pe.StartLine, Reason: "not valid CSV: " + pe.Err.Error()})
				break
			}
			return nil, nil, err
		}
		line, _ := cr.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // a blank line
		}
		row, reasons := parseRow(rec, col, header)
		if len(reasons) > 0 {
			bad.Lines = append(bad.Lines, LineError{Line: line, Reason: strings.Join(reasons, "; ")})
			continue
		}
		rows = append(rows, row)
		lines = append(lines, line)
	}
	if len(bad.Lines) > 0 {
		return nil, nil, bad
	}
	return rows, lines, nil
}

// parseRow reads one record, returning every reason it is bad.
func parseRow(rec []string, col map[string]int, header []string) (activity.ImportRow, []string) {
	var reasons []string
	if len(rec) != len(header) {
		return activity.ImportRow{}, []string{fmt.Sprintf("%d columns where the header has %d", len(rec), len(header))}
	}
	field := func(name string) string {
		if i, ok := col[name]; ok {
			return Unneutralize(rec[i])
		}
		return ""
	}
	var row activity.ImportRow
	// Every cell passes the check every query parameter and form field
	// passes (textcheck): bytes a database refuses never reach the log,
	// where they would fail the import as an error worth retrying.
	for i, c := range rec {
		if err := textcheck.Check(c); err != nil {
			reasons = append(reasons, fmt.Sprintf("the %s cell cannot be read: %v", cellName(header, i), err))
		}
	}
	if len(reasons) > 0 {
		return row, reasons
	}
	d, err := time.Parse(time.DateOnly, strings.TrimSpace(field("date")))
	if err != nil {
		reasons = append(reasons, "the date is not a date like 2026-03-04")
	}
	row.Date = d
	row.Title = field("title")
	switch n := utf8.RuneCountInString(row.Title); {
	case strings.TrimSpace(row.Title) == "":
		reasons = append(reasons, "the title is empty")
	case n > maxTitle:
		reasons = append(reasons, fmt.Sprintf("the title is %d characters, more than %d", n, maxTitle))
	}
	h, err := strconv.ParseFloat(strings.TrimSpace(field("hours")), 64)
	switch {
	case err != nil || math.IsNaN(h) || math.IsInf(h, 0):
		reasons = append(reasons, "the hours are not a number")
	case h <= 0 || h > 24:
		reasons = append(reasons, fmt.Sprintf("hours %g must be more than 0 and at most 24", h))
	}
	row.Hours = h
	var ok bool
	if row.Type, ok = optionValue(activity.ActivityTypes, field("type")); !ok {
		reasons = append(reasons, "the type is not one of "+optionLabels(activity.ActivityTypes))
	}
	if q := field("evidence_quality"); strings.TrimSpace(q) != "" {
		if row.Quality, ok = optionValue(activity.EvidenceQualities, q); !ok {
			reasons = append(reasons, "the evidence quality is not one of "+optionLabels(activity.EvidenceQualities))
		}
	}
	row.Tags = SplitList(field("tags"))
	row.KSBs = SplitList(field("ksbs"))
	row.Links = SplitList(field("links"))
	for i, l := range row.Links {
		if u, err := url.Parse(l); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			reasons = append(reasons, fmt.Sprintf("link %d of the links cell is not an http(s) address", i+1))
		}
	}
	row.Description = field("description")
	row.Notes = field("notes")
	return row, reasons
}

// cellName names column i for a reason: as the header does when it is
// one of the report's columns, by its number otherwise, since the header
// of a column of the file's own is text the user typed, and reasons are
// kept in the task's history.
func cellName(header []string, i int) string {
	name := strings.ToLower(strings.TrimSpace(header[i]))
	if slices.Contains(Header, name) {
		return name
	}
	return "column " + strconv.Itoa(i+1)
}

// optionValue maps a label as the report shows it, or a stored value,
// to the stored value; case and surrounding spaces do not count.
func optionValue(opts []activity.Option, s string) (string, bool) {
	s = strings.TrimSpace(s)
	for _, o := range opts {
		if strings.EqualFold(o.Label, s) || strings.EqualFold(o.Value, s) {
			return o.Value, true
		}
	}
	return "", false
}

func optionLabels(opts []activity.Option) string {
	ls := make([]string, len(opts))
	for i, o := range opts {
		ls[i] = o.Label
	}
	return strings.Join(ls, ", ")
}

// Unneutralize undoes Neutralize on a cell read back from a report: it
// removes each apostrophe Neutralize put there, the first of a run of
// apostrophes before a formula character (=, +, -, @) at the cell's start
// or after a ',', ';', tab or line feed, past spaces, and the first of a
// run before a tab that starts the cell (CRs among them do not count). Neutralize guards an
// apostrophe a user typed in such a place too, so that
// Unneutralize(Neutralize(s)) is s for any s without a CR (which the
// report's writer drops).
func Unneutralize(s string) string {
	if !strings.Contains(s, "'") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	i := 0
	if k := pastApostrophes(s, 0); s[0] == '\'' && k < len(s) && s[k] == '\t' {
		i = 1
	}
	atPart := i == 0 // at the start of a part, before any non-space
	for ; i < len(s); i++ {
		c := s[i]
		if atPart {
			if c == ' ' || c == '\r' {
				b.WriteByte(c)
				continue
			}
			atPart = false
			if q := pastApostrophes(s, i); c == '\'' && q < len(s) && isFormulaStart(s[q]) {
				continue // the guard
			}
		}
		b.WriteByte(c)
		if partDelimiter(c) {
			atPart = true
		}
	}
	return b.String()
}

// bomSkipper drops a UTF-8 byte order mark at the start of r, which
// spreadsheets write in front of CSV.
type bomSkipper struct {
	r    io.Reader
	done bool
	head []byte
}

func (b *bomSkipper) Read(p []byte) (int, error) {
	if !b.done {
		b.done = true
		head := make([]byte, 3)
		n, err := io.ReadFull(b.r, head)
		head = head[:n]
		if !bytes.Equal(head, []byte("\xEF\xBB\xBF")) {
			b.head = head
		}
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return 0, err
		}
	}
	if len(b.head) > 0 {
		n := copy(p, b.head)
		b.head = b.head[n:]
		return n, nil
	}
	return b.r.Read(p)
}
