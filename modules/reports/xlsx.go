package reports

import (
	"archive/zip"
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/klauspost/compress/flate"
	"github.com/xuri/excelize/v2"
)

// XLSXContentType is the content type of an Excel workbook.
const XLSXContentType = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

// xlsxSheet is the name of the workbook's sheet, the first if there
// are more.
const xlsxSheet = "Activities"

// maxSheetRows is how many rows a sheet takes, header included; a
// variable so that a test can see a second sheet begin without a
// million rows.
var maxSheetRows = excelize.TotalRows

// CSVToXLSX reads a full report as WriteCSV wrote it from src and writes
// it to dst as an Excel workbook: one sheet (more past Excel's 1,048,575
// rows, each with the header), the CSV's header and
// columns, dates as dates (shown yyyy-mm-dd), hours as numbers, and every
// other cell as text exactly as the CSV holds it, formula guard
// (Neutralize) included, so that the two files never disagree. Text in a
// workbook is never a formula; only a cell given a formula is, and none
// is. It returns the number of activities.
//
// It streams the rows through excelize's StreamWriter, which keeps a few
// megabytes of them in memory and the rest in a temporary file until
// the workbook is written, at the end: nothing reaches dst before every
// row has been read.
func CSVToXLSX(ctx context.Context, src io.Reader, dst io.Writer) (int, error) {
	br := bufio.NewReaderSize(src, 64<<10)
	if lead, err := br.Peek(len(BOM)); err == nil && string(lead) == BOM {
		_, _ = br.Discard(len(BOM))
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = len(Header)
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return 0, fmt.Errorf("xlsx: read the CSV's header: %w", err)
	}
	if !slices.Equal(head, Header) {
		return 0, fmt.Errorf("xlsx: the CSV's header is %q, not the full report's", head)
	}

	f := excelize.NewFile()
	defer f.Close() // removes the stream's temporary file
	if err := f.SetSheetName("Sheet1", xlsxSheet); err != nil {
		return 0, fmt.Errorf("xlsx: %w", err)
	}
	dateStyle, err := f.NewStyle(&excelize.Style{CustomNumFmt: ptr("yyyy-mm-dd")})
	if err != nil {
		return 0, fmt.Errorf("xlsx: %w", err)
	}
	// One decimal, as the CSV writes hours.
	hoursStyle, err := f.NewStyle(&excelize.Style{CustomNumFmt: ptr("0.0")})
	if err != nil {
		return 0, fmt.Errorf("xlsx: %w", err)
	}
	headStyle, err := f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true}})
	if err != nil {
		return 0, fmt.Errorf("xlsx: %w", err)
	}
	// A sheet holds excelize.TotalRows rows, header included (Excel's
	// bound): a longer log goes on in "Activities 2", and so on.
	var sw *excelize.StreamWriter
	sheetRow, sheets := 0, 0
	newSheet := func() error {
		if sw != nil {
			if err := sw.Flush(); err != nil {
				return err
			}
		}
		sheets++
		name := xlsxSheet
		if sheets > 1 {
			name = xlsxSheet + " " + strconv.Itoa(sheets)
			if _, err := f.NewSheet(name); err != nil {
				return err
			}
		}
		var err error
		if sw, err = f.NewStreamWriter(name); err != nil {
			return err
		}
		// Column widths and a frozen header: set before the first row.
		for i, width := range []float64{11, 40, 7, 18, 14, 24, 24, 40, 50, 40} {
			if err := sw.SetColWidth(i+1, i+1, width); err != nil {
				return err
			}
		}
		if err := sw.SetPanes(&excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"}); err != nil {
			return err
		}
		head := make([]any, len(Header))
		for i, h := range Header {
			head[i] = excelize.Cell{StyleID: headStyle, Value: h}
		}
		sheetRow = 1
		return sw.SetRow("A1", head)
	}
	if err := newSheet(); err != nil {
		return 0, fmt.Errorf("xlsx: %w", err)
	}

	cells := make([]excelize.Cell, len(Header))
	row := make([]any, len(Header))
	for i := range cells {
		row[i] = &cells[i]
	}
	n := 0
	var lastDate string
	var lastDay time.Time
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, fmt.Errorf("xlsx: read the CSV: %w", err)
		}
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return n, err
			}
		}
		if rec[0] != lastDate {
			d, err := time.Parse(time.DateOnly, rec[0])
			if err != nil {
				return n, fmt.Errorf("xlsx: activity %d: date %q: %w", n, rec[0], err)
			}
			lastDate, lastDay = rec[0], d
		}
		hours, err := strconv.ParseFloat(rec[2], 64)
		if err != nil {
			return n, fmt.Errorf("xlsx: activity %d: hours %q: %w", n, rec[2], err)
		}
		cells[0] = excelize.Cell{StyleID: dateStyle, Value: lastDay}
		cells[2] = excelize.Cell{StyleID: hoursStyle, Value: hours}
		for _, i := range []int{1, 3, 4, 5, 6, 7, 8, 9} {
			// A string, never a formula: Cell.Formula is left empty.
			cells[i] = excelize.Cell{Value: rec[i]}
		}
		if sheetRow == maxSheetRows {
			if err := newSheet(); err != nil {
				return n, fmt.Errorf("xlsx: %w", err)
			}
		}
		sheetRow++
		if err := sw.SetRow(rowStart(sheetRow), row); err != nil {
			return n, fmt.Errorf("xlsx: activity %d: %w", n, err)
		}
	}
	if err := sw.Flush(); err != nil {
		return n, fmt.Errorf("xlsx: %w", err)
	}
	// File.WriteTo would build the whole zip in memory first (tens of
	// megabytes for a large log): the zip writer excelize is given goes
	// straight to dst instead, leaving WriteTo's own buffer empty. That
	// buffer is where excelize would mark parts past 4 GiB as ZIP64 for
	// Excel's sake; a report's sheet is a tenth of that at a million
	// rows. Fastest deflate, klauspost/compress's level 1 (about twice
	// the standard library's BestSpeed, a few percent larger): the
	// sheet's XML is much of the time spent otherwise, and compresses
	// well at any level.
	var zw *zip.Writer
	f.SetZipWriter(func(io.Writer) excelize.ZipWriter {
		zw = zip.NewWriter(dst)
		zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
			return flate.NewWriter(out, flate.BestSpeed)
		})
		return zw
	})
	if _, err := f.WriteTo(io.Discard); err != nil {
		return n, fmt.Errorf("xlsx: write: %w", err)
	}
	if zw == nil {
		return n, errors.New("xlsx: excelize wrote no zip")
	}
	return n, nil
}

// rowStart is the name of column A's cell of row r ("A2").
func rowStart(r int) string { return "A" + strconv.Itoa(r) }

func ptr[T any](v T) *T { return &v }
