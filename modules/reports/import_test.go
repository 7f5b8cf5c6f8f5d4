package reports_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	randv2 "math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/quick"
	"time"

	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/reports"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

func TestUnneutralizeUndoesNeutralize(t *testing.T) {
	// Cells as a report holds them: no CR (the writer drops it).
	cells := []string{
		"", "Plain title", "=SUM(A1:A3)", "+1 pairing", "-- retro", "@mention", "\tindented",
		"a=b", "'quoted", "it's", "a;=1+1", "a\t=1+1", "x,+1", "x; -1+2", "ok\n@SUM(1)",
		" =1+1", "=1;=2", "\t=1", "a;b, c\td\ne", "a;", "a; ", "don't; -x", "K1; S2",
		"'=x", "''=x", "'''+1", "a;'=1", "a; ''-1", " '@x", "'\tx", "''\t=1", "'", "''", "' =x", "x'", "'\n'=",
	}
	for _, s := range cells {
		if got := reports.Unneutralize(reports.Neutralize(s)); got != s {
			t.Errorf("Unneutralize(Neutralize(%q)) = %q", s, got)
		}
	}
	// And any text made of the characters the rules look at.
	alphabet := []string{"=", "+", "-", "@", "'", ";", ",", " ", "\t", "\n", "x", "🙂", `"`}
	prop := func(picks []uint8) bool {
		var b strings.Builder
		for _, p := range picks {
			b.WriteString(alphabet[int(p)%len(alphabet)])
		}
		s := b.String()
		return reports.Unneutralize(reports.Neutralize(s)) == s
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 20000, Rand: rand.New(rand.NewSource(23))}); err != nil {
		t.Error(err)
	}
}

// A list cell gives back its items, whatever they hold.
func TestSplitListUndoesJoinList(t *testing.T) {
	for _, items := range [][]string{
		nil, {"a"}, {"a", "b"}, {"a;b"}, {`a\b`}, {`a\;b`, ";", `\`}, {"x; y", "=1;=2", `ends\`}, {"🙂;🙂"},
	} {
		cell := reports.JoinList(items)
		if got := reports.SplitList(reports.Unneutralize(reports.Neutralize(cell))); !slices.Equal(got, items) {
			t.Errorf("SplitList(JoinList(%q) = %q) = %q", items, cell, got)
		}
	}
	// A report written before lists were escaped reads as it did.
	if got := reports.SplitList(`C:\dir; a;b`); !slices.Equal(got, []string{`C:\dir`, "a", "b"}) {
		t.Errorf("old list cell: %q", got)
	}
}

const header = "date,title,hours,type,evidence_quality,tags,ksbs,links,description,notes\r\n"

func TestParseCSVReportsEveryBadRow(t *testing.T) {
	file := header +
		"2026-03-04,Good row,1.5,Self-study,Good,books,K1,https://example.org,,\r\n" + // line 2
		"2026-13-01,Bad date,1,Workshop,Draft,,,,,\r\n" + // 3
		"2026-03-04,,1,Workshop,Draft,,,,,\r\n" + // 4
		"2026-03-04,Bad hours,lots,Workshop,Draft,,,,,\r\n" + // 5
		"2026-03-04,Zero hours,0,Workshop,Draft,,,,,\r\n" + // 6
		"2026-03-04,Too long,25,Workshop,Draft,,,,,\r\n" + // 7
		"2026-03-04,Bad type,1,Juggling,Draft,,,,,\r\n" + // 8
		"2026-03-04,Bad quality,1,Workshop,Superb,,,,,\r\n" + // 9
		"2026-03-04,Bad link,1,Workshop,Draft,,,javascript:alert(1),,\r\n" + // 10
		"2026-03-04,Short row,1\r\n" + // 11
		"\"2026-03-05\",\"Multi\nline\",1,Workshop,Draft,,,,\"a\nb\",\r\n" + // 12-14, good
		"2026-03-04," + strings.Repeat("x", 201) + ",1,Workshop,Draft,,,,,\r\n" + // 15
		"2026-03-04,Two faults,NaN,Nope,Draft,,,,,\r\n" // 16
	_, _, err := reports.ParseCSV(strings.NewReader(file))
	var le *reports.LinesError
	if !errors.As(err, &le) {
		t.Fatalf("ParseCSV: %v, want a *LinesError", err)
	}
	want := []reports.LineError{
		{3, "the date is not a date like 2026-03-04"},
		{4, "the title is empty"},
		{5, "the hours are not a number"},
		{6, "hours 0 must be more than 0 and at most 24"},
		{7, "hours 25 must be more than 0 and at most 24"},
		{8, `the type is not one of Self-study, Training course, Workshop, Mentoring, Shadowing, Project work, Research, Conference or event, Reflective writing, Other`},
		{9, `the evidence quality is not one of Draft, Good, Ready for review`},
		{10, "link 1 of the links cell is not an http(s) address"},
		{11, "3 columns where the header has 10"},
		{15, "the title is 201 characters, more than 200"},
		{16, `the hours are not a number; the type is not one of Self-study, Training course, Workshop, Mentoring, Shadowing, Project work, Research, Conference or event, Reflective writing, Other`},
	}
	if !reflect.DeepEqual(le.Lines, want) {
		t.Errorf("bad rows:\n got %+v\nwant %+v", le.Lines, want)
	}
}

func TestParseCSVBadFiles(t *testing.T) {
	tests := []struct{ name, file, want string }{
		{"empty", "", "the file is empty"},
		{"no header", "2026-03-04,x,1,Workshop\r\n", "date, title, hours, type missing"},
		{"bad quote", header + "2026-03-04,\"unclosed,1,Workshop,,,,,,\r\n", "line 2: not valid CSV"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := reports.ParseCSV(strings.NewReader(tt.file))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseCSV: %v, want one saying %q", err, tt.want)
			}
		})
	}
}

func TestParseCSVWithOrWithoutBOMAndCRLF(t *testing.T) {
	body := header +
		"2026-03-04,'=1+1 is two,1.3,Self-study,Ready for review,books; data,K1; S2,https://a.example/x; https://b.example,\"line1\r\nline2\",'@note\r\n"
	lf := strings.ReplaceAll(body, "\r\n", "\n")
	want := []activity.ImportRow{{
		Date: time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC), Title: "=1+1 is two", Hours: 1.3, Type: "self_study", Quality: "review_ready",
		Tags: []string{"books", "data"}, KSBs: []string{"K1", "S2"}, Links: []string{"https://a.example/x", "https://b.example"},
		Description: "line1\nline2", Notes: "@note",
	}}
	for name, file := range map[string]string{"crlf": body, "lf": lf, "bom crlf": "\uFEFF" + body, "bom lf": "\uFEFF" + lf} {
		t.Run(name, func(t *testing.T) {
			rows, lines, err := reports.ParseCSV(strings.NewReader(file))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(rows, want) || !reflect.DeepEqual(lines, []int{2}) {
				t.Errorf("rows %+v lines %v\nwant %+v", rows, lines, want)
			}
		})
	}
}

// importFile runs the import job on file for userID, as a worker would.
func importFile(t *testing.T, db *bun.DB, userID int64, file []byte) (tasktype.Result, *recordingOutput, error) {
	t.Helper()
	ctx := t.Context()
	store := activity.NewStore(db)
	id, err := store.SaveUpload(ctx, userID, file)
	if err != nil {
		t.Fatal(err)
	}
	reg := tasks.NewRegistry()
	if err := reports.RegisterImport(reg, store); err != nil {
		t.Fatal(err)
	}
	h, _, ok := reg.Lookup(reports.ActivityImport)
	if !ok {
		t.Fatal("activity_import not registered")
	}
	out := &recordingOutput{}
	res, err := h(ctx, tasktype.Job{ID: "j", Type: reports.ActivityImport, UserID: userID, Payload: reports.ImportPayload(id)}, out)
	return res, out, err
}

// report is the user's full report.
func report(t *testing.T, db *bun.DB, userID int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := reports.WriteCSV(t.Context(), &buf, activity.NewStore(db), userID); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// newImportUser is a user of standard ST0787, the demo's.
func newImportUser(t *testing.T, db *bun.DB, email string) int64 {
	t.Helper()
	store := activity.NewStore(db)
	u, err := store.EnsureUser(t.Context(), email)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.UpdateSettings(t.Context(), u.ID, activity.Settings{SelectedSpec: "ST0787", Timezone: "Europe/London"}); err != nil {
		t.Fatal(err)
	}
	return u.ID
}

func seededDB(t *testing.T, db *bun.DB) {
	t.Helper()
	if err := activity.NewStore(db).SeedReference(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestImportRoundTrip: a report of the demo log, imported into a fresh
// user, gives back a report with the same rows; importing it again, into
// either user, adds nothing.
func TestImportRoundTrip(t *testing.T) {
	testsupport.EachDialect(t, func(t *testing.T, db *bun.DB) {
		seededDB(t, db)
		demo, err := activity.Fill(t.Context(), db, activity.DemoOptions{Email: "demo@example.org", Activities: 1200, Seed: 7,
			Now: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		first := report(t, db, demo.ID)
		fresh := newImportUser(t, db, "fresh@example.org")
		res, out, err := importFile(t, db, fresh, first)
		if err != nil {
			t.Fatalf("import: %v (%s)", err, tasktype.MessageOf(err))
		}
		if res.Summary != "1,200 activities imported" {
			t.Errorf("summary %q", res.Summary)
		}
		if got := strings.Join(out.progress, " | "); !strings.Contains(got, "10% 0 of 1,200 rows imported") || !strings.Contains(got, "1,000 of 1,200 rows imported") {
			t.Errorf("progress %q", got)
		}
		second := report(t, db, fresh)
		if !bytes.Equal(first, second) {
			t.Errorf("report after the round trip differs:\n%s", firstDiff(first, second))
		}
		// The report cannot tell "=x" from "'=x" (both are written
		// "'=x"): the stored activities must be the same too.
		if a, b := logOf(t, db, demo.ID), logOf(t, db, fresh); !reflect.DeepEqual(a, b) {
			for i := range a {
				if !reflect.DeepEqual(a[i], b[i]) {
					t.Errorf("activity %d differs:\n %+v\n %+v", i, a[i], b[i])
					break
				}
			}
		}
		// Each imported activity is a created event in the log's outbox,
		// and only those: importing again adds none.
		changes := func() int {
			var n int
			if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM activity_outbox WHERE subject LIKE ?`,
				fmt.Sprintf("activity.%d.%%.created", fresh)).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		if n := changes(); n != 1200 {
			t.Errorf("%d created events for 1,200 imported activities", n)
		}
		for _, user := range []int64{fresh, demo.ID} {
			res, _, err := importFile(t, db, user, first)
			if err != nil {
				t.Fatal(err)
			}
			if res.Summary != "0 activities imported, 1,200 already in the log" {
				t.Errorf("import again into user %d: %q", user, res.Summary)
			}
		}
		if n := changes(); n != 1200 {
			t.Errorf("%d created events after importing again, want the first import's 1,200", n)
		}
		if again := report(t, db, fresh); !bytes.Equal(first, again) {
			t.Errorf("second import changed the log:\n%s", firstDiff(first, again))
		}
	})
}

// logOf is the user's log as stored, without ids, hours as the report
// shows them, and without the links' titles: the report's links column
// holds their addresses only, so a title cannot come back.
func logOf(t *testing.T, db *bun.DB, userID int64) []activity.Activity {
	t.Helper()
	pg, err := activity.NewStore(db).ListActivities(t.Context(), userID, activity.Filter{}, 1, 100000)
	if err != nil {
		t.Fatal(err)
	}
	for i := range pg.Activities {
		a := &pg.Activities[i]
		a.ID = 0
		a.Hours, _ = strconv.ParseFloat(strconv.FormatFloat(a.Hours, 'f', 1, 64), 64)
		a.LinkTitles = nil
	}
	return pg.Activities
}

func firstDiff(a, b []byte) string {
	al, bl := strings.Split(string(a), "\r\n"), strings.Split(string(b), "\r\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return "line " + strconv.Itoa(i+1) + ":\n " + al[i] + "\n " + bl[i]
		}
	}
	return "lengths " + strconv.Itoa(len(al)) + " and " + strconv.Itoa(len(bl))
}

// TestImportRefusesAllOnABadRow: a file with bad rows, some only the log
// can refuse (KSBs of another standard), imports nothing and names them.
func TestImportRefusesAllOnABadRow(t *testing.T) {
	testsupport.EachDialect(t, func(t *testing.T, db *bun.DB) {
		seededDB(t, db)
		user := newImportUser(t, db, "a@example.org")
		file := header +
			"2026-03-04,Fine,1,Workshop,Draft,,K1,,,\r\n" +
			"2026-03-05,Unknown KSB,1,Workshop,Draft,,K999,,,\r\n" +
			"2026-03-06,Fine too,1,Workshop,Draft,new-tag,,,,\r\n" +
			"2026-03-07,Bad hours,-1,Workshop,Draft,,,,,\r\n"
		_, _, err := importFile(t, db, user, []byte(file))
		if !tasktype.IsPermanent(err) || !tasktype.IsRejected(err) {
			t.Fatalf("import: %v, want a permanent failure, rejected for its input", err)
		}
		// The parser stops before the log: hours first.
		if msg := tasktype.MessageOf(err); msg != "Nothing was imported: 1 row could not be read. Line 5: hours -1 must be more than 0 and at most 24." {
			t.Errorf("message %q", msg)
		}
		file = strings.Replace(file, ",-1,", ",1,", 1)
		_, _, err = importFile(t, db, user, []byte(file))
		if msg := tasktype.MessageOf(err); !tasktype.IsRejected(err) || msg != "Nothing was imported: 1 row could not be read. Line 3: KSB K999 is not one of standard ST0787." {
			t.Errorf("import: %v, message %q", err, msg)
		}
		if n, err := activity.NewStore(db).CountActivities(t.Context(), user); err != nil || n != 0 {
			t.Errorf("%d activities after refused imports (%v), want 0", n, err)
		}
		var tags int
		if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM tag WHERE user_id = ?`, user).Scan(&tags); err != nil || tags != 0 {
			t.Errorf("%d tags after refused imports (%v), want 0", tags, err)
		}
	})
}

// TestImportCountsDuplicatesInTheFile: a file with one activity twice
// adds it twice, once; a second time nothing.
func TestImportCountsDuplicatesInTheFile(t *testing.T) {
	testsupport.EachDialect(t, func(t *testing.T, db *bun.DB) {
		seededDB(t, db)
		user := newImportUser(t, db, "a@example.org")
		file := []byte(header + strings.Repeat("2026-03-04,Same,1,Workshop,Draft,,,,,\r\n", 2) + "2026-03-04,Same,1.5,Workshop,Draft,,,,,\r\n")
		for _, want := range []string{"3 activities imported", "0 activities imported, 3 already in the log"} {
			res, _, err := importFile(t, db, user, file)
			if err != nil || res.Summary != want {
				t.Errorf("import: %q, %v; want %q", res.Summary, err, want)
			}
		}
	})
}

// TestImportOfAnotherUsersUpload fails for good: uploads are per user.
func TestImportOfAnotherUsersUpload(t *testing.T) {
	db, _ := testsupport.DB(t)
	seededDB(t, db)
	a, b := newImportUser(t, db, "a@example.org"), newImportUser(t, db, "b@example.org")
	store := activity.NewStore(db)
	id, err := store.SaveUpload(t.Context(), a, []byte(header))
	if err != nil {
		t.Fatal(err)
	}
	reg := tasks.NewRegistry()
	if err := reports.RegisterImport(reg, store); err != nil {
		t.Fatal(err)
	}
	h, _, _ := reg.Lookup(reports.ActivityImport)
	_, err = h(context.Background(), tasktype.Job{ID: "j", Type: reports.ActivityImport, UserID: b, Payload: reports.ImportPayload(id)}, &recordingOutput{})
	if !tasktype.IsPermanent(err) || !errors.Is(err, activity.ErrNotFound) {
		t.Errorf("import of another user's upload: %v, want a permanent not-found", err)
	}
}

// Issue 23 §4: bytes a database refuses, in any cell, are a line-numbered
// reason and a failure for good on the first attempt, before the log is
// touched; so is a cell longer than any field.
func TestImportRefusesBadBytesByLine(t *testing.T) {
	testsupport.EachDialect(t, func(t *testing.T, db *bun.DB) {
		seededDB(t, db)
		user := newImportUser(t, db, "bytes@example.org")
		file := header +
			"2026-03-04,Fine,1,Workshop,Draft,,K1,,,\r\n" +
			"2026-03-05,Nul\x00title,1,Workshop,Draft,,,,,\r\n" +
			"2026-03-06,Fine too,1,Workshop,Draft,a\x00tag,,,,\r\n" +
			"2026-03-07,Latin-1,1,Workshop,Draft,,,,caf\xe9,\r\n" +
			"2026-03-08,Long,1,Workshop,Draft,,,,," + strings.Repeat("n", 100<<10) + "\r\n" +
			"2026-03-09,Nul in a KSB,1,Workshop,Draft,,K1\x00,,,\r\n"
		_, _, err := importFile(t, db, user, []byte(file))
		if !tasktype.IsPermanent(err) {
			t.Fatalf("import: %v, want a permanent failure", err)
		}
		want := "Nothing was imported: 5 rows could not be read. " +
			"Line 3: the title cell cannot be read: it holds a NUL byte. " +
			"Line 4: the tags cell cannot be read: it holds a NUL byte. " +
			"Line 5: the description cell cannot be read: it is not UTF-8 text. " +
			"Line 6: the notes cell cannot be read: it is longer than 64 KiB. " +
			"Line 7: the ksbs cell cannot be read: it holds a NUL byte."
		if msg := tasktype.MessageOf(err); msg != want {
			t.Errorf("message\n %q\nwant\n %q", msg, want)
		}
		if n, err := activity.NewStore(db).CountActivities(t.Context(), user); err != nil || n != 0 {
			t.Errorf("%d activities after a refused import (%v), want 0", n, err)
		}
	})
}

// textAtoms are the pieces the round trip's texts are made of: every
// character the report's escaping treats specially, in the places it
// treats them (a formula character or apostrophe first, after a
// delimiter or after spaces), and text from outside ASCII.
var textAtoms = []string{
	"=", "+", "-", "@", "'", "''", ";", "; ", ",", ", ", `"`, `""`, " ", "  ", `\`, `\;`, `\\`,
	"x", "Plan", "SUM(A1:A3)", "1+1", "naïve café", "£5", "🙂", "日本", "K1",
}

// multilineAtoms may also be in descriptions and notes.
var multilineAtoms = []string{"\n", "\t", "\r\n", "\n=", "\t@", "\n'+"}

// roundTripLog fills the user's log with n activities of arbitrary text,
// as the form or an import could have stored them, chosen by rng.
func roundTripLog(t *testing.T, db *bun.DB, userID int64, rng *randv2.Rand, n int) {
	t.Helper()
	store := activity.NewStore(db)
	ksbs, err := store.KSBs(t.Context(), "ST0787")
	if err != nil {
		t.Fatal(err)
	}
	text := func(atoms []string, most int) string {
		var b strings.Builder
		for range 1 + rng.IntN(most) {
			b.WriteString(atoms[rng.IntN(len(atoms))])
		}
		return b.String()
	}
	long := append(slices.Clone(textAtoms), multilineAtoms...)
	linkAtoms := []string{";", "=", "'", "@", "-", "+", ",", "x", "%20", "a;b=c"}
	types := activity.ActivityTypes
	for i := range n {
		in := activity.Input{
			Date:  time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, rng.IntN(60)),
			Hours: float64(1+rng.IntN(96)) / 4,
			Type:  types[rng.IntN(len(types))].Value, Quality: activity.EvidenceQualities[rng.IntN(len(activity.EvidenceQualities))].Value,
		}
		// A title is one line, not blank; the import keeps its spaces.
		if in.Title = text(textAtoms, 6); strings.TrimSpace(in.Title) == "" {
			in.Title += "x"
		}
		if rng.IntN(3) > 0 {
			in.Description = text(long, 10)
		}
		if rng.IntN(3) > 0 {
			in.Notes = text(long, 8)
		}
		seen := map[string]bool{}
		for range rng.IntN(4) {
			// Tags are trimmed and have no control characters (the form
			// and the import both see to it).
			if tag := strings.TrimSpace(text(textAtoms, 4)); tag != "" && !seen[tag] {
				seen[tag] = true
				in.Tags = append(in.Tags, tag)
			}
		}
		for range rng.IntN(3) {
			in.KSBs = append(in.KSBs, ksbs[rng.IntN(len(ksbs))].Code)
		}
		for range rng.IntN(3) {
			in.Links = append(in.Links, activity.Link{URL: "https://example.org/" + text(linkAtoms, 4), SourceType: "article", Stage: "capture"})
		}
		if _, err := store.CreateActivity(t.Context(), userID, in); err != nil {
			t.Fatalf("activity %d %+v: %v", i, in, err)
		}
	}
}

// Issue 23 §5: whatever text a log holds, report → import → report is
// byte-identical, the import stores the same activities, and importing
// the report again, into either log, adds nothing.
func TestImportRoundTripsAnyText(t *testing.T) {
	testsupport.EachDialect(t, func(t *testing.T, db *bun.DB) {
		seededDB(t, db)
		for _, seed := range []uint64{1, 2, 3} {
			t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
				rng := randv2.New(randv2.NewPCG(seed, 23))
				owner := newImportUser(t, db, fmt.Sprintf("owner%d@example.org", seed))
				roundTripLog(t, db, owner, rng, 150)
				first := report(t, db, owner)
				fresh := newImportUser(t, db, fmt.Sprintf("fresh%d@example.org", seed))
				res, _, err := importFile(t, db, fresh, first)
				if err != nil {
					t.Fatalf("import: %v (%s)", err, tasktype.MessageOf(err))
				}
				if res.Summary != "150 activities imported" {
					t.Errorf("summary %q", res.Summary)
				}
				if second := report(t, db, fresh); !bytes.Equal(first, second) {
					t.Errorf("report after the round trip differs:\n%s", firstDiff(first, second))
				}
				// The report cannot carry a CR before a line feed (CSV
				// readers take CRLF in a cell for a line feed): texts
				// compare with their line ends as LF.
				a, b := logOf(t, db, owner), logOf(t, db, fresh)
				lf := strings.NewReplacer("\r\n", "\n")
				for i := range a {
					a[i].Description, a[i].Notes = lf.Replace(a[i].Description), lf.Replace(a[i].Notes)
				}
				if len(a) != len(b) {
					t.Fatalf("%d activities imported from a log of %d", len(b), len(a))
				}
				for i := range a {
					if !reflect.DeepEqual(a[i], b[i]) {
						t.Errorf("activity %d differs:\n %q\n %q", i, fmt.Sprintf("%+v", a[i]), fmt.Sprintf("%+v", b[i]))
					}
				}
				for _, user := range []int64{fresh, owner} {
					res, _, err := importFile(t, db, user, first)
					if err != nil {
						t.Fatalf("import again: %v (%s)", err, tasktype.MessageOf(err))
					}
					if res.Summary != "0 activities imported, 150 already in the log" {
						t.Errorf("import again into user %d: %q", user, res.Summary)
					}
				}
			})
		}
	})
}
