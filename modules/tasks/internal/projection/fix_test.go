package projection_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks/internal/projection"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// A task failed because it refused its input keeps on its row where the
// input is fixed, so that the task list can offer that instead of Retry;
// a retry by hand, and any later outcome, clears it. The replay of the
// history agrees at every step.
func TestRefusedInputsFixIsOnTheRow(t *testing.T) {
	t0 := time.Date(2026, 3, 5, 14, 0, 0, 0, time.UTC)
	db, _ := testsupport.DB(t)
	proj := projection.New(db, nil, testsupport.Logger(t))
	store := projection.NewStore(db)
	ctx := testsupport.Context(t)
	ev := func(seq int, kind tasktype.EventKind, attempt int) tasktype.Event {
		return tasktype.Event{Seq: uint64(seq), Kind: kind, JobID: "fix", JobType: "activity_import", UserID: 8,
			Time: t0.Add(time.Duration(seq) * time.Second), Attempt: attempt, MaxAttempts: 3}
	}
	fix := &tasktype.Fix{Href: "/activities/import", Label: "Fix the file and upload it again"}
	refused := ev(2, tasktype.EventFailed, 1)
	refused.Error, refused.Message, refused.Fix = "activity import: line 3", "Line 3: no date.", fix
	failedAgain := ev(4, tasktype.EventFailed, 1)
	failedAgain.Error = "disk full"

	tests := []struct {
		event tasktype.Event
		want  *tasktype.Fix
	}{
		{ev(1, tasktype.EventEnqueued, 0), nil},
		{refused, fix},
		{ev(3, tasktype.EventRetried, 0), nil},
		{failedAgain, nil},
	}
	var history []tasktype.Event
	for _, tt := range tests {
		history = append(history, tt.event)
		if err := proj.Apply(ctx, tt.event); err != nil {
			t.Fatal(err)
		}
		row, err := store.GetForUser(ctx, 8, "fix")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(row.Fix) != fmt.Sprint(tt.want) {
			t.Errorf("after %s: the row's fix is %+v, want %+v", tt.event.Kind, row.Fix, tt.want)
		}
		replayed, _ := projection.Replay(history)
		if fmt.Sprint(replayed.Fix) != fmt.Sprint(row.Fix) {
			t.Errorf("after %s: replay gives fix %+v, the projection %+v", tt.event.Kind, replayed.Fix, row.Fix)
		}
	}
}
