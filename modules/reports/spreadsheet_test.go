package reports_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/reports"
	"github.com/otjhelper/otj/platform/testsupport"
)

// hostileCells are texts a spreadsheet could run as formulas, at a
// cell's start or after a character it may split cells or lines at.
var hostileCells = []string{
	"=1+1", "a;=1+1", "a\t=1+1", "+1", "-1+2", "@SUM(1)", "x;+1", "x,=1+1", "a; =1+1", " =1+1",
	"ok\n=1+1", "ok\r\n=1+1", "line\n@SUM(1)", "=1;=2", "\t=1+1", "a;-1+2", "a,\t =1+1",
	`=HYPERLINK("http://evil.example";"click")`, "x;=HYPERLINK(\"http://evil.example\")",
}

// TestCSVInLibreOffice opens a report of hostile cells in LibreOffice
// Calc, splitting at ',', at ';' and at tabs, with spaces trimmed and
// formulas evaluated (the import's strictest settings), and once with
// every delimiter and no quoting at all: no cell may come out a formula.
// Split at ',' as written, every text comes back as the text the report
// holds, apostrophe and all.
func TestCSVInLibreOffice(t *testing.T) {
	office := testsupport.LibreOffice(t)
	var src rows
	for _, h := range hostileCells {
		src = append(src, activity.ReportRow{Date: time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC), Title: h, Hours: 1.5,
			TypeLabel: "Workshop", QualityLabel: "Good", Tags: []string{"t", h}, KSBs: []string{"K1"},
			Description: "notes:\n" + h, Notes: h})
	}
	// Text beyond ASCII reads right only if the sheet takes the file as
	// UTF-8, which the byte-order mark tells it.
	src = append(src, activity.ReportRow{Date: time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC), Title: "Lunch & learn at the café, £5",
		Hours: 1, TypeLabel: "Workshop", QualityLabel: "Good", Tags: []string{"café"}, KSBs: []string{"K1"},
		Description: "naïve café £5 🙂", Notes: "£"})
	var csvBuf strings.Builder
	if _, err := reports.WriteCSV(context.Background(), &csvBuf, src, 1); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "report.csv")
	if err := os.WriteFile(path, []byte(csvBuf.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	// The CSV filter's options: separators, quote character (34 is '"',
	// none disables quoting), UTF-8 (76), from line 1, no column types,
	// default language, quoted fields not forced to text, special numbers
	// detected, two export-only options, spaces trimmed, one sheet,
	// formulas evaluated.
	const rest = ",76,1,,0,false,true,false,false,true,false,true"
	for _, tc := range []struct{ name, options string }{
		{"comma", "44,34" + rest},
		{"semicolon", "59,34" + rest},
		{"tab", "9,34" + rest},
		{"every delimiter, no quoting", "9/44/59," + rest},
		// No character set given: the sheet goes by the file (this
		// LibreOffice defaults to UTF-8 too, so it is Excel that needs
		// the mark; here it must at least read right and not show).
		{"comma, charset from the file", "44,34," + strings.TrimPrefix(rest, ",76")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sheet := office.OpenCSV(t, path, tc.options)
			if len(sheet) < 1+len(src) {
				t.Fatalf("LibreOffice read %d rows, want at least %d", len(sheet), 1+len(src))
			}
			for r, row := range sheet {
				for c, cell := range row {
					if cell.Formula != "" || cell.Type == "error" {
						t.Errorf("row %d column %d is live: %s", r+1, c+1, cell)
					}
				}
			}
			if !strings.HasPrefix(tc.name, "comma") {
				return
			}
			if len(sheet[0]) == 0 || sheet[0][0].Type != "string" || sheet[0][0].Text != "date" {
				t.Errorf("first cell %v, want date: the byte-order mark must not show in it", sheet[0])
			}
			if len(sheet) != 1+len(src) {
				t.Fatalf("LibreOffice read %d rows, want %d", len(sheet), 1+len(src))
			}
			for i, r := range src {
				row := sheet[i+1]
				for _, col := range []struct {
					i    int
					want string
				}{{1, r.Title}, {5, reports.JoinList(r.Tags)}, {8, r.Description}, {9, r.Notes}} {
					want := strings.TrimSpace(strings.ReplaceAll(reports.Neutralize(col.want), "\r", ""))
					if strings.Contains(want, "\n") {
						// LibreOffice drops the tabs of a cell of several lines.
						want = strings.ReplaceAll(want, "\t", "")
					}
					if col.i >= len(row) || row[col.i].Type != "string" || strings.TrimSpace(row[col.i].Text) != want {
						got := "nothing"
						if col.i < len(row) {
							got = row[col.i].String()
						}
						t.Errorf("row %d %s: LibreOffice read %s, want string %q", i+2, reports.Header[col.i], got, want)
					}
				}
			}
		})
	}
}
