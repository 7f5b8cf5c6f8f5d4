package apptest

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/reports"
	"github.com/otjhelper/otj/platform/testsupport"
)

// TestImportEndToEnd: a report of one user's log, uploaded by another
// through app web, is imported by app worker (on PostgreSQL a worker with
// no data dir, as on another host: it reads the upload from the shared
// database), and gives that user the same report; uploaded again, it
// adds nothing.
func TestImportEndToEnd(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { importEndToEnd(t, baseEnv(t)) })
	t.Run("postgres", func(t *testing.T) {
		env := baseEnv(t)
		usePostgres(t, env, testsupport.PostgresURL(t))
		importEndToEnd(t, env)
	})
}

var taskPathRE = regexp.MustCompile(`^/tasks/[A-Za-z0-9_-]+$`)

func importEndToEnd(t *testing.T, env map[string]string) {
	webProc := startApp(t, env, "web")
	base := webProc.waitOutput(t, runningRE)
	natsURL := webProc.waitOutput(t, joinRE)
	workerEnv := map[string]string{}
	for k, v := range env {
		workerEnv[k] = v
	}
	workerEnv["NATS_URL"] = natsURL
	if env["DATABASE_URL"] != "" {
		file := filepath.Join(t.TempDir(), "not-a-dir")
		if err := os.WriteFile(file, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		workerEnv["OTJ_DATA_DIR"] = filepath.Join(file, "data")
		workerEnv["NATS_TOKEN"] = webProc.waitJoin(t).Token
	}
	workerProc := startApp(t, workerEnv, "worker")

	ctx := testsupport.Context(t)
	db := dataDB(t, env["OTJ_DATA_DIR"])
	store := activity.NewStore(db)
	alice, err := activity.Fill(ctx, db, activity.DemoOptions{Email: "alice@example.org", Activities: 300, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	bob := ensureUser(t, env["OTJ_DATA_DIR"], "bob@example.org")
	if err := store.UpdateSettings(ctx, bob.ID, activity.Settings{SelectedSpec: alice.SelectedSpec, Timezone: "Europe/London"}); err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if _, err := reports.WriteCSV(ctx, &want, store, alice.ID); err != nil {
		t.Fatal(err)
	}

	signer := testsupport.Signer(t)
	cb := testsupport.Client(t, base, signer, bob.ID)
	ca := testsupport.Client(t, base, signer, alice.ID)
	// A bad row fails the import, naming the row, and imports nothing.
	bad := strings.Replace(want.String(), "\r\n", "\r\n2026-01-01,Bad,many,Workshop,Draft,,,,,\r\n", 1)
	task := uploadImport(t, cb, base, []byte(bad))
	page := waitImport(t, cb, base+task, "badge-failed")
	if !strings.Contains(page, "Nothing was imported: 1 row could not be read. Line 2: the hours are not a number.") {
		t.Errorf("failed import's page lacks the bad row:\n%s", page)
	}
	// Retrying would read the same file: the page offers to fix it instead.
	if strings.Contains(page, task+`/retry"`) || !strings.Contains(page, `<a href="/activities/import">Fix the file and upload it again</a>`) {
		t.Errorf("failed import's page offers Retry, or not the upload form:\n%s", page)
	}
	// The task list, read from the projection's row, does the same.
	if _, list := testsupport.Get(t, cb, base+"/tasks/"); strings.Contains(list, task+`/retry"`) ||
		!strings.Contains(list, `<a class="fix" href="/activities/import">Fix the file and upload it again</a>`) {
		t.Errorf("the task list offers Retry on the failed import, or not the upload form:\n%s", list)
	}
	// Before a standard is chosen, a file naming KSBs fails with one
	// short sentence that says what to do, and links to the settings.
	carol := ensureUser(t, env["OTJ_DATA_DIR"], "carol@example.org")
	cc := testsupport.Client(t, base, signer, carol.ID)
	task = uploadImport(t, cc, base, want.Bytes())
	page = waitImport(t, cc, base+task, "badge-failed")
	const noStandard = "Nothing was imported: the file names KSBs, and you have not chosen your apprenticeship standard yet. Choose it in Settings, then upload the file again."
	if !strings.Contains(page, noStandard) || strings.Count(page, "standard") > 4 || strings.Contains(page, task+`/retry"`) ||
		!strings.Contains(page, `<a href="/settings">Choose your standard in Settings</a>`) {
		t.Errorf("import before choosing a standard: page lacks the sentence or the settings link, or offers Retry:\n%s", page)
	}
	for _, summary := range []string{"300 activities imported", "0 activities imported, 300 already in the log"} {
		task := uploadImport(t, cb, base, want.Bytes())
		page := waitImport(t, cb, base+task, "badge-completed")
		if !strings.Contains(page, summary) || !strings.Contains(page, "Activity import") {
			t.Errorf("task page lacks %q:\n%s", summary, page)
		}
		if resp, _ := testsupport.Get(t, ca, base+task); resp.StatusCode != http.StatusNotFound {
			t.Errorf("alice sees bob's import: %d", resp.StatusCode)
		}
	}
	var got bytes.Buffer
	if _, err := reports.WriteCSV(ctx, &got, store, bob.ID); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Errorf("bob's report after the import differs from alice's (%d and %d bytes)", got.Len(), want.Len())
	}
	workerProc.shutdown(t)
	webProc.shutdown(t)
}

// uploadImport posts file through the import form and returns the
// task's path it redirects to.
func uploadImport(t *testing.T, c *http.Client, base string, file []byte) string {
	t.Helper()
	_, page := testsupport.Get(t, c, base+"/activities/import")
	key := keyRE.FindStringSubmatch(page)[1]
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	mw.WriteField("key", key)
	fw, _ := mw.CreateFormFile("file", "otj-full-report.csv")
	fw.Write(file)
	mw.Close()
	req, _ := http.NewRequest("POST", base+"/activities/import", &form)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	task := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !taskPathRE.MatchString(task) {
		t.Fatalf("POST /activities/import = %d to %q", resp.StatusCode, task)
	}
	return task
}

// waitImport polls the task's page until it shows badge and returns it.
func waitImport(t *testing.T, c *http.Client, u, badge string) string {
	t.Helper()
	var page string
	testsupport.Eventually(t, 30*time.Second, "import never showed "+badge, func() bool {
		_, page = testsupport.Get(t, c, u)
		return strings.Contains(page, badge)
	})
	return page
}
