package apptest

import (
	"archive/zip"
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/account"
	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/platform/testsupport"
)

// The account's two actions through the whole app, on each broker: the
// export is a zip of the user's own data, downloaded as any result; a
// cross-site delete is refused and erases nothing; the confirmed delete
// erases the user, and a projection rebuild afterwards brings none of
// their tasks back, while another user keeps everything.
func TestAccountExportAndEraseEndToEnd(t *testing.T) {
	eachBroker(t, func(t *testing.T, broker map[string]string) {
		env := baseEnv(t)
		for k, v := range broker {
			env[k] = v
		}
		web := startApp(t, env, "web")
		base := web.waitOutput(t, runningRE)
		cliEnv := withEnv(env, "NATS_URL", web.waitJoin(t).URL)
		startApp(t, cliEnv, "worker")
		dir := env["OTJ_DATA_DIR"]
		alice := ensureUser(t, dir, "alice@example.org")
		bob := ensureUser(t, dir, "bob@example.org")
		insertActivities(t, dir, alice.ID, []activityFixture{{date: "2026-02-01", title: "Alice's workshop", typ: "workshop", quality: "good", hours: 3}})
		insertActivities(t, dir, bob.ID, []activityFixture{{date: "2026-01-01", title: "Bob's secret", typ: "other", quality: "draft", hours: 1}})
		signer := testsupport.Signer(t)
		ca := testsupport.Client(t, base, signer, alice.ID)
		cb := testsupport.Client(t, base, signer, bob.ID)

		aliceReport := startAndDownload(t, ca, base, "/tasks/", "/tasks/generate-report")
		bobReport := startAndDownload(t, cb, base, "/tasks/", "/tasks/generate-report")
		zipID := startAndDownload(t, ca, base, "/account", "/account/export")
		_, body := testsupport.Get(t, ca, base+"/tasks/"+zipID+"/download")
		zr, err := zip.NewReader(bytes.NewReader([]byte(body)), int64(len(body)))
		if err != nil {
			t.Fatalf("export is not a zip: %v", err)
		}
		var names []string
		for _, f := range zr.File {
			names = append(names, f.Name)
		}
		joined := strings.Join(names, " ")
		if len(names) != 3 || !strings.Contains(joined, account.ActivitiesFile) || !strings.Contains(joined, account.TasksFile) ||
			!strings.Contains(joined, account.ResultsDir+aliceReport+"-") || strings.Contains(body, "Bob's secret") || strings.Contains(body, bobReport) {
			t.Errorf("export holds %v; want alice's CSV, task history and report, nothing of bob's", names)
		}

		if resp, _ := testsupport.PostForm(t, ca, base+"/account/delete", url.Values{"confirm": {alice.Email}}, "Sec-Fetch-Site", "cross-site"); resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-site delete = %d, want 403", resp.StatusCode)
		}
		store := activity.NewStore(dataDB(t, dir))
		if _, err := store.UserByID(testsupport.Context(t), alice.ID); err != nil {
			t.Fatalf("a refused delete erased alice: %v", err)
		}
		resp, page := testsupport.PostForm(t, ca, base+"/account/delete", url.Values{"confirm": {alice.Email}})
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Your account is deleted") {
			t.Fatalf("delete = %d:\n%s", resp.StatusCode, page)
		}
		opCLI(t, cliEnv, "projections", "rebuild")
		tasksDB := readTasks(t, dataDB(t, dir))
		if ts, err := tasksDB.ListForUser(testsupport.Context(t), alice.ID, 10); err != nil || len(ts) != 0 {
			t.Errorf("alice's tasks after erase and rebuild: %d, %v; want none", len(ts), err)
		}
		if _, err := store.UserByID(testsupport.Context(t), alice.ID); err == nil {
			t.Error("alice's user row survived the erase")
		}
		if resp, _ := testsupport.Get(t, cb, base+"/tasks/"+bobReport+"/download"); resp.StatusCode != http.StatusOK {
			t.Errorf("bob's report after alice's erase = %d, want 200", resp.StatusCode)
		}
	})
}

// startAndDownload posts the form on page to action, with the page's
// key, and waits until the task it started offers its download; it
// returns the task's id.
func startAndDownload(t *testing.T, c *http.Client, base, page, action string) string {
	t.Helper()
	_, body := testsupport.Get(t, c, base+page)
	m := keyRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no form key on %s", page)
	}
	resp, _ := testsupport.PostForm(t, c, base+action, url.Values{"key": {m[1]}})
	q := queuedRE.FindStringSubmatch(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || q == nil {
		t.Fatalf("POST %s = %d, Location %q", action, resp.StatusCode, resp.Header.Get("Location"))
	}
	id := q[1]
	testsupport.Eventually(t, 30*time.Second, "task "+id+" never completed", func() bool {
		_, list := testsupport.Get(t, c, base+"/tasks/")
		return strings.Contains(list, `href="/tasks/`+id+`/download"`)
	})
	return id
}
