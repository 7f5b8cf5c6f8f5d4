package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/natsconn"
	"github.com/otjhelper/otj/platform/testsupport"
)

// TestClusterNodeLossUnderLoad runs enqueues, a worker and the projection,
// each on its own connection as separate processes would be, against a
// three-node cluster with replicas 3. Under load it kills the stream's
// leader, then the node the worker is connected to, restarting each. Every
// accepted job must reach exactly one outcome (counted in the stream's
// whole history), the projection must show every job completed, and all
// of it without any help: the clients reconnect and carry on by
// themselves.
func TestClusterNodeLossUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("kills cluster nodes under load; not in -short")
	}
	const (
		jobs  = 600
		user  = 42
		lease = 2 * time.Second
	)
	ctx := testsupport.Context(t)
	c := testsupport.NATSCluster(t, 3)
	connect := func(name string) *nats.Conn {
		nc, err := natsconn.Connect(natsconn.Options{URL: c.URLs(), Name: name, Token: testsupport.NATSToken, Logger: testsupport.Logger(t)})
		if err != nil {
			t.Fatalf("connect %s: %v", name, err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	open := func(nc *nats.Conn) *jetstream.Broker {
		b, err := jetstream.Open(ctx, jetstream.Config{Conn: nc, Replicas: 3, AckWait: lease, Logger: testsupport.Logger(t)})
		if err != nil {
			t.Fatalf("open broker: %v", err)
		}
		return b
	}
	webNC, workerNC, checkNC := connect("web"), connect("worker"), connect("check")
	web, workerBroker, check := open(webNC), open(workerNC), open(checkNC)

	db, _ := testsupport.DB(t)
	webClient, err := tasks.NewClient(tasks.Config{DB: db, Log: web, Transport: web, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	testsupport.Go(t, func(ctx context.Context) { _ = webClient.RunProjection(ctx) })

	reg := tasks.NewRegistry()
	var runs atomic.Int64
	if err := reg.Register("cluster_job", func(ctx context.Context, job tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
		runs.Add(1)
		time.Sleep(5 * time.Millisecond)
		return tasktype.Result{Summary: "done " + job.ID}, nil
	}, tasktype.Policy{MaxAttempts: 5, BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	workerClient, err := tasks.NewClient(tasks.Config{DB: db, Log: workerBroker, Transport: workerBroker, Registry: reg,
		Worker: tasks.WorkerConfig{Concurrency: 8, Lease: lease, Name: "cluster-worker"}, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	testsupport.Go(t, func(ctx context.Context) { _ = workerClient.RunWorker(ctx) })

	// The load: one enqueue after another, each with its own key, tried
	// again on error as a user's second click would be; the key makes the
	// second try return the first job if the first was stored after all.
	var (
		mu       sync.Mutex
		accepted = map[string]bool{}
		failures []string
	)
	acceptedN := func() int { mu.Lock(); defer mu.Unlock(); return len(accepted) }
	loadDone := make(chan struct{})
	testsupport.Go(t, func(ctx context.Context) {
		defer close(loadDone)
		for i := range jobs {
			for try := 0; ; try++ {
				if ctx.Err() != nil {
					return
				}
				job, err := webClient.Enqueue(ctx, tasktype.EnqueueRequest{Type: "cluster_job", UserID: user, Key: fmt.Sprintf("job-%d", i)})
				if err == nil {
					mu.Lock()
					accepted[job.ID] = true
					mu.Unlock()
					break
				}
				mu.Lock()
				failures = append(failures, err.Error())
				mu.Unlock()
				time.Sleep(100 * time.Millisecond)
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	waitAccepted := func(n int) {
		t.Helper()
		testsupport.Eventually(t, 2*time.Minute, fmt.Sprintf("%d jobs accepted", n), func() bool { return acceptedN() >= n })
	}
	// failover kills node i, times how long until the stream has a leader
	// again, lets the load run on without it, and restarts it.
	failover := func(what string, i int, until int) {
		t.Helper()
		killed := time.Now()
		c.Kill(i)
		testsupport.Eventually(t, time.Minute, "a stream leader after killing "+what, func() bool { return c.StreamLeader(jetstream.StreamName) >= 0 })
		t.Logf("killed node %d (%s) at %d accepted: a stream leader again after %s", i, what, acceptedN(), time.Since(killed).Round(time.Millisecond))
		waitAccepted(until)
		c.Restart(i)
		t.Logf("node %d back after %s, at %d accepted", i, time.Since(killed).Round(time.Millisecond), acceptedN())
	}

	waitAccepted(jobs / 4)
	var leader int
	testsupport.Eventually(t, time.Minute, "the stream has a leader", func() bool { leader = c.StreamLeader(jetstream.StreamName); return leader >= 0 })
	failover("the stream leader", leader, jobs/2)

	waitAccepted(jobs * 5 / 8)
	workerNode := c.NodeOf(workerNC.ConnectedAddr())
	if workerNode < 0 {
		t.Fatalf("the worker's connection is on %s, no node of the cluster", workerNC.ConnectedAddr())
	}
	failover("the worker's node", workerNode, jobs*7/8)
	<-loadDone
	if n := acceptedN(); n != jobs {
		t.Fatalf("%d jobs accepted, want %d", n, jobs)
	}

	// Every accepted job ends, on its own.
	testsupport.Eventually(t, 2*time.Minute, "every accepted job succeeded", func() bool {
		n, err := webClient.CountMatching(ctx, tasktype.Filter{UserID: user, Status: tasktype.StatusCompleted})
		return err == nil && n == jobs
	})
	outcomes, enqueued := countOutcomes(t, ctx, check)
	if len(enqueued) != jobs {
		t.Errorf("%d jobs in the stream, want %d (one per key)", len(enqueued), jobs)
	}
	for id := range accepted {
		if outcomes[id] != 1 {
			t.Errorf("job %s: %d outcomes, want 1", id, outcomes[id])
		}
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d jobs, %d handler runs, %d enqueue errors tried again", jobs, runs.Load(), len(failures))
	for i, f := range failures {
		if i == 5 {
			break
		}
		t.Logf("enqueue error: %s", f)
	}
}

// countOutcomes reads the whole stream and counts, per job, its outcome
// events (succeeded, failed, cancelled), and lists the jobs enqueued.
func countOutcomes(t *testing.T, ctx context.Context, b *jetstream.Broker) (map[string]int, map[string]bool) {
	t.Helper()
	last, err := b.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	outcomes, enqueued := map[string]int{}, map[string]bool{}
	errDone := errors.New("read to the end")
	err = b.Follow(ctx, 0, func(events []tasktype.Event) error {
		for _, e := range events {
			switch e.Kind {
			case tasktype.EventEnqueued:
				enqueued[e.JobID] = true
			case tasktype.EventSucceeded, tasktype.EventFailed, tasktype.EventCancelled:
				outcomes[e.JobID]++
			}
			if e.Seq >= last {
				return errDone
			}
		}
		return nil
	})
	if !errors.Is(err, errDone) {
		t.Fatalf("read the stream: %v", err)
	}
	return outcomes, enqueued
}
