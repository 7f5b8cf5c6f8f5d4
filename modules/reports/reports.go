// Package reports holds the report jobs built from a user's activity log;
// for now the full CSV report (the seed's generate_full_report).
package reports

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/otjhelper/otj/modules/tasks"
)

// FullReport is the job type of the full CSV report.
const FullReport = "full_report"

// Row is one activity as the report shows it: labels rather than stored
// values, KSBs by their shown code.
type Row struct {
	Date         time.Time
	Title        string
	Hours        float64
	TypeLabel    string
	QualityLabel string
	Tags         []string
	KSBs         []string
	Links        []string
	Description  string
	Notes        string
}

// Source is what the report needs from the activity log.
type Source interface {
	// EachActivity calls fn for each of the user's activities, newest
	// first, without holding them all in memory. fn must not keep row.
	EachActivity(ctx context.Context, userID int64, fn func(row *Row) error) error
	// CountActivities returns how many activities the user has, for
	// the report's progress.
	CountActivities(ctx context.Context, userID int64) (int, error)
}

// progressEvery is how many rows pass between progress reports; the
// worker records at most one a second whatever the rate.
const progressEvery = 1000

// Header is the report's first line: the seed's columns, in its order.
var Header = []string{"date", "title", "hours", "type", "evidence_quality", "tags", "ksbs", "links", "description", "notes"}

// Policy is how report jobs are retried: the task defaults, with time
// for a million-row log on a slow disk.
var Policy = tasks.Policy{MaxAttempts: 3, Timeout: 30 * time.Minute}

// Register adds the report job types to reg.
func Register(reg *tasks.Registry, src Source) error {
	return reg.Register(FullReport, func(ctx context.Context, job tasks.Job, out tasks.Output) (tasks.Result, error) {
		name := "otj-full-report-" + job.EnqueuedAt.Format("2006-01-02") + ".csv"
		w, err := out.Create(name, "text/csv; charset=utf-8")
		if err != nil {
			return tasks.Result{}, err
		}
		total, err := src.CountActivities(ctx, job.UserID)
		if err != nil {
			return tasks.Result{}, fmt.Errorf("full report: %w", err)
		}
		out.Progress(0, "0 of "+plural(total, "activity", "activities"))
		n, err := WriteCSV(ctx, w, progressSource{Source: src, total: total, out: out}, job.UserID)
		if err != nil {
			return tasks.Result{}, fmt.Errorf("full report: %w", err)
		}
		return tasks.Result{Summary: plural(n, "activity", "activities")}, nil
	}, Policy)
}

// progressSource reports every progressEvery rows how many of total
// have been read.
type progressSource struct {
	Source
	total int
	out   tasks.Output
}

func (p progressSource) EachActivity(ctx context.Context, userID int64, fn func(*Row) error) error {
	n := 0
	return p.Source.EachActivity(ctx, userID, func(r *Row) error {
		if n++; n%progressEvery == 0 && p.total > 0 {
			// The log may grow while the report runs: never past 99 %
			// until the file is done.
			p.out.Progress(min(n*100/p.total, 99), groupThousands(n)+" of "+plural(p.total, "activity", "activities"))
		}
		return fn(r)
	})
}

// WriteCSV writes the user's full report to w and returns the number of
// activities. It streams: one row is in memory at a time.
//
// The CSV is RFC 4180 (fields quoted when needed, CRLF line ends), UTF-8.
// A text cell that a spreadsheet would run as a formula (first character
// =, +, -, @, tab or CR) gets a leading apostrophe, which spreadsheets
// show as text and do not evaluate (OWASP's advice on CSV injection).
func WriteCSV(ctx context.Context, w io.Writer, src Source, userID int64) (int, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := csv.NewWriter(bw)
	cw.UseCRLF = true
	if err := cw.Write(Header); err != nil {
		return 0, err
	}
	n := 0
	rec := make([]string, len(Header))
	var hours []byte
	err := src.EachActivity(ctx, userID, func(r *Row) error {
		hours = strconv.AppendFloat(hours[:0], r.Hours, 'f', 1, 64)
		rec[0] = r.Date.Format(time.DateOnly)
		rec[1] = Neutralize(r.Title)
		rec[2] = string(hours)
		rec[3] = Neutralize(r.TypeLabel)
		rec[4] = Neutralize(r.QualityLabel)
		rec[5] = Neutralize(strings.Join(r.Tags, "; "))
		rec[6] = Neutralize(strings.Join(r.KSBs, "; "))
		rec[7] = Neutralize(strings.Join(r.Links, "; "))
		rec[8] = Neutralize(r.Description)
		rec[9] = Neutralize(r.Notes)
		n++
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		return cw.Write(rec)
	})
	if err != nil {
		return n, err
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return n, err
	}
	return n, bw.Flush()
}

// Neutralize makes a cell safe to open in a spreadsheet: a value that
// starts like a formula is prefixed with an apostrophe.
func Neutralize(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
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
