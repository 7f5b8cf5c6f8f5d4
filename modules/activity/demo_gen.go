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

	days       []any   // "YYYY-MM-DD" of each day in the window, oldest first
	typeValues []any   // ActivityTypes' values
	typeIdx    []int   // indexes into ActivityTypes, each as often as its weight
	qualities  []any   // EvidenceQualities' values
	qualityIdx []int   // indexes into EvidenceQualities, by weight
	hours      []any   // 0.5, 0.75, ... 8
	titles     [][]any // per ActivityTypes index
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
	// The window: the 18 months up to and including Now's date.
	y, m, d := opt.Now.Date()
	end := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	for day := end.AddDate(0, -demoMonths, 0); !day.After(end); day = day.AddDate(0, 0, 1) {
		g.days = append(g.days, day.Format(dateLayout))
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
		var sb strings.Builder
		for j := range 1 + g.rng.IntN(3) {
			if j > 0 {
				if g.rng.IntN(5) == 0 {
					sb.WriteByte('\n')
				} else {
					sb.WriteByte(' ')
				}
			}
			sb.WriteString(demoSentences[g.rng.IntN(len(demoSentences))])
		}
		g.descs = append(g.descs, sb.String())
	}
	for _, l := range demoLinks {
		g.linkURLs = append(g.linkURLs, l.URL)
		g.linkTitles = append(g.linkTitles, l.Title)
	}
	return g
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

	// Date: spread evenly over the window in order, then moved by up to
	// three days either way, so that dates and ids mostly rise together
	// but not strictly.
	day := int(int64(i)*int64(len(g.days))/int64(n)) + g.rng.IntN(7) - 3
	a.date = g.days[max(0, min(len(g.days)-1, day))]

	var typ int
	switch {
	case i < len(ActivityTypes):
		typ = i
	default:
		typ = g.typeIdx[g.rng.IntN(len(g.typeIdx))]
	}
	a.typ = g.typeValues[typ]

	switch {
	case i < len(EvidenceQualities)*2:
		a.quality = g.qualities[i%len(EvidenceQualities)]
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

	// Hours: quarter hours from 0.5 to 8. Courses and events run longer;
	// everything else is mostly an hour or two (the smaller of two draws).
	h := g.rng.IntN(len(g.hours))
	switch ActivityTypes[typ].Value {
	case "training_course", "conference", "workshop":
	default:
		h = min(h, g.rng.IntN(len(g.hours)))
	}
	a.hours = g.hours[h]

	a.tags = g.pick(a.buf[0][:g.rng.IntN(4)], len(g.tagIDs))   // 0–3
	a.ksbs = g.pick(a.buf[1][:g.rng.IntN(5)], len(g.ksbCodes)) // 0–4
	links := 0                                                 // 0–2, mostly 0 or 1
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
