package tasks_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/internal/driver"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/redisbroker"
	"github.com/otjhelper/otj/modules/tasks/redisbroker/redisbrokertest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// A paused job type's jobs are accepted and wait, on both transports:
// none runs while it is paused, the other types' jobs run meanwhile, and
// after the resume every one of them runs once and none has failed.
func TestPausedTypeWaitsAndRunsAfterResume(t *testing.T) {
	const paused = 500
	for _, tc := range []struct {
		name      string
		transport func(t *testing.T, log *jetstream.Broker) driver.Transport
	}{
		{"jetstream", func(t *testing.T, log *jetstream.Broker) driver.Transport { return log }},
		{"redis", func(t *testing.T, log *jetstream.Broker) driver.Transport {
			return redisbrokertest.Broker(t, log, redisbroker.Config{Poll: 50 * time.Millisecond})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testsupport.Context(t)
			db, _ := testsupport.DB(t)
			log := jetstreamtest.Broker(t, testsupport.Connect(t, testsupport.NATS(t), "pauses"))
			reg := tasks.NewRegistry()
			var slowRuns, otherRuns atomic.Int64
			for typ, n := range map[string]*atomic.Int64{"held_back": &slowRuns, "other": &otherRuns} {
				if err := reg.Register(typ, func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
					n.Add(1)
					return tasktype.Result{}, nil
				}, tasktype.Policy{}); err != nil {
					t.Fatal(err)
				}
			}
			c, err := tasks.NewClient(tasks.Config{DB: db, Log: log, Transport: tc.transport(t, log), Registry: reg,
				Logger: testsupport.Logger(t), Worker: tasks.WorkerConfig{Concurrency: 8}})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Pause(ctx, "no_such_type", "ops@example.org"); !errors.Is(err, tasktype.ErrUnknownType) {
				t.Fatalf("pausing an unknown type: %v, want ErrUnknownType", err)
			}
			if err := c.Pause(ctx, "held_back", "ops@example.org"); err != nil {
				t.Fatal(err)
			}
			ps, err := c.Pauses(ctx)
			if err != nil || len(ps) != 1 || ps[0].Type != "held_back" || ps[0].By != "ops@example.org" || ps[0].At.IsZero() {
				t.Fatalf("pauses: %+v, %v; want held_back, paused by ops@example.org", ps, err)
			}
			var jobs []tasktype.Job
			for i := range paused {
				j, err := c.Enqueue(ctx, tasktype.EnqueueRequest{Type: "held_back", UserID: int64(1 + i%3)})
				if err != nil {
					t.Fatal(err)
				}
				jobs = append(jobs, j)
			}
			for range 5 {
				if _, err := c.Enqueue(ctx, tasktype.EnqueueRequest{Type: "other", UserID: 9}); err != nil {
					t.Fatal(err)
				}
			}
			testsupport.Go(t, func(ctx context.Context) { _ = c.RunWorker(ctx) })
			testsupport.Eventually(t, 30*time.Second, "the other type's jobs did not run beside the paused ones", func() bool { return otherRuns.Load() == 5 })
			time.Sleep(2 * time.Second) // room for a wrong run of a paused job
			if n := slowRuns.Load(); n != 0 {
				t.Fatalf("%d jobs of the paused type ran", n)
			}

			if err := c.Resume(ctx, "held_back"); err != nil {
				t.Fatal(err)
			}
			testsupport.Eventually(t, 2*time.Minute, "the paused type's jobs did not all run after the resume", func() bool { return slowRuns.Load() >= paused })
			for _, j := range jobs {
				var last tasktype.Event
				testsupport.Eventually(t, 10*time.Second, "a job's outcome was not recorded", func() bool {
					last, err = c.Last(ctx, j.UserID, j.ID)
					return err == nil && (last.Kind == tasktype.EventSucceeded || last.Kind == tasktype.EventFailed)
				})
				if last.Kind != tasktype.EventSucceeded || last.Attempt != 1 {
					t.Fatalf("job %s ended %s at attempt %d, want succeeded at its first", j.ID, last.Kind, last.Attempt)
				}
			}
			time.Sleep(500 * time.Millisecond)
			if n := slowRuns.Load(); n != paused {
				t.Fatalf("%d runs of %d jobs, want each once", n, paused)
			}
		})
	}
}
