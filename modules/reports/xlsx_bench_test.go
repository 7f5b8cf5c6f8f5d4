package reports_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/reports"
)

// benchReport is a log of n activities shaped like the demo fill's (a
// few a day, titles and descriptions of a sentence or three, some notes
// and links, a formula-looking note now and then), as WriteCSV writes it.
func benchReport(b *testing.B, n int) []byte {
	b.Helper()
	notes := []string{"", "", "", "", "", "", "Follow up with mentor next week.", "-- follow up with mentor",
		"+ add to portfolio", "@mentor please review", "=B2*0.2 is my OTJ share this month"}
	types := []string{"Self-study", "Project work", "Workshop", "Mentoring", "Course", "Shadowing"}
	qualities := []string{"Good", "Strong", "Basic"}
	tags := []string{"systems", "data", "python", "stakeholders", "agile", "ethics"}
	ksbs := []string{"K1", "K2", "K5", "S1", "S3", "S7", "B2"}
	links := []string{"https://en.wikipedia.org/wiki/Systems_thinking", "https://scikit-learn.org/stable/user_guide.html"}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(xs []string, k int) []string {
		out := make([]string, k)
		for i := range out {
			out[i] = xs[rng.IntN(len(xs))]
		}
		return out
	}
	src := make(rows, n)
	day := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
	for i := range src {
		desc := activity.DemoDescription(rng)
		src[i] = activity.ReportRow{Date: day.AddDate(0, 0, -(n-i)/5), Hours: float64(2+rng.IntN(31)) / 4,
			Title:     fmt.Sprintf("%s: %s, part %d", types[rng.IntN(len(types))], tags[rng.IntN(len(tags))], i%7+1),
			TypeLabel: types[rng.IntN(len(types))], QualityLabel: qualities[rng.IntN(len(qualities))],
			Tags: pick(tags, rng.IntN(3)), KSBs: pick(ksbs, 1+rng.IntN(3)), Links: pick(links, rng.IntN(2)),
			Description: desc, Notes: notes[rng.IntN(len(notes))]}
	}
	var buf bytes.Buffer
	if _, err := reports.WriteCSV(context.Background(), &buf, src, 1); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkCSVToXLSX converts a 100,000-activity report to a workbook,
// written to nowhere: the conversion alone, to profile. The figure that
// counts, against the CSV report's, is app bench report's, which reads
// the stored CSV from the object store as the download does.
func BenchmarkCSVToXLSX(b *testing.B) {
	const n = 100_000
	data := benchReport(b, n)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		got, err := reports.CSVToXLSX(b.Context(), bytes.NewReader(data), io.Discard)
		if err != nil || got != n {
			b.Fatalf("CSVToXLSX = %d, %v; want %d", got, err, n)
		}
	}
}
