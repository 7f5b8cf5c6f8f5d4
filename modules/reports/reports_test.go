package reports_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/reports"
	"github.com/otjhelper/otj/modules/tasks"
)

// rows is an in-memory Source.
type rows []reports.Row

func (rs rows) CountActivities(context.Context, int64) (int, error) { return len(rs), nil }

func (rs rows) EachActivity(ctx context.Context, _ int64, fn func(*reports.Row) error) error {
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
		{"\rcarriage", "'\rcarriage"},
		{"a=b", "a=b"},
		{"'quoted", "'quoted"},
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
	if !strings.HasPrefix(buf.String(), "date,title,hours,type,evidence_quality,tags,ksbs,links,description,notes\r\n") {
		t.Fatalf("header line: %q", buf.String()[:80])
	}
	got, err := csv.NewReader(&buf).ReadAll()
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

func (f failing) EachActivity(context.Context, int64, func(*reports.Row) error) error { return f.err }
func (f failing) CountActivities(context.Context, int64) (int, error)                 { return 1, nil }

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
		src[i] = reports.Row{Title: "t", Hours: 1}
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
	job := tasks.Job{ID: "j1", Type: reports.FullReport, UserID: 3, EnqueuedAt: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)}
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

func BenchmarkWriteCSV(b *testing.B) {
	row := reports.Row{Date: time.Now(), Title: "Pairing on the ETL pipeline, part 2", Hours: 2.5, TypeLabel: "Project work",
		QualityLabel: "Good", Tags: []string{"data", "python"}, KSBs: []string{"K1", "S3", "B2"},
		Links: []string{"https://example.org/notes/1"}, Description: "Worked through the \"load\" step, fixed a bug.\nNext: tests."}
	src := make(rows, 1000)
	for i := range src {
		src[i] = row
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reports.WriteCSV(context.Background(), io.Discard, src, 1); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(src)), "ns/row")
}
