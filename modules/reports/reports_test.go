package reports_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/reports"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// rows is an in-memory Source.
type rows []activity.ReportRow

func (rs rows) CountActivities(context.Context, int64) (int, error) { return len(rs), nil }

func (rs rows) EachReportRow(ctx context.Context, _ int64, fn func(*activity.ReportRow) error) error {
	for i := range rs {
		r := rs[i]
		if err := fn(&r); err != nil {
			return err
		}
	}
	return nil
}

func TestNeutralize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"Plain title", "Plain title"},
		{"=SUM(A1:A3)", "'=SUM(A1:A3)"},
		{"+1 pairing", "'+1 pairing"},
		{"-- retro", "'-- retro"},
		{"@mention", "'@mention"},
		{"\tindented", "'\tindented"},
		// A leading CR needs no guard: the writer drops it.
		{"\rcarriage", "\rcarriage"},
		{"\r=1", "\r'=1"},
		{"a=b", "a=b"},
		{"'quoted", "'quoted"},
		{"it's", "it's"},
		{"' =x", "' =x"},
		// Apostrophes typed where a guard goes are guarded too, so
		// that the import can tell them from the guard.
		{"'=x", "''=x"},
		{"''+1", "'''+1"},
		{"a;'=1", "a;''=1"},
		{" '@x", " ''@x"},
		{"'\tx", "''\tx"},
		{"'\r=x", "''\r=x"},
		// After a character some spreadsheet may split cells or lines
		// at, the rest is guarded too, past any spaces.
		{"a;=1+1", "a;'=1+1"},
		{"a\t=1+1", "a\t'=1+1"},
		{"x,+1", "x,'+1"},
		{"x; -1+2", "x; '-1+2"},
		{"ok\n@SUM(1)", "ok\n'@SUM(1)"},
		{"ok\r\n=1", "ok\r\n'=1"},
		{" =1+1", " '=1+1"},
		{"=1;=2", "'=1;'=2"},
		{"\t=1", "'\t'=1"},
		{"a;b, c\td\ne", "a;b, c\td\ne"},
		{"a;", "a;"},
		{"a; ", "a; "},
		// A lone carriage return is not a line break in the file (the
		// writer drops it), so it splits nothing.
		{"a\r=1", "a\r=1"},
		{"a; \r=1", "a; \r'=1"},
	}
	for _, tt := range tests {
		if got := reports.Neutralize(tt.in); got != tt.want {
			t.Errorf("Neutralize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestWriteCSV(t *testing.T) {
	day := func(s string) time.Time { d, _ := time.Parse(time.DateOnly, s); return d }
	src := rows{
		{Date: day("2026-03-04"), Title: `Read "Designing Data", ch. 1`, Hours: 2.25, TypeLabel: "Self-study", QualityLabel: "Good",
			Tags: []string{"books", "data"}, KSBs: []string{"K1", "S2"}, Links: []string{"https://example.org/a?x=1,2"},
			Description: "Line one,\nline two — naïve café £5 🙂", Notes: ""},
		{Date: day("2026-01-31"), Title: "=HYPERLINK(\"http://evil\")", Hours: 1, TypeLabel: "Workshop", QualityLabel: "Draft",
			Description: "-- retro notes", Notes: "@team +1"},
	}
	var buf bytes.Buffer
	n, err := reports.WriteCSV(context.Background(), &buf, src, 1)
	if err != nil || n != 2 {
		t.Fatalf("WriteCSV = %d, %v", n, err)
	}
	// The byte-order mark first, so that Excel reads UTF-8.
	if !strings.HasPrefix(buf.String(), "\xef\xbb\xbfdate,title,hours,type,evidence_quality,tags,ksbs,links,description,notes\r\n") {
		t.Fatalf("BOM and header line: %q", buf.String()[:80])
	}
	got, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(buf.String(), reports.BOM))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		reports.Header,
		{"2026-03-04", `Read "Designing Data", ch. 1`, "2.2", "Self-study", "Good", "books; data", "K1; S2", "https://example.org/a?x=1,2", "Line one,\nline two — naïve café £5 🙂", ""},
		{"2026-01-31", "'=HYPERLINK(\"http://evil\")", "1.0", "Workshop", "Draft", "", "", "", "'-- retro notes", "'@team +1"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range want {
		for j := range want[i] {
			if got[i][j] != want[i][j] {
				t.Errorf("record %d column %s = %q, want %q", i, reports.Header[j], got[i][j], want[i][j])
			}
		}
	}
}

func TestWriteCSVStopsOnSourceError(t *testing.T) {
	boom := errors.New("db closed")
	src := failing{err: boom}
	if _, err := reports.WriteCSV(context.Background(), io.Discard, src, 1); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
}

type failing struct{ err error }

func (f failing) EachReportRow(context.Context, int64, func(*activity.ReportRow) error) error {
	return f.err
}
func (f failing) CountActivities(context.Context, int64) (int, error) { return 1, nil }

// recordingOutput keeps what a handler writes.
type recordingOutput struct {
	name, contentType string
	buf               bytes.Buffer
	progress          []string
}

func (o *recordingOutput) Progress(percent int, message string) {
	o.progress = append(o.progress, fmt.Sprintf("%d%% %s", percent, message))
}

func (o *recordingOutput) Create(name, contentType string) (io.Writer, error) {
	o.name, o.contentType = name, contentType
	return &o.buf, nil
}

func TestFullReportHandler(t *testing.T) {
	reg := tasks.NewRegistry()
	src := make(rows, 1234)
	for i := range src {
		src[i] = activity.ReportRow{Title: "t", Hours: 1}
	}
	if err := reports.Register(reg, src); err != nil {
		t.Fatal(err)
	}
	h, policy, ok := reg.Lookup(reports.FullReport)
	if !ok {
		t.Fatal("full_report not registered")
	}
	if policy.MaxAttempts != 3 || policy.Timeout < 10*time.Minute {
		t.Errorf("report policy %+v: want 3 attempts and time for a large log", policy)
	}
	out := &recordingOutput{}
	job := tasktype.Job{ID: "j1", Type: reports.FullReport, UserID: 3, EnqueuedAt: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)}
	res, err := h(context.Background(), job, out)
	if err != nil {
		t.Fatal(err)
	}
	if res.Summary != "1,234 activities" {
		t.Errorf("summary %q", res.Summary)
	}
	if got := strings.Join(out.progress, " | "); got != "0% 0 of 1,234 activities | 81% 1,000 of 1,234 activities" {
		t.Errorf("progress reports %q", got)
	}
	if out.name != "otj-full-report-2026-11-27.csv" || out.contentType != "text/csv; charset=utf-8" {
		t.Errorf("file %q %q", out.name, out.contentType)
	}
	if lines := strings.Count(out.buf.String(), "\r\n"); lines != 1235 {
		t.Errorf("%d lines, want 1235", lines)
	}
}

// unknownUser is a Source whose log has no such user.
type unknownUser struct{}

func (unknownUser) CountActivities(_ context.Context, id int64) (int, error) {
	return 0, fmt.Errorf("user %d: %w", id, activity.ErrNotFound)
}

func (unknownUser) EachReportRow(context.Context, int64, func(*activity.ReportRow) error) error {
	return nil
}

func TestFullReportOfUnknownUserFailsForGood(t *testing.T) {
	reg := tasks.NewRegistry()
	if err := reports.Register(reg, unknownUser{}); err != nil {
		t.Fatal(err)
	}
	h, _, _ := reg.Lookup(reports.FullReport)
	out := &recordingOutput{}
	_, err := h(context.Background(), tasktype.Job{ID: "j1", Type: reports.FullReport, UserID: 42}, out)
	if !errors.Is(err, activity.ErrNotFound) || !tasktype.IsPermanent(err) {
		t.Fatalf("report of a user the log lacks: %v, want a permanent error wrapping activity.ErrNotFound", err)
	}
	if !strings.Contains(err.Error(), "user 42") {
		t.Errorf("error %q does not name the user", err)
	}
	// Its owner is told that trying again will not help, not the
	// generic "you can try again".
	if msg := tasktype.MessageOf(err); !strings.Contains(msg, "operator") || strings.Contains(msg, "try again") {
		t.Errorf("user sees %q, want a sentence sending them to the operator", msg)
	}
	if out.name != "" || out.buf.Len() > 0 {
		t.Errorf("report of a user the log lacks created %q holding %q", out.name, out.buf.String())
	}
}

func TestFullReportOfEmptyLogIsTheHeader(t *testing.T) {
	reg := tasks.NewRegistry()
	if err := reports.Register(reg, rows{}); err != nil {
		t.Fatal(err)
	}
	h, _, _ := reg.Lookup(reports.FullReport)
	out := &recordingOutput{}
	res, err := h(context.Background(), tasktype.Job{ID: "j1", Type: reports.FullReport, UserID: 7}, out)
	if err != nil {
		t.Fatal(err)
	}
	if want := reports.BOM + strings.Join(reports.Header, ",") + "\r\n"; out.buf.String() != want || res.Summary != "0 activities" {
		t.Errorf("report of an empty log: %q, summary %q; want only the header and 0 activities", out.buf.String(), res.Summary)
	}
}

// repeated is a Source of one row, n times over, that costs next to
// nothing itself, so that a benchmark measures WriteCSV.
type repeated struct {
	row activity.ReportRow
	n   int
}

func (r *repeated) CountActivities(context.Context, int64) (int, error) { return r.n, nil }

func (r *repeated) EachReportRow(_ context.Context, _ int64, fn func(*activity.ReportRow) error) error {
	for range r.n {
		if err := fn(&r.row); err != nil {
			return err
		}
	}
	return nil
}

func BenchmarkWriteCSV(b *testing.B) {
	src := &repeated{n: 1000, row: activity.ReportRow{Date: time.Now(), Title: "Pairing on the ETL pipeline, part 2", Hours: 2.5, TypeLabel: "Project work",
		QualityLabel: "Good", Tags: []string{"data", "python"}, KSBs: []string{"K1", "S3", "B2"},
		Links: []string{"https://example.org/notes/1"}, Description: "Worked through the \"load\" step, fixed a bug.\nNext: tests."}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reports.WriteCSV(context.Background(), io.Discard, src, 1); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*src.n), "ns/row")
}

// referenceCSV is WriteCSV as it would be written with encoding/csv,
// which defines the format: WriteCSV must produce the same bytes. Each
// field is escaped by encoding/csv; a field that holds ';' or a tab is
// quoted too, by a Writer whose Comma is that character.
func referenceCSV(t testing.TB, rs []activity.ReportRow) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteString(reports.BOM)
	writeRecord := func(rec []string) {
		for i, f := range rec {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.WriteString(referenceField(t, f))
		}
		buf.WriteString("\r\n")
	}
	writeRecord(reports.Header)
	for _, r := range rs {
		writeRecord([]string{
			r.Date.Format(time.DateOnly),
			reports.Neutralize(r.Title),
			strconv.FormatFloat(r.Hours, 'f', 1, 64),
			reports.Neutralize(r.TypeLabel),
			reports.Neutralize(r.QualityLabel),
			reports.Neutralize(reports.JoinList(r.Tags)),
			reports.Neutralize(reports.JoinList(r.KSBs)),
			reports.Neutralize(reports.JoinList(r.Links)),
			reports.Neutralize(r.Description),
			reports.Neutralize(r.Notes),
		})
	}
	return buf.Bytes()
}

// referenceField is f as encoding/csv writes it as a field (UseCRLF),
// quoted also when it holds a ';' or a tab.
func referenceField(t testing.TB, f string) string {
	if f == "" {
		return "" // a record of one empty field would be written as ""
	}
	comma := ','
	if !strings.Contains(f, ",") {
		if strings.Contains(f, ";") {
			comma = ';'
		} else if strings.Contains(f, "\t") {
			comma = '\t'
		}
	}
	var b strings.Builder
	cw := csv.NewWriter(&b)
	cw.Comma, cw.UseCRLF = comma, true
	if err := cw.Write([]string{f}); err != nil {
		t.Fatal(err)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(b.String(), "\r\n")
}

// assertNoFormulaAfterSplit checks csv the way a reader that ignores
// quotes and splits at every ',', ';', tab and line break would see it:
// no piece, past a quote and spaces, starts like a formula, wherever
// the split falls.
func assertNoFormulaAfterSplit(t *testing.T, csv []byte) {
	t.Helper()
	isDelim := func(c byte) bool { return strings.IndexByte(",;\t\r\n", c) >= 0 }
	bad := 0
	for start := 0; start < len(csv); start++ {
		if start > 0 && !isDelim(csv[start-1]) || isDelim(csv[start]) {
			continue // not the start of a piece
		}
		i := start
		if csv[i] == '"' {
			i++
		}
		for i < len(csv) && csv[i] == ' ' {
			i++
		}
		if i < len(csv) && strings.IndexByte("=+-@", csv[i]) >= 0 {
			if bad++; bad <= 10 {
				t.Errorf("split at delimiters, the piece at byte %d would start as a formula: %q", start, csv[max(start-20, 0):min(i+20, len(csv))])
			}
		}
	}
}

// awkwardTexts are cell values that test every rule of the format.
var awkwardTexts = []string{
	"", "plain", "a,b", `say "hi"`, "line\nbreak", "cr\ronly", "crlf\r\nend", "\r\n", "\n", `"`, `""`,
	`\.`, `\.x`, " leading space", "\tleading tab", "\u00a0nbsp first", "\u0085nel first", "\u2028ls first",
	"\u3000ideographic", "trailing space ", "=SUM(A1)", "+1", "-1", "@x", "=", "naïve café £5 🙂",
	"\xff\xfe invalid utf-8", "'already quoted", "a;b", "; ", ",", "x\r", "\r",
	"a;=1+1", "a\t=1+1", "x;+1", "x, -1", "ok\n@SUM(1)", "ok\r\n=1", " =1", "=1;=2", "\t=1", "a\r=1", "tab\tonly", "semi;only", "a;\r+1", "\r=1",
}

func TestWriteCSVMatchesEncodingCSV(t *testing.T) {
	day := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
	var src rows
	for i, s := range awkwardTexts {
		next := awkwardTexts[(i+1)%len(awkwardTexts)]
		src = append(src,
			activity.ReportRow{Date: day.AddDate(0, 0, -i), Title: s, Hours: float64(i) / 4, TypeLabel: s, QualityLabel: next,
				Tags: []string{s, next}, KSBs: []string{next}, Links: []string{s}, Description: s, Notes: next},
			activity.ReportRow{Date: day, Title: next + s, Hours: 2.25, Tags: []string{""}, KSBs: []string{"", s}, Description: s + next},
		)
	}
	// One instant, two dates: the one of the Time's own location.
	west := day.In(time.FixedZone("west", -5*3600))
	src = append(src, activity.ReportRow{Date: day}, activity.ReportRow{Date: west}, activity.ReportRow{Date: west}, activity.ReportRow{Date: day})
	src = append(src, activity.ReportRow{Date: time.Date(12345, 1, 1, 0, 0, 0, 0, time.UTC), Hours: -0.05},
		activity.ReportRow{Hours: 1e21, Tags: []string{}, Links: nil})
	var got bytes.Buffer
	if _, err := reports.WriteCSV(context.Background(), &got, src, 1); err != nil {
		t.Fatal(err)
	}
	if want := referenceCSV(t, src); !bytes.Equal(got.Bytes(), want) {
		t.Errorf("WriteCSV differs from encoding/csv:\n got  %q\n want %q", got.Bytes(), want)
	}
}

func FuzzWriteCSV(f *testing.F) {
	for i, s := range awkwardTexts {
		f.Add(s, awkwardTexts[(i+3)%len(awkwardTexts)], 1.5)
	}
	f.Fuzz(func(t *testing.T, a, b string, hours float64) {
		src := rows{{Date: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), Title: a, Hours: hours, TypeLabel: b, QualityLabel: a + b,
			Tags: []string{a, b}, KSBs: []string{b}, Links: []string{a}, Description: b + a, Notes: a}}
		var got bytes.Buffer
		if _, err := reports.WriteCSV(context.Background(), &got, src, 1); err != nil {
			t.Fatal(err)
		}
		if want := referenceCSV(t, src); !bytes.Equal(got.Bytes(), want) {
			t.Errorf("WriteCSV differs from encoding/csv:\n got  %q\n want %q", got.Bytes(), want)
		}
		// Hours and dates are never formula-like in real rows (a
		// negative hours value would be a number, not a formula).
		src[0].Hours = 1
		got.Reset()
		if _, err := reports.WriteCSV(context.Background(), &got, src, 1); err != nil {
			t.Fatal(err)
		}
		assertNoFormulaAfterSplit(t, got.Bytes())
	})
}

func TestWriteCSVGuardsWhatFollowsADelimiter(t *testing.T) {
	var src rows
	for _, s := range awkwardTexts {
		src = append(src, activity.ReportRow{Title: s, Hours: 1, Tags: []string{"a", s}, Description: "ok\n" + s, Notes: "x;" + s})
	}
	var got bytes.Buffer
	if _, err := reports.WriteCSV(context.Background(), &got, src, 1); err != nil {
		t.Fatal(err)
	}
	assertNoFormulaAfterSplit(t, got.Bytes())
}

func TestWriteCSVLargeOutput(t *testing.T) {
	// More than one buffer's worth, written in pieces to a writer that
	// takes what it is given.
	src := make(rows, 5000)
	for i := range src {
		src[i] = activity.ReportRow{Title: strings.Repeat("x", i%50), Hours: 1, Description: "two\nlines", Tags: []string{"t"}}
	}
	var got bytes.Buffer
	n, err := reports.WriteCSV(context.Background(), &got, src, 1)
	if err != nil || n != len(src) {
		t.Fatalf("WriteCSV = %d, %v", n, err)
	}
	if want := referenceCSV(t, src); !bytes.Equal(got.Bytes(), want) {
		t.Error("WriteCSV differs from encoding/csv")
	}
}

// Issue 24 §5: with Options.MinDuration a report of a demo-sized log takes
// at least that long, in even steps, each with its progress, so that its
// running state shows; cancelled, it stops at once.
func TestFullReportPaced(t *testing.T) {
	reg := tasks.NewRegistry()
	src := make(rows, 300)
	for i := range src {
		src[i] = activity.ReportRow{Title: "t", Hours: 1}
	}
	const pace = 400 * time.Millisecond
	if err := reports.RegisterWith(reg, src, reports.Options{MinDuration: pace}); err != nil {
		t.Fatal(err)
	}
	h, _, _ := reg.Lookup(reports.FullReport)
	job := tasktype.Job{ID: "j1", Type: reports.FullReport, UserID: 3, EnqueuedAt: time.Now()}
	out := &recordingOutput{}
	start := time.Now()
	if _, err := h(context.Background(), job, out); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < pace {
		t.Errorf("the paced report took %s, less than %s", took, pace)
	}
	// A step a percent: the worker sends at most one a second of them.
	if len(out.progress) < 50 || out.progress[len(out.progress)-1] != "99% 300 of 300 activities" {
		t.Errorf("%d progress reports, the last %q", len(out.progress), out.progress[len(out.progress)-1])
	}
	if out.progress[0] != "0% 0 of 300 activities" || out.progress[1] != "1% 3 of 300 activities" {
		t.Errorf("progress %q", out.progress[:3])
	}

	// Cancelled a tenth of the way in, a report paced to an hour ends.
	reg = tasks.NewRegistry()
	if err := reports.RegisterWith(reg, src, reports.Options{MinDuration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	h, _, _ = reg.Lookup(reports.FullReport)
	ctx, cancel := context.WithCancel(context.Background())
	out = &recordingOutput{}
	done := make(chan error, 1)
	go func() { _, err := h(ctx, job, out); done <- err }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled paced report: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a cancelled paced report did not stop")
	}
}
