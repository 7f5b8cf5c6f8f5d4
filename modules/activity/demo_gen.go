package activity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// demoGen generates the activities. Everything it binds comes from small
// pools boxed once into interface values, so a million rows cost almost no
// allocations beyond the ids.
type demoGen struct {
	opt    DemoOptions
	rng    *rand.Rand
	userID any
	lastID int64

	weeks      [][7]any // "YYYY-MM-DD" of each day of each week logged in, oldest first
	lastDay    int      // weekday index of Now's date in the last week (0 Monday)
	quarters   [2]int   // an activity's hours in quarters: from [0], and [1] ways
	ksbOrder   []int    // the standard's KSBs in the order the apprentice evidences them
	typeValues []any    // ActivityTypes' values
	typeIdx    []int    // indexes into ActivityTypes, each as often as its weight
	qualities  []any    // EvidenceQualities' values
	qualityIdx []int    // indexes into EvidenceQualities, by weight
	hours      []any    // 0.5, 0.75, ... 8
	titles     [][]any  // per ActivityTypes index
	oddTitles  []any
	oddDescs   []any
	descs      []any
	notes      []any
	tagIDs     []any
	ksbCodes   []any
	linkURLs   []any
	linkTitles []any
}

// demoTypeWeights says how common each activity type is, in
// ActivityTypes order: self-study and project work dominate a real log.
var demoTypeWeights = []int{20, 8, 10, 10, 6, 18, 10, 4, 10, 4}

// demoQualityWeights is the same for EvidenceQualities.
var demoQualityWeights = []int{30, 45, 25}

// demoDescPool is how many descriptions are pre-built to draw from.
const demoDescPool = 4096

// boxAll returns xs as interface values, boxed once here rather than at
// every bind.
func boxAll[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

// newDemoGen prepares the pools for opt, the user's tags and its
// standard's KSBs; lastID is the highest activity id in use.
func newDemoGen(opt DemoOptions, userID, lastID int64, tagIDs []int64, ksbCodes []string) *demoGen {
	g := &demoGen{
		opt:    opt,
		rng:    rand.New(rand.NewPCG(uint64(opt.Seed), 0x07a1_7e1f)),
		userID: userID,
		lastID: lastID,
	}
	for i, t := range ActivityTypes {
		g.typeValues = append(g.typeValues, t.Value)
		for range demoTypeWeights[i] {
			g.typeIdx = append(g.typeIdx, i)
		}
	}
	for i, q := range EvidenceQualities {
		g.qualities = append(g.qualities, q.Value)
		for range demoQualityWeights[i] {
			g.qualityIdx = append(g.qualityIdx, i)
		}
	}
	for q := 2; q <= 32; q++ { // quarter hours
		g.hours = append(g.hours, float64(q)/4)
	}
	topics, ok := demoTopics[opt.Spec]
	if !ok {
		topics = demoTopics[demoDefaultSpec]
	}
	g.titles = make([][]any, len(ActivityTypes))
	for i, t := range ActivityTypes {
		for _, tmpl := range demoTitles[t.Value] {
			for _, topic := range topics {
				g.titles[i] = append(g.titles[i], strings.Replace(tmpl, "{t}", topic, 1))
			}
		}
	}
	g.oddTitles, g.oddDescs, g.notes = boxAll(demoOddTitles), boxAll(demoOddDescriptions), boxAll(demoNotes)
	g.tagIDs, g.ksbCodes = boxAll(tagIDs), boxAll(ksbCodes)
	// Descriptions: one to three sentences, joined by a space or (one
	// time in five) a line break.
	for range demoDescPool {
		g.descs = append(g.descs, DemoDescription(g.rng))
	}
	for _, l := range demoLinks {
		g.linkURLs = append(g.linkURLs, l.URL)
		g.linkTitles = append(g.linkTitles, l.Title)
	}
	g.planWeeks()
	// KSBs: a shuffled order, of which the apprentice evidences the first
	// few at the start and more as the log goes on (see next); the last
	// demoUnevidenced never.
	g.ksbOrder = g.rng.Perm(len(ksbCodes))
	return g
}

// planWeeks picks the weeks the log is in: back from the week of Now's
// date, as many as opt.Activities need at demoPerWeek (up to
// demoMaxWeeks), leaving out holidays and demoGapWeeks percent of the
// rest; and the hours an activity takes, so that a week's come to about
// the weekly target.
func (g *demoGen) planWeeks() {
	y, m, d := g.opt.Now.Date()
	end := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	g.lastDay = (int(end.Weekday()) + 6) % 7
	monday := end.AddDate(0, 0, -g.lastDay)
	n := g.opt.Activities
	want := min(demoMaxWeeks, max(1, (n+demoPerWeek-1)/demoPerWeek))
	var weeks []time.Time // newest first
	for w := monday; len(weeks) < want && monday.Sub(w) < demoMaxWeeks*7*24*time.Hour; w = w.AddDate(0, 0, -7) {
		// The newest week is always in, so the log reaches Now.
		if len(weeks) > 0 && (demoHoliday(w) || g.rng.IntN(100) < demoGapWeeks) {
			continue
		}
		weeks = append(weeks, w)
	}
	slices.Reverse(weeks)
	g.weeks = make([][7]any, len(weeks))
	for i, w := range weeks {
		for day := range 7 {
			g.weeks[i][day] = w.AddDate(0, 0, day).Format(dateLayout)
		}
	}
	// Hours: an activity's mean is the weekly target over the activities
	// a week holds, an hour and a half at demoPerWeek, between half an
	// hour and three; drawn evenly from half to one and a half times it,
	// in quarter hours. Courses, workshops and conferences take twice
	// as long (see next): a fifth of activities, so the base is a sixth
	// less.
	perWeek := float64(max(n, 1)) / float64(len(g.weeks))
	mean := min(3, max(0.5, demoWeeklyHours/perWeek)) / 1.2
	lo := max(2, int(mean*2+0.5)) // quarters: mean×4×0.5
	hi := max(lo, int(mean*6+0.5))
	g.quarters = [2]int{lo, hi - lo + 1}
}

// demoHoliday reports whether the week starting on Monday w is a holiday
// week: the two around Christmas, the one after Easter's usual place
// (early April) and two in mid-August.
func demoHoliday(w time.Time) bool {
	_, week := w.AddDate(0, 0, 3).ISOWeek() // the week's Thursday names it
	switch week {
	case 52, 53, 1, 15, 33, 34:
		return true
	}
	return false
}

// insert writes opt.Activities activities with their tags, KSBs and links.
//
// Activities go in date order (ids rise with dates, give or take a few
// days, as in a real log), which keeps every B-tree insert near the end
// of its index, where the pages are already in the cache.
func (g *demoGen) insert(ctx context.Context, w demoWriter) error {
	acts := w.table(nil, "activity", []string{"id", "user_id", "title", "description",
		"activity_date", "duration_hours", "activity_type", "evidence_quality", "notes"}, 400)
	tags := w.table(acts, "activity_tags", []string{"activity_id", "tag_id"}, 4000)
	ksbs := w.table(acts, "activity_ksbs", []string{"activity_id", "ksb_code"}, 4000)
	links := w.table(acts, "resource_link", []string{"activity_id", "url", "title"}, 2000)

	n := g.opt.Activities
	lastReport := time.Now()
	var a demoActivity
	for i := range n {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			if now := time.Now(); g.opt.Progress != nil && now.Sub(lastReport) >= 250*time.Millisecond {
				lastReport = now
				fmt.Fprintf(g.opt.Progress, "\rdemo: %d/%d activities (%d%%)", i, n, i*100/n)
			}
		}
		g.next(i, &a)
		if err := acts.row(ctx, a.id, g.userID, a.title, a.desc, a.date, a.hours, a.typ, a.quality, a.notes); err != nil {
			return err
		}
		for _, t := range a.tags {
			if err := tags.row(ctx, a.id, g.tagIDs[t]); err != nil {
				return err
			}
		}
		for _, k := range a.ksbs {
			if err := ksbs.row(ctx, a.id, g.ksbCodes[k]); err != nil {
				return err
			}
		}
		for _, l := range a.links {
			if err := links.row(ctx, a.id, g.linkURLs[l], g.linkTitles[l]); err != nil {
				return err
			}
		}
	}
	return errors.Join(acts.flush(ctx), tags.flush(ctx), ksbs.flush(ctx), links.flush(ctx))
}

// demoWriter makes the row sinks the generator writes each table
// through: multi-row INSERTs on SQLite, COPY on PostgreSQL.
type demoWriter interface {
	// table returns the sink of one table. Rows given to a sink whose
	// parent is not nil refer to the parent's rows; a sink that may
	// write before its parent has (see copyTable) flushes the parent first.
	table(parent rowSink, name string, cols []string, perBatch int) rowSink
}

// rowSink takes one table's rows in batches.
type rowSink interface {
	// row adds one row (len(vals) == number of columns), sending a full
	// batch.
	row(ctx context.Context, vals ...any) error
	// flush sends the rows not yet sent.
	flush(ctx context.Context) error
}

// bulkWriter makes bulkInserts on a SQLite transaction. Foreign keys are
// off on Fill's SQLite connection, so batches need no order.
type bulkWriter struct{ tx *sql.Tx }

func (w bulkWriter) table(_ rowSink, name string, cols []string, perBatch int) rowSink {
	return newBulkInsert(w.tx, name, cols, perBatch)
}

// demoActivity is one generated activity: values ready to bind, and
// indexes into the generator's tag, KSB and link pools.
type demoActivity struct {
	id                                            any
	title, desc, date, hours, typ, quality, notes any
	tags, ksbs, links                             []int
	buf                                           [3][4]int
}

// next generates activity i of opt.Activities into a, drawing from the
// random source in a fixed order so a seed always gives the same data.
//
// The first activities cycle through every type, quality, odd title, odd
// description and note, so that even a small data set has all of them;
// after that they are drawn at random.
func (g *demoGen) next(i int, a *demoActivity) {
	a.id = g.lastID + 1 + int64(i)
	n := g.opt.Activities

	// Date: the weeks in order, spread evenly over them; in a week, a
	// weekday, and now and then a weekend. Dates and ids mostly rise
	// together, but not strictly. Nothing after Now's date.
	week := int(int64(i) * int64(len(g.weeks)) / int64(n))
	day := g.rng.IntN(5)
	if g.rng.IntN(10) == 0 {
		day = 5 + g.rng.IntN(2)
	}
	if week == len(g.weeks)-1 {
		day = min(day, g.lastDay)
	}
	a.date = g.weeks[week][day]
	// progress is how far through the log the activity is, 0 to 1.
	progress := float64(i) / float64(n)

	var typ int
	switch {
	case i < len(ActivityTypes):
		typ = i
	default:
		typ = g.typeIdx[g.rng.IntN(len(g.typeIdx))]
	}
	a.typ = g.typeValues[typ]

	// Quality: drafts give way to good evidence as the apprentice
	// learns: a draft is three times as likely at the start as at the end.
	switch {
	case i < len(EvidenceQualities)*2:
		a.quality = g.qualities[i%len(EvidenceQualities)]
	case g.rng.Float64() < 0.45*(1-progress):
		a.quality = g.qualities[0] // draft
	default:
		a.quality = g.qualities[g.qualityIdx[g.rng.IntN(len(g.qualityIdx))]]
	}

	switch r := g.rng.IntN(100); {
	case i < len(g.oddTitles):
		a.title = g.oddTitles[i]
	case r < 3:
		a.title = g.oddTitles[g.rng.IntN(len(g.oddTitles))]
	default:
		a.title = g.titles[typ][g.rng.IntN(len(g.titles[typ]))]
	}

	switch r := g.rng.IntN(100); {
	case i < len(g.oddDescs):
		a.desc = g.oddDescs[i]
	case r < 2:
		a.desc = g.oddDescs[g.rng.IntN(len(g.oddDescs))]
	default:
		a.desc = g.descs[g.rng.IntN(len(g.descs))]
	}

	if i < len(g.notes) {
		a.notes = g.notes[i]
	} else {
		a.notes = g.notes[g.rng.IntN(len(g.notes))]
	}

	// Hours: quarter hours around the mean planWeeks chose; courses and
	// events run twice as long. g.hours starts at 0.5 (2 quarters).
	q := g.quarters[0] + g.rng.IntN(g.quarters[1])
	switch ActivityTypes[typ].Value {
	case "training_course", "conference", "workshop":
		q *= 2
	}
	a.hours = g.hours[min(q, 32)-2]

	a.tags = g.pick(a.buf[0][:g.rng.IntN(4)], len(g.tagIDs)) // 0–3
	// KSBs: 0–4 of those the apprentice has reached: a fifth of the
	// standard's at the start, all but demoUnevidenced at the end.
	reach := len(g.ksbOrder) - min(demoUnevidenced, len(g.ksbOrder)/4)
	reach = max(1, int(float64(reach)*(0.2+0.8*progress)+0.5))
	a.ksbs = g.pick(a.buf[1][:g.rng.IntN(5)], reach)
	for j, k := range a.ksbs {
		a.ksbs[j] = g.ksbOrder[k]
	}
	links := 0 // 0–2, mostly 0 or 1
	switch r := g.rng.IntN(10); {
	case r >= 8:
		links = 2
	case r >= 4:
		links = 1
	}
	a.links = g.pick(a.buf[2][:links], len(g.linkURLs))
}

// pick fills dst with distinct random numbers below n (fewer if n is
// smaller than len(dst)) and returns it.
func (g *demoGen) pick(dst []int, n int) []int {
	dst = dst[:min(len(dst), n)]
	for j := range dst {
		v := g.rng.IntN(n)
		for slices.Contains(dst[:j], v) {
			v = g.rng.IntN(n)
		}
		dst[j] = v
	}
	return dst
}

// DemoDescription is a description as the demo apprentice writes one:
// one to three sentences, joined by a space or (one time in five) a line
// break. Benchmarks of what reads a log use it for text like the demo's.
func DemoDescription(rng *rand.Rand) string {
	var sb strings.Builder
	for j := range 1 + rng.IntN(3) {
		if j > 0 {
			if rng.IntN(5) == 0 {
				sb.WriteByte('\n')
			} else {
				sb.WriteByte(' ')
			}
		}
		sb.WriteString(demoSentences[rng.IntN(len(demoSentences))])
	}
	return sb.String()
}
