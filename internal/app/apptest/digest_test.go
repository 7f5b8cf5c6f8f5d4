package apptest

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/platform/testsupport"
)

// The digest through the whole app: "Send me my digest now" on the task
// list sends one mail through SMTP_URL, and "Read the digest" shows it to
// its owner only; the POST is refused cross-site. Without SMTP_URL it
// lands in the data dir's outbox.
func TestDigestFlow(t *testing.T) {
	for _, viaSMTP := range []bool{true, false} {
		name := map[bool]string{true: "smtp", false: "outbox"}[viaSMTP]
		t.Run(name, func(t *testing.T) {
			env := baseEnv(t)
			var mail *testsupport.SMTPServer
			if viaSMTP {
				mail = testsupport.SMTP(t)
				env["SMTP_URL"] = mail.URL
				env["MAIL_FROM"] = "OTJ Helper <digest@example.org>"
			}
			p := startApp(t, env, "all")
			base := p.waitOutput(t, runningRE)
			alice := ensureUser(t, env["OTJ_DATA_DIR"], "alice@example.org")
			bob := ensureUser(t, env["OTJ_DATA_DIR"], "bob@example.org")
			today := time.Now().In(mustLondon(t)).Format(time.DateOnly)
			insertActivities(t, env["OTJ_DATA_DIR"], alice.ID, []activityFixture{{date: today, title: "Digest <b>workshop</b>", typ: "workshop", quality: "good", hours: 2}})

			signer := testsupport.Signer(t)
			ca, cb := testsupport.Client(t, base, signer, alice.ID), testsupport.Client(t, base, signer, bob.ID)
			_, page := testsupport.Get(t, ca, base+"/tasks/")
			if !strings.Contains(page, `action="/tasks/send-digest"`) || !strings.Contains(page, "Send me my digest now") {
				t.Fatalf("task list has no digest button:\n%s", page)
			}
			if resp, _ := testsupport.PostForm(t, ca, base+"/tasks/send-digest", url.Values{"key": {"X1"}}, "Sec-Fetch-Site", "cross-site"); resp.StatusCode != http.StatusForbidden {
				t.Errorf("cross-site POST = %d, want 403", resp.StatusCode)
			}
			key := keyRE.FindStringSubmatch(page)[1]
			resp, _ := testsupport.PostForm(t, ca, base+"/tasks/send-digest", url.Values{"key": {key}})
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("POST send-digest = %d", resp.StatusCode)
			}
			loc, _ := url.Parse(resp.Header.Get("Location"))
			jobID := loc.Query().Get("queued")
			read := "/tasks/" + jobID + "/digest"
			testsupport.Eventually(t, 30*time.Second, "digest never completed", func() bool {
				_, page = testsupport.Get(t, ca, base+"/tasks/")
				return strings.Contains(page, `href="`+read+`"`)
			})
			if !strings.Contains(page, "Read the digest") {
				t.Errorf("list lacks the link text:\n%s", page)
			}
			resp, body := testsupport.Get(t, ca, base+read)
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, "alice@example.org") ||
				!strings.Contains(body, "2.0 hours of 6.0") || !strings.Contains(body, "Digest &lt;b&gt;workshop&lt;/b&gt;") {
				t.Fatalf("read the digest = %d:\n%s", resp.StatusCode, body)
			}
			if resp, _ := testsupport.Get(t, cb, base+read); resp.StatusCode != http.StatusNotFound {
				t.Errorf("bob reading alice's digest: %d, want 404", resp.StatusCode)
			}
			if viaSMTP {
				if msgs := mail.Messages(); len(msgs) != 1 || msgs[0].To[0] != "alice@example.org" || msgs[0].From != "digest@example.org" {
					t.Errorf("server got %+v", msgs)
				}
			} else {
				ents, err := os.ReadDir(filepath.Join(env["OTJ_DATA_DIR"], "outbox"))
				if err != nil || len(ents) != 1 || !strings.HasSuffix(ents[0].Name(), ".eml") {
					t.Errorf("outbox: %v %v", ents, err)
				}
			}
			p.shutdown(t)
		})
	}
}

func mustLondon(t *testing.T) *time.Location {
	loc, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}
