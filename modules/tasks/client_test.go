package tasks_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/internal/driver"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// fallbackEnqueuer stands for a driver that can have a job run in the
// request (the Redis broker): it keeps the runner the Client gives it.
type fallbackEnqueuer struct {
	*jetstream.Broker
	run func(ctx context.Context, item tasktype.Event)
}

func (f *fallbackEnqueuer) SetRunInline(run func(ctx context.Context, item tasktype.Event)) {
	f.run = run
}

// Capabilities says it can run a job in the request.
func (f *fallbackEnqueuer) Capabilities() driver.Capabilities {
	c := f.Broker.Capabilities()
	c.InRequestFallback = true
	return c
}

var _ driver.Transport = (*fallbackEnqueuer)(nil)

// With RunInRequest, the Client gives the enqueuer a runner that runs the
// job there and then, as a worker would, under the in-request name.
func TestClientWiresTheInRequestRunner(t *testing.T) {
	ctx := testsupport.Context(t)
	db, _ := testsupport.DB(t)
	broker := jetstreamtest.Broker(t, testsupport.Connect(t, testsupport.NATS(t), "client"))
	reg := tasks.NewRegistry()
	ran := 0
	if err := reg.Register("inline_job", func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
		ran++
		return tasktype.Result{Summary: "ran here"}, nil
	}, tasktype.Policy{}); err != nil {
		t.Fatal(err)
	}
	enq := &fallbackEnqueuer{Broker: broker}
	c, err := tasks.NewClient(tasks.Config{
		DB: db, Log: broker, Transport: enq, Registry: reg, RunInRequest: true,
		Worker: tasks.WorkerConfig{InlineName: "in-request"}, Logger: testsupport.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	if enq.run == nil {
		t.Fatal("the Client gave the enqueuer no runner")
	}
	item, _, err := broker.EnqueueEvent(ctx, tasktype.EnqueueRequest{Type: "inline_job", UserID: 4})
	if err != nil {
		t.Fatal(err)
	}
	enq.run(ctx, item)
	h, err := c.History(ctx, 4, item.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 3 || h[1].Kind != tasktype.EventStarted || h[1].Worker != "in-request" ||
		h[2].Kind != tasktype.EventSucceeded || h[2].Summary != "ran here" || ran != 1 {
		t.Errorf("after the in-request run, %d handler calls and history %+v; want it started by in-request and succeeded", ran, h)
	}
}

// RunInRequest with an enqueuer that cannot run jobs in the request is a
// configuration error, not a fallback that silently never happens.
func TestClientRefusesInRequestWithoutFallback(t *testing.T) {
	db, _ := testsupport.DB(t)
	broker := jetstreamtest.Broker(t, testsupport.Connect(t, testsupport.NATS(t), "client"))
	_, err := tasks.NewClient(tasks.Config{DB: db, Log: broker, Transport: broker, Registry: tasks.NewRegistry(), RunInRequest: true})
	if err == nil || !strings.Contains(err.Error(), "RunInRequest") {
		t.Errorf("NewClient = %v, want an error naming RunInRequest", err)
	}
}

// Every Client has one shape: one missing a part of it is refused when
// it is made, naming the part, rather than failing later on a nil driver.
func TestClientRefusesAMissingPart(t *testing.T) {
	db, _ := testsupport.DB(t)
	broker := jetstreamtest.Broker(t, testsupport.Connect(t, testsupport.NATS(t), "client"))
	for _, tt := range []struct {
		want string
		cfg  tasks.Config
	}{
		{"DB", tasks.Config{Log: broker, Transport: broker}},
		{"Log", tasks.Config{DB: db, Transport: broker}},
		{"Transport", tasks.Config{DB: db, Log: broker}},
	} {
		if _, err := tasks.NewClient(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want+" is required") {
			t.Errorf("NewClient without %s = %v, want an error naming it", tt.want, err)
		}
	}
}

// WaitOutcome returns the event that ended a job run by a worker, read
// from the log with no projection running.
func TestClientWaitOutcome(t *testing.T) {
	ctx := testsupport.Context(t)
	db, _ := testsupport.DB(t)
	srv := testsupport.NATS(t)
	web := jetstreamtest.Broker(t, testsupport.Connect(t, srv, "web"))
	worker := jetstreamtest.Broker(t, testsupport.Connect(t, srv, "worker"))
	reg := tasks.NewRegistry()
	release := make(chan struct{})
	if err := reg.Register("slow_job", func(ctx context.Context, _ tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
		select {
		case <-release:
		case <-ctx.Done():
			return tasktype.Result{}, ctx.Err()
		}
		return tasktype.Result{Summary: "done"}, nil
	}, tasktype.Policy{}); err != nil {
		t.Fatal(err)
	}
	w, err := tasks.NewClient(tasks.Config{DB: db, Log: worker, Transport: worker, Registry: reg, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	testsupport.Go(t, func(ctx context.Context) { w.RunWorker(ctx) })
	c, err := tasks.NewClient(tasks.Config{DB: db, Log: web, Transport: web})
	if err != nil {
		t.Fatal(err)
	}
	job, err := c.Enqueue(ctx, tasktype.EnqueueRequest{Type: "slow_job", UserID: 3})
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(200*time.Millisecond, func() { close(release) })
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	e, err := c.WaitOutcome(wctx, 3, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if e.Kind != tasktype.EventSucceeded || e.JobID != job.ID || e.Summary != "done" {
		t.Errorf("WaitOutcome = %+v, want the job's succeeded event", e)
	}
	// Once ended, it answers at once from the job's newest event.
	if again, err := c.WaitOutcome(wctx, 0, job.ID); err != nil || again.Seq != e.Seq {
		t.Errorf("WaitOutcome again = %+v, %v; want the same event", again, err)
	}
}

// CountMatching counts what List would list, by status, user and type,
// without List's limit.
func TestClientCountMatching(t *testing.T) {
	ctx := testsupport.Context(t)
	db, _ := testsupport.DB(t)
	broker := jetstreamtest.Broker(t, testsupport.Connect(t, testsupport.NATS(t), "client"))
	c, err := tasks.NewClient(tasks.Config{DB: db, Log: broker, Transport: broker})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []tasktype.EnqueueRequest{
		{Type: "a_job", UserID: 1}, {Type: "a_job", UserID: 1}, {Type: "b_job", UserID: 1}, {Type: "a_job", UserID: 2},
	} {
		if _, err := c.Enqueue(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	job, err := c.Enqueue(ctx, tasktype.EnqueueRequest{Type: "a_job", UserID: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Cancel(ctx, 2, job.ID, tasktype.ByUser); err != nil {
		t.Fatal(err)
	}
	if err := c.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		f    tasktype.Filter
		want int64
	}{
		{tasktype.Filter{}, 5},
		{tasktype.Filter{UserID: 1}, 3},
		{tasktype.Filter{UserID: 1, Type: "a_job"}, 2},
		{tasktype.Filter{Status: tasktype.StatusPending}, 4},
		{tasktype.Filter{Status: tasktype.StatusCancelled, UserID: 2}, 1},
		{tasktype.Filter{Status: tasktype.StatusCancelled, UserID: 1}, 0},
		{tasktype.Filter{Limit: 1}, 5},
	} {
		if got, err := c.CountMatching(ctx, tc.f); err != nil || got != tc.want {
			t.Errorf("CountMatching(%+v) = %d, %v; want %d", tc.f, got, err, tc.want)
		}
	}
}

// Rebuild replays the whole stream into task_result, even when it was
// already up to date, and says what it read; StatusBefore names the state
// an operator's change left.
func TestClientRebuildAndStatusBefore(t *testing.T) {
	ctx := testsupport.Context(t)
	db, _ := testsupport.DB(t)
	broker := jetstreamtest.Broker(t, testsupport.Connect(t, testsupport.NATS(t), "client"))
	c, err := tasks.NewClient(tasks.Config{DB: db, Log: broker, Transport: broker, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var jobs []tasktype.Job
	for i := range 3 {
		job, err := c.Enqueue(ctx, tasktype.EnqueueRequest{Type: "some_job", UserID: int64(i + 1)})
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, job)
	}
	cancelled, err := c.Cancel(ctx, 0, jobs[1].ID, tasktype.ByOperator)
	if err != nil {
		t.Fatal(err)
	}
	if was, err := c.StatusBefore(ctx, cancelled); err != nil || was != tasktype.StatusPending {
		t.Errorf("StatusBefore(the cancel) = %q, %v; want %q", was, err, tasktype.StatusPending)
	}
	if err := c.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	last, err := c.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Rebuild(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != 4 || st.Seq != last || st.Rows != 3 || st.Took <= 0 {
		t.Errorf("Rebuild = %+v; want 4 events read, up to sequence %d, into 3 rows, in some time", st, last)
	}
	if task, err := c.Get(ctx, jobs[1].ID); err != nil || task.Status != tasktype.StatusCancelled {
		t.Errorf("after the rebuild, the cancelled job is %+v, %v; want it cancelled", task, err)
	}
}

// Cancel and retry decide from the job's life as the state machine took
// it, as the task page shows it: an event the projection refused (here
// a failed appended after the job succeeded, which only a forger or a
// bug could write) does not make a completed job retryable, nor does it
// run it again.
func TestControlDecidesFromTheAcceptedHistory(t *testing.T) {
	ctx := testsupport.Context(t)
	db, _ := testsupport.DB(t)
	broker := jetstreamtest.Broker(t, testsupport.Connect(t, testsupport.NATS(t), "client"))
	c, err := tasks.NewClient(tasks.Config{DB: db, Log: broker, Transport: broker, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	job, err := c.Enqueue(ctx, tasktype.EnqueueRequest{Type: "some_job", UserID: 7})
	if err != nil {
		t.Fatal(err)
	}
	seq := job.EventSeq
	step := func(kind tasktype.EventKind, fill func(*tasktype.Event)) {
		t.Helper()
		e := tasktype.Event{ID: string(kind) + job.ID, Kind: kind, JobID: job.ID, JobType: job.Type, UserID: 7, Time: time.Now().UTC(), Attempt: 1, MaxAttempts: 3, Worker: "w1"}
		if fill != nil {
			fill(&e)
		}
		if seq, err = broker.Append(ctx, e, seq); err != nil {
			t.Fatalf("append %s: %v", kind, err)
		}
	}
	step(tasktype.EventStarted, nil)
	step(tasktype.EventSucceeded, func(e *tasktype.Event) { e.Summary = "done" })
	step(tasktype.EventFailed, func(e *tasktype.Event) { e.Error = "forged" })

	if _, err := c.Retry(ctx, 7, job.ID, tasktype.ByUser); !errors.Is(err, tasktype.ErrWrongState) {
		t.Errorf("retry of a completed job whose log ends in a refused failed event: %v, want ErrWrongState", err)
	}
	if _, err := c.Cancel(ctx, 7, job.ID, tasktype.ByUser); !errors.Is(err, tasktype.ErrWrongState) {
		t.Errorf("cancel of a completed job: %v, want ErrWrongState", err)
	}
	if last, err := c.Last(ctx, 7, job.ID); err != nil || last.Kind != tasktype.EventFailed {
		t.Errorf("newest event %v, %v: want the refused failed still last, nothing appended", last.Kind, err)
	}
}
