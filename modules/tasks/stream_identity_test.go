package tasks_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

const rebuildWarning = "the event stream is not the one task_result was built from"

// A data dir whose projection stood at position N on one NATS server,
// pointed at a fresh server with fewer events: the projection sees the
// stream is another one, rebuilds from it, says so once, and new tasks
// appear in the list. Before, it waited past the new stream's end and
// showed none of them.
func TestProjectionRebuildsOnAnotherStream(t *testing.T) {
	for _, tc := range []struct {
		name string
		// legacy drops the stored stream identity, as a position stored
		// before it was kept: only the sequence tells then.
		legacy bool
	}{{"identity stored", false}, {"position stored before identities", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testsupport.Context(t)
			db, _ := testsupport.DB(t)
			const user = 7
			list := func(c *tasks.Client) []tasktype.Task {
				t.Helper()
				ts, err := c.ListForUser(ctx, user, 100)
				if err != nil {
					t.Fatal(err)
				}
				return ts
			}

			brokerA := jetstreamtest.Broker(t, testsupport.Connect(t, testsupport.NATS(t), "server-a"))
			a, err := tasks.NewClient(tasks.Config{DB: db, Log: brokerA, Transport: brokerA, Logger: testsupport.Logger(t)})
			if err != nil {
				t.Fatal(err)
			}
			for range 5 {
				if _, err := a.Enqueue(ctx, tasktype.EnqueueRequest{Type: "noop", UserID: user}); err != nil {
					t.Fatal(err)
				}
			}
			if err := a.CatchUp(ctx); err != nil {
				t.Fatal(err)
			}
			if n := len(list(a)); n != 5 {
				t.Fatalf("%d tasks on server A, want 5", n)
			}
			if tc.legacy {
				if _, err := db.ExecContext(ctx, "UPDATE projection_offset SET stream_created = NULL"); err != nil {
					t.Fatal(err)
				}
			}

			logs := &testsupport.Buffer{}
			brokerB := jetstreamtest.Broker(t, testsupport.Connect(t, testsupport.NATS(t), "server-b"))
			b, err := tasks.NewClient(tasks.Config{DB: db, Log: brokerB, Transport: brokerB,
				Logger: slog.New(slog.NewTextHandler(logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			testsupport.Go(t, func(ctx context.Context) { _ = b.RunProjection(ctx) })
			job, err := b.Enqueue(ctx, tasktype.EnqueueRequest{Type: "noop", UserID: user})
			if err != nil {
				t.Fatal(err)
			}
			testsupport.Eventually(t, 10*time.Second, "the task enqueued on server B is listed", func() bool {
				ts := list(b)
				return len(ts) == 1 && ts[0].ID == job.ID
			})
			if n := strings.Count(logs.String(), rebuildWarning); n != 1 {
				t.Errorf("%d warnings that the stream changed, want 1; log:\n%s", n, logs.String())
			}
		})
	}
}

// A stream made anew while the projection follows it (deleted and made
// again, as a replaced server under the same address would be) is
// noticed without a restart.
func TestFollowingProjectionNoticesANewStream(t *testing.T) {
	ctx := testsupport.Context(t)
	db, _ := testsupport.DB(t)
	srv := testsupport.NATS(t)
	broker := jetstreamtest.Broker(t, testsupport.Connect(t, srv, "web"))
	logs := &testsupport.Buffer{}
	c, err := tasks.NewClient(tasks.Config{DB: db, Log: broker, Transport: broker, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	testsupport.Go(t, func(ctx context.Context) { _ = c.RunProjection(ctx) })
	for range 3 {
		if _, err := c.Enqueue(ctx, tasktype.EnqueueRequest{Type: "noop", UserID: 1}); err != nil {
			t.Fatal(err)
		}
	}
	testsupport.Eventually(t, 10*time.Second, "3 tasks listed", func() bool {
		ts, err := c.ListForUser(ctx, 1, 10)
		return err == nil && len(ts) == 3
	})

	// The stream made anew, by another connection, as an operator would.
	raw := testsupport.Connect(t, srv, "operator")
	js, err := natsjs.New(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(ctx, jetstream.StreamName); err != nil {
		t.Fatal(err)
	}
	again := jetstreamtest.Broker(t, raw)
	job, err := again.Enqueue(ctx, tasktype.EnqueueRequest{Type: "noop", UserID: 1})
	if err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, 30*time.Second, "only the new stream's task listed", func() bool {
		ts, err := c.ListForUser(ctx, 1, 10)
		return err == nil && len(ts) == 1 && ts[0].ID == job.ID
	})
	if !strings.Contains(logs.String(), rebuildWarning) {
		t.Errorf("no warning that the stream changed; log:\n%s", logs.String())
	}
}
