package worker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/internal/projection"
	"github.com/otjhelper/otj/modules/tasks/internal/worker"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/natsserver"
	"github.com/otjhelper/otj/platform/testsupport"
)

func TestMain(m *testing.M) {
	testsupport.VerifyNoLeaks(m)
}

// system is a web side and a worker side on separate connections to one
// embedded server, as app web and app worker would be.
type system struct {
	srv         *natsserver.Server
	web, worker *jetstream.Broker
	db          *bun.DB
	store       *projection.Store
	proj        *projection.Projection
	registry    *tasks.Registry
}

func setup(t *testing.T, register func(*tasks.Registry)) *system {
	t.Helper()
	return setupWith(t, register, worker.Config{Concurrency: 3})
}

// setupWith is setup with the worker's settings; Queue, Events, Results,
// Registry and Logger are filled in, and Succeeded if ResultKeep is set.
func setupWith(t testing.TB, register func(*tasks.Registry), wc worker.Config) *system {
	t.Helper()
	srv := testsupport.NATS(t)
	db, _ := testsupport.DB(t)
	s := &system{
		srv:      srv,
		web:      jetstreamtest.Broker(t, testsupport.Connect(t, srv, "web")),
		worker:   jetstreamtest.Broker(t, testsupport.Connect(t, srv, "worker")),
		db:       db,
		store:    projection.NewStore(db),
		registry: tasks.NewRegistry(),
	}
	s.proj = projection.New(db, s.web, testsupport.Logger(t))
	register(s.registry)
	testsupport.Go(t, func(ctx context.Context) { s.proj.Run(ctx) })
	s.startWorker(t, wc)
	return s
}

func (s *system) startWorker(t testing.TB, wc worker.Config) {
	t.Helper()
	q, err := s.worker.Queue(testsupport.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	wc.Queue, wc.Events, wc.Results, wc.Registry = q, s.worker, s.worker, s.registry
	if wc.ResultKeep > 0 && wc.Succeeded == nil {
		wc.Succeeded = s.worker
	}
	if wc.Logger == nil {
		wc.Logger = testsupport.Logger(t)
	}
	w, err := worker.New(wc)
	if err != nil {
		t.Fatal(err)
	}
	testsupport.Go(t, func(ctx context.Context) { w.Run(ctx) })
}

func (s *system) enqueue(t *testing.T, typ string, user int64, key string) tasktype.Job {
	t.Helper()
	job, err := s.web.Enqueue(testsupport.Context(t), tasktype.EnqueueRequest{Type: typ, UserID: user, Key: key, Payload: []byte(`{"n":1}`)})
	if err != nil {
		t.Fatalf("enqueue %s: %v", typ, err)
	}
	return job
}

// waitDone waits until the projection shows the job finished.
func (s *system) waitDone(t *testing.T, job tasktype.Job) tasktype.Task {
	t.Helper()
	var row tasktype.Task
	testsupport.Eventually(t, 20*time.Second, "job "+job.ID+" did not finish", func() bool {
		var err error
		row, err = s.store.GetForUser(testsupport.Context(t), job.UserID, job.ID)
		return err == nil && !row.Status.Active()
	})
	return row
}

func TestJobOutcomes(t *testing.T) {
	s := setup(t, func(r *tasks.Registry) {
		r.Register("write_file", func(ctx context.Context, job tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
			w, err := out.Create("hello.txt", "text/plain")
			if err != nil {
				return tasktype.Result{}, err
			}
			fmt.Fprintf(w, "hello %d %s", job.UserID, job.Payload)
			return tasktype.Result{Summary: "1 line"}, nil
		}, tasktype.Policy{})
		r.Register("fails", func(ctx context.Context, job tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
			w, _ := out.Create("partial.txt", "text/plain")
			io.WriteString(w, "half a file")
			return tasktype.Result{}, errors.New("the data source is closed")
		}, noRetry)
		r.Register("panics", func(ctx context.Context, job tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
			var jobs []tasktype.Job
			return tasktype.Result{Summary: jobs[job.UserID].ID}, nil
		}, noRetry)
	})

	tests := []struct {
		typ        string
		wantStatus tasktype.Status
		wantErr    string
		wantFile   string
	}{
		{"write_file", tasktype.StatusCompleted, "", `hello 7 {"n":1}`},
		{"fails", tasktype.StatusFailed, "the data source is closed", ""},
		{"panics", tasktype.StatusFailed, "panic: runtime error: index out of range [7] with length 0", ""},
		{"unknown_type", tasktype.StatusFailed, `no handler registered for job type "unknown_type"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			job := s.enqueue(t, tt.typ, 7, "")
			row := s.waitDone(t, job)
			if row.Status != tt.wantStatus || row.Error != tt.wantErr {
				t.Fatalf("status %q error %q, want %q %q", row.Status, row.Error, tt.wantStatus, tt.wantErr)
			}
			if row.Attempts != 1 && tt.typ != "unknown_type" {
				t.Errorf("attempts = %d, want 1", row.Attempts)
			}
			if row.CompletedAt.IsZero() || row.CompletedAt.Before(row.CreatedAt) {
				t.Errorf("completed_at %v, created_at %v", row.CompletedAt, row.CreatedAt)
			}
			if tt.wantFile == "" {
				if row.HasResult() {
					t.Errorf("failed job has a result %q", row.ResultPath)
				}
				return
			}
			if row.ResultName != "hello.txt" || row.ResultType != "text/plain" || row.ResultData != "1 line" ||
				row.ResultSize != int64(len(tt.wantFile)) || !strings.HasPrefix(row.Digest, "SHA-256=") {
				t.Errorf("result columns: %+v", row)
			}
			rc, err := s.web.Open(testsupport.Context(t), row.ResultPath)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, _ := io.ReadAll(rc)
			if string(got) != tt.wantFile {
				t.Errorf("file = %q, want %q", got, tt.wantFile)
			}
		})
	}
}

func TestEnqueueWithKeyMakesOneJob(t *testing.T) {
	s := setup(t, func(r *tasks.Registry) {
		r.Register("noop", func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
			return tasktype.Result{}, nil
		}, tasktype.Policy{})
	})
	first := s.enqueue(t, "noop", 1, "form-abc")
	second := s.enqueue(t, "noop", 1, "form-abc")
	if first.ID != second.ID || first.EventSeq != second.EventSeq {
		t.Fatalf("same key gave jobs %s@%d and %s@%d", first.ID, first.EventSeq, second.ID, second.EventSeq)
	}
	other := s.enqueue(t, "noop", 2, "form-abc") // same key, other user
	if other.ID == first.ID {
		t.Fatal("another user's key was deduplicated against the first user's")
	}
	s.waitDone(t, first)
	s.waitDone(t, other)
	rows, err := s.store.All(testsupport.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("%d rows, want 2", len(rows))
	}
}

func TestEnqueueRejectsBadRequests(t *testing.T) {
	s := setup(t, func(*tasks.Registry) {})
	tests := []struct {
		name string
		req  tasktype.EnqueueRequest
		want error
	}{
		{"empty type", tasktype.EnqueueRequest{UserID: 1}, tasktype.ErrInvalidJob},
		{"type with dot", tasktype.EnqueueRequest{Type: "a.b", UserID: 1}, tasktype.ErrInvalidJob},
		{"no user", tasktype.EnqueueRequest{Type: "noop"}, tasktype.ErrInvalidJob},
		{"payload not json", tasktype.EnqueueRequest{Type: "noop", UserID: 1, Payload: []byte("{")}, tasktype.ErrInvalidJob},
		{"payload too large", tasktype.EnqueueRequest{Type: "noop", UserID: 1, Payload: []byte(`"` + strings.Repeat("x", tasktype.MaxPayloadBytes) + `"`)}, tasktype.ErrPayloadTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.web.Enqueue(testsupport.Context(t), tt.req)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	last, err := s.web.LastSeq(testsupport.Context(t))
	if err != nil || last != 0 {
		t.Fatalf("stream has %d events (err %v) after rejected requests, want 0", last, err)
	}
}

func TestProjectionIsIdempotentAndRebuildable(t *testing.T) {
	s := setup(t, func(r *tasks.Registry) {
		r.Register("ok", func(ctx context.Context, job tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
			w, _ := out.Create("r.txt", "text/plain")
			io.WriteString(w, job.ID)
			return tasktype.Result{Summary: "done"}, nil
		}, tasktype.Policy{})
		r.Register("bad", func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
			return tasktype.Result{}, errors.New("no")
		}, noRetry)
	})
	ctx := testsupport.Context(t)
	var jobs []tasktype.Job
	for i := range 6 {
		typ := "ok"
		if i%3 == 2 {
			typ = "bad"
		}
		jobs = append(jobs, s.enqueue(t, typ, int64(1+i%2), ""))
	}
	for _, j := range jobs {
		s.waitDone(t, j)
	}
	live, err := s.store.All(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Every event applied again, in order and then in reverse: no change.
	var events []tasktype.Event
	last, _ := s.web.LastSeq(ctx)
	fctx, cancel := context.WithCancel(ctx)
	err = s.web.Follow(fctx, 0, func(batch []tasktype.Event) error {
		events = append(events, batch...)
		if batch[len(batch)-1].Seq == last {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || uint64(len(events)) != last {
		t.Fatalf("read %d of %d events: %v", len(events), last, err)
	}
	for _, e := range events {
		if err := s.proj.Apply(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	for i := len(events) - 1; i >= 0; i-- {
		if err := s.proj.Apply(ctx, events[i]); err != nil {
			t.Fatal(err)
		}
	}
	assertRows(t, s.store, live)

	// Rebuild: an empty table refilled from the stream is identical.
	if err := s.proj.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	empty, _ := s.store.All(ctx)
	if len(empty) != 0 {
		t.Fatalf("%d rows after rebuild cleared the table", len(empty))
	}
	rebuilt := projection.New(s.db, s.web, nil)
	for _, e := range events {
		if err := rebuilt.Apply(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	assertRows(t, s.store, live)
}

func assertRows(t *testing.T, store *projection.Store, want []tasktype.Task) {
	t.Helper()
	got, err := store.All(testsupport.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := fmt.Sprintf("%+v", got[i]), fmt.Sprintf("%+v", want[i])
		if g != w {
			t.Errorf("row %d:\n got %s\nwant %s", i, g, w)
		}
	}
}
