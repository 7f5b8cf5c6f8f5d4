package analytics

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

//go:embed render.html
var pageHTML string

// page is parsed once; its functions format numbers the same everywhere.
var page = template.Must(template.New("analytics").Funcs(template.FuncMap{
	"hours": formatHours,
	"num":   func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
}).Parse(pageHTML))

// maxResultBytes bounds the JSON RenderHTML reads: a result holds a few
// hundred numbers, so anything far larger is not one.
const maxResultBytes = 4 << 20

// RenderHTML writes a stored analytics result (a Result as JSON) as an
// HTML fragment: SVG charts drawn on the server, each beside a table of
// the same numbers. It has the signature of web's ResultView.Render and
// holds no script and no style attribute: the charts' colours are SVG
// presentation attributes and classes of the app's stylesheet.
func RenderHTML(ctx context.Context, w io.Writer, t tasktype.Task, result io.Reader) error {
	return render(ctx, w, t, result, nil)
}

// LogChanged says when a user's activity log last changed
// (activity.LastChange, read from the log's event stream); zero when it
// never has, as far as it knows.
type LogChanged func(ctx context.Context, userID int64) (time.Time, error)

// RenderWithChanges is RenderHTML that also says when the log has moved
// past the result: a change to it after the figures were computed. When
// changed cannot tell, the page shows the figures without the note.
func RenderWithChanges(changed LogChanged) func(ctx context.Context, w io.Writer, t tasktype.Task, result io.Reader) error {
	return func(ctx context.Context, w io.Writer, t tasktype.Task, result io.Reader) error {
		return render(ctx, w, t, result, changed)
	}
}

func render(ctx context.Context, w io.Writer, t tasktype.Task, result io.Reader, changed LogChanged) error {
	var r Result
	dec := json.NewDecoder(io.LimitReader(result, maxResultBytes))
	if err := dec.Decode(&r); err != nil {
		return fmt.Errorf("analytics result of task %s: %w", t.ID, err)
	}
	if r.Version != Version {
		return fmt.Errorf("analytics result of task %s: version %d, this build reads %d", t.ID, r.Version, Version)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	v := newView(r)
	if changed != nil {
		// Not knowing is no reason to withhold the figures: the note is
		// left out, and the stream's trouble shows on /healthz.
		if at, err := changed(ctx, t.UserID); err == nil && at.After(r.ComputedAt) {
			v.Stale = true
		}
	}
	return page.Execute(w, v)
}

// Chart geometry, in viewBox units. The SVGs scale to their container's
// width (width="100%"), so a phone shows the same chart smaller.
const (
	// 400 units across, so that 13-unit labels are about 12 px on a
	// 390 px phone and still small beside the bars on a desktop.
	chartWidth = 400
	// The weekly chart's plot area: its left edge is worked out from the
	// widest axis label.
	weekTop, weekHeight = 12.0, 120.0
	// Horizontal bar charts: a label column, then the bars, then each
	// bar's value. The label column takes what its widest label needs, up
	// to labelColumnMax; a longer label is cut short with "…" (the full
	// one is in the bar's tooltip and the table).
	rowHeight, labelColumnMax = 22.0, 170.0
	// edge is the gap kept between a label and the chart's edge, and gap
	// the one between a label and what it labels.
	edge, gap = 3.0, 6.0
)

// view is the result with each chart's geometry worked out.
type view struct {
	Result
	// Computed is ComputedAt in the zone the weeks were cut in.
	Computed time.Time
	// Stale says the log has changed since the figures were computed.
	Stale   bool
	Width   int
	Week    weekChart
	Types   barChart
	KSBBars barChart
	Seminar seminarChart
}

type weekChart struct {
	Bars         []weekBar
	Max          float64
	MaxLabel     string // Max as the axis label
	Width        int
	Height       int
	Left, Bottom float64
	Right        float64
	Top          float64
	Mid          float64 // the y of Max/2
}

type weekBar struct {
	Week
	X, Y, W, H float64
	// Label is set on every 13th bar: an axis label below it.
	Label string
	LX    float64
}

type barChart struct {
	Rows   []bar
	Height float64
	Left   float64
}

type bar struct {
	Label string
	// Short is Label as the chart shows it: cut to the label column.
	Short      string
	Title      string
	Value      string // the label after the bar
	Hours      float64
	Activities int
	Y, TY, W   float64
	ValueX     float64
	Assured    bool
}

type seminarChart struct {
	SeminarW, OtherW, OtherX float64
	Total                    float64
	LabelX                   float64 // where the other hours' label ends
}

func newView(r Result) view {
	v := view{Result: r, Computed: r.ComputedAt, Width: chartWidth}
	if loc, err := time.LoadLocation(r.Timezone); err == nil {
		v.Computed = r.ComputedAt.In(loc)
	}
	// Weekly hours.
	max := 0.0
	for _, w := range r.Weeks {
		max = fmaxf(max, w.Hours)
	}
	if max == 0 {
		max = 1
	}
	maxLabel := formatHours(max) + " h"
	// The axis labels end gap/2 left of the plot (the template's dx="-3").
	weekLeft := edge + fmaxf(textWidth(maxLabel), textWidth("0")) + gap/2
	plotW := chartWidth - weekLeft - edge
	step := plotW / float64(max1(len(r.Weeks)))
	wc := weekChart{Max: max, MaxLabel: maxLabel, Width: chartWidth, Height: int(weekTop + weekHeight + 22),
		Left: weekLeft, Top: weekTop, Bottom: weekTop + weekHeight, Right: weekLeft + plotW, Mid: weekTop + weekHeight/2}
	for i, w := range r.Weeks {
		h := w.Hours / max * weekHeight
		b := weekBar{Week: w, X: weekLeft + float64(i)*step + step*0.1, W: step * 0.8, H: h, Y: weekTop + weekHeight - h}
		if i%13 == 0 {
			// Under its bar, or as far right as the chart lets it be.
			b.Label, b.LX = w.Week, min(b.X, chartWidth-edge-textWidth(w.Week))
		}
		wc.Bars = append(wc.Bars, b)
	}
	v.Week = wc

	// Hours by type.
	v.Types = hBars(len(r.Types), func(i int) bar {
		t := r.Types[i]
		return bar{Label: t.Label, Hours: t.Hours, Activities: t.Activities, Value: formatHours(t.Hours) + " h"}
	})
	// KSB coverage.
	v.KSBBars = hBars(len(r.KSBs), func(i int) bar {
		k := r.KSBs[i]
		value := "no evidence"
		if k.Activities > 0 {
			value = formatHours(k.Hours) + " h"
		}
		return bar{Label: k.Code, Title: k.Title, Hours: k.Hours, Activities: k.Activities, Assured: k.Assured, Value: value}
	})
	// Seminar against other hours: one bar split in two.
	total := r.Seminar.SeminarHours + r.Seminar.OtherHours
	sc := seminarChart{Total: total, LabelX: chartWidth - 8}
	if total > 0 {
		span := float64(chartWidth - 16)
		sc.SeminarW = r.Seminar.SeminarHours / total * span
		sc.OtherW = span - sc.SeminarW
		sc.OtherX = 8 + sc.SeminarW
	}
	v.Seminar = sc
	return v
}

// hBars lays out n horizontal bars, scaled to the largest's hours: the
// label column as wide as its widest label (at most labelColumnMax),
// and the bars' span what is left once the widest value fits after the
// longest bar.
func hBars(n int, row func(int) bar) barChart {
	max, labelW, valueW := 0.0, 0.0, 0.0
	for i := range n {
		b := row(i)
		max = fmaxf(max, b.Hours)
		labelW = fmaxf(labelW, textWidth(b.Label))
		valueW = fmaxf(valueW, textWidth(b.Value))
	}
	if max == 0 {
		max = 1
	}
	labelW = min(labelW, labelColumnMax)
	left := edge + labelW + gap // the template's dx="-6"
	span := fmaxf(chartWidth-left-gap-valueW-edge, 0)
	c := barChart{Height: float64(n)*rowHeight + 8, Left: left}
	for i := range n {
		b := row(i)
		b.Short = fitText(b.Label, labelW)
		b.Y = 4 + float64(i)*rowHeight
		b.TY = b.Y + rowHeight*0.65
		b.W = b.Hours / max * span
		b.ValueX = left + b.W + gap
		c.Rows = append(c.Rows, b)
	}
	return c
}

func fmaxf(a, b float64) float64 {
	if b > a {
		return b
	}
	return a
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

// formatHours writes hours with at most two decimals and no trailing zeros.
func formatHours(h float64) string {
	s := strconv.FormatFloat(h, 'f', 2, 64)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
