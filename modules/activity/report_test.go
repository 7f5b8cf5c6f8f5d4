package activity

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/uptrace/bun"
)

func date(s string) time.Time {
	t, err := time.Parse(dateLayout, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestEachReportRow(t *testing.T) {
	eachDB(t, func(t *testing.T, db *bun.DB) {
		s := NewStore(db)
		alice := newUser(t, db, "alice@example.org")
		bob := newUser(t, db, "bob@example.org")
		insert(t, db, bob, fixture{date: "2026-01-01", title: "Bob's secret", typ: "other", quality: "draft", hours: 1,
			tags: []string{"reading"}, ksbs: []string{"K1"}, links: []string{"https://bob.example/"}})

		const (
			awkwardTitle = `Read "Thinking in Systems", ch. 1–3`
			awkwardDesc  = "Stocks, flows & feedback loops.\nSecond line: naïve café, Über, mañana, Øresund, ŵ, £12, 🙂\r\nand a CRLF"
		)
		insert(t, db, alice,
			fixture{date: "2026-02-01", title: "=HYPERLINK(\"http://evil.example\",\"click\")", typ: "workshop", quality: "good", hours: 3,
				desc: "Formula-like title", tags: []string{"security"}},
			fixture{date: "2026-03-15", title: awkwardTitle, typ: "self_study", quality: "review_ready", hours: 2.25,
				desc: awkwardDesc, notes: "-- follow up with mentor",
				tags: []string{"reading", "books", "Äpfel"}, ksbs: []string{"S2", "S10", "K1"},
				links: []string{"https://example.org/b?x=1,2", "https://example.org/a"}},
			fixture{date: "2026-03-15", title: "@channel stand-up +1", typ: "mentoring", quality: "", hours: 0.5, notes: "tab\tinside",
				ksbs: []string{"B1"}},
			fixture{date: "2025-12-24", title: "+ festive reading", typ: "hackathon", quality: "excellent", hours: 1,
				tags: []string{""}}, // an empty tag name is still a tag
		)
		// A prefixed standard (ST0763): people see natural codes, in stored
		// code order.
		alicePrefixed := newUser(t, db, "ann@example.org")
		insert(t, db, alicePrefixed, fixture{date: "2026-01-01", title: "AI", typ: "research", quality: "good", hours: 1,
			ksbs: []string{"AK2", "AK10", "AK1"}})

		tests := []struct {
			name   string
			userID int64
			want   []ReportRow
		}{
			{"newest first, ties by id desc, awkward text kept", alice, []ReportRow{
				{Date: date("2026-03-15"), Title: "@channel stand-up +1", Hours: 0.5, TypeLabel: "Mentoring", QualityLabel: "Draft",
					KSBs: []string{"B1"}, Notes: "tab\tinside"},
				{Date: date("2026-03-15"), Title: awkwardTitle, Hours: 2.25, TypeLabel: "Self-study", QualityLabel: "Ready for review",
					Tags: []string{"books", "reading", "Äpfel"}, KSBs: []string{"K1", "S2", "S10"},
					Links:       []string{"https://example.org/b?x=1,2", "https://example.org/a"},
					Description: awkwardDesc, Notes: "-- follow up with mentor"},
				{Date: date("2026-02-01"), Title: "=HYPERLINK(\"http://evil.example\",\"click\")", Hours: 3, TypeLabel: "Workshop",
					QualityLabel: "Good", Tags: []string{"security"}, Description: "Formula-like title"},
				{Date: date("2025-12-24"), Title: "+ festive reading", Hours: 1, TypeLabel: "hackathon", QualityLabel: "excellent",
					Tags: []string{""}},
			}},
			{"natural codes in number order", alicePrefixed, []ReportRow{
				{Date: date("2026-01-01"), Title: "AI", Hours: 1, TypeLabel: "Research", QualityLabel: "Good",
					KSBs: []string{"K1", "K2", "K10"}},
			}},
			{"only the user's own rows", bob, []ReportRow{
				{Date: date("2026-01-01"), Title: "Bob's secret", Hours: 1, TypeLabel: "Other", QualityLabel: "Draft",
					Tags: []string{"reading"}, KSBs: []string{"K1"}, Links: []string{"https://bob.example/"}},
			}},
			{"no activities", newUser(t, db, "nobody@example.org"), nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got := collect(t, s, tt.userID)
				if len(got) != len(tt.want) {
					t.Fatalf("%d rows, want %d: %+v", len(got), len(tt.want), got)
				}
				for i := range got {
					if !reflect.DeepEqual(got[i], tt.want[i]) {
						t.Errorf("row %d:\n got  %#v\n want %#v", i, got[i], tt.want[i])
					}
				}
			})
		}
	})
}

func TestEachReportRowStops(t *testing.T) {
	eachDB(t, func(t *testing.T, db *bun.DB) {
		s := NewStore(db)
		alice := newUser(t, db, "alice@example.org")
		var fs []fixture
		for i := range 10 {
			fs = append(fs, fixture{date: time.Date(2025, 1, 1+i, 0, 0, 0, 0, time.UTC).Format(dateLayout), title: "x", typ: "other", hours: 1})
		}
		insert(t, db, alice, fs...)
		errStop := errors.New("stop here")

		tests := []struct {
			name     string
			fn       func(cancel context.CancelFunc, calls int) error
			wantErr  error
			wantRows int
		}{
			{"fn error", func(_ context.CancelFunc, calls int) error {
				if calls == 3 {
					return errStop
				}
				return nil
			}, errStop, 3},
			{"context cancelled", func(cancel context.CancelFunc, calls int) error {
				if calls == 2 {
					cancel()
				}
				return nil
			}, context.Canceled, 2},
			{"to the end", func(context.CancelFunc, int) error { return nil }, nil, 10},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				calls := 0
				err := s.EachReportRow(ctx, alice, func(*ReportRow) error {
					calls++
					return tt.fn(cancel, calls)
				})
				if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
					t.Errorf("err = %v, want %v", err, tt.wantErr)
				}
				if calls != tt.wantRows {
					t.Errorf("fn called %d times, want %d", calls, tt.wantRows)
				}
			})
		}
	})
}

// TestEachReportRowReusesRow checks what makes streaming cheap: one row
// value, its slices reused, and a bounded number of allocations per row
// (nothing that grows with the log). It counts, it does not time. It must
// not run in parallel: AllocsPerRun counts every goroutine's allocations.
func TestEachReportRowReusesRow(t *testing.T) {
	eachDB(t, func(t *testing.T, db *bun.DB) {
		const n = 1000
		u, err := Fill(t.Context(), db, DemoOptions{Email: "demo@example.org", Activities: n, Seed: 7})
		if err != nil {
			t.Fatal(err)
		}
		s := NewStore(db)
		var first *ReportRow
		rows := 0
		allocs := testing.AllocsPerRun(1, func() {
			first, rows = nil, 0
			err = s.EachReportRow(t.Context(), u.ID, func(r *ReportRow) error {
				if first == nil {
					first = r
				} else if r != first {
					t.Fatal("a new *ReportRow for each row")
				}
				rows++
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		if rows != n {
			t.Fatalf("%d rows, want %d", rows, n)
		}
		// About seven allocations per row: the strings of the texts and links
		// (tag names are shared, labels and KSB codes are the reference
		// data's). The bound is loose on purpose (the race detector shifts
		// it); what it catches is per-row slices or rows kept around.
		perRow := allocs / n
		t.Logf("%.1f allocations per row", perRow)
		if perRow > 20 {
			t.Errorf("%.1f allocations per row", perRow)
		}
	})
}
