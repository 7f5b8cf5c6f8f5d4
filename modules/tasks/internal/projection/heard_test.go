package projection_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks/internal/projection"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// A running task's row says when its worker was last heard from (its
// newest event: the start, then each progress report) and the lease the
// start recorded, so that a reader can tell a worker that stopped from
// one that is busy. Replay makes the same row.
func TestRunningTaskIsHeardFrom(t *testing.T) {
	t0 := time.Date(2026, 3, 5, 14, 0, 0, 0, time.UTC)
	const lease = 2 * time.Second
	db, _ := testsupport.DB(t)
	proj := projection.New(db, nil, testsupport.Logger(t))
	store := projection.NewStore(db)
	ctx := testsupport.Context(t)
	ev := func(seq int, kind tasktype.EventKind, at time.Duration, attempt int) tasktype.Event {
		return tasktype.Event{Seq: uint64(seq), Kind: kind, JobID: "heard", JobType: "full_report", UserID: 8,
			Time: t0.Add(at), Attempt: attempt, MaxAttempts: 3, Worker: fmt.Sprintf("w%d", attempt)}
	}
	started := ev(2, tasktype.EventStarted, 100*time.Millisecond, 1)
	started.Lease = lease
	progress := ev(3, tasktype.EventProgress, 700*time.Millisecond, 1)
	progress.Percent, progress.Message = 42, "128,000 of 300,000"
	again := ev(4, tasktype.EventProgress, 1400*time.Millisecond, 1)
	again.Percent, again.Message = 42, "128,000 of 300,000"
	lost := ev(5, tasktype.EventRetrying, 4*time.Second, 1)
	lost.Error, lost.Message, lost.RetryAt = "worker w1 stopped responding during attempt 1", tasktype.LostWorkerMessage, t0.Add(5*time.Second)
	oldStart := ev(6, tasktype.EventStarted, 5*time.Second, 2) // a worker that records no lease

	tests := []struct {
		event tasktype.Event
		heard time.Time     // LastHeard
		lease time.Duration // the row's
		alive time.Time     // not WorkerLost at this time
		dead  time.Time     // WorkerLost at this time, if not zero
	}{
		{ev(1, tasktype.EventEnqueued, 0, 0), time.Time{}, 0, t0.Add(time.Hour), time.Time{}},
		{started, started.Time, lease, started.Time.Add(lease), started.Time.Add(lease + time.Millisecond)},
		{progress, progress.Time, lease, progress.Time.Add(lease), progress.Time.Add(lease + time.Millisecond)},
		{again, again.Time, lease, again.Time.Add(lease), again.Time.Add(lease + time.Millisecond)},
		{lost, time.Time{}, lease, t0.Add(time.Hour), time.Time{}},
		{oldStart, oldStart.Time, 0, t0.Add(time.Hour), time.Time{}},
	}
	var history []tasktype.Event
	for _, tt := range tests {
		history = append(history, tt.event)
		if err := proj.Apply(ctx, tt.event); err != nil {
			t.Fatal(err)
		}
		row, err := store.GetForUser(ctx, 8, "heard")
		if err != nil {
			t.Fatal(err)
		}
		if !row.LastHeard().Equal(tt.heard) || row.Lease != tt.lease {
			t.Errorf("after %s: last heard %s, lease %s; want %s, %s", tt.event.Kind, row.LastHeard(), row.Lease, tt.heard, tt.lease)
		}
		if row.WorkerLost(tt.alive) {
			t.Errorf("after %s: worker judged lost at %s", tt.event.Kind, tt.alive.Sub(t0))
		}
		if !tt.dead.IsZero() && !row.WorkerLost(tt.dead) {
			t.Errorf("after %s: worker not judged lost at %s", tt.event.Kind, tt.dead.Sub(t0))
		}
		if row.Status == tasktype.StatusRetrying && row.Message() != tasktype.LostWorkerMessage {
			t.Errorf("the lost attempt is shown as %q", row.Message())
		}
		replayed, _ := projection.Replay(history)
		if got, want := fmt.Sprint(inUTC(replayed)), fmt.Sprint(inUTC(row)); got != want {
			t.Errorf("after %s: replay makes\n%s\nthe projection\n%s", tt.event.Kind, got, want)
		}
	}
}
