package projection_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks/internal/projection"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// An attempt that ends before its first heartbeat stores no started
// event: its outcome carries the start. The row shows the attempt as if
// it had been recorded (attempts, start time, worker), in the projection
// and in Replay alike, and a carried start changes nothing once the row
// has moved past it.
func TestOutcomeCarryingItsStart(t *testing.T) {
	t0 := time.Date(2026, 3, 5, 14, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		kinds   []tasktype.EventKind // every outcome carries its start
		status  tasktype.Status
		attempt int // of the last outcome, the row's attempts
	}{
		{"succeeded at once", []tasktype.EventKind{tasktype.EventEnqueued, tasktype.EventSucceeded}, tasktype.StatusCompleted, 1},
		{"failed once, then succeeded", []tasktype.EventKind{tasktype.EventEnqueued, tasktype.EventRetrying, tasktype.EventSucceeded}, tasktype.StatusCompleted, 2},
		{"failed for good", []tasktype.EventKind{tasktype.EventEnqueued, tasktype.EventRetrying, tasktype.EventFailed}, tasktype.StatusFailed, 2},
		{"handed back at shutdown", []tasktype.EventKind{tasktype.EventEnqueued, tasktype.EventReleased}, tasktype.StatusPending, 1},
		{"a second outcome is ignored", []tasktype.EventKind{tasktype.EventEnqueued, tasktype.EventSucceeded, tasktype.EventSucceeded}, tasktype.StatusCompleted, 1},
	}
	db, _ := testsupport.DB(t)
	proj := projection.New(db, nil, testsupport.Logger(t))
	store := projection.NewStore(db)
	ctx := testsupport.Context(t)
	seq := uint64(0)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("carried%d", i)
			var history []tasktype.Event
			attempt := 0
			var lastStart time.Time
			for j, kind := range tt.kinds {
				seq++
				e := tasktype.Event{Seq: seq, Kind: kind, JobID: id, JobType: "full_report", UserID: 8,
					Time: t0.Add(time.Duration(j) * time.Second)}
				if kind != tasktype.EventEnqueued {
					if kind != tasktype.EventReleased && attempt < tt.attempt {
						attempt++
					} else if attempt == 0 {
						attempt = 1
					}
					e.Attempt, e.MaxAttempts, e.Worker = attempt, 2, fmt.Sprintf("w%d", attempt)
					e.StartedAt = e.Time.Add(-100 * time.Millisecond)
					if j < 2 || kind != tt.kinds[j-1] {
						lastStart = e.StartedAt
					}
				}
				if kind == tasktype.EventRetrying {
					e.Error, e.RetryAt = "try again", e.Time.Add(time.Second)
				}
				history = append(history, e)
				if err := proj.Apply(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			row, err := store.GetForUser(ctx, 8, id)
			if err != nil {
				t.Fatal(err)
			}
			if row.Status != tt.status || row.Attempts != tt.attempt || row.MaxAttempts != 2 || !row.StartedAt.Equal(lastStart) {
				t.Errorf("row %s, attempt %d of %d, started %s; want %s, attempt %d of 2, started %s",
					row.Status, row.Attempts, row.MaxAttempts, row.StartedAt, tt.status, tt.attempt, lastStart)
			}
			replayed, _ := projection.Replay(history)
			if got, want := fmt.Sprint(inUTC(replayed)), fmt.Sprint(inUTC(row)); got != want {
				t.Errorf("replay makes\n%s\nthe projection\n%s", got, want)
			}
		})
	}
}
