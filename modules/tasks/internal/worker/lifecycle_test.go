package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/internal/control"
	"github.com/otjhelper/otj/modules/tasks/internal/projection"
	"github.com/otjhelper/otj/modules/tasks/internal/worker"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// history returns the job's events as people are shown them, oldest
// first: with each attempt's start, recorded or carried by its outcome.
func (s *system) history(t *testing.T, job tasktype.Job) []tasktype.Event {
	t.Helper()
	h, err := s.web.History(testsupport.Context(t), job.UserID, job.ID)
	if err != nil {
		t.Fatalf("history of %s: %v", job.ID, err)
	}
	return tasktype.WithStarts(h)
}

func kindsOf(h []tasktype.Event) []tasktype.EventKind {
	ks := make([]tasktype.EventKind, len(h))
	for i, e := range h {
		ks[i] = e.Kind
	}
	return ks
}

// waitStatus waits until the projection shows the job in state want.
func (s *system) waitStatus(t *testing.T, job tasktype.Job, want tasktype.Status) tasktype.Task {
	t.Helper()
	var row tasktype.Task
	testsupport.Eventually(t, 20*time.Second, fmt.Sprintf("job %s never %s (last %q)", job.ID, want, row.Status), func() bool {
		var err error
		row, err = s.store.GetForUser(testsupport.Context(t), job.UserID, job.ID)
		return err == nil && row.Status == want
	})
	return row
}

// attemptLog records what each attempt of a handler saw.
type attemptLog struct {
	mu   sync.Mutex
	seen []tasktype.Job
}

func (l *attemptLog) add(j tasktype.Job) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = append(l.seen, j)
}

func (l *attemptLog) jobs() []tasktype.Job {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]tasktype.Job(nil), l.seen...)
}

func TestFailedAttemptsAreRetriedWithBackoff(t *testing.T) {
	policy := tasktype.Policy{MaxAttempts: 3, BackoffMin: 50 * time.Millisecond, BackoffMax: 80 * time.Millisecond}
	var log attemptLog
	s := setup(t, func(r *tasks.Registry) {
		r.Register("flaky", func(_ context.Context, j tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
			log.add(j)
			if j.Attempt < 3 {
				return tasktype.Result{}, fmt.Errorf("flake %d", j.Attempt)
			}
			return tasktype.Result{Summary: "third time lucky"}, nil
		}, policy)
	})
	job := s.enqueue(t, "flaky", 3, "")
	row := s.waitDone(t, job)
	if row.Status != tasktype.StatusCompleted || row.Attempts != 3 || row.MaxAttempts != 3 || row.ResultData != "third time lucky" || row.Error != "" {
		t.Fatalf("row %+v", row)
	}
	h := s.history(t, job)
	want := []tasktype.EventKind{tasktype.EventEnqueued, tasktype.EventStarted, tasktype.EventRetrying, tasktype.EventStarted, tasktype.EventRetrying, tasktype.EventStarted, tasktype.EventSucceeded}
	if fmt.Sprint(kindsOf(h)) != fmt.Sprint(want) {
		t.Fatalf("history %v, want %v", kindsOf(h), want)
	}
	// Each wait lies within the policy's bounds for its attempt, and no
	// attempt starts before its time.
	bounds := map[int][2]time.Duration{1: {50 * time.Millisecond, 50 * time.Millisecond}, 2: {50 * time.Millisecond, 80 * time.Millisecond}}
	for i, e := range h {
		if e.Kind != tasktype.EventRetrying {
			continue
		}
		b := bounds[e.Attempt]
		if wait := e.RetryAt.Sub(e.Time); wait < b[0] || wait > b[1] {
			t.Errorf("retry after attempt %d waits %s, want %s..%s", e.Attempt, wait, b[0], b[1])
		}
		if e.Error != fmt.Sprintf("flake %d", e.Attempt) {
			t.Errorf("retrying event error %q", e.Error)
		}
		if next := h[i+1]; next.Time.Before(e.RetryAt) {
			t.Errorf("attempt %d started at %s, before its retry time %s", next.Attempt, next.Time, e.RetryAt)
		}
	}
	for i, j := range log.jobs() {
		if j.Attempt != i+1 || string(j.Payload) != `{"n":1}` || !j.EnqueuedAt.Equal(job.EnqueuedAt) {
			t.Errorf("attempt %d saw job %+v", i+1, j)
		}
	}
}

func TestFinalFailures(t *testing.T) {
	s := setup(t, func(r *tasks.Registry) {
		fast := tasktype.Policy{MaxAttempts: 2, BackoffMin: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond}
		r.Register("always_fails", func(_ context.Context, j tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
			return tasktype.Result{}, fmt.Errorf("boom %d", j.Attempt)
		}, fast)
		r.Register("permanent", func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
			return tasktype.Result{}, tasktype.Permanent(errors.New("no such report"))
		}, tasktype.Policy{MaxAttempts: 3})
		r.Register("slow", func(ctx context.Context, _ tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
			<-ctx.Done()
			return tasktype.Result{}, ctx.Err()
		}, tasktype.Policy{MaxAttempts: 1, Timeout: 100 * time.Millisecond})
		r.Register("panics_once", func(_ context.Context, j tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
			if j.Attempt == 1 {
				panic("first-run bug")
			}
			return tasktype.Result{Summary: "ok"}, nil
		}, fast)
	})
	tests := []struct {
		typ      string
		status   tasktype.Status
		attempts int
		err      string
		kinds    []tasktype.EventKind
	}{
		{"always_fails", tasktype.StatusFailed, 2, "boom 2", []tasktype.EventKind{"enqueued", "started", "retrying", "started", "failed"}},
		{"permanent", tasktype.StatusFailed, 1, "no such report", []tasktype.EventKind{"enqueued", "started", "failed"}},
		{"slow", tasktype.StatusFailed, 1, "timed out after 100ms: context deadline exceeded", []tasktype.EventKind{"enqueued", "started", "failed"}},
		{"panics_once", tasktype.StatusCompleted, 2, "", []tasktype.EventKind{"enqueued", "started", "retrying", "started", "succeeded"}},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			job := s.enqueue(t, tt.typ, 8, "")
			row := s.waitDone(t, job)
			if row.Status != tt.status || row.Attempts != tt.attempts || row.Error != tt.err {
				t.Fatalf("status %s attempts %d error %q, want %s %d %q", row.Status, row.Attempts, row.Error, tt.status, tt.attempts, tt.err)
			}
			if got := kindsOf(s.history(t, job)); fmt.Sprint(got) != fmt.Sprint(tt.kinds) {
				t.Fatalf("history %v, want %v", got, tt.kinds)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	started := make(chan string, 10)
	stopped := make(chan error, 10)
	release := make(chan struct{})
	s := setupWith(t, func(r *tasks.Registry) {
		r.Register("blocker", func(ctx context.Context, j tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
			started <- j.ID
			select {
			case <-release:
				return tasktype.Result{}, nil
			case <-ctx.Done():
				stopped <- ctx.Err()
				return tasktype.Result{}, ctx.Err()
			}
		}, tasktype.Policy{})
		r.Register("fails", func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
			return tasktype.Result{}, errors.New("try later")
		}, tasktype.Policy{BackoffMin: time.Hour, BackoffMax: time.Hour})
	}, worker.Config{Concurrency: 1, ExtendEvery: 200 * time.Millisecond})
	ctl := control.New(s.web)
	ctx := testsupport.Context(t)

	// One slot, taken by a running job: the next job stays pending.
	running := s.enqueue(t, "blocker", 5, "")
	if id := <-started; id != running.ID {
		t.Fatalf("started %s", id)
	}
	// It shows running from its first heartbeat, which records its start.
	s.waitStatus(t, running, tasktype.StatusRunning)
	pending := s.enqueue(t, "blocker", 5, "")
	s.waitStatus(t, pending, tasktype.StatusPending)

	t.Run("pending never starts", func(t *testing.T) {
		e, err := ctl.Cancel(ctx, 5, pending.ID, tasktype.ByUser)
		if err != nil {
			t.Fatal(err)
		}
		if e.Kind != tasktype.EventCancelled || e.By != tasktype.ByUser {
			t.Fatalf("cancel event %+v", e)
		}
		row := s.waitStatus(t, pending, tasktype.StatusCancelled)
		if row.ChangedBy != tasktype.ByUser || row.CompletedAt.IsZero() {
			t.Errorf("row %+v", row)
		}
	})
	t.Run("running is stopped", func(t *testing.T) {
		asked := time.Now()
		if _, err := ctl.Cancel(ctx, 5, running.ID, tasktype.ByUser); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-stopped:
			t.Logf("handler context ended %s after the cancel: %v", time.Since(asked).Round(time.Millisecond), err)
		case <-time.After(5 * time.Second):
			t.Fatal("running job's context not cancelled within 5s")
		}
		s.waitStatus(t, running, tasktype.StatusCancelled)
	})
	t.Run("retrying never runs again", func(t *testing.T) {
		job := s.enqueue(t, "fails", 5, "")
		row := s.waitStatus(t, job, tasktype.StatusRetrying)
		if row.Error != "try later" || row.NextAttemptAt.Sub(row.UpdatedAt) < 59*time.Minute {
			t.Fatalf("retrying row %+v", row)
		}
		if _, err := ctl.Cancel(ctx, 5, job.ID, tasktype.ByOperator); err != nil {
			t.Fatal(err)
		}
		row = s.waitStatus(t, job, tasktype.StatusCancelled)
		if !row.NextAttemptAt.IsZero() || row.ChangedBy != tasktype.ByOperator {
			t.Errorf("cancelled row %+v", row)
		}
	})

	// The slot is free again, and the cancelled pending job was dropped
	// when the worker reached it: it has no started event.
	next := s.enqueue(t, "blocker", 5, "")
	if id := <-started; id != next.ID {
		t.Fatalf("started %s, want %s (a cancelled job ran)", id, next.ID)
	}
	close(release)
	s.waitDone(t, next)
	if got := kindsOf(s.history(t, pending)); fmt.Sprint(got) != "[enqueued cancelled]" {
		t.Fatalf("cancelled pending job's history %v", got)
	}
	if got := kindsOf(s.history(t, running)); fmt.Sprint(got) != "[enqueued started cancelled]" {
		t.Fatalf("cancelled running job's history %v (must not end failed)", got)
	}

	// A cancelled job can be retried by hand; it runs from attempt 1.
	if _, err := ctl.Retry(ctx, 5, pending.ID, tasktype.ByUser); err != nil {
		t.Fatal(err)
	}
	if <-started != pending.ID {
		t.Fatal("another job started")
	}
	row := s.waitStatus(t, pending, tasktype.StatusCompleted)
	if row.Attempts != 1 {
		t.Errorf("attempts %d, want 1", row.Attempts)
	}
	if got := kindsOf(s.history(t, pending)); fmt.Sprint(got) != "[enqueued cancelled retried started succeeded]" {
		t.Fatalf("history %v", got)
	}
}

func TestProgressShowsAndCancelStillWorks(t *testing.T) {
	stopped := make(chan error, 1)
	s := setupWith(t, func(r *tasks.Registry) {
		r.Register("long", func(ctx context.Context, _ tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
			for i := 0; ; i++ {
				out.Progress(i%100, fmt.Sprintf("step %d", i))
				select {
				case <-ctx.Done():
					stopped <- ctx.Err()
					return tasktype.Result{}, ctx.Err()
				case <-time.After(5 * time.Millisecond):
				}
			}
		}, tasktype.Policy{})
	}, worker.Config{Concurrency: 1, ExtendEvery: 50 * time.Millisecond})
	ctx := testsupport.Context(t)
	job := s.enqueue(t, "long", 14, "")
	var row tasktype.Task
	testsupport.Eventually(t, 20*time.Second, "no progress in the projection", func() bool {
		var err error
		row, err = s.store.GetForUser(ctx, 14, job.ID)
		return err == nil && row.Status == tasktype.StatusRunning && strings.HasPrefix(row.ProgressMessage, "step ")
	})
	// Progress events keep moving the job's newest event; a cancel must
	// still win its race with them.
	if _, err := control.New(s.web).Cancel(ctx, 14, job.ID, tasktype.ByUser); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("handler reporting progress was not stopped by the cancel")
	}
	s.waitStatus(t, job, tasktype.StatusCancelled)
	kinds := kindsOf(s.history(t, job))
	if kinds[len(kinds)-1] != tasktype.EventCancelled {
		t.Fatalf("history ends %v", kinds)
	}
}

func TestRetryByHand(t *testing.T) {
	var fixed sync.Map // job ids that no longer fail
	var log attemptLog
	s := setup(t, func(r *tasks.Registry) {
		r.Register("fixable", func(_ context.Context, j tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
			log.add(j)
			if _, ok := fixed.Load(j.ID); !ok {
				return tasktype.Result{}, errors.New("still broken")
			}
			return tasktype.Result{Summary: "fixed"}, nil
		}, tasktype.Policy{MaxAttempts: 2, BackoffMin: 10 * time.Millisecond, BackoffMax: 10 * time.Millisecond})
	})
	ctl := control.New(s.web)
	ctx := testsupport.Context(t)
	job := s.enqueue(t, "fixable", 6, "")
	if row := s.waitDone(t, job); row.Status != tasktype.StatusFailed || row.Attempts != 2 {
		t.Fatalf("before the retry: %+v", row)
	}
	fixed.Store(job.ID, true)
	e, err := ctl.Retry(ctx, 6, job.ID, tasktype.ByUser)
	if err != nil {
		t.Fatal(err)
	}
	if e.Kind != tasktype.EventRetried || string(e.Payload) != `{"n":1}` {
		t.Fatalf("retried event %+v", e)
	}
	row := s.waitStatus(t, job, tasktype.StatusCompleted)
	if row.Attempts != 3 || row.MaxAttempts != 4 || row.ChangedBy != tasktype.ByUser || row.Error != "" {
		t.Fatalf("row after retry by hand %+v (want attempt 3 of 2+2)", row)
	}
	want := "[enqueued started retrying started failed retried started succeeded]"
	if got := kindsOf(s.history(t, job)); fmt.Sprint(got) != want {
		t.Fatalf("history %v, want %s", got, want)
	}
	if jobs := log.jobs(); jobs[len(jobs)-1].Attempt != 3 || !jobs[len(jobs)-1].EnqueuedAt.Equal(job.EnqueuedAt) {
		t.Fatalf("retried attempt saw %+v", jobs[len(jobs)-1])
	}
}

func TestControlChecksStateAndOwner(t *testing.T) {
	s := setup(t, func(r *tasks.Registry) {
		r.Register("noop", func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
			return tasktype.Result{}, nil
		}, tasktype.Policy{})
	})
	ctl := control.New(s.web)
	ctx := testsupport.Context(t)
	job := s.enqueue(t, "noop", 9, "")
	s.waitDone(t, job)
	before := kindsOf(s.history(t, job))
	tests := []struct {
		name string
		do   func() error
		want error
	}{
		{"cancel completed", func() error { _, err := ctl.Cancel(ctx, 9, job.ID, tasktype.ByUser); return err }, tasktype.ErrWrongState},
		{"retry completed", func() error { _, err := ctl.Retry(ctx, 9, job.ID, tasktype.ByUser); return err }, tasktype.ErrWrongState},
		{"cancel another user's", func() error { _, err := ctl.Cancel(ctx, 10, job.ID, tasktype.ByUser); return err }, tasktype.ErrNotFound},
		{"retry another user's", func() error { _, err := ctl.Retry(ctx, 10, job.ID, tasktype.ByUser); return err }, tasktype.ErrNotFound},
		{"cancel unknown", func() error { _, err := ctl.Cancel(ctx, 9, "NOSUCHJOB", tasktype.ByUser); return err }, tasktype.ErrNotFound},
		{"cancel wildcard", func() error { _, err := ctl.Cancel(ctx, 0, "*", tasktype.ByOperator); return err }, tasktype.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.do(); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if after := kindsOf(s.history(t, job)); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("refused requests changed the history: %v -> %v", before, after)
	}
}

// TestProjectionIgnoresInjectedEvents publishes events straight onto the
// stream, past the conditional append, as a buggy or replayed writer
// would: duplicates and impossible steps must not change the row.
func TestProjectionIgnoresInjectedEvents(t *testing.T) {
	s := setup(t, func(r *tasks.Registry) {
		r.Register("noop", func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
			return tasktype.Result{Summary: "done"}, nil
		}, tasktype.Policy{})
	})
	ctx := testsupport.Context(t)
	job := s.enqueue(t, "noop", 11, "")
	s.waitDone(t, job)
	want, err := s.store.GetForUser(ctx, 11, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	h := s.history(t, job)
	nc := s.rawConn(t)
	inject := func(e tasktype.Event) {
		t.Helper()
		data, _ := json.Marshal(e)
		if _, err := nc.Request(jetstream.EventSubject(&e), data, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	started, done := h[1], h[len(h)-1]
	inject(done)    // the outcome again
	inject(started) // completed -> running
	later := started
	later.Attempt, later.Time = 2, time.Now().UTC()
	inject(later) // a second start of a finished job
	failed := done
	failed.Kind, failed.Error = tasktype.EventFailed, "late failure"
	inject(failed) // completed -> failed
	retried := done
	retried.Kind = tasktype.EventRetried
	inject(retried) // completed -> pending
	// Last, a message that is no event at all: followers must move past
	// it, not wait for it to make sense.
	if _, err := nc.Request(jetstream.Subject("noop", 11, job.ID, tasktype.EventStarted), []byte("not json"), 5*time.Second); err != nil {
		t.Fatal(err)
	}

	last, err := s.web.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, 10*time.Second, "projection did not read the injected events", func() bool {
		off, err := s.proj.Offset(ctx)
		return err == nil && off >= last
	})
	assertRows(t, s.store, []tasktype.Task{want})
	// A catch-up (app projections rebuild) whose target is the
	// undecodable message ends.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rebuild := projection.New(s.db, s.web, testsupport.Logger(t))
	if err := rebuild.Rebuild(cctx); err != nil {
		t.Fatal(err)
	}
	if err := rebuild.CatchUp(cctx); err != nil {
		t.Fatalf("catch up to an undecodable last message: %v", err)
	}
	assertRows(t, s.store, []tasktype.Task{want})

	// Reordered delivery: an older event after a newer one is skipped.
	if err := s.proj.Apply(ctx, h[1]); err != nil {
		t.Fatal(err)
	}
	assertRows(t, s.store, []tasktype.Task{want})
}

// rawConn is a plain NATS connection to the system's server, for
// publishing past the broker's checks.
func (s *system) rawConn(t *testing.T) *nats.Conn {
	t.Helper()
	return testsupport.Connect(t, s.srv, "raw")
}

// recordingStream notes where each Follow starts.
type recordingStream struct {
	projection.Stream
	mu    sync.Mutex
	froms []uint64
}

func (r *recordingStream) Follow(ctx context.Context, from uint64, fn func([]tasktype.Event) error) error {
	r.mu.Lock()
	r.froms = append(r.froms, from)
	r.mu.Unlock()
	return r.Stream.Follow(ctx, from, fn)
}

func TestProjectionResumesWhereItLeftOff(t *testing.T) {
	s := setup(t, func(r *tasks.Registry) {
		r.Register("noop", func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
			return tasktype.Result{}, nil
		}, tasktype.Policy{})
	})
	ctx := testsupport.Context(t)
	s.waitDone(t, s.enqueue(t, "noop", 12, ""))
	off, err := s.proj.Offset(ctx)
	if err != nil || off == 0 {
		t.Fatalf("offset %d, %v", off, err)
	}
	// A second projection process on the same database starts from the
	// stored offset, not from the beginning.
	rec := &recordingStream{Stream: s.web}
	p2 := projection.New(s.db, rec, testsupport.Logger(t))
	pctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); p2.Run(pctx) }()
	job := s.enqueue(t, "noop", 12, "")
	s.waitDone(t, job)
	if err := p2.WaitFor(ctx, job.EventSeq); err != nil {
		t.Fatal(err)
	}
	stop()
	<-done
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.froms) == 0 || rec.froms[0] < off {
		t.Fatalf("second projection followed from %v, want from the stored offset %d", rec.froms, off)
	}
}

// TestRebuildUnderALiveProjection rebuilds task_result while the live
// projection keeps running, then checks both against a projection built
// from scratch in another database.
func TestRebuildUnderALiveProjection(t *testing.T) {
	s := setup(t, func(r *tasks.Registry) {
		r.Register("noop", func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
			return tasktype.Result{Summary: "ok"}, nil
		}, tasktype.Policy{})
		r.Register("bad", func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
			return tasktype.Result{}, errors.New("no")
		}, tasktype.Policy{MaxAttempts: 2, BackoffMin: 10 * time.Millisecond, BackoffMax: 10 * time.Millisecond})
	})
	ctx := testsupport.Context(t)
	for i := range 4 {
		typ := "noop"
		if i%2 == 1 {
			typ = "bad"
		}
		s.waitDone(t, s.enqueue(t, typ, 13, ""))
	}
	rebuild := projection.New(s.db, s.web, testsupport.Logger(t))
	if err := rebuild.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rebuild.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	// The live projection notices the reset on its next event and
	// carries on from the rebuilt position.
	last := s.enqueue(t, "noop", 13, "")
	s.waitDone(t, last)

	fresh, _ := testsupport.DB(t)
	scratch := projection.New(fresh, s.web, testsupport.Logger(t))
	if err := scratch.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	want, err := projection.NewStore(fresh).All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 5 {
		t.Fatalf("projection from scratch has %d rows, want 5", len(want))
	}
	assertRows(t, s.store, want)
}
