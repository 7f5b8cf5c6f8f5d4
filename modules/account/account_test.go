package account_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/modules/account"
	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/reports"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

func TestMain(m *testing.M) { testsupport.VerifyNoLeaks(m) }

// fixture is a worker running the report and the export over one
// database and NATS server, and a client enqueuing them.
type fixture struct {
	db    *bun.DB
	store *activity.Store
	c     *tasks.Client
}

func newFixture(t *testing.T, db *bun.DB) fixture {
	t.Helper()
	ctx := testsupport.Context(t)
	store := activity.NewStore(db)
	if err := store.SeedReference(ctx); err != nil {
		t.Fatal(err)
	}
	srv := testsupport.NATS(t)
	web := jetstreamtest.Broker(t, testsupport.Connect(t, srv, "web"))
	wb := jetstreamtest.Broker(t, testsupport.Connect(t, srv, "worker"))
	reg := tasks.NewRegistry()
	if err := reports.Register(reg, store); err != nil {
		t.Fatal(err)
	}
	if err := account.Register(reg, store); err != nil {
		t.Fatal(err)
	}
	worker, err := tasks.NewClient(tasks.Config{DB: db, Log: wb, Transport: wb, Registry: reg, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	testsupport.Go(t, func(ctx context.Context) { worker.RunProjection(ctx) })
	testsupport.Go(t, func(ctx context.Context) { worker.RunWorker(ctx) })
	c, err := tasks.NewClient(tasks.Config{DB: db, Log: web, Transport: web, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return fixture{db: db, store: store, c: c}
}

// user creates a user with one activity titled title.
func (f fixture) user(t *testing.T, email, title string) int64 {
	t.Helper()
	u, err := f.store.EnsureUser(t.Context(), email)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.ExecContext(t.Context(), `INSERT INTO activity (user_id, title, activity_date, duration_hours, activity_type, evidence_quality)
		VALUES (?, ?, '2025-05-01', 2, 'research', 'good')`, u.ID, title); err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// run runs a job of typ for user to its end, and waits until task_result
// shows it.
func (f fixture) run(t *testing.T, typ string, user int64) tasktype.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(testsupport.Context(t), 30*time.Second)
	defer cancel()
	job, err := f.c.Enqueue(ctx, tasktype.EnqueueRequest{Type: typ, UserID: user})
	if err != nil {
		t.Fatal(err)
	}
	e, err := f.c.WaitOutcome(ctx, user, job.ID)
	if err != nil || e.Kind != tasktype.EventSucceeded {
		t.Fatalf("%s of user %d ended %+v, %v; want succeeded", typ, user, e, err)
	}
	for {
		if task, err := f.c.GetForUser(ctx, user, job.ID); err == nil && task.Status == tasktype.StatusCompleted {
			return e
		}
		select {
		case <-ctx.Done():
			t.Fatalf("task %s never showed completed", job.ID)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// The export is a zip of the user's activities (the report's CSV), their
// tasks with their event histories, and their stored results: the three
// parts, and nothing of another user's.
func TestExportHoldsTheUsersOwnData(t *testing.T) {
	testsupport.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testsupport.Context(t)
		f := newFixture(t, db)
		alice := f.user(t, "alice@example.org", "Alice's workshop")
		bob := f.user(t, "bob@example.org", "Bob's secret")
		report := f.run(t, reports.FullReport, alice)
		bobs := f.run(t, reports.FullReport, bob)
		export := f.run(t, account.ExportType, alice)
		if export.Result == nil || export.Result.ContentType != "application/zip" {
			t.Fatalf("export result = %+v; want a zip", export.Result)
		}

		res, err := f.c.Open(ctx, export.Result.Object)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(res)
		res.Close()
		if err != nil {
			t.Fatal(err)
		}
		zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
		if err != nil {
			t.Fatal(err)
		}
		files := map[string]string{}
		for _, zf := range zr.File {
			r, err := zf.Open()
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(r)
			r.Close()
			files[zf.Name] = string(b)
		}

		csv := files[account.ActivitiesFile]
		if !strings.HasPrefix(csv, reports.BOM+strings.Join(reports.Header, ",")) || !strings.Contains(csv, "Alice's workshop") {
			t.Errorf("%s = %q; want the report's CSV of Alice's activity", account.ActivitiesFile, csv)
		}
		var recs []account.TaskRecord
		if err := json.Unmarshal([]byte(files[account.TasksFile]), &recs); err != nil {
			t.Fatalf("%s: %v", account.TasksFile, err)
		}
		if len(recs) != 1 || recs[0].Task.ID != report.JobID || len(recs[0].Events) < 3 || recs[0].Events[0].Kind != tasktype.EventEnqueued {
			t.Errorf("%s = %+v; want Alice's report with its history", account.TasksFile, recs)
		}
		resultName := account.ResultsDir + report.JobID + "-" + report.Result.Name
		if got := files[resultName]; !strings.Contains(got, "Alice's workshop") {
			t.Errorf("%s = %q; want Alice's report", resultName, got)
		}
		if len(files) != 3 {
			t.Errorf("zip holds %d files; want 3", len(files))
		}
		for name, content := range files {
			if strings.Contains(content, "Bob's secret") || strings.Contains(name, bobs.JobID) || strings.Contains(content, bobs.JobID) {
				t.Errorf("%s holds Bob's data", name)
			}
		}
	})
}

// Erase removes the user from the task system and the activity log; a
// rebuild of task_result brings nothing back, and another user keeps all.
func TestEraserErasesEverywhere(t *testing.T) {
	ctx := testsupport.Context(t)
	db, _ := testsupport.DB(t)
	f := newFixture(t, db)
	alice := f.user(t, "alice@example.org", "Alice's workshop")
	bob := f.user(t, "bob@example.org", "Bob's log")
	f.run(t, reports.FullReport, alice)
	kept := f.run(t, reports.FullReport, bob)
	e := account.Eraser{Tasks: f.c, Rows: f.store, Logger: testsupport.Logger(t)}
	if err := e.Erase(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	if ts, err := f.c.ListForUser(ctx, alice, 10); err != nil || len(ts) != 0 {
		t.Errorf("alice's tasks after erase and rebuild: %d, %v", len(ts), err)
	}
	if _, err := f.store.UserByID(ctx, alice); err == nil {
		t.Error("alice's user row is still there")
	}
	if n, err := f.store.CountActivities(ctx, bob); err != nil || n != 1 {
		t.Errorf("bob's activities = %d, %v; want 1", n, err)
	}
	if _, err := f.c.GetForUser(ctx, bob, kept.JobID); err != nil {
		t.Errorf("bob's task: %v", err)
	}
	// An export queued for an erased user fails for good, saying why.
	job, err := f.c.Enqueue(ctx, tasktype.EnqueueRequest{Type: account.ExportType, UserID: alice})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := f.c.WaitOutcome(wctx, alice, job.ID)
	if err != nil || out.Kind != tasktype.EventFailed {
		t.Errorf("export of an erased user ended %+v, %v; want failed", out, err)
	}
}
