package web_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nuid"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/modules/web"
	"github.com/otjhelper/otj/platform/testsupport"
)

// reportFor is a full_report handler that writes a file naming the job's
// user, and holds the attempts of the users in hold until its context
// ends, so that a test can keep one user's task running.
func reportFor(hold ...int64) tasktype.HandlerFunc {
	return func(ctx context.Context, job tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
		for _, u := range hold {
			if job.UserID == u {
				<-ctx.Done()
				return tasktype.Result{}, ctx.Err()
			}
		}
		w, err := out.Create("report.csv", "text/csv")
		if err != nil {
			return tasktype.Result{}, err
		}
		fmt.Fprintf(w, "the report of user %d\n", job.UserID)
		return tasktype.Result{Summary: "1 line"}, nil
	}
}

// completedReport starts a report for c's user and waits until it is
// completed; it returns the task's row.
func completedReport(t *testing.T, f *fixture, c *http.Client, userID int64) tasktype.Task {
	t.Helper()
	id := startReport(t, f, c)
	waitForStatus(t, f, c, "/tasks/"+id, tasktype.StatusCompleted)
	row, err := readTasks(t, f.db).GetForUser(testsupport.Context(t), userID, id)
	if err != nil {
		t.Fatal(err)
	}
	return row
}

// A succeeded event that names another job's result, as anyone who can
// publish on the broker could forge it, neither completes the task nor
// serves the other user's file.
func TestForgedResultReferenceIsRefused(t *testing.T) {
	t.Parallel()
	var bobID int64 // set before any job of bob's runs
	f := liveFixture(t, 0, func(r *tasks.Registry) error {
		return r.Register(reportType, func(ctx context.Context, job tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
			return reportFor(bobID)(ctx, job, out)
		}, tasktype.Policy{})
	})
	bobID = f.bob.ID
	alice, bob := f.client(t, f.alice), f.client(t, f.bob)
	theirs := completedReport(t, f, alice, f.alice.ID)

	id := startReport(t, f, bob)
	waitForStatus(t, f, bob, "/tasks/"+id, tasktype.StatusRunning)
	ctx := testsupport.Context(t)
	last, err := f.broker.Last(ctx, f.bob.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	forged := tasktype.Event{
		ID: nuid.Next(), Kind: tasktype.EventSucceeded, JobID: id, JobType: reportType, UserID: f.bob.ID,
		Time: time.Now().UTC(), Attempt: last.Attempt, Summary: "1 line",
		Result: &tasktype.ResultRef{Object: theirs.ResultPath, Name: "report.csv", ContentType: "text/csv",
			Size: uint64(theirs.ResultSize), Digest: theirs.Digest},
	}
	seq, err := f.broker.Append(ctx, forged, last.Seq)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := f.proj.WaitFor(wctx, seq); err != nil {
		t.Fatal(err)
	}
	row, err := readTasks(t, f.db).GetForUser(ctx, f.bob.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	if row.Status == tasktype.StatusCompleted || row.ResultPath != "" {
		t.Fatalf("forged outcome applied: status %s, result %q (alice's is %q)", row.Status, row.ResultPath, theirs.ResultPath)
	}
	code, body := getBody(t, bob, f.srv.URL+"/tasks/"+id+"/download")
	if code != http.StatusNotFound || strings.Contains(body, "the report of user") {
		t.Fatalf("bob's download = %d:\n%s", code, body)
	}
}

// A row that names another job's file (written before the projection
// checked references, or by hand) is still not served.
func TestDownloadServesOnlyTheTasksOwnResult(t *testing.T) {
	t.Parallel()
	f := liveFixture(t, 0, func(r *tasks.Registry) error { return r.Register(reportType, reportFor(), tasktype.Policy{}) })
	alice, bob := f.client(t, f.alice), f.client(t, f.bob)
	theirs := completedReport(t, f, alice, f.alice.ID)
	own := completedReport(t, f, bob, f.bob.ID)

	_, err := f.db.NewUpdate().Table("task_result").
		Set("result_path = ?", theirs.ResultPath).Set("result_digest = ?", theirs.Digest).Set("result_size = ?", theirs.ResultSize).
		Where("id = ?", own.ID).Exec(testsupport.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	code, body := getBody(t, bob, f.srv.URL+"/tasks/"+own.ID+"/download")
	if code != http.StatusNotFound || strings.Contains(body, "the report of user") {
		t.Fatalf("download of a row naming alice's object = %d:\n%s", code, body)
	}
}

// A stored file whose digest is not the one the job's outcome recorded
// (replaced in the bucket) is not served.
func TestDownloadRefusesDigestMismatch(t *testing.T) {
	t.Parallel()
	f := liveFixture(t, 0, func(r *tasks.Registry) error { return r.Register(reportType, reportFor(), tasktype.Policy{}) })
	alice := f.client(t, f.alice)
	row := completedReport(t, f, alice, f.alice.ID)
	if code, body := getBody(t, alice, f.srv.URL+"/tasks/"+row.ID+"/download"); code != http.StatusOK || !strings.Contains(body, "the report of user") {
		t.Fatalf("download before the swap = %d:\n%s", code, body)
	}
	// The same length, so that only the digest tells the files apart.
	swapped := "swapped" + strings.Repeat(".", int(row.ResultSize)-8) + "\n"
	if _, err := f.broker.Put(testsupport.Context(t), row.ResultPath, "report.csv", "text/csv", strings.NewReader(swapped)); err != nil {
		t.Fatal(err)
	}
	code, body := getBody(t, alice, f.srv.URL+"/tasks/"+row.ID+"/download")
	if code != http.StatusNotFound || strings.Contains(body, "swapped") {
		t.Fatalf("download after the swap = %d:\n%s", code, body)
	}
}

// When the results bucket is full, the job fails at once, not after
// every attempt, with a sentence its owner can act on; the server's
// wording is kept for operators.
func TestFullResultStoreFailsWithPlainSentence(t *testing.T) {
	t.Parallel()
	const full = "There is no room to store this report right now."
	f := liveFixtureWith(t, liveOptions{
		register: func(r *tasks.Registry) error {
			return r.Register(reportType, func(_ context.Context, _ tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
				w, err := out.Create("report.csv", "text/csv")
				if err != nil {
					return tasktype.Result{}, err
				}
				// Three chunks of the store's 128 KiB: past the bound.
				if _, err := w.Write([]byte(strings.Repeat("x", 3<<17))); err != nil {
					return tasktype.Result{}, err
				}
				return tasktype.Result{}, nil
			}, tasktype.Policy{MaxAttempts: 3, BackoffMin: 10 * time.Millisecond, BackoffMax: 10 * time.Millisecond})
		},
		broker: jetstream.Config{Results: &jetstream.ResultBounds{MaxBytes: 200 << 10}},
		worker: func(c *tasks.Config) { c.Worker.StoreFullMessage = full },
	})
	c := f.client(t, f.alice)
	id := startReport(t, f, c)
	page := waitForStatus(t, f, c, "/tasks/"+id, tasktype.StatusFailed)
	if !strings.Contains(page, full) || strings.Contains(page, "maximum bytes") {
		t.Errorf("task page lacks the sentence, or shows the server's error:\n%s", page)
	}
	row, err := readTasks(t, f.db).GetForUser(testsupport.Context(t), f.alice.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	if row.Attempts != 1 || !strings.Contains(row.Error, "maximum bytes exceeded") || row.UserMessage != full {
		t.Errorf("attempts %d, error %q, user message %q: want one attempt, the server's wording and the sentence", row.Attempts, row.Error, row.UserMessage)
	}
}

// clock is a controllable time for the web's view of result lifetimes.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }

var regenKeyRE = regexp.MustCompile(`action="/tasks/([^"/]+)/regenerate"[^>]*>\s*<input type="hidden" name="key" value="([^"]+)"`)

// A result past RESULT_TTL shows as expired, with a button that makes
// it again, on the list, on the task page and at its download address,
// which is a page that says so rather than an error.
func TestExpiredResultShownAsExpiredAndGeneratedAgain(t *testing.T) {
	t.Parallel()
	now := &clock{now: time.Now()}
	f := liveFixtureWith(t, liveOptions{
		register: func(r *tasks.Registry) error { return r.Register(reportType, reportFor(), tasktype.Policy{}) },
		web: func(c *web.Config) {
			c.Retention, c.Now = tasktype.Retention{TTL: time.Hour, Keep: 5}, now.Now
		},
	})
	alice := f.client(t, f.alice)
	row := completedReport(t, f, alice, f.alice.ID)
	download := `href="/tasks/` + row.ID + `/download"`
	_, list := getBody(t, alice, f.srv.URL+"/tasks/")
	if tr := rowHTML(t, list, row.ID); !strings.Contains(tr, download) || strings.Contains(tr, "Expired") {
		t.Fatalf("fresh result's row:\n%s", tr)
	}

	now.Add(time.Hour + time.Minute)
	_, list = getBody(t, alice, f.srv.URL+"/tasks/")
	tr := rowHTML(t, list, row.ID)
	if strings.Contains(tr, download) || !strings.Contains(tr, "Expired") || !strings.Contains(tr, `action="/tasks/`+row.ID+`/regenerate"`) {
		t.Fatalf("expired result's row:\n%s", tr)
	}
	code, page := getBody(t, alice, f.srv.URL+"/tasks/"+row.ID)
	if code != http.StatusOK || strings.Contains(page, download) || !strings.Contains(page, "Expired") || !strings.Contains(page, `action="/tasks/`+row.ID+`/regenerate"`) {
		t.Fatalf("expired result's task page = %d:\n%s", code, page)
	}
	code, page = getBody(t, alice, f.srv.URL+"/tasks/"+row.ID+"/download")
	m := regenKeyRE.FindStringSubmatch(page)
	if code != http.StatusGone || strings.Contains(page, "the report of user") || m == nil || m[1] != row.ID {
		t.Fatalf("download of an expired result = %d:\n%s", code, page)
	}

	// Another user cannot make it again, nor can another site.
	bob := f.client(t, f.bob)
	if resp := post(t, bob, f.srv.URL+"/tasks/"+row.ID+"/regenerate", url.Values{"key": {m[2]}}, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("bob's regenerate = %d, want 404", resp.StatusCode)
	}
	if resp := post(t, alice, f.srv.URL+"/tasks/"+row.ID+"/regenerate", url.Values{"key": {m[2]}}, map[string]string{"Sec-Fetch-Site": "cross-site"}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site regenerate = %d, want 403", resp.StatusCode)
	}
	if resp := post(t, alice, f.srv.URL+"/tasks/"+row.ID+"/regenerate", url.Values{"key": {"bad key!"}}, nil); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("regenerate with a malformed key = %d, want 400", resp.StatusCode)
	}
	if got := len(mustList(t, f, f.alice.ID)); got != 1 {
		t.Fatalf("refused regenerates made tasks: %d", got)
	}

	resp := post(t, alice, f.srv.URL+"/tasks/"+row.ID+"/regenerate", url.Values{"key": {m[2]}}, nil)
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || err != nil || loc.Query().Get("queued") == "" || loc.Query().Get("queued") == row.ID {
		t.Fatalf("regenerate = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	again := loc.Query().Get("queued")
	now.Set(time.Now()) // the new result's time, not the old one's future
	waitForStatus(t, f, alice, "/tasks/"+again, tasktype.StatusCompleted)
	code, body := getBody(t, alice, f.srv.URL+"/tasks/"+again+"/download")
	if code != http.StatusOK || body != fmt.Sprintf("the report of user %d\n", f.alice.ID) {
		t.Fatalf("the new result's download = %d: %q", code, body)
	}
	newRow, err := readTasks(t, f.db).GetForUser(testsupport.Context(t), f.alice.ID, again)
	if err != nil || newRow.TaskType != row.TaskType {
		t.Fatalf("new task %+v, %v", newRow, err)
	}
}

func mustList(t *testing.T, f *fixture, userID int64) []tasktype.Task {
	t.Helper()
	rows, err := readTasks(t, f.db).ListForUser(testsupport.Context(t), userID, 100)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// Only the newest RESULT_KEEP results of a kind are kept: an older one
// shows as expired, and so does one whose file is gone from the store
// for whatever reason, at its download too.
func TestPrunedAndMissingResultsShowAsExpired(t *testing.T) {
	t.Parallel()
	f := liveFixtureWith(t, liveOptions{
		register: func(r *tasks.Registry) error { return r.Register(reportType, reportFor(), tasktype.Policy{}) },
		worker:   func(c *tasks.Config) { c.Retention = tasktype.Retention{TTL: time.Hour, Keep: 1} },
		web:      func(c *web.Config) { c.Retention = tasktype.Retention{TTL: time.Hour, Keep: 1} },
	})
	alice := f.client(t, f.alice)
	older := completedReport(t, f, alice, f.alice.ID)
	newer := completedReport(t, f, alice, f.alice.ID)
	_, list := getBody(t, alice, f.srv.URL+"/tasks/")
	if tr := rowHTML(t, list, older.ID); !strings.Contains(tr, "Expired") || strings.Contains(tr, "/download") {
		t.Errorf("pruned result's row:\n%s", tr)
	}
	if code, page := getBody(t, alice, f.srv.URL+"/tasks/"+older.ID+"/download"); code != http.StatusGone || !strings.Contains(page, "/regenerate") {
		t.Errorf("download of a pruned result = %d:\n%s", code, page)
	}
	if code, _ := getBody(t, alice, f.srv.URL+"/tasks/"+newer.ID+"/download"); code != http.StatusOK {
		t.Errorf("download of the newest result = %d", code)
	}

	// The newest one's file is lost from the store.
	if err := f.broker.Delete(testsupport.Context(t), newer.ResultPath); err != nil {
		t.Fatal(err)
	}
	if code, page := getBody(t, alice, f.srv.URL+"/tasks/"+newer.ID+"/download"); code != http.StatusGone || !strings.Contains(page, "/regenerate") {
		t.Errorf("download of a missing result = %d:\n%s", code, page)
	}
}

// A kind's other format downloads from the completed task's list row and
// page, converted from the stored file by the kind's own function, under
// the stored name with the format's extension; another user's task, an
// unknown format and a stored file whose digest is not the recorded one
// are 404, and a conversion that fails is a 500 with a plain page.
func TestDownloadInAnotherFormat(t *testing.T) {
	t.Parallel()
	var failNext sync.Mutex // held: the next conversion fails
	upper := web.ResultFormat{Name: "upper", Label: "Shouting (.txt)", Ext: ".txt", ContentType: "text/plain; charset=utf-8",
		Convert: func(ctx context.Context, src io.Reader, dst io.Writer) error {
			if !failNext.TryLock() {
				return errors.New("conversion failed on purpose")
			}
			failNext.Unlock()
			b, err := io.ReadAll(src)
			if err != nil {
				return err
			}
			_, err = dst.Write(bytes.ToUpper(b))
			return err
		}}
	f := liveFixtureWith(t, liveOptions{
		register: func(r *tasks.Registry) error { return r.Register(reportType, reportFor(), tasktype.Policy{}) },
		web: func(c *web.Config) {
			c.Kinds = slices.Clone(reportKinds)
			c.Kinds[0].Formats = []web.ResultFormat{upper}
		},
	})
	alice, bob := f.client(t, f.alice), f.client(t, f.bob)
	row := completedReport(t, f, alice, f.alice.ID)
	link := `href="/tasks/` + row.ID + `/download/upper">Shouting (.txt)</a>`
	for _, p := range []string{"/tasks/", "/tasks/" + row.ID} {
		if _, page := getBody(t, alice, f.srv.URL+p); !strings.Contains(page, link) {
			t.Errorf("%s offers no %s", p, link)
		}
	}
	resp, body := testsupport.Get(t, alice, f.srv.URL+"/tasks/"+row.ID+"/download/upper")
	if resp.StatusCode != http.StatusOK || body != fmt.Sprintf("THE REPORT OF USER %d\n", f.alice.ID) ||
		resp.Header.Get("Content-Type") != upper.ContentType || resp.Header.Get("Content-Disposition") != `attachment; filename=report.txt` {
		t.Fatalf("download = %d %q %v", resp.StatusCode, body, resp.Header)
	}
	for _, tc := range []struct {
		name string
		c    *http.Client
		path string
	}{
		{"another user's task", bob, "/tasks/" + row.ID + "/download/upper"},
		{"an unknown format", alice, "/tasks/" + row.ID + "/download/pdf"},
	} {
		if code, body := getBody(t, tc.c, f.srv.URL+tc.path); code != http.StatusNotFound || strings.Contains(body, "THE REPORT") {
			t.Errorf("%s = %d:\n%s", tc.name, code, body)
		}
	}
	failNext.Lock()
	if code, body := getBody(t, alice, f.srv.URL+"/tasks/"+row.ID+"/download/upper"); code != http.StatusInternalServerError || strings.Contains(body, "on purpose") {
		t.Errorf("a failed conversion = %d:\n%s", code, body)
	}
	failNext.Unlock()
	swapped := "swapped" + strings.Repeat(".", int(row.ResultSize)-8) + "\n"
	if _, err := f.broker.Put(testsupport.Context(t), row.ResultPath, "report.csv", "text/csv", strings.NewReader(swapped)); err != nil {
		t.Fatal(err)
	}
	if code, body := getBody(t, alice, f.srv.URL+"/tasks/"+row.ID+"/download/upper"); code != http.StatusNotFound || strings.Contains(body, "SWAPPED") {
		t.Errorf("a swapped file = %d:\n%s", code, body)
	}
}
