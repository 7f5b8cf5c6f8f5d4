package tasks_test

import (
	"context"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// A handler finds the Client that runs it on its job's context, whether
// a worker took the job from the queue or the job ran in the request:
// the account export reads the task system so.
func TestClientFromContextInJobs(t *testing.T) {
	ctx := testsupport.Context(t)
	if _, ok := tasks.ClientFromContext(ctx); ok {
		t.Error("ClientFromContext outside a job found a client")
	}
	db, _ := testsupport.DB(t)
	srv := testsupport.NATS(t)
	web := jetstreamtest.Broker(t, testsupport.Connect(t, srv, "web"))
	wb := jetstreamtest.Broker(t, testsupport.Connect(t, srv, "worker"))
	reg := tasks.NewRegistry()
	found := make(chan *tasks.Client, 2)
	if err := reg.Register("ctx_job", func(ctx context.Context, _ tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
		c, _ := tasks.ClientFromContext(ctx)
		found <- c
		return tasktype.Result{}, nil
	}, tasktype.Policy{}); err != nil {
		t.Fatal(err)
	}
	worker, err := tasks.NewClient(tasks.Config{DB: db, Log: wb, Transport: wb, Registry: reg, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	testsupport.Go(t, func(ctx context.Context) { worker.RunWorker(ctx) })
	// The web's client enqueues: the job's client is the worker's.
	c, err := tasks.NewClient(tasks.Config{DB: db, Log: web, Transport: web})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enqueue(ctx, tasktype.EnqueueRequest{Type: "ctx_job", UserID: 5}); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-found:
		if got != worker {
			t.Errorf("in a worker's job, ClientFromContext = %p, want the worker's client %p", got, worker)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the job did not run within 20s")
	}

	// In the request: the in-request runner the Client gives its enqueuer.
	enq := &fallbackEnqueuer{Broker: web}
	inline, err := tasks.NewClient(tasks.Config{DB: db, Log: web, Transport: enq, Registry: reg, RunInRequest: true,
		Worker: tasks.WorkerConfig{InlineName: "in-request"}, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	item, _, err := web.EnqueueEvent(ctx, tasktype.EnqueueRequest{Type: "ctx_job", UserID: 6})
	if err != nil {
		t.Fatal(err)
	}
	// The worker may take it first; either client is the one running it.
	enq.run(ctx, item)
	select {
	case got := <-found:
		if got != inline && got != worker {
			t.Errorf("in a job run in the request, ClientFromContext = %p, want the running client", got)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the job did not run within 20s")
	}
}

// Each job module describes its kind beside its handler; the registry
// keeps them in the order described, for the web's buttons, and refuses
// a kind with no handler or one described twice.
func TestRegistryKinds(t *testing.T) {
	reg := tasks.NewRegistry()
	noop := func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
		return tasktype.Result{}, nil
	}
	if err := reg.Describe(tasktype.Kind{Type: "b_job", Label: "B"}); err == nil {
		t.Error("Describe of an unregistered type succeeded")
	}
	for _, typ := range []string{"b_job", "a_job"} {
		if err := reg.Register(typ, noop, tasktype.Policy{}); err != nil {
			t.Fatal(err)
		}
		if err := reg.Describe(tasktype.Kind{Type: typ, Label: typ + " label"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := reg.Describe(tasktype.Kind{Type: "a_job"}); err == nil {
		t.Error("a second Describe of a type succeeded")
	}
	db, _ := testsupport.DB(t)
	broker := jetstreamtest.Broker(t, testsupport.Connect(t, testsupport.NATS(t), "kinds"))
	c, err := tasks.NewClient(tasks.Config{DB: db, Log: broker, Transport: broker, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	got := c.Kinds()
	if len(got) != 2 || got[0].Type != "b_job" || got[1].Type != "a_job" || got[1].Label != "a_job label" {
		t.Errorf("Kinds = %+v, want b_job then a_job, as described", got)
	}
}
