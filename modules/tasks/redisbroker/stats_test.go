package redisbroker_test

import (
	"context"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks/redisbroker"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// TestLastPullIsTheLastAsk has a worker take one job, then go on asking
// for work and finding none, then stop: QueueStats's LastPull is when
// it last asked, not when it was last handed a job. (On Redis 7.0 a read
// that finds nothing leaves the consumer's idle time running, so the
// consumers' idle times say only the latter.)
func TestLastPullIsTheLastAsk(t *testing.T) {
	e := newEnv(t, redisbroker.Config{})
	ctx := testsupport.Context(t)
	if _, err := e.broker.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 3}); err != nil {
		t.Fatal(err)
	}
	q, err := e.broker.Queue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := next(t, q, 5*time.Second)
	if err := d.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	handed := time.Now()
	// Ask for work, finding none, for a good many polls (100ms each).
	for time.Since(handed) < 3*time.Second {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		if d, err := q.Next(pctx); err == nil {
			t.Fatalf("handed %+v with nothing enqueued", d.Item())
		}
		cancel()
	}
	stopped := time.Now()
	st, err := e.broker.QueueStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Joined {
		t.Fatal("QueueStats: no worker joined, with one that took a job")
	}
	if st.LastPull.Before(stopped.Add(-time.Second)) || st.LastPull.After(time.Now().Add(time.Second)) {
		t.Errorf("LastPull %s before the worker stopped asking, %s after it was last handed a job; want within a second of the stop",
			stopped.Sub(st.LastPull).Round(time.Millisecond), st.LastPull.Sub(handed).Round(time.Millisecond))
	}
}
