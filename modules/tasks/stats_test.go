package tasks_test

import (
	"strings"
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

// TestCheckWorkersCountsJobs enqueues three jobs with no worker, cancels
// two: the queue still holds their work items (and, before any worker
// joined, JetStream counts every event of the log), but one job waits,
// and CheckWorkers says so, on each broker.
func TestCheckWorkersCountsJobs(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T, log *jetstream.Broker) driver.Transport
	}{
		{"jetstream", func(t *testing.T, log *jetstream.Broker) driver.Transport { return log }},
		{"redis", func(t *testing.T, log *jetstream.Broker) driver.Transport {
			return redisbrokertest.Broker(t, log, redisbroker.Config{})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testsupport.Context(t)
			db, _ := testsupport.DB(t)
			log := jetstreamtest.Broker(t, testsupport.Connect(t, testsupport.NATS(t), "stats"))
			c, err := tasks.NewClient(tasks.Config{DB: db, Log: log, Transport: tc.open(t, log), Logger: testsupport.Logger(t)})
			if err != nil {
				t.Fatal(err)
			}
			var jobs []tasktype.Job
			for range 3 {
				job, err := c.Enqueue(ctx, tasktype.EnqueueRequest{Type: "some_job", UserID: 1})
				if err != nil {
					t.Fatal(err)
				}
				jobs = append(jobs, job)
			}
			for _, job := range jobs[1:] {
				if _, err := c.Cancel(ctx, 1, job.ID, "test"); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.CatchUp(ctx); err != nil {
				t.Fatal(err)
			}
			var msg string
			testsupport.Eventually(t, 10*time.Second, "CheckWorkers never said jobs wait", func() bool {
				err := c.CheckWorkers(ctx, 0)
				if err != nil {
					msg = err.Error()
				}
				return err != nil
			})
			if !strings.HasPrefix(msg, "1 job waiting ") {
				t.Errorf("CheckWorkers = %q, want it to say 1 job waiting", msg)
			}
		})
	}
}
