package digest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"html/template"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// fixture is the digest job on the real engine: embedded JetStream, a
// worker, a real database and a real SMTP server (or an outbox).
type fixture struct {
	db     *bun.DB
	store  *activity.Store
	client *tasks.Client
	smtp   *testsupport.SMTPServer
	outbox string
}

// testPolicy retries within the test's patience.
var testPolicy = tasktype.Policy{MaxAttempts: 3, Timeout: 30 * time.Second, BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond}

// setup starts the engine with the digest registered, sending through a
// test SMTP server, or into an outbox when viaOutbox.
func setup(t *testing.T, db *bun.DB, viaOutbox bool) *fixture {
	t.Helper()
	return setupWith(t, db, viaOutbox, "")
}

// setupWith is setup with the app's BASE_URL.
func setupWith(t *testing.T, db *bun.DB, viaOutbox bool, baseURL string) *fixture {
	t.Helper()
	f := &fixture{db: db, store: activity.NewStore(db)}
	var sender Sender
	if viaOutbox {
		f.outbox = filepath.Join(t.TempDir(), "outbox")
		sender = Outbox{Dir: f.outbox}
	} else {
		f.smtp = testsupport.SMTP(t)
		s, err := NewSMTP(f.smtp.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		sender = s
	}
	srv := testsupport.NATS(t)
	broker := jetstreamtest.Broker(t, testsupport.Connect(t, srv, "digest-test"))
	reg := tasks.NewRegistry()
	if err := Register(reg, Config{Source: f.store, DB: db, Sender: sender, From: "OTJ Helper <digest@example.org>", Policy: testPolicy, BaseURL: baseURL}); err != nil {
		t.Fatal(err)
	}
	c, err := tasks.NewClient(tasks.Config{DB: db, Log: broker, Transport: broker, Registry: reg, Logger: testsupport.Logger(t),
		Worker: tasks.WorkerConfig{Name: "digest-test-worker", ShutdownGrace: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	testsupport.Go(t, func(ctx context.Context) { c.RunWorker(ctx) })
	f.client = c
	return f
}

// user adds a user on the test standard TST (KSBs K1, K2 and S1), with
// targets; email "" makes one without an address.
func (f *fixture) user(t *testing.T, email string) activity.User {
	t.Helper()
	ctx := testsupport.Context(t)
	for _, q := range []string{
		`INSERT INTO spec (code, name, level, ksb_prefix) VALUES ('TST', 'Test standard', 4, 'T') ON CONFLICT DO NOTHING`,
		`INSERT INTO ksb (code, natural_code, spec_code, category, title, sort_order) VALUES
			('TK1', 'K1', 'TST', 'knowledge', 'First knowledge', 1),
			('TK2', 'K2', 'TST', 'knowledge', 'Second <knowledge> & more', 2),
			('TS1', 'S1', 'TST', 'skill', 'A skill', 101) ON CONFLICT DO NOTHING`,
	} {
		if _, err := f.db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	var id int64
	if err := f.db.NewRaw(`INSERT INTO app_user (email, name, selected_spec, otj_target_hours, weekly_target_hours, timezone)
		VALUES (?, 'Ada', 'TST', 100, 6, 'Europe/London') RETURNING id`, email).Scan(ctx, &id); err != nil {
		t.Fatal(err)
	}
	u, err := f.store.UserByID(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// activity logs one activity of the user on date, naming the KSBs.
func (f *fixture) activity(t *testing.T, userID int64, date time.Time, title string, hours float64, ksbs ...string) {
	t.Helper()
	ctx := testsupport.Context(t)
	var id int64
	if err := f.db.NewRaw(`INSERT INTO activity (user_id, title, activity_date, duration_hours, activity_type) VALUES (?, ?, ?, ?, 'workshop') RETURNING id`,
		userID, title, date.Format(time.DateOnly), hours).Scan(ctx, &id); err != nil {
		t.Fatal(err)
	}
	for _, k := range ksbs {
		if _, err := f.db.ExecContext(ctx, `INSERT INTO activity_ksbs (activity_id, ksb_code) VALUES (?, ?)`, id, k); err != nil {
			t.Fatal(err)
		}
	}
}

// run enqueues a digest for the user and waits for its outcome.
func (f *fixture) run(t *testing.T, userID int64) tasktype.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(testsupport.Context(t), 30*time.Second)
	defer cancel()
	job, err := f.client.Enqueue(ctx, tasktype.EnqueueRequest{Type: WeeklyDigest, UserID: userID})
	if err != nil {
		t.Fatal(err)
	}
	e, err := f.client.WaitOutcome(ctx, userID, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// result reads a succeeded job's stored message.
func (f *fixture) result(t *testing.T, e tasktype.Event) []byte {
	t.Helper()
	if e.Result == nil {
		t.Fatalf("job %s stored no result: %+v", e.JobID, e)
	}
	if e.Result.ContentType != "message/rfc822" {
		t.Errorf("result content type %q", e.Result.ContentType)
	}
	r, err := f.client.Open(testsupport.Context(t), e.Result.Object)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// parts are a message's headers and decoded parts.
type parts struct {
	header     mail.Header
	text, html string
}

func parse(t *testing.T, eml []byte) parts {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(eml))
	if err != nil {
		t.Fatalf("not a message: %v\n%s", err, eml)
	}
	body, err := io.ReadAll(m.Body)
	if err != nil {
		t.Fatal(err)
	}
	text, err := findPart(m.Header, bytes.NewReader(body), "text/plain")
	if err != nil {
		t.Fatalf("text part: %v\n%s", err, eml)
	}
	html, err := findPart(m.Header, bytes.NewReader(body), "text/html")
	if err != nil {
		t.Fatalf("html part: %v\n%s", err, eml)
	}
	return parts{header: m.Header, text: text, html: html}
}

func london(t *testing.T) *time.Location {
	loc, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// The digest says the week's hours against the weekly target, the total
// against the OTJ target, the KSBs without evidence and the week's
// activities, in a plain and an HTML part that escapes what the user
// typed; sent by SMTP with the headers a mail client needs, and stored as
// the task's result, which RenderHTML shows.
func TestDigestSentBySMTP(t *testing.T) {
	testsupport.EachDialect(t, func(t *testing.T, db *bun.DB) {
		f := setup(t, db, false)
		u := f.user(t, "ada@example.org")
		today := time.Now().In(london(t))
		week := WeekOf(today)
		f.activity(t, u.ID, today, `Pairing on <script>alert(1)</script> & tests`, 2.5, "TK1")
		f.activity(t, u.ID, week.Monday.AddDate(0, 0, -30), "Old workshop", 10)

		e := f.run(t, u.ID)
		if e.Kind != tasktype.EventSucceeded {
			t.Fatalf("outcome %s: %s", e.Kind, e.Error)
		}
		msgs := f.smtp.Messages()
		if len(msgs) != 1 {
			t.Fatalf("server got %d messages, want 1", len(msgs))
		}
		if msgs[0].From != "digest@example.org" || len(msgs[0].To) != 1 || msgs[0].To[0] != "ada@example.org" {
			t.Errorf("envelope from %q to %q", msgs[0].From, msgs[0].To)
		}
		got := parse(t, msgs[0].Data)
		wantID := fmt.Sprintf("<weekly-digest.%d.%s@example.org>", u.ID, week)
		if id := got.header.Get("Message-ID"); id != wantID {
			t.Errorf("Message-ID %q, want %q", id, wantID)
		}
		if from := got.header.Get("From"); !strings.Contains(from, "<digest@example.org>") {
			t.Errorf("From %q", from)
		}
		if to := got.header.Get("To"); !strings.Contains(to, "ada@example.org") {
			t.Errorf("To %q", to)
		}
		if subj := got.header.Get("Subject"); !strings.Contains(subj, "2.5 hours of 6.0") {
			t.Errorf("Subject %q", subj)
		}
		if d, err := got.header.Date(); err != nil || time.Since(d) > time.Minute {
			t.Errorf("Date %q: %v", got.header.Get("Date"), err)
		}
		for _, want := range []string{
			"This week: 2.5 hours of your 6.0-hour weekly target.",
			"In all: 12.5 hours of your 100.0-hour OTJ target.",
			"Pairing on <script>alert(1)</script> & tests (Workshop, 2.5 h)",
			"- K2: Second <knowledge> & more", "- S1: A skill",
		} {
			if !strings.Contains(got.text, want) {
				t.Errorf("text part lacks %q:\n%s", want, got.text)
			}
		}
		for _, bad := range []string{"Old workshop", "K1: First"} {
			if strings.Contains(got.text, bad) {
				t.Errorf("text part has %q:\n%s", bad, got.text)
			}
		}
		if strings.Contains(got.html, "<script>") || !strings.Contains(got.html, "Pairing on &lt;script&gt;alert(1)&lt;/script&gt; &amp; tests") ||
			!strings.Contains(got.html, "Second &lt;knowledge&gt; &amp; more") {
			t.Errorf("HTML part not escaped:\n%s", got.html)
		}

		stored := f.result(t, e)
		if p := parse(t, stored); p.header.Get("Message-ID") != wantID || p.text != got.text {
			t.Errorf("stored result is not the message sent:\n%s", stored)
		}
		var page strings.Builder
		if err := RenderHTML(testsupport.Context(t), &page, tasktype.Task{}, bytes.NewReader(stored)); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"ada@example.org", "2.5 hours of 6.0", "<pre class=\"digest-text\">", "Pairing on &lt;script&gt;"} {
			if !strings.Contains(page.String(), want) {
				t.Errorf("rendered page lacks %q:\n%s", want, page.String())
			}
		}
		if strings.Contains(page.String(), "<script>") || strings.Contains(page.String(), "style=") {
			t.Errorf("rendered page has script or inline style:\n%s", page.String())
		}

		// A second digest of the same week sends nothing, and says why.
		again := f.run(t, u.ID)
		if again.Kind != tasktype.EventSucceeded || !strings.Contains(again.Summary, "Not sent again") || again.Result != nil {
			t.Errorf("second run: %s %q result %v", again.Kind, again.Summary, again.Result)
		}
		if n := f.smtp.Attempts(); n != 1 {
			t.Errorf("server was sent %d messages, want 1", n)
		}
	})
}

// A 4xx reply is a retried attempt; the retry sends, once.
func TestDigestRetriesTemporaryFailure(t *testing.T) {
	testsupport.EachDialect(t, func(t *testing.T, db *bun.DB) {
		f := setup(t, db, false)
		f.smtp.Reject(func(n int) *smtp.SMTPError {
			if n == 1 {
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
			}
			return nil
		})
		u := f.user(t, "ada@example.org")
		f.activity(t, u.ID, time.Now().In(london(t)), "Workshop", 1)
		e := f.run(t, u.ID)
		if e.Kind != tasktype.EventSucceeded || e.Attempt != 2 {
			t.Fatalf("outcome %s after attempt %d: %s", e.Kind, e.Attempt, e.Error)
		}
		if n, got := f.smtp.Attempts(), len(f.smtp.Messages()); n != 2 || got != 1 {
			t.Errorf("server was sent %d messages and took %d, want 2 and 1", n, got)
		}
		if e.Result == nil {
			t.Error("no result stored")
		}
	})
}

// A 5xx reply fails the job for good, the reply its user's message; and
// the week stays free, so that a retry by hand may send.
func TestDigestPermanentFailure(t *testing.T) {
	testsupport.EachDialect(t, func(t *testing.T, db *bun.DB) {
		f := setup(t, db, false)
		f.smtp.Reject(func(int) *smtp.SMTPError {
			return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Mailbox disabled"}
		})
		u := f.user(t, "ada@example.org")
		f.activity(t, u.ID, time.Now().In(london(t)), "Workshop", 1)
		e := f.run(t, u.ID)
		if e.Kind != tasktype.EventFailed || e.Attempt != 1 {
			t.Fatalf("outcome %s after attempt %d, want failed after 1", e.Kind, e.Attempt)
		}
		if !strings.Contains(e.Message, "554 5.7.1 Mailbox disabled") || !strings.Contains(e.Error, "554") {
			t.Errorf("message %q, error %q: want the server's reply", e.Message, e.Error)
		}
		var n int
		if err := db.QueryRowContext(testsupport.Context(t), `SELECT count(*) FROM digest_sent WHERE user_id = ?`, u.ID).Scan(&n); err != nil || n != 0 {
			t.Errorf("digest_sent rows %d (%v), want the claim released", n, err)
		}
	})
}

// Connection refused is an ordinary, retried error.
func TestDigestConnectionRefusedIsRetried(t *testing.T) {
	db, _ := testsupport.DB(t)
	f := setup(t, db, false)
	u := f.user(t, "ada@example.org")
	f.activity(t, u.ID, time.Now().In(london(t)), "Workshop", 1)
	ctx := testsupport.Context(t)
	week := WeekOf(time.Now().In(london(t)))
	tj := tasktype.Job{ID: "j1", Type: WeeklyDigest, UserID: u.ID, EnqueuedAt: time.Now()}
	// A port nothing listens on: the test server's, once it is closed.
	refused, err := NewSMTP("smtp://127.0.0.1:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	j := &job{cfg: Config{Source: f.store, DB: db, Sender: refused, Now: time.Now}, from: &mail.Address{Address: "digest@example.org"}, sent: sentLog{db: db}}
	_, err = j.run(ctx, tj, discardOutput{})
	if err == nil || tasktype.IsPermanent(err) {
		t.Fatalf("err = %v, want an ordinary error", err)
	}
	// The claim was let go: the next attempt may send.
	if claimed, _, err := j.sent.claim(ctx, u.ID, week.String(), "x", time.Now()); err != nil || !claimed {
		t.Errorf("week still claimed after a refused connection: %v", err)
	}
}

type discardOutput struct{}

func (discardOutput) Create(string, string) (io.Writer, error) { return io.Discard, nil }
func (discardOutput) Progress(int, string)                     {}

// No address, or no activity ever: no mail, and a note saying why. With
// no SMTP_URL, the digest goes to the outbox as an .eml file.
func TestDigestNotesAndOutbox(t *testing.T) {
	testsupport.EachDialect(t, func(t *testing.T, db *bun.DB) {
		f := setup(t, db, true)
		idle := f.user(t, "idle@example.org")
		if e := f.run(t, idle.ID); e.Kind != tasktype.EventSucceeded || e.Summary != "Not sent: you have logged no activity yet." {
			t.Errorf("no activity: %s %q", e.Kind, e.Summary)
		}
		nobody := f.user(t, "")
		f.activity(t, nobody.ID, time.Now(), "Workshop", 1)
		if e := f.run(t, nobody.ID); e.Kind != tasktype.EventSucceeded || e.Summary != "Not sent: your account has no email address." {
			t.Errorf("no email: %s %q", e.Kind, e.Summary)
		}
		if ents, _ := os.ReadDir(f.outbox); len(ents) != 0 {
			t.Errorf("outbox holds %d files, want none", len(ents))
		}

		u := f.user(t, "ada@example.org")
		f.activity(t, u.ID, time.Now().In(london(t)), "Workshop", 1.5)
		e := f.run(t, u.ID)
		if e.Kind != tasktype.EventSucceeded {
			t.Fatalf("outcome %s: %s", e.Kind, e.Error)
		}
		name := fmt.Sprintf("otj-digest-%s-user%d.eml", WeekOf(time.Now().In(london(t))), u.ID)
		eml, err := os.ReadFile(filepath.Join(f.outbox, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(eml, f.result(t, e)) {
			t.Error("outbox file and stored result differ")
		}
		if p := parse(t, eml); !strings.Contains(p.text, "This week: 1.5 hours") {
			t.Errorf("outbox message:\n%s", p.text)
		}
	})
}

func TestParseWeek(t *testing.T) {
	tests := []struct {
		in     string
		monday string
		ok     bool
	}{
		{"2026-W49", "2026-11-30", true},
		{"2026-W01", "2025-12-29", true},
		{"2026-W53", "2026-12-28", true},
		{"2025-W53", "", false},
		{"2026-W00", "", false},
		{"2026-49", "", false},
		{"2026-W4", "", false},
	}
	for _, tt := range tests {
		w, err := ParseWeek(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseWeek(%q) error %v, want ok %v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && (w.Monday.Format(time.DateOnly) != tt.monday || w.String() != tt.in) {
			t.Errorf("ParseWeek(%q) = %s Monday %s, want %s", tt.in, w, w.Monday.Format(time.DateOnly), tt.monday)
		}
	}
}

// STARTTLS when the server offers it (smtp://), TLS from the start with
// smtps://; the server's certificate is checked.
func TestDigestOverTLS(t *testing.T) {
	certFile, keyFile := testsupport.TLSCert(t)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemBytes)
	db, _ := testsupport.DB(t)
	f := setup(t, db, true) // for its database and user; the sender is the test's
	u := f.user(t, "ada@example.org")
	f.activity(t, u.ID, time.Now().In(london(t)), "Workshop", 1)
	for i, implicit := range []bool{false, true} {
		srv := testsupport.SMTPWith(t, &tls.Config{Certificates: []tls.Certificate{cert}}, implicit)
		s, err := NewSMTP(srv.URL, &tls.Config{RootCAs: roots, ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		j := &job{cfg: Config{Source: f.store, DB: db, Sender: s, Now: time.Now}, from: &mail.Address{Address: "digest@example.org"}, sent: sentLog{db: db}}
		// A week of its own each time, so that both send.
		payload := fmt.Sprintf(`{"week":"2026-W0%d"}`, i+1)
		if _, err := j.run(testsupport.Context(t), tasktype.Job{ID: "tls", UserID: u.ID, Payload: []byte(payload)}, discardOutput{}); err != nil {
			t.Fatalf("%s: %v", srv.URL, err)
		}
		if msgs := srv.Messages(); len(msgs) != 1 || !msgs[0].TLS {
			t.Errorf("%s: messages %d, over TLS %v", srv.URL, len(msgs), len(msgs) == 1 && msgs[0].TLS)
		}
		// A client that does not trust the certificate sends nothing.
		untrusting, err := NewSMTP(srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		j.cfg.Sender = untrusting
		payload = fmt.Sprintf(`{"week":"2026-W1%d"}`, i+1)
		if _, err := j.run(testsupport.Context(t), tasktype.Job{ID: "tls", UserID: u.ID, Payload: []byte(payload)}, discardOutput{}); err == nil || len(srv.Messages()) != 1 {
			t.Errorf("%s: an untrusted certificate: err %v, %d messages", srv.URL, err, len(srv.Messages()))
		}
	}
}

// The week is the user's: late Sunday in London is already Monday in
// Auckland; an unknown zone counts as Europe/London.
func TestJobWeekInUsersZone(t *testing.T) {
	at := time.Date(2026, 12, 6, 20, 0, 0, 0, time.UTC) // Sunday evening in London
	tests := []struct{ zone, want string }{
		{"Europe/London", "2026-W49"},
		{"Pacific/Auckland", "2026-W50"},
		{"America/Los_Angeles", "2026-W49"},
		{"", "2026-W49"},
		{"Not/AZone", "2026-W49"},
	}
	for _, tt := range tests {
		w, err := jobWeek(tasktype.Job{EnqueuedAt: at}, userLocation(tt.zone))
		if err != nil || w.String() != tt.want {
			t.Errorf("%q: %s %v, want %s", tt.zone, w, err, tt.want)
		}
	}
	if w, err := jobWeek(tasktype.Job{EnqueuedAt: at, Payload: []byte(`{"week":"2026-W40"}`)}, time.UTC); err != nil || w.String() != "2026-W40" {
		t.Errorf("payload week: %s %v", w, err)
	}
}

// The outbox gives up an erased user's digests, and only theirs: by
// their id (an announced erasure) or by a sweep that asks after every
// user it holds a digest of, once each.
func TestOutboxErase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	o := Outbox{Dir: dir}
	ctx := testsupport.Context(t)
	if n, err := o.EraseUser(ctx, 1); n != 0 || err != nil {
		t.Fatalf("outbox never made: %d, %v", n, err)
	}
	names := []string{"otj-digest-2026-W48-user1.eml", "otj-digest-2026-W49-user1.eml", "otj-digest-2026-W49-user12.eml",
		"otj-digest-2026-W49-user2.eml", "notes.txt", "otj-digest-2026-W49-userX.eml"}
	for _, n := range names {
		if err := o.Send(ctx, nil, n, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	left := func() []string {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}
	if n, err := o.EraseUser(ctx, 1); n != 2 || err != nil {
		t.Fatalf("EraseUser(1) = %d, %v; want 2", n, err)
	}
	asked := map[int64]int{}
	n, err := o.Sweep(ctx, func(_ context.Context, id int64) (bool, error) {
		asked[id]++
		return id != 12, nil
	})
	if n != 1 || err != nil {
		t.Fatalf("Sweep = %d, %v; want 1", n, err)
	}
	if want := []string{"notes.txt", "otj-digest-2026-W49-user2.eml", "otj-digest-2026-W49-userX.eml"}; !slices.Equal(left(), want) {
		t.Errorf("left %v, want %v", left(), want)
	}
	if len(asked) != 2 || asked[2] != 1 || asked[12] != 1 {
		t.Errorf("sweep asked after %v, want users 2 and 12 once each", asked)
	}
	if _, err := o.Sweep(ctx, func(context.Context, int64) (bool, error) { return false, errors.New("database down") }); err == nil {
		t.Error("a sweep that cannot ask after a user reports no error")
	}
	if want := []string{"notes.txt", "otj-digest-2026-W49-user2.eml", "otj-digest-2026-W49-userX.eml"}; !slices.Equal(left(), want) {
		t.Errorf("a failed sweep removed files: left %v", left())
	}
}

// The digest as a mail client sees it, parsed from what a real SMTP
// server received: To names the user the body greets; the HTML part is
// a whole document, declared UTF-8 in its part's header and in itself,
// with a title and styles, and both parts link back to the app at
// BASE_URL. Without BASE_URL there is no link to make.
func TestDigestMessageIsComplete(t *testing.T) {
	db, _ := testsupport.DB(t)
	f := setupWith(t, db, false, "https://otj.example.org")
	u := f.user(t, "ada@example.org")
	f.activity(t, u.ID, time.Now().In(london(t)), "Café workshop £5 ✓", 2)
	if e := f.run(t, u.ID); e.Kind != tasktype.EventSucceeded {
		t.Fatalf("outcome %s: %s", e.Kind, e.Error)
	}
	msgs := f.smtp.Messages()
	if len(msgs) != 1 {
		t.Fatalf("server got %d messages", len(msgs))
	}
	got := parse(t, msgs[0].Data)
	to, err := mail.ParseAddress(got.header.Get("To"))
	if err != nil || to.Name != "Ada" || to.Address != "ada@example.org" {
		t.Errorf("To %q = %+v, %v; want Ada <ada@example.org>", got.header.Get("To"), to, err)
	}
	if !strings.Contains(got.text, "Hello Ada,") {
		t.Errorf("text part does not greet Ada:\n%s", got.text)
	}
	ct := partHeader(t, msgs[0].Data, "text/html").Get("Content-Type")
	if _, params, err := mime.ParseMediaType(ct); err != nil || !strings.EqualFold(params["charset"], "utf-8") {
		t.Errorf("HTML part's Content-Type %q: no UTF-8 charset", ct)
	}
	subj, err := new(mime.WordDecoder).DecodeHeader(got.header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	html := got.html
	head, body, ok := strings.Cut(html, "<body")
	if !ok {
		t.Fatalf("HTML part has no body:\n%s", html)
	}
	for _, want := range []string{`<html lang="en">`, `<meta charset="utf-8">`, "<title>" + template.HTMLEscapeString(subj) + "</title>", "<style>"} {
		if !strings.Contains(head, want) {
			t.Errorf("HTML head lacks %s:\n%s", want, head)
		}
	}
	if !strings.Contains(body, `<a href="https://otj.example.org/tasks/">`) || !strings.Contains(body, "Café workshop £5 ✓") {
		t.Errorf("HTML body lacks the link to the app, or the title:\n%s", body)
	}
	if !strings.Contains(got.text, "https://otj.example.org/tasks/") {
		t.Errorf("text part lacks the link to the app:\n%s", got.text)
	}

	// Without BASE_URL the app's address is unknown: no link at all.
	g := setupWith(t, db, false, "")
	v := g.user(t, "bo@example.org")
	g.activity(t, v.ID, time.Now().In(london(t)), "Reading", 1)
	if e := g.run(t, v.ID); e.Kind != tasktype.EventSucceeded {
		t.Fatalf("outcome %s: %s", e.Kind, e.Error)
	}
	if p := parse(t, g.smtp.Messages()[0].Data); strings.Contains(p.html, "<a ") || strings.Contains(p.text, "http") {
		t.Errorf("a digest without BASE_URL links somewhere:\n%s\n%s", p.text, p.html)
	}
}

// partHeader is the header of the message's first part of media type want.
func partHeader(t *testing.T, eml []byte, want string) textproto.MIMEHeader {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(eml))
	if err != nil {
		t.Fatal(err)
	}
	var walk func(ct string, body io.Reader) textproto.MIMEHeader
	walk = func(ct string, body io.Reader) textproto.MIMEHeader {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || !strings.HasPrefix(mt, "multipart/") {
			return nil
		}
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				return nil
			}
			pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
			if pt == want {
				return p.Header
			}
			if h := walk(p.Header.Get("Content-Type"), p); h != nil {
				return h
			}
		}
	}
	h := walk(m.Header.Get("Content-Type"), m.Body)
	if h == nil {
		t.Fatalf("no %s part:\n%s", want, eml)
	}
	return h
}
