package activity

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/platform/database"
)

var demoNow = time.Date(2026, 4, 10, 15, 30, 0, 0, time.UTC)

func TestFill(t *testing.T) {
	tests := []struct {
		name, spec, wantSpec string
		n                    int
		alone                bool // no other user's activities (refill empties whole tables)
	}{
		{"default standard", "", "ST0787", 2000, false},
		{"prefixed standard", "ST0763", "ST0763", 2000, false},
		{"the only user", "ST0787", "ST0787", 2000, true},
		{"few activities still cover every type", "ST0787", "ST0787", 12, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eachDB(t, func(t *testing.T, db *bun.DB) {
				bob := newUser(t, db, "bob@example.org")
				if !tt.alone {
					insert(t, db, bob, fixture{date: "2025-01-01", title: "Bob's own", typ: "other", hours: 1,
						tags: []string{"bob"}, ksbs: []string{"K1"}, links: []string{"https://bob.example/"}})
				}
				var progress strings.Builder
				opt := DemoOptions{Email: " Demo@Example.org", Activities: tt.n, Spec: tt.spec, Now: demoNow, Seed: 42, Progress: &progress}
				u, err := Fill(t.Context(), db, opt)
				if err != nil {
					t.Fatal(err)
				}
				if u.Email != "demo@example.org" || u.SelectedSpec != tt.wantSpec || u.OTJTargetHours < 200 || u.WeeklyTargetHours != 6 || u.Name == "" {
					t.Errorf("user %+v", u)
				}
				if !strings.Contains(progress.String(), "\rdemo: ") || !strings.HasSuffix(progress.String(), "\n") {
					t.Errorf("progress %q", progress.String())
				}
				checkDemoLog(t, db, u, tt.n)

				// Refill: replaced, not added to; Bob untouched.
				opt.Activities = tt.n / 2
				if _, err := Fill(t.Context(), db, opt); err != nil {
					t.Fatal(err)
				}
				checkDemoLog(t, db, u, tt.n/2)
				got := collect(t, NewStore(db), bob)
				if tt.alone && len(got) != 0 {
					t.Errorf("Bob has %d activities", len(got))
				}
				if !tt.alone && (len(got) != 1 || got[0].Title != "Bob's own" || len(got[0].Tags) != 1 || len(got[0].KSBs) != 1 || len(got[0].Links) != 1) {
					t.Errorf("Bob's log after the refill: %+v", got)
				}
			})
		})
	}
}

// checkDemoLog checks what Fill promises about the user's log.
func checkDemoLog(t *testing.T, db *bun.DB, u User, n int) {
	t.Helper()
	if got := count(t, db, `SELECT count(*) FROM activity WHERE user_id = ?`, u.ID); got != n {
		t.Errorf("%d activities, want %d", got, n)
	}
	if got := count(t, db, `SELECT count(*) FROM tag WHERE user_id = ?`, u.ID); got != len(demoTags) {
		t.Errorf("%d tags, want %d", got, len(demoTags))
	}
	// No join rows or links left pointing at deleted activities.
	for _, q := range []string{
		`SELECT count(*) FROM activity_tags WHERE activity_id NOT IN (SELECT id FROM activity) OR tag_id NOT IN (SELECT id FROM tag)`,
		`SELECT count(*) FROM activity_ksbs WHERE activity_id NOT IN (SELECT id FROM activity) OR ksb_code NOT IN (SELECT code FROM ksb)`,
		`SELECT count(*) FROM resource_link WHERE activity_id NOT IN (SELECT id FROM activity)`,
	} {
		if got := count(t, db, q); got != 0 {
			t.Errorf("%s: %d", q, got)
		}
	}
	// Fill turns SQLite's foreign keys off, so they are checked here;
	// PostgreSQL checked each row as it went in.
	if database.DialectOf(db) == database.SQLite {
		if got := count(t, db, `SELECT count(*) FROM pragma_foreign_key_check`); got != 0 {
			t.Errorf("foreign_key_check: %d violations", got)
		}
	}
	// Tags are the user's own, KSBs the user's standard's.
	if got := count(t, db, `SELECT count(*) FROM activity a JOIN activity_tags x ON x.activity_id = a.id JOIN tag g ON g.id = x.tag_id
		WHERE a.user_id = ? AND g.user_id <> a.user_id`, u.ID); got != 0 {
		t.Errorf("%d tags of another user", got)
	}
	if got := count(t, db, `SELECT count(*) FROM activity a JOIN activity_ksbs x ON x.activity_id = a.id JOIN ksb k ON k.code = x.ksb_code
		WHERE a.user_id = ? AND k.spec_code <> ?`, u.ID, u.SelectedSpec); got != 0 {
		t.Errorf("%d KSBs of another standard", got)
	}

	rows := collect(t, NewStore(db), u.ID)
	if len(rows) != n {
		t.Fatalf("%d report rows, want %d", len(rows), n)
	}
	// The log ends on Now's date and goes back at most demoMaxWeeks
	// weeks from the Monday of its week.
	last := time.Date(demoNow.Year(), demoNow.Month(), demoNow.Day(), 0, 0, 0, 0, time.UTC)
	first := last.AddDate(0, 0, -(int(last.Weekday())+6)%7-7*(demoMaxWeeks-1))
	types, qualities := map[string]bool{}, map[string]bool{}
	var text strings.Builder
	starts := map[string]bool{}
	for i, r := range rows {
		if r.Date.Before(first) || r.Date.After(last) {
			t.Errorf("row %d: date %s outside %s..%s", i, r.Date, first, last)
		}
		if i > 0 && r.Date.After(rows[i-1].Date) {
			t.Errorf("row %d: %s after the row before, %s", i, r.Date, rows[i-1].Date)
		}
		if r.Hours < 0.5 || r.Hours > 8 || r.Hours*4 != float64(int(r.Hours*4)) {
			t.Errorf("row %d: %v hours", i, r.Hours)
		}
		if len(r.Tags) > 3 || len(r.KSBs) > 4 || len(r.Links) > 2 {
			t.Errorf("row %d: %d tags, %d KSBs, %d links", i, len(r.Tags), len(r.KSBs), len(r.Links))
		}
		for _, l := range r.Links {
			if !strings.HasPrefix(l, "https://") {
				t.Errorf("row %d: link %q", i, l)
			}
		}
		for _, k := range r.KSBs {
			if !isNaturalKSBCode(k) {
				t.Errorf("row %d: KSB %q is not a natural code", i, k)
			}
		}
		types[r.TypeLabel], qualities[r.QualityLabel] = true, true
		for _, s := range []string{r.Title, r.Description, r.Notes} {
			text.WriteString(s)
			if s != "" {
				starts[s[:1]] = true
			}
		}
	}
	if n >= len(ActivityTypes) {
		for _, o := range ActivityTypes {
			if !types[o.Label] {
				t.Errorf("no %q activity", o.Label)
			}
		}
		for _, o := range EvidenceQualities {
			if !qualities[o.Label] {
				t.Errorf("no %q evidence", o.Label)
			}
		}
		all := text.String()
		for _, s := range []string{",", `"`, "\n", "é", "ü", "ñ", "ŵ", "£"} {
			if !strings.Contains(all, s) {
				t.Errorf("no %q in any title, description or notes", s)
			}
		}
		if !strings.ContainsFunc(all, func(r rune) bool { return utf8.RuneLen(r) == 4 }) {
			t.Error("no emoji in any title, description or notes")
		}
		for _, c := range []string{"=", "+", "-", "@"} {
			if !starts[c] {
				t.Errorf("no title, description or notes starting with %q", c)
			}
		}
	}
}

func TestFillDeterministic(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *bun.DB) {
		fill := func(db *bun.DB, seed int64) []ReportRow {
			// Another user first, so the ids differ between the databases
			// and only the content can match.
			insert(t, db, newUser(t, db, "other@example.org"), fixture{date: "2025-01-01", title: "x", typ: "other", hours: 1})
			u, err := Fill(t.Context(), db, DemoOptions{Email: "demo@example.org", Activities: 500, Now: demoNow, Seed: seed})
			if err != nil {
				t.Fatal(err)
			}
			return collect(t, NewStore(db), u.ID)
		}
		a, b, c := fill(db, 1), fill(freshLike(t, db), 1), fill(freshLike(t, db), 2)
		if !reflect.DeepEqual(a, b) {
			t.Error("the same seed gave different data")
		}
		if reflect.DeepEqual(a, c) {
			t.Error("different seeds gave the same data")
		}
	})
}

func TestFillErrors(t *testing.T) {
	tests := []struct {
		name    string
		opt     DemoOptions
		wantErr error
	}{
		{"unknown standard", DemoOptions{Email: "x@example.org", Activities: 10, Spec: "ST9999"}, ErrNotFound},
		{"negative count", DemoOptions{Email: "x@example.org", Activities: -1}, nil},
		{"no email", DemoOptions{Email: " ", Activities: 10}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eachDB(t, func(t *testing.T, db *bun.DB) {
				_, err := Fill(t.Context(), db, tt.opt)
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if n := count(t, db, `SELECT count(*) FROM app_user`); n != 0 {
					t.Errorf("a failed Fill left %d users", n)
				}
			})
		})
	}
}

// cancelOn cancels a context when a progress line contains a string.
type cancelOn struct {
	s      string
	cancel context.CancelFunc
}

func (c cancelOn) Write(p []byte) (int, error) {
	if strings.Contains(string(p), c.s) {
		c.cancel()
	}
	return len(p), nil
}

// TestFillCancelledKeepsOldData cancels Fill after it has written every
// row but before it commits (when it reports "committing"): the user's
// previous log must be intact.
func TestFillCancelledKeepsOldData(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *bun.DB) {
		opt := DemoOptions{Email: "demo@example.org", Activities: 100, Now: demoNow, Seed: 1}
		u, err := Fill(t.Context(), db, opt)
		if err != nil {
			t.Fatal(err)
		}
		before := collect(t, NewStore(db), u.ID)

		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		opt.Activities, opt.Seed, opt.Progress = 3000, 2, cancelOn{"committing", cancel}
		if _, err := Fill(ctx, db, opt); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if after := collect(t, NewStore(db), u.ID); !reflect.DeepEqual(before, after) {
			t.Errorf("a cancelled Fill changed the log: %d rows before, %d after", len(before), len(after))
		}
		// The connection Fill used on SQLite (foreign keys off) must not
		// be reused.
		for range 5 {
			if database.DialectOf(db) != database.SQLite {
				break
			}
			var fk int
			if err := db.QueryRowContext(t.Context(), `PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
				t.Fatalf("foreign_keys = %d (%v) on a pooled connection", fk, err)
			}
		}
	})
}

// Issue 24 §5: the demo is a plausible apprentice. In the weeks they log
// anything, about the weekly target; weeks with nothing (holidays, gaps)
// between the first and the last; a few KSBs without evidence; and a
// readiness, by the analytics' formula, well short of 100 in the first
// months that grows as the months go by, on either dialect's loader.
func TestFillIsAPlausibleApprentice(t *testing.T) {
	for _, n := range []int{300, 2000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			eachDB(t, func(t *testing.T, db *bun.DB) {
				u, err := Fill(t.Context(), db, DemoOptions{Email: "demo@example.org", Activities: n, Now: demoNow, Seed: 1})
				if err != nil {
					t.Fatal(err)
				}
				rows := collect(t, NewStore(db), u.ID)
				if len(rows) != n {
					t.Fatalf("%d rows, want %d", len(rows), n)
				}
				// Hours by ISO week.
				type isoWeek struct{ y, w int }
				weekly := map[isoWeek]float64{}
				for _, r := range rows {
					y, w := r.Date.ISOWeek()
					weekly[isoWeek{y, w}] += r.Hours
				}
				first, last := rows[len(rows)-1].Date, rows[0].Date
				var sum, most float64
				for _, h := range weekly {
					sum += h
					most = max(most, h)
				}
				mean := sum / float64(len(weekly))
				if target := float64(u.WeeklyTargetHours); mean < target*0.75 || mean > target*1.33 {
					t.Errorf("%.1f h a week on average in the weeks logged, want about the target, %.0f", mean, target)
				}
				if most > 25 {
					t.Errorf("a week of %.1f h", most)
				}
				calendar := int(last.Sub(first).Hours()/(24*7)) + 1
				if empty := calendar - len(weekly); empty < calendar/12 {
					t.Errorf("%d weeks without an activity in %d from %s to %s: want holidays and gaps", empty, calendar, first.Format(time.DateOnly), last.Format(time.DateOnly))
				}
				if last.Before(demoNow.AddDate(0, 0, -7)) {
					t.Errorf("the log ends on %s, more than a week before now (%s)", last, demoNow)
				}

				// Readiness, as modules/analytics scores it: 60 × the share
				// of KSBs evidenced, 40 × the share with good evidence.
				readiness := func(upTo time.Time) (float64, int) {
					var all, evidenced, assured int
					if err := db.QueryRowContext(t.Context(), `SELECT
						(SELECT count(*) FROM ksb WHERE spec_code = ?),
						(SELECT count(DISTINCT ak.ksb_code) FROM activity a JOIN activity_ksbs ak ON ak.activity_id = a.id
							WHERE a.user_id = ? AND a.activity_date <= ?),
						(SELECT count(DISTINCT ak.ksb_code) FROM activity a JOIN activity_ksbs ak ON ak.activity_id = a.id
							WHERE a.user_id = ? AND a.activity_date <= ? AND a.evidence_quality IN ('good', 'review_ready'))`,
						u.SelectedSpec, u.ID, upTo.Format(time.DateOnly), u.ID, upTo.Format(time.DateOnly)).Scan(&all, &evidenced, &assured); err != nil {
						t.Fatal(err)
					}
					return 60*float64(evidenced)/float64(all) + 40*float64(assured)/float64(all), all - evidenced
				}
				span := last.Sub(first)
				var scores []float64
				for _, share := range []float64{0.1, 0.35, 0.65, 1} {
					s, _ := readiness(first.Add(time.Duration(float64(span) * share)))
					scores = append(scores, s)
				}
				if scores[0] > 60 {
					t.Errorf("readiness %.0f a tenth of the way in: want well short of 100 at the start (all: %.0f)", scores[0], scores)
				}
				for i := 1; i < len(scores); i++ {
					if scores[i] <= scores[i-1] {
						t.Errorf("readiness does not grow over the months: %.0f", scores)
						break
					}
				}
				final, unevidenced := readiness(last)
				t.Logf("%d activities from %s: %d weeks logged of %d, %.1f h a week on average (most %.1f); readiness %.0f, %d KSBs without evidence",
					n, first.Format(time.DateOnly), len(weekly), calendar, mean, most, scores, unevidenced)
				if final >= 100 || unevidenced < 2 || unevidenced > 6 {
					t.Errorf("readiness %.0f at the end with %d KSBs without evidence: want a few", final, unevidenced)
				}
			})
		})
	}
}
