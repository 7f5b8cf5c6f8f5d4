package analytics

import (
	"encoding/xml"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// svgText is one <text> of a rendered chart, as the browser places it.
type svgText struct {
	X, DX  float64
	Anchor string
	Text   string
}

// chartTexts returns each chart's viewBox width and its text elements.
func chartTexts(t *testing.T, html string) (widths []float64, texts [][]svgText) {
	t.Helper()
	for _, svg := range regexp.MustCompile(`(?s)<svg .*?</svg>`).FindAllString(html, -1) {
		dec := xml.NewDecoder(strings.NewReader(svg))
		dec.Strict = false
		var cur []svgText
		for {
			tok, err := dec.Token()
			if err != nil {
				break
			}
			se, ok := tok.(xml.StartElement)
			if !ok {
				continue
			}
			attr := func(name string) string {
				for _, a := range se.Attr {
					if a.Name.Local == name {
						return a.Value
					}
				}
				return ""
			}
			switch se.Name.Local {
			case "svg":
				var x, y, w, h float64
				if _, err := fmt.Sscanf(attr("viewBox"), "%g %g %g %g", &x, &y, &w, &h); err != nil {
					t.Fatalf("viewBox %q: %v", attr("viewBox"), err)
				}
				widths = append(widths, w)
			case "text":
				var s struct {
					Text string `xml:",chardata"`
				}
				if err := dec.DecodeElement(&s, &se); err != nil {
					t.Fatal(err)
				}
				x, _ := strconv.ParseFloat(attr("x"), 64)
				dx, _ := strconv.ParseFloat(attr("dx"), 64)
				cur = append(cur, svgText{X: x, DX: dx, Anchor: attr("text-anchor"), Text: s.Text})
			}
		}
		texts = append(texts, cur)
	}
	return widths, texts
}

// TestChartLabelsInsideCharts renders logs with zero, small and huge
// hours and checks that each chart label, at the width the label font
// takes at most, starts and ends inside its chart's viewBox: the issue's
// "2.5 h" was "112.5 h" cut at the left edge, and "1079.25 h" at the right.
// TestBrowserChartLabelsInside checks the same in a real browser.
func TestChartLabelsInsideCharts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		hours float64 // a week's hours; the types' and KSBs' are larger
	}{
		{"zero", 0}, {"small", 0.25}, {"usual", 7.5}, {"huge", 112.5}, {"enormous", 99999.75},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Result{Version: Version, ComputedAt: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC), Timezone: "Europe/London", Standard: "ST0787"}
			for i := range Weeks {
				r.Weeks = append(r.Weeks, Week{Week: fmt.Sprintf("2026-W%02d", i+1), Start: "2026-01-01", Hours: tc.hours * float64(i%5) / 4})
			}
			for _, l := range []string{"Conference or event", "Training course", "Workshop", "Self-study", "Other"} {
				r.Types = append(r.Types, TypeHours{Type: l, Label: l, Activities: 3, Hours: tc.hours*9.59 + 0.25*float64(len(l))})
			}
			r.KSBs = []KSB{{Code: "K1", Activities: 2, Hours: tc.hours * 9.59, Assured: true}, {Code: "B10", Activities: 0}}
			r.Seminar = Seminar{SeminarHours: tc.hours * 4.3, OtherHours: tc.hours * 19.7}
			r.TotalHours = r.Seminar.SeminarHours + r.Seminar.OtherHours
			var b strings.Builder
			if err := page.Execute(&b, newView(r)); err != nil {
				t.Fatal(err)
			}
			widths, texts := chartTexts(t, b.String())
			if len(widths) < 3 {
				t.Fatalf("%d charts", len(widths))
			}
			for i, w := range widths {
				for _, tx := range texts[i] {
					width := textWidth(tx.Text)
					left := tx.X + tx.DX
					switch tx.Anchor {
					case "end":
						left -= width
					case "middle":
						left -= width / 2
					}
					if left < 0 || left+width > w {
						t.Errorf("chart %d: label %q spans %.1f–%.1f of 0–%.0f", i, tx.Text, left, left+width, w)
					}
				}
			}
		})
	}
}

// TestTextWidthIsAnUpperBound holds textWidth to DejaVu Sans's advance
// widths (the widest of the fonts a chart falls back to on Debian) for the
// characters the labels use.
func TestTextWidthIsAnUpperBound(t *testing.T) {
	for _, tc := range []struct {
		s     string
		least float64 // DejaVu Sans at 13 px
	}{
		{"112.5 h", 48.0}, {"1079.25 h", 62.0}, {"2026-W49", 65.0}, {"Conference or event", 125.0}, {"WWW", 38.5},
	} {
		if got := textWidth(tc.s); got < tc.least {
			t.Errorf("textWidth(%q) = %.1f, less than the %.1f it takes", tc.s, got, tc.least)
		}
	}
}
