package web_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/modules/web"
	"github.com/otjhelper/otj/platform/testsupport"
)

// importType is the tests' import job type, in the place of internal/app's
// reports.ActivityImport: the web must take it from its configuration.
const importType = "test_import"

type uploadPayload struct {
	Upload int64 `json:"upload"`
}

// importFixture is a live fixture whose import job reads its upload
// back from the database, as a worker elsewhere would, and says how
// large it was.
func importFixture(t *testing.T, db *bun.DB, maxBytes int64) *fixture {
	t.Helper()
	store := activity.NewStore(db)
	return liveFixtureWith(t, liveOptions{db: db,
		register: func(r *tasks.Registry) error {
			if err := r.Register(reportType, func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
				return tasktype.Result{}, nil
			}, tasktype.Policy{}); err != nil {
				return err
			}
			return r.Register(importType, func(ctx context.Context, job tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
				var p uploadPayload
				if err := json.Unmarshal(job.Payload, &p); err != nil {
					return tasktype.Result{}, tasktype.Permanent(err)
				}
				body, err := store.Upload(ctx, job.UserID, p.Upload)
				if err != nil {
					return tasktype.Result{}, tasktype.Permanent(err)
				}
				return tasktype.Result{Summary: fmt.Sprintf("read %d bytes, %d lines", len(body), bytes.Count(body, []byte("\n")))}, nil
			}, tasktype.Policy{})
		},
		web: func(c *web.Config) {
			c.Import = &web.ActivityImport{Type: importType, Uploads: store, MaxBytes: maxBytes,
				Payload: func(id int64) json.RawMessage { b, _ := json.Marshal(uploadPayload{id}); return b }}
		},
	})
}

// postFile posts the import form with file (none when nil) and key.
func postFile(t *testing.T, c *http.Client, u string, file []byte, key string, header ...string) (*http.Response, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mw.WriteField("key", key)
	if file != nil {
		fw, err := mw.CreateFormFile("file", "report.csv")
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(file)
	}
	mw.Close()
	req, err := http.NewRequest("POST", u, &b)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func countUploads(t *testing.T, db *bun.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(testsupport.Context(t), `SELECT count(*) FROM import_upload`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestImportUploadRunsItsJob: the file goes through HTTP into the
// database, the job reads it by the id in its payload, and the browser
// lands on the task, which only its owner sees.
func TestImportUploadRunsItsJob(t *testing.T) {
	testsupport.EachDialect(t, func(t *testing.T, db *bun.DB) {
		f := importFixture(t, db, 0)
		alice := f.client(t, f.alice)
		code, page := getBody(t, alice, f.srv.URL+"/activities/import")
		if code != http.StatusOK || !strings.Contains(page, `enctype="multipart/form-data"`) || !strings.Contains(page, "10.0 MB at most") {
			t.Fatalf("import form = %d:\n%s", code, page)
		}
		file := []byte("date,title,hours,type\r\n2026-03-04,A,1,Workshop\r\n")
		resp, _ := postFile(t, alice, f.srv.URL+"/activities/import", file, rand.Text())
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/tasks/") || len(loc) <= len("/tasks/") {
			t.Fatalf("import = %d to %q", resp.StatusCode, loc)
		}
		page = waitForStatus(t, f, alice, loc, tasktype.StatusCompleted)
		if !strings.Contains(page, "read 48 bytes, 2 lines") {
			t.Errorf("task page lacks the job's summary:\n%s", page)
		}
		if code, _ := getBody(t, f.client(t, f.bob), f.srv.URL+loc); code != http.StatusNotFound {
			t.Errorf("bob sees alice's import: %d", code)
		}
	})
}

func TestImportTooLargeIs413(t *testing.T) {
	db, _ := testsupport.DB(t)
	f := importFixture(t, db, 1000)
	c := f.client(t, f.alice)
	for _, size := range []int{1001, 200 << 10} {
		resp, page := postFile(t, c, f.srv.URL+"/activities/import", bytes.Repeat([]byte("x"), size), rand.Text())
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(page, "larger than an import takes (1000 bytes at most)") {
			t.Errorf("%d bytes = %d:\n%s", size, resp.StatusCode, page)
		}
	}
	if n := countUploads(t, db); n != 0 {
		t.Errorf("%d uploads stored from files too large", n)
	}
	resp, _ := postFile(t, c, f.srv.URL+"/activities/import", bytes.Repeat([]byte("x"), 1000), rand.Text())
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("a file of exactly the bound = %d, want 303", resp.StatusCode)
	}
}

func TestImportBadFormsAre400WithTheForm(t *testing.T) {
	db, _ := testsupport.DB(t)
	f := importFixture(t, db, 0)
	c := f.client(t, f.alice)
	tests := []struct {
		name string
		file []byte
		key  string
		want string
	}{
		{"no file", nil, "k", "Choose a CSV file to import"},
		{"empty file", []byte(" \r\n"), "k", "The file is empty"},
		{"bad key", []byte("x"), "bad key!", "bad key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, page := postFile(t, c, f.srv.URL+"/activities/import", tt.file, tt.key)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, tt.want) || !strings.Contains(page, `action="/activities/import"`) {
				t.Errorf("= %d:\n%s", resp.StatusCode, page)
			}
		})
	}
	resp := post(t, c, f.srv.URL+"/activities/import", nil, nil)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("not multipart = %d, want 400", resp.StatusCode)
	}
	if n := countUploads(t, db); n != 0 {
		t.Errorf("%d uploads stored from bad forms", n)
	}
}

func TestImportRefusesCrossOrigin(t *testing.T) {
	db, _ := testsupport.DB(t)
	f := importFixture(t, db, 0)
	resp, _ := postFile(t, f.client(t, f.alice), f.srv.URL+"/activities/import", []byte("x"), "k", "Origin", "https://evil.example")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin import = %d, want 403", resp.StatusCode)
	}
	if n := countUploads(t, db); n != 0 {
		t.Errorf("%d uploads stored from a cross-origin post", n)
	}
}
