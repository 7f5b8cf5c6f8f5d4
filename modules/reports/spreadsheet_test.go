package reports_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

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

// xlsxSource is a report of hostile and non-ASCII cells, dates, whole
// and fractional hours, and empty cells.
func xlsxSource() rows {
	var src rows
	for i, h := range hostileCells {
		src = append(src, activity.ReportRow{Date: time.Date(2026, 3, 4-i%3, 0, 0, 0, 0, time.UTC), Title: h, Hours: float64(i%7) + 0.25,
			TypeLabel: "Workshop", QualityLabel: "Good", Tags: []string{"t", h}, KSBs: []string{"K1", "S2"},
			Links: []string{"https://example.org/a?b=1&c=2"}, Description: "notes:\n" + h, Notes: h})
	}
	return append(src,
		activity.ReportRow{Date: time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC), Title: "Lunch & learn at the café, £5 <b>",
			Hours: 1, TypeLabel: "Workshop", QualityLabel: "Good", Tags: []string{"café"}, KSBs: []string{"K1"},
			Description: "naïve café £5 🙂", Notes: "£"},
		activity.ReportRow{Date: time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), Title: "  padded  ", Hours: 24, TypeLabel: "Other"})
}

// reportFiles writes src's CSV and, converted from it, its workbook into
// a temp dir, and returns the CSV's records (header first) and the
// workbook's path.
func reportFiles(t *testing.T, src rows) ([][]string, string) {
	t.Helper()
	var csvBuf bytes.Buffer
	if _, err := reports.WriteCSV(context.Background(), &csvBuf, src, 1); err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(csvBuf.String(), reports.BOM))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "report.xlsx")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := reports.CSVToXLSX(context.Background(), &csvBuf, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil || n != len(src) {
		t.Fatalf("CSVToXLSX = %d, %v; want %d activities", n, err, len(src))
	}
	return records, path
}

// TestXLSXReadBack converts a report to a workbook and reads every cell
// back with excelize: the header; each date a date-formatted number of
// that day; each hours a number; every other cell an inline string,
// exactly the CSV's text; and no formula anywhere.
func TestXLSXReadBack(t *testing.T) {
	records, path := reportFiles(t, xlsxSource())
	f, err := excelize.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sheet := f.GetSheetName(0)
	got, err := f.GetRows(sheet, excelize.Options{RawCellValue: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(records) {
		t.Fatalf("%d rows, want %d", len(got), len(records))
	}
	for r, rec := range records {
		for c, want := range rec {
			cell, _ := excelize.CoordinatesToCellName(c+1, r+1)
			if fm, err := f.GetCellFormula(sheet, cell); err != nil || fm != "" {
				t.Errorf("%s has a formula %q (%v)", cell, fm, err)
			}
			raw := ""
			if c < len(got[r]) {
				raw = got[r][c]
			}
			typ, err := f.GetCellType(sheet, cell)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case r == 0 || c != 0 && c != 2:
				if raw != want || want != "" && typ != excelize.CellTypeInlineString {
					t.Errorf("%s = %v %q, want the string %q", cell, typ, raw, want)
				}
			case c == 0:
				serial, err := strconv.ParseFloat(raw, 64)
				day, derr := excelize.ExcelDateToTime(serial, false)
				if err != nil || derr != nil || day.Format(time.DateOnly) != want {
					t.Errorf("%s = %q (%v, %v), want the date %s", cell, raw, err, derr, want)
				}
				if shown, _ := f.GetCellValue(sheet, cell); shown != want {
					t.Errorf("%s shows %q, want %s", cell, shown, want)
				}
			case c == 2:
				v, err := strconv.ParseFloat(raw, 64)
				w, _ := strconv.ParseFloat(want, 64)
				if typ != excelize.CellTypeNumber && typ != excelize.CellTypeUnset || err != nil || v != w {
					t.Errorf("%s = %v %q, want the number %s", cell, typ, raw, want)
				}
			}
		}
	}
}

// TestXLSXInLibreOffice opens the workbook in LibreOffice Calc, as a
// double-click would, and reads every cell back: the header as text;
// each date a date of that day, shown as the CSV writes it; each hours a
// number; every other cell the CSV's text, as text; no cell a formula
// or an error.
func TestXLSXInLibreOffice(t *testing.T) {
	office := testsupport.LibreOffice(t)
	records, path := reportFiles(t, xlsxSource())
	sheet := office.Open(t, path)
	if len(sheet) != len(records) {
		t.Fatalf("LibreOffice read %d rows, want %d", len(sheet), len(records))
	}
	for r, rec := range records {
		for c, want := range rec {
			var cell testsupport.SheetCell
			if c < len(sheet[r]) {
				cell = sheet[r][c]
			}
			if cell.Formula != "" || cell.Type == "error" {
				t.Errorf("row %d column %d is live: %s", r+1, c+1, cell)
			}
			switch {
			case r == 0 || c != 0 && c != 2:
				if want == "" && cell.Type == "" {
					continue // an empty cell
				}
				if strings.Contains(want, "\n") {
					// LibreOffice drops the tabs of a cell of several
					// lines, as it does from a CSV.
					want = strings.ReplaceAll(want, "\t", "")
				}
				if cell.Type != "string" || cell.Text != want {
					t.Errorf("row %d %s: LibreOffice read %s, want string %q", r+1, reports.Header[c], cell, want)
				}
			case c == 0:
				if cell.Type != "date" || !strings.HasPrefix(cell.Value, want) || cell.Text != want {
					t.Errorf("row %d date: LibreOffice read %s (value %q), want the date %s", r+1, cell, cell.Value, want)
				}
			case c == 2:
				v, err := strconv.ParseFloat(cell.Value, 64)
				w, _ := strconv.ParseFloat(want, 64)
				if cell.Type != "float" || err != nil || v != w || cell.Text != want {
					t.Errorf("row %d hours: LibreOffice read %s (value %q), want the number %s", r+1, cell, cell.Value, want)
				}
			}
		}
	}
}

// A report larger than excelize keeps in memory (its stream spills to a
// temporary file past 16 MB) comes back whole: every row, in order.
func TestXLSXLargeReport(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the large workbook takes seconds")
	}
	var src rows
	day := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
	for i := range 40000 { // some 20 MB of sheet XML
		src = append(src, activity.ReportRow{Date: day.AddDate(0, 0, -i/40), Title: fmt.Sprintf("Activity %d: %s", i, strings.Repeat("x", 100)),
			Hours: float64(i%16) / 2, TypeLabel: "Workshop", QualityLabel: "Good", Tags: []string{"go", "db"}, KSBs: []string{"K1", "S2"},
			Description: strings.Repeat("A description of the activity. ", 3), Notes: fmt.Sprint(i)})
	}
	records, path := reportFiles(t, src)
	f, err := excelize.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rs, err := f.Rows(f.GetSheetName(0))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rs.Next() {
		cols, err := rs.Columns()
		if err != nil {
			t.Fatal(err)
		}
		if n >= len(records) || !slices.Equal(cols, records[n]) {
			t.Fatalf("row %d = %q, want %q", n+1, cols, records[min(n, len(records)-1)])
		}
		n++
	}
	if err := rs.Close(); err != nil {
		t.Fatal(err)
	}
	if n != len(records) {
		t.Fatalf("%d rows, want %d", n, len(records))
	}
}

// A log longer than a sheet holds goes on in the next sheet, each with
// the header: every activity once, in order.
func TestXLSXSheetsFillUp(t *testing.T) {
	defer reports.SetMaxSheetRows(5)()
	src := xlsxSource()[:12]
	records, path := reportFiles(t, src)
	f, err := excelize.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := f.GetSheetList(); !slices.Equal(got, []string{"Activities", "Activities 2", "Activities 3"}) {
		t.Fatalf("sheets %q", got)
	}
	var data [][]string
	for _, name := range f.GetSheetList() {
		rs, err := f.GetRows(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 0 || !slices.Equal(rs[0], reports.Header) || len(rs) > 5 {
			t.Fatalf("sheet %s: %d rows, first %q", name, len(rs), rs)
		}
		data = append(data, rs[1:]...)
	}
	if len(data) != len(src) {
		t.Fatalf("%d activities in the sheets, want %d", len(data), len(src))
	}
	for i, r := range data {
		if r[1] != records[i+1][1] || r[0] != records[i+1][0] {
			t.Errorf("activity %d: %q, want %q", i+1, r[:2], records[i+1][:2])
		}
	}
}
