package testsupport

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Office is a headless LibreOffice with a user profile of its own, so
// that tests running at once do not share (and lock) one profile.
type Office struct {
	path    string // soffice
	profile string // file URL of the private user profile
}

// LibreOffice finds soffice and gives it a private profile, removed when
// the test ends. Without LibreOffice the test is skipped, naming the
// package to install; under CI=true that is a failure.
func LibreOffice(t testing.TB) *Office {
	t.Helper()
	path, err := exec.LookPath("soffice")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("soffice not found (CI=true): install Debian's libreoffice-calc-nogui package; scripts/test does this when run as root")
		}
		t.Skip("soffice not found: install Debian's libreoffice-calc-nogui package (scripts/test does), or this spreadsheet test stays skipped")
	}
	// Not t.TempDir: soffice may still write to its profile for a moment
	// after it exits, which would fail the test's own cleanup.
	dir, err := os.MkdirTemp("", "otj-soffice-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 50 {
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	return &Office{path: path, profile: "file://" + dir}
}

// SheetCell is one cell of a spreadsheet as LibreOffice stored it.
type SheetCell struct {
	// Formula is the cell's formula ("of:=1+1"); empty for a value.
	Formula string
	// Type is the value's type: string, float, date, percentage, ...;
	// empty for an empty cell.
	Type string
	// Text is what the cell shows, its lines joined with "\n".
	Text string
	// Value is a number's or a date's value as stored (office:value,
	// office:date-value, such as "1.5" or "2026-03-04"); empty for text.
	Value string
}

// OpenCSV opens the CSV file at csvPath in LibreOffice Calc with the
// given CSV filter options (the --infilter string after "CSV:", such as
// "59,34,76,1" for ';'-separated UTF-8 with '"' quoting), saves it as a
// flat OpenDocument spreadsheet, and returns the cells of its sheet, row
// by row, as LibreOffice read them. One call starts LibreOffice once,
// which takes seconds: open a file once, not once per cell.
func (o *Office) OpenCSV(t testing.TB, csvPath, filterOptions string) [][]SheetCell {
	t.Helper()
	return o.open(t, csvPath, "--infilter=CSV:"+filterOptions)
}

// Open opens the spreadsheet at path (an .xlsx, say) in LibreOffice Calc
// as its type says, saves it as a flat OpenDocument spreadsheet, and
// returns the cells of its first sheet, as OpenCSV does.
func (o *Office) Open(t testing.TB, path string) [][]SheetCell {
	t.Helper()
	return o.open(t, path)
}

func (o *Office) open(t testing.TB, path string, options ...string) [][]SheetCell {
	t.Helper()
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{"-env:UserInstallation=" + o.profile, "--headless", "--norestore"}, options...)
	cmd := exec.CommandContext(ctx, o.path, append(args, "--convert-to", "fods", "--outdir", out, path)...)
	msg, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("soffice --convert-to fods %s %q: %v\n%s", path, options, err, msg)
	}
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)) + ".fods"
	f, err := os.Open(filepath.Join(out, name))
	if err != nil {
		t.Fatalf("soffice wrote no %s: %v\n%s", name, err, msg)
	}
	defer f.Close()
	rows, err := readFlatODS(f)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return rows
}

// The namespaces of the flat ODS elements and attributes read.
const (
	odsTable  = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
	odsOffice = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
	odsText   = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
)

// readFlatODS reads the first sheet of a flat ODS document: each row's
// cells, with repeated cells and rows expanded (trailing empty ones
// dropped).
func readFlatODS(r io.Reader) ([][]SheetCell, error) {
	dec := xml.NewDecoder(r)
	var (
		rows      [][]SheetCell
		row       []SheetCell
		cell      *SheetCell
		cellRep   int
		rowRep    int
		paragraph int  // paragraphs seen in the current cell
		inP       bool // inside one of them
		tables    int
	)
	attr := func(e xml.StartElement, space, local string) string {
		for _, a := range e.Attr {
			if a.Name.Space == space && a.Name.Local == local {
				return a.Value
			}
		}
		return ""
	}
	repeat := func(v string) int {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return min(n, 1000) // a sheet's filler rows repeat a million times
		}
		return 1
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			return nil, err
		}
		switch e := tok.(type) {
		case xml.StartElement:
			switch {
			case e.Name.Space == odsTable && e.Name.Local == "table":
				if tables++; tables > 1 {
					return rows, nil
				}
			case e.Name.Space == odsTable && e.Name.Local == "table-row":
				row, rowRep = nil, repeat(attr(e, odsTable, "number-rows-repeated"))
			case e.Name.Space == odsTable && (e.Name.Local == "table-cell" || e.Name.Local == "covered-table-cell"):
				cell = &SheetCell{Formula: attr(e, odsTable, "formula"), Type: attr(e, odsOffice, "value-type"),
					Value: attr(e, odsOffice, "value") + attr(e, odsOffice, "date-value")}
				cellRep, paragraph = repeat(attr(e, odsTable, "number-columns-repeated")), 0
			case cell != nil && e.Name.Space == odsText:
				switch e.Name.Local {
				case "p":
					if paragraph++; paragraph > 1 {
						cell.Text += "\n"
					}
					inP = true
				case "s":
					n := 1
					if c, err := strconv.Atoi(attr(e, odsText, "c")); err == nil {
						n = c
					}
					cell.Text += strings.Repeat(" ", n)
				case "tab":
					cell.Text += "\t"
				case "line-break":
					cell.Text += "\n"
				}
			}
		case xml.CharData:
			if cell != nil && inP {
				cell.Text += string(e)
			}
		case xml.EndElement:
			switch {
			case e.Name.Space == odsText && e.Name.Local == "p":
				inP = false
			case e.Name.Space == odsTable && (e.Name.Local == "table-cell" || e.Name.Local == "covered-table-cell"):
				for range cellRep {
					row = append(row, *cell)
				}
				cell = nil
			case e.Name.Space == odsTable && e.Name.Local == "table-row":
				for len(row) > 0 && row[len(row)-1] == (SheetCell{}) {
					row = row[:len(row)-1]
				}
				for range rowRep {
					rows = append(rows, row)
				}
			case e.Name.Space == odsTable && e.Name.Local == "table":
				for len(rows) > 0 && len(rows[len(rows)-1]) == 0 {
					rows = rows[:len(rows)-1]
				}
			}
		}
	}
}

// String shows the cell as a test failure should: its formula or its
// type, and its text.
func (c SheetCell) String() string {
	if c.Formula != "" {
		return fmt.Sprintf("formula %s (shows %q)", c.Formula, c.Text)
	}
	return fmt.Sprintf("%s %q", c.Type, c.Text)
}
