package tasks_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// A worker is listed from its own heartbeats while it runs, with the
// jobs it is running; it leaves the list as it stops; one that stopped
// without a word (killed) drops out once its lease has passed.
func TestWorkersListsLiveWorkers(t *testing.T) {
	ctx := testsupport.Context(t)
	db, _ := testsupport.DB(t)
	broker := jetstreamtest.Broker(t, testsupport.Connect(t, testsupport.NATS(t), "workers"))
	reg := tasks.NewRegistry()
	release := make(chan struct{})
	if err := reg.Register("hold", func(ctx context.Context, _ tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return tasktype.Result{}, nil
	}, tasktype.Policy{}); err != nil {
		t.Fatal(err)
	}
	c, err := tasks.NewClient(tasks.Config{DB: db, Log: broker, Transport: broker, Registry: reg, Logger: testsupport.Logger(t),
		Worker: tasks.WorkerConfig{Name: "w-one", Version: "v-test", Concurrency: 2}})
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.NewWorker(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(wctx) }()
	defer func() { stop(); <-done }()

	job, err := c.Enqueue(ctx, tasktype.EnqueueRequest{Type: "hold", UserID: 1})
	if err != nil {
		t.Fatal(err)
	}
	var seen tasktype.WorkerInfo
	testsupport.Eventually(t, 10*time.Second, "the worker was never listed running the job", func() bool {
		ws, err := c.Workers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, info := range ws {
			if info.Name == "w-one" && slices.Contains(info.Running, job.ID) {
				seen = info
				return true
			}
		}
		return false
	})
	if seen.Version != "v-test" || seen.Concurrency != 2 || seen.Host == "" || seen.Lease <= 0 ||
		seen.StartedAt.IsZero() || seen.LastHeartbeat.Before(seen.StartedAt) {
		t.Errorf("listed as %+v; want version v-test, concurrency 2, a host, a lease, its start and a heartbeat since", seen)
	}

	// A worker killed: its last heartbeat stays in the bucket, but it is
	// not listed once its lease has passed.
	now := time.Now().UTC()
	for _, b := range []tasktype.WorkerInfo{
		{Name: "killed", Lease: time.Second, StartedAt: now.Add(-time.Hour), LastHeartbeat: now.Add(-2 * time.Second)},
		{Name: "alive", Lease: time.Minute, StartedAt: now.Add(-time.Hour), LastHeartbeat: now.Add(-2 * time.Second)},
	} {
		if err := broker.Beat(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	ws, err := c.Workers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, info := range ws {
		names = append(names, info.Name)
	}
	if !slices.Equal(names, []string{"alive", "w-one"}) {
		t.Errorf("workers listed: %v; want alive and w-one, not the killed one", names)
	}

	// Stopped, it leaves the list at once.
	close(release)
	stop()
	<-done
	ws, err = c.Workers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range ws {
		if info.Name == "w-one" {
			t.Errorf("a stopped worker is still listed: %+v", info)
		}
	}
}
