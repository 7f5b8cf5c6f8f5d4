package apptest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/platform/testsupport"
)

// secretMark starts every personal string the test plants: an email
// address, a name, titles, tags, notes, cells of an imported file and a
// mail server's reply that quotes an address. No message the app keeps
// on the broker outside the results bucket may hold it, in any case.
const secretMark = "zebra"

// Every job type through the real path (app web with its projection,
// app worker, a NATS server of the test's whose streams the test reads
// raw), with personal text wherever a user can put it: the events in
// TASKS, ACTIVITY and every other stream hold ids and numbers only, and
// the pages still say what the user needs, the digest's address built
// from the database as the page is read.
func TestEventsCarryNoPersonalText(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { eventsCarryNoPersonalText(t, baseEnv(t)) })
	t.Run("postgres", func(t *testing.T) {
		env := baseEnv(t)
		usePostgres(t, env, testsupport.PostgresURL(t))
		eventsCarryNoPersonalText(t, env)
	})
}

func eventsCarryNoPersonalText(t *testing.T, env map[string]string) {
	n := startNATSNode(t)
	maps.Copy(env, n.join().env())
	mail := testsupport.SMTP(t)
	env["SMTP_URL"], env["MAIL_FROM"] = mail.URL, "digest@example.org"
	web := startApp(t, env, "web")
	base := web.waitOutput(t, runningRE)
	worker := startApp(t, env, "worker")

	dir := env["OTJ_DATA_DIR"]
	owner := ensureUser(t, dir, "Zebra.Owner@example.org")
	bounced := ensureUser(t, dir, "zebra.bounce@example.org")
	db := dataDB(t, dir)
	if _, err := db.NewRaw(`UPDATE app_user SET name = ? WHERE id IN (?, ?)`, "Zebra Q. Person", owner.ID, bounced.ID).Exec(testsupport.Context(t)); err != nil {
		t.Fatal(err)
	}
	today := time.Now().In(mustLondon(t)).Format(time.DateOnly)
	for _, u := range []int64{owner.ID, bounced.ID} {
		insertActivities(t, dir, u, []activityFixture{{date: today, title: "Zebra-secret-title", typ: "workshop", quality: "good", hours: 2,
			desc: "Zebra-secret-description", notes: "Zebra-secret-notes", tags: []string{"zebra-tag"}, links: []string{"https://zebra.example.org/x"}}})
	}

	signer := testsupport.Signer(t)
	c, cb := testsupport.Client(t, base, signer, owner.ID), testsupport.Client(t, base, signer, bounced.ID)
	start := func(c *http.Client, page, action string) string {
		t.Helper()
		_, body := testsupport.Get(t, c, base+page)
		m := keyRE.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("%s has no form key:\n%s", page, body)
		}
		resp, body := testsupport.PostForm(t, c, base+action, url.Values{"key": {m[1]}})
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusSeeOther || err != nil || loc.Query().Get("queued") == "" {
			t.Fatalf("POST %s = %d to %q:\n%s", action, resp.StatusCode, resp.Header.Get("Location"), body)
		}
		return "/tasks/" + loc.Query().Get("queued")
	}
	wait := func(c *http.Client, task, badge string, want ...string) {
		t.Helper()
		page := waitImport(t, c, base+task, badge)
		for _, w := range want {
			if !strings.Contains(page, w) {
				t.Errorf("%s's page lacks %q:\n%s", task, w, page)
			}
		}
	}

	wait(c, start(c, "/tasks/", "/tasks/generate-report"), "badge-completed", "1 activity")
	wait(c, start(c, "/tasks/", "/tasks/run-analytics"), "badge-completed", "Readiness")
	digest := start(c, "/tasks/", "/tasks/send-digest")
	// The address is in no event: the page reads it from the database.
	wait(c, digest, "badge-completed", "Sent to zebra.owner@example.org: the week of ")
	if _, list := testsupport.Get(t, c, base+"/tasks/"); !strings.Contains(list, "Sent to zebra.owner@example.org: the week of ") {
		t.Errorf("the task list does not say where the digest went:\n%s", list)
	}
	// A mail server's refusal quoting the address is shown without it.
	mail.Reject(func(int) *smtp.SMTPError {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<ZEBRA.BOUNCE@example.org>: mailbox unavailable"}
	})
	wait(cb, start(cb, "/tasks/", "/tasks/send-digest"), "badge-failed", "The mail server refused your digest: 550 5.1.1 &lt;your address&gt;: mailbox unavailable")
	mail.Reject(nil)
	wait(c, start(c, "/account", "/account/export"), "badge-completed", "1 activities")

	// An import whose rows are refused names their lines and columns,
	// not their cells; one that is taken says how many.
	hdr := "date,title,hours,type,evidence_quality,tags,ksbs,links,description,notes,Zebra-own-column\r\n"
	bad := hdr + "Zebra-date,Zebra-title,Zebra-hours,Zebra-type,Zebra-quality,zebra-tag,ZebraKSB,zebra:link,d,n,Zebra-cell\r\n"
	wait(c, uploadImport(t, c, base, []byte(bad)), "badge-failed",
		"Line 2: the date is not a date like 2026-03-04; the hours are not a number; the type is not one of",
		"the evidence quality is not one of", "link 1 of the links cell is not an http(s) address")
	withKSB := hdr + today + ",Zebra-imported-title,1,Workshop,Draft,zebra-tag,ZebraKSB,,Zebra-d,Zebra-n,Zebra-cell\r\n"
	if err := activity.NewStore(db).UpdateSettings(testsupport.Context(t), owner.ID, activity.Settings{SelectedSpec: "ST0787", Timezone: "Europe/London"}); err != nil {
		t.Fatal(err)
	}
	wait(c, uploadImport(t, c, base, []byte(withKSB)), "badge-failed", "Line 2: KSB 1 of the row is not one of standard ST0787")
	good := hdr + today + ",Zebra-imported-title,1,Workshop,Draft,zebra-tag,,https://zebra.example.org,Zebra-d,Zebra-n,Zebra-cell\r\n"
	wait(c, uploadImport(t, c, base, []byte(good)), "badge-completed", "1 activity imported")

	// A change through the activity form goes to ACTIVITY.
	form := url.Values{"title": {"Zebra-form-title"}, "activity_date": {today}, "duration_hours": {"1"},
		"activity_type": {"other"}, "evidence_quality": {"draft"}, "description": {"Zebra-form-description"}}
	if resp, body := testsupport.PostForm(t, c, base+"/activities/new", form); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("create activity = %d:\n%s", resp.StatusCode, body)
	}

	js, err := natsjs.New(n.join().connect(t, "reader"))
	if err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, 15*time.Second, "the activity events never reached the stream", func() bool {
		return streamCount(t, js, "ACTIVITY") >= 2 // the import's activity, the form's
	})
	worker.shutdown(t)
	web.shutdown(t)

	read := 0
	names := js.StreamNames(testsupport.Context(t))
	for name := range names.Name() {
		if strings.HasPrefix(name, "OBJ_") {
			continue // the results bucket: the files the user asked for
		}
		read += eachMessage(t, js, name, func(subject string, hdr map[string][]string, data []byte) {
			text := strings.ToLower(subject + fmt.Sprint(hdr) + string(data))
			if strings.Contains(text, secretMark) {
				t.Errorf("stream %s, %s holds personal text:\n%s", name, subject, data)
			}
		})
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	if read < 15 {
		t.Errorf("read %d messages in all; the jobs above make more", read)
	}
}

// streamCount is how many messages stream holds.
func streamCount(t *testing.T, js natsjs.JetStream, stream string) uint64 {
	t.Helper()
	s, err := js.Stream(testsupport.Context(t), stream)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Msgs
}

// eachMessage calls fn with every message stream holds, read one by one
// by sequence, and returns how many there were.
func eachMessage(t *testing.T, js natsjs.JetStream, stream string, fn func(subject string, hdr map[string][]string, data []byte)) int {
	t.Helper()
	ctx := testsupport.Context(t)
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	st := s.CachedInfo().State
	n := 0
	for seq := st.FirstSeq; seq <= st.LastSeq && st.Msgs > 0; seq++ {
		gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		m, err := s.GetMsg(gctx, seq)
		cancel()
		if errors.Is(err, natsjs.ErrMsgNotFound) {
			continue // deleted
		}
		if err != nil {
			t.Fatalf("%s message %d: %v", stream, seq, err)
		}
		fn(m.Subject, m.Header, m.Data)
		n++
	}
	return n
}
