package reports

import (
	"archive/zip"
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"time"

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
// (Neutralize) included, so that the two files never disagree; an empty
// field is an empty cell. Text in a workbook is never a formula; only a
// cell given a formula is, and none is. It returns the number of
// activities.
//
// It streams the rows through excelize's StreamWriter, which keeps a few
// megabytes of them in memory and the rest in a temporary file until
// the workbook is written, at the end: nothing reaches dst before every
// row has been read. A goroutine of its own reads and parses the CSV
// meanwhile, a few hundred rows ahead at most; it has ended when
// CSVToXLSX returns.
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

	// The CSV is read and parsed in a goroutine of its own, a batch of
	// rows at a time, while this one writes the rows before: the two
	// take a core each. What it has read and this one not yet written is
	// a few batches, however long the log.
	rctx, cancel := context.WithCancel(ctx)
	rd := &xlsxReader{cr: cr, full: make(chan *xlsxBatch, xlsxBatches-1), free: make(chan *xlsxBatch, xlsxBatches)}
	for range xlsxBatches {
		rd.free <- &xlsxBatch{rows: make([]xlsxRow, 0, xlsxBatchRows), text: make([]string, 0, xlsxBatchRows*len(Header))}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		rd.run(rctx)
	}()
	defer func() {
		cancel()
		<-done
	}()

	cells := make([]excelize.Cell, len(Header))
	row := make([]any, len(Header))
	n := 0
	for b := range rd.full {
		for i := range b.rows {
			r := &b.rows[i]
			n++
			cells[0] = excelize.Cell{StyleID: dateStyle, Value: r.day}
			cells[2] = excelize.Cell{StyleID: hoursStyle, Value: r.hours}
			for j, c := range b.text[i*len(Header) : (i+1)*len(Header)] {
				if j == 0 || j == 2 {
					row[j] = &cells[j]
					continue
				}
				// An empty cell is no cell (as the CSV's empty field
				// reads back); any other is a string, never a formula:
				// Cell.Formula is left empty.
				if c == "" {
					row[j] = nil
					continue
				}
				cells[j] = excelize.Cell{Value: c}
				row[j] = &cells[j]
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
		b.rows, b.text = b.rows[:0], b.text[:0]
		rd.free <- b // never blocks: free holds every batch
	}
	// full is closed: the reader is done, and err is its outcome.
	if rd.err != nil {
		return rd.n, rd.err
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
	// the standard library's BestSpeed, a few percent larger), a block
	// on each core at once: the sheet's XML is much of the time spent
	// otherwise, and compresses well at any level.
	var zw *zip.Writer
	var deflaters []*parallelDeflate
	defer func() {
		for _, d := range deflaters {
			d.abort() // ends its goroutines, if excelize failed before closing it
		}
	}()
	f.SetZipWriter(func(io.Writer) excelize.ZipWriter {
		zw = zip.NewWriter(dst)
		zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
			d := newParallelDeflate(out, runtime.GOMAXPROCS(0))
			deflaters = append(deflaters, d)
			return d, nil
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

// xlsxBatchRows is how many rows CSVToXLSX's reader hands on at once,
// and xlsxBatches how many batches there are: the bound on what is read
// and not yet written (some hundreds of kilobytes).
const (
	xlsxBatchRows = 256
	xlsxBatches   = 4
)

// xlsxRow is one activity's date and hours as read from the CSV.
type xlsxRow struct {
	day   time.Time
	hours float64
}

// xlsxBatch is rows read together: row i's fields, as the CSV holds
// them, are text[i*len(Header):][:len(Header)].
type xlsxBatch struct {
	rows []xlsxRow
	text []string
}

// xlsxReader reads a CSV's rows (its header read already) into batches:
// it takes an empty batch from free, fills it and sends it on full, and
// closes full at the end, err then its outcome (nil at the end of the
// CSV).
type xlsxReader struct {
	cr   *csv.Reader
	full chan *xlsxBatch
	free chan *xlsxBatch
	n    int // activities read
	err  error
}

// run reads until the CSV ends, a row is wrong or ctx ends.
func (rd *xlsxReader) run(ctx context.Context) {
	defer close(rd.full)
	var lastDate string
	var lastDay time.Time
	var b *xlsxBatch
	for {
		if b == nil {
			// A batch at a time, the context ended is seen within a few
			// hundred rows.
			if rd.err = ctx.Err(); rd.err != nil {
				return
			}
			select {
			case b = <-rd.free:
			case <-ctx.Done():
				rd.err = ctx.Err()
				return
			}
		}
		rec, err := rd.cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			rd.err = fmt.Errorf("xlsx: read the CSV: %w", err)
			return
		}
		rd.n++
		if rec[0] != lastDate {
			d, err := time.Parse(time.DateOnly, rec[0])
			if err != nil {
				rd.err = fmt.Errorf("xlsx: activity %d: date %q: %w", rd.n, rec[0], err)
				return
			}
			lastDate, lastDay = rec[0], d
		}
		hours, err := strconv.ParseFloat(rec[2], 64)
		if err != nil {
			rd.err = fmt.Errorf("xlsx: activity %d: hours %q: %w", rd.n, rec[2], err)
			return
		}
		// The record's slice is reused by the next Read, its strings not.
		b.rows = append(b.rows, xlsxRow{day: lastDay, hours: hours})
		b.text = append(b.text, rec...)
		if len(b.rows) == cap(b.rows) {
			if !rd.send(ctx, b) {
				return
			}
			b = nil
		}
	}
	if b != nil && len(b.rows) > 0 {
		rd.send(ctx, b)
	}
}

// send hands b on, unless ctx ends first; it reports whether it did.
func (rd *xlsxReader) send(ctx context.Context, b *xlsxBatch) bool {
	select {
	case rd.full <- b:
		return true
	case <-ctx.Done():
		rd.err = ctx.Err()
		return false
	}
}

// rowStart is the name of column A's cell of row r ("A2").
func rowStart(r int) string { return "A" + strconv.Itoa(r) }

func ptr[T any](v T) *T { return &v }
