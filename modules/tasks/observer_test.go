package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// recorder is an Observer that writes down each call.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf(format, args...))
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func (r *recorder) Enqueued(t string, n int)                      { r.add("enqueued %s %d", t, n) }
func (r *recorder) Cancelled(t string)                            { r.add("cancelled %s", t) }
func (r *recorder) Retried(t string)                              { r.add("retried %s", t) }
func (r *recorder) AttemptStarted(t string, waited time.Duration) { r.add("started %s", t) }
func (r *recorder) AttemptEnded(t string, outcome tasktype.EventKind, ran time.Duration) {
	r.add("ended %s %s", t, outcome)
}

// The Observer hears of every enqueue, cancel and retry through the
// Client, and of each attempt's start and how it ended: succeeded,
// retrying, failed, cancelled while running, handed back at shutdown.
func TestObserverSeesEveryOutcome(t *testing.T) {
	for _, tc := range []struct {
		name string
		// handler runs each attempt; act drives the job from outside
		// (stop stops the worker). want is what the observer hears: the
		// Client's calls and the worker's are each in order, but a
		// worker may start a job before its Enqueue has returned, so
		// the two are compared apart.
		handler func(ctx context.Context, attempt int) error
		act     func(t *testing.T, c *tasks.Client, job tasktype.Job, stop func())
		want    []string
	}{
		{
			name:    "succeeds",
			handler: func(context.Context, int) error { return nil },
			want:    []string{"enqueued obs 1", "started obs", "ended obs succeeded"},
		},
		{
			name: "fails once then for good, retried by hand, succeeds",
			handler: func(_ context.Context, attempt int) error {
				switch attempt {
				case 1:
					return errors.New("passing")
				case 2:
					return tasktype.Permanent(errors.New("for good"))
				}
				return nil
			},
			act: func(t *testing.T, c *tasks.Client, job tasktype.Job, _ func()) {
				waitKind(t, c, job, tasktype.EventFailed)
				if _, err := c.Retry(testsupport.Context(t), 0, job.ID, tasktype.ByOperator); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"enqueued obs 1", "started obs", "ended obs retrying", "started obs", "ended obs failed",
				"retried obs", "started obs", "ended obs succeeded"},
		},
		{
			name: "cancelled while running",
			handler: func(ctx context.Context, _ int) error {
				<-ctx.Done()
				return ctx.Err()
			},
			act: func(t *testing.T, c *tasks.Client, job tasktype.Job, _ func()) {
				waitKind(t, c, job, tasktype.EventStarted)
				if _, err := c.Cancel(testsupport.Context(t), 0, job.ID, tasktype.ByOperator); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"enqueued obs 1", "started obs", "cancelled obs", "ended obs cancelled"},
		},
		{
			name: "handed back at shutdown",
			handler: func(ctx context.Context, _ int) error {
				<-ctx.Done()
				return ctx.Err()
			},
			act: func(t *testing.T, c *tasks.Client, job tasktype.Job, stop func()) {
				waitKind(t, c, job, tasktype.EventStarted)
				stop()
			},
			want: []string{"enqueued obs 1", "started obs", "ended obs released"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testsupport.Context(t)
			db, _ := testsupport.DB(t)
			broker := jetstreamtest.Broker(t, testsupport.Connect(t, testsupport.NATS(t), "observer"))
			reg := tasks.NewRegistry()
			// The worker tells the observer an attempt ended after its
			// outcome is stored, and the retry is due from then: the
			// backoff keeps the next attempt's start after that call
			// even on a loaded machine.
			policy := tasktype.Policy{MaxAttempts: 2, BackoffMin: 300 * time.Millisecond, BackoffMax: 300 * time.Millisecond, Timeout: time.Minute}
			if err := reg.Register("obs", func(ctx context.Context, job tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
				return tasktype.Result{}, tc.handler(ctx, job.Attempt)
			}, policy); err != nil {
				t.Fatal(err)
			}
			rec := &recorder{}
			c, err := tasks.NewClient(tasks.Config{
				DB: db, Log: broker, Transport: broker, Registry: reg, Observer: rec, Logger: testsupport.Logger(t),
				Worker: tasks.WorkerConfig{ExtendEvery: 50 * time.Millisecond, ShutdownGrace: 10 * time.Millisecond},
			})
			if err != nil {
				t.Fatal(err)
			}
			wctx, stopWorker := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); _ = c.RunWorker(wctx) }()
			stop := func() { stopWorker(); <-done }
			t.Cleanup(stop)
			job, err := c.Enqueue(ctx, tasktype.EnqueueRequest{Type: "obs", UserID: 1})
			if err != nil {
				t.Fatal(err)
			}
			if tc.act != nil {
				tc.act(t, c, job, stop)
			}
			testsupport.Eventually(t, 10*time.Second, "the observer never heard the whole story", func() bool {
				return len(rec.list()) >= len(tc.want)
			})
			got := rec.list()
			for _, worker := range []bool{false, true} {
				if g, w := side(got, worker), side(tc.want, worker); !slices.Equal(g, w) {
					t.Errorf("observer heard\n%q\nwant\n%q", got, tc.want)
				}
			}
		})
	}
}

// side is the calls of the worker (started, ended), or of the Client.
func side(calls []string, worker bool) []string {
	var out []string
	for _, c := range calls {
		if byWorker := strings.HasPrefix(c, "started ") || strings.HasPrefix(c, "ended "); byWorker == worker {
			out = append(out, c)
		}
	}
	return out
}

// waitKind waits until the job's newest event is of kind.
func waitKind(t *testing.T, c *tasks.Client, job tasktype.Job, kind tasktype.EventKind) {
	t.Helper()
	testsupport.Eventually(t, 10*time.Second, "job never reached "+string(kind), func() bool {
		e, err := c.Last(testsupport.Context(t), 0, job.ID)
		return err == nil && e.Kind == kind
	})
}
