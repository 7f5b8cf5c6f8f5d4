package apptest

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/analytics"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// TestAnalyticsForEveryUser runs app analytics --all beside app web and
// app worker, as an operator would: one job per user, in batches; each
// user then sees their own charts at /tasks/{id}/analytics, and another
// user's are a 404. The button starts one too, behind the cross-site
// check.
func TestAnalyticsForEveryUser(t *testing.T) {
	t.Parallel()
	env := baseEnv(t)
	web := startApp(t, env, "web")
	base := web.waitOutput(t, runningRE)
	nj := web.waitJoin(t)
	cliEnv := withEnv(env, "NATS_URL", nj.URL)
	startApp(t, cliEnv, "worker")

	dir := env["OTJ_DATA_DIR"]
	alice := ensureUser(t, dir, "alice@example.org")
	bob := ensureUser(t, dir, "bob@example.org")
	ensureUser(t, dir, "carol@example.org")
	db := dataDB(t, dir)
	if _, err := db.ExecContext(testsupport.Context(t), `UPDATE app_user SET selected_spec = 'ST0787' WHERE id = ?`, alice.ID); err != nil {
		t.Fatal(err)
	}
	insertActivities(t, dir, alice.ID, []activityFixture{
		{date: "2026-02-01", title: "Workshop <b>bold</b>", typ: "workshop", quality: "good", hours: 3, ksbs: []string{"K1"}},
		{date: "2026-02-03", title: "Reading", typ: "self_study", quality: "draft", hours: 1.5},
	})
	insertActivities(t, dir, bob.ID, []activityFixture{{date: "2026-01-01", title: "Bob's", typ: "other", quality: "draft", hours: 7}})

	if _, err := opCLIErr(t, cliEnv, "analytics"); err == nil || !strings.Contains(err.Error(), "--all") {
		t.Errorf("app analytics without --all: %v, want an error naming --all", err)
	}
	if _, err := opCLIErr(t, cliEnv, "analytics", "--all", "--batch", "0"); err == nil || !strings.Contains(err.Error(), "--batch 0") {
		t.Errorf("app analytics --batch 0: %v, want an error naming --batch", err)
	}
	out := opCLI(t, cliEnv, "analytics", "--all", "--batch", "2")
	if want := "queued 3 analytics jobs, one per user, in 2 batches\n"; out != want {
		t.Errorf("app analytics --all printed %q, want %q", out, want)
	}

	store := readTasks(t, db)
	byUser := map[int64]tasktype.Task{}
	testsupport.Eventually(t, 30*time.Second, "the analytics jobs never all completed", func() bool {
		rows, err := store.List(testsupport.Context(t), tasktype.Filter{Type: analytics.Type})
		if err != nil {
			return false
		}
		for _, r := range rows {
			if r.Status == tasktype.StatusCompleted {
				byUser[r.UserID] = r
			}
		}
		return len(rows) == 3 && len(byUser) == 3
	})

	signer := testsupport.Signer(t)
	ca := testsupport.Client(t, base, signer, alice.ID)
	resp, page := testsupport.Get(t, ca, base+"/tasks/"+byUser[alice.ID].ID+"/analytics")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("owner's charts: %d\n%s", resp.StatusCode, page)
	}
	for _, want := range []string{"<svg", `<th scope="row">Workshop</th><td>1</td><td>3</td>`, `<th scope="row">Seminars</th><td>3</td>`,
		`<th scope="row">Other off-the-job training</th><td>1.5</td>`, `<th scope="row">K1 <span class="ksb-title">Systems thinking</span></th><td>1</td><td>3</td><td>Yes</td>`} {
		if !strings.Contains(page, want) {
			t.Errorf("owner's charts lack %q", want)
		}
	}
	if resp, _ := testsupport.Get(t, ca, base+"/tasks/"+byUser[bob.ID].ID+"/analytics"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("another user's charts: %d, want 404", resp.StatusCode)
	}

	// The task list offers the button and the charts' link.
	_, list := testsupport.Get(t, ca, base+"/tasks/")
	if !strings.Contains(list, `action="/tasks/run-analytics"`) || !strings.Contains(list, "/tasks/"+byUser[alice.ID].ID+"/analytics") {
		t.Errorf("task list lacks the Run analytics button or the charts' link:\n%s", list)
	}
	key := keyRE.FindStringSubmatch(list)[1]
	if resp, _ := testsupport.PostForm(t, ca, base+"/tasks/run-analytics", url.Values{"key": {key}}, "Sec-Fetch-Site", "cross-site"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST run-analytics: %d, want 403", resp.StatusCode)
	}
	resp, _ = testsupport.PostForm(t, ca, base+"/tasks/run-analytics", url.Values{"key": {key}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST run-analytics = %d", resp.StatusCode)
	}
}

// An analytics result the log has moved past says so on its page: a
// change made through the log's own form after the figures were computed
// reaches the page through the log's event stream.
func TestAnalyticsPageSaysWhenTheLogHasMoved(t *testing.T) {
	t.Parallel()
	env := baseEnv(t)
	p := startApp(t, env, "all")
	base := p.waitOutput(t, runningRE)
	dir := env["OTJ_DATA_DIR"]
	alice := ensureUser(t, dir, "alice@example.org")
	insertActivities(t, dir, alice.ID, []activityFixture{{date: "2026-02-01", title: "Workshop", typ: "workshop", quality: "good", hours: 3}})

	c := testsupport.Client(t, base, testsupport.Signer(t), alice.ID)
	_, page := testsupport.Get(t, c, base+"/tasks/")
	resp, _ := testsupport.PostForm(t, c, base+"/tasks/run-analytics", url.Values{"key": {keyRE.FindStringSubmatch(page)[1]}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST run-analytics = %d", resp.StatusCode)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	charts := base + "/tasks/" + loc.Query().Get("queued") + "/analytics"
	const moved = "has changed since these figures were computed"
	testsupport.Eventually(t, 30*time.Second, "analytics never completed", func() bool {
		r, _ := testsupport.Get(t, c, charts)
		return r.StatusCode == http.StatusOK
	})
	if _, body := testsupport.Get(t, c, charts); strings.Contains(body, moved) {
		t.Fatalf("fresh figures say the log has moved:\n%s", body)
	}
	form := url.Values{"title": {"Logged after the charts"}, "activity_date": {"2026-02-02"}, "duration_hours": {"1.5"},
		"activity_type": {"workshop"}, "evidence_quality": {"draft"}}
	if resp, body := testsupport.PostForm(t, c, base+"/activities/new", form); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /activities/new = %d:\n%s", resp.StatusCode, body)
	}
	testsupport.Eventually(t, 30*time.Second, "the charts never said the log has moved", func() bool {
		_, body := testsupport.Get(t, c, charts)
		return strings.Contains(body, moved)
	})
	p.shutdown(t)
}
