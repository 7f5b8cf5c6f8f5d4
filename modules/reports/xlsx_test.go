package reports_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/reports"
)

// longReport is the CSV of a report of n activities, enough to take
// several of CSVToXLSX's batches.
func longReport(t *testing.T, n int) string {
	t.Helper()
	src := make(rows, n)
	for i := range src {
		src[i] = activity.ReportRow{Date: time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC), Title: fmt.Sprint("Activity ", i), Hours: 1.5, TypeLabel: "Workshop"}
	}
	var buf strings.Builder
	if _, err := reports.WriteCSV(context.Background(), &buf, src, 1); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// A wrong row far into the CSV stops the conversion with an error naming
// it, however many rows went before; nothing else is wrong.
func TestCSVToXLSXBadRow(t *testing.T) {
	const n, bad = 3000, 2345
	lines := strings.SplitAfter(longReport(t, n), "\n")
	for _, tc := range []struct{ name, from, to, want string }{
		{"date", "2026-03-04", "2026-02-30", fmt.Sprintf(`activity %d: date "2026-02-30"`, bad)},
		{"hours", ",1.5,", ",lots,", fmt.Sprintf(`activity %d: hours "lots"`, bad)},
		{"fields", ",1.5,", ",1.5,,", "read the CSV"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ls := append([]string(nil), lines...)
			ls[bad] = strings.Replace(ls[bad], tc.from, tc.to, 1) // lines[0] is the header
			_, err := reports.CSVToXLSX(context.Background(), strings.NewReader(strings.Join(ls, "")), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CSVToXLSX: %v, want an error with %q", err, tc.want)
			}
		})
	}
	if got, err := reports.CSVToXLSX(context.Background(), strings.NewReader(strings.Join(lines, "")), io.Discard); err != nil || got != n {
		t.Fatalf("CSVToXLSX = %d, %v; want %d", got, err, n)
	}
}

// errAfter reads r, then fails with err.
type errAfter struct {
	r   io.Reader
	err error
}

func (e *errAfter) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if errors.Is(err, io.EOF) {
		return n, e.err
	}
	return n, err
}

// A source that fails part-way fails the conversion with its error, and
// a context ended before returns the context's error: either way,
// nothing is written.
func TestCSVToXLSXStops(t *testing.T) {
	csv := longReport(t, 3000)
	broken := errors.New("connection reset")
	var out bytes.Buffer
	_, err := reports.CSVToXLSX(context.Background(), &errAfter{r: strings.NewReader(csv[:len(csv)/2]), err: broken}, &out)
	if !errors.Is(err, broken) || out.Len() != 0 {
		t.Errorf("CSVToXLSX over a broken source: %v, %d bytes written; want %v, none", err, out.Len(), broken)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = reports.CSVToXLSX(ctx, strings.NewReader(csv), &out)
	if !errors.Is(err, context.Canceled) || out.Len() != 0 {
		t.Errorf("CSVToXLSX with its context ended: %v, %d bytes written; want %v, none", err, out.Len(), context.Canceled)
	}
}
