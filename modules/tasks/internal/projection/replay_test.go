package projection_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks/internal/projection"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// Replay takes exactly the steps the projection takes: for each history,
// the row it makes is the row the projection writes from the same
// events, and the events it keeps are those that changed that row.
func TestReplayAgreesWithProjection(t *testing.T) {
	t0 := time.Date(2026, 3, 5, 14, 0, 0, 0, time.UTC)
	type step struct {
		kind  tasktype.EventKind
		taken bool
	}
	// foreignSucceeded is a succeeded event naming another job's result.
	const foreignSucceeded tasktype.EventKind = "succeeded by another job's result"
	tests := []struct {
		name  string
		steps []step
	}{
		{"succeeded, then a failed event", []step{{tasktype.EventEnqueued, true}, {tasktype.EventStarted, true}, {tasktype.EventSucceeded, true}, {tasktype.EventFailed, false}}},
		{"succeeded, then started again", []step{{tasktype.EventEnqueued, true}, {tasktype.EventStarted, true}, {tasktype.EventSucceeded, true}, {tasktype.EventStarted, false}, {tasktype.EventSucceeded, false}}},
		{"retried while completed", []step{{tasktype.EventEnqueued, true}, {tasktype.EventStarted, true}, {tasktype.EventSucceeded, true}, {tasktype.EventRetried, false}}},
		{"failed, retried, succeeded", []step{{tasktype.EventEnqueued, true}, {tasktype.EventStarted, true}, {tasktype.EventRetrying, true}, {tasktype.EventStarted, true},
			{tasktype.EventFailed, true}, {tasktype.EventRetried, true}, {tasktype.EventStarted, true}, {tasktype.EventProgress, true}, {tasktype.EventSucceeded, true}}},
		{"enqueued twice, unknown kind", []step{{tasktype.EventEnqueued, true}, {tasktype.EventEnqueued, false}, {"paused", false}, {tasktype.EventCancelled, true}, {tasktype.EventCancelled, false}}},
		{"succeeded naming another job's result", []step{{tasktype.EventEnqueued, true}, {tasktype.EventStarted, true}, {foreignSucceeded, false}, {tasktype.EventCancelled, true}}},
		// An operator's read of the result is in the history and
		// changes nothing: a retry after it is still refused.
		{"succeeded, result read, retried", []step{{tasktype.EventEnqueued, true}, {tasktype.EventStarted, true}, {tasktype.EventSucceeded, true}, {tasktype.EventResultRead, false}, {tasktype.EventRetried, false}}},
		{"succeeded before it started", []step{{tasktype.EventEnqueued, true}, {tasktype.EventSucceeded, false}, {tasktype.EventReleased, false}, {tasktype.EventStarted, true}, {tasktype.EventReleased, true}}},
	}
	db, _ := testsupport.DB(t)
	proj := projection.New(db, nil, testsupport.Logger(t))
	store := projection.NewStore(db)
	ctx := testsupport.Context(t)
	seq := uint64(0)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("job%d", i)
			var history, wantTaken []tasktype.Event
			for j, s := range tt.steps {
				seq++
				e := tasktype.Event{Seq: seq, Kind: s.kind, JobID: id, JobType: "full_report", UserID: 7,
					Time: t0.Add(time.Duration(j) * time.Second), Attempt: 1 + j/3, MaxAttempts: 3, Worker: "w1"}
				switch s.kind {
				case tasktype.EventSucceeded, foreignSucceeded:
					object := tasktype.ResultObjectName(id, e.Attempt)
					if s.kind == foreignSucceeded {
						e.Kind, object = tasktype.EventSucceeded, tasktype.ResultObjectName("other", e.Attempt)
					}
					e.Summary, e.Result = "done", &tasktype.ResultRef{Object: object, Name: "report.csv", ContentType: "text/csv", Size: 10, Digest: "SHA-256=x"}
				case tasktype.EventFailed, tasktype.EventRetrying:
					e.Error = fmt.Sprintf("error %d", j)
				}
				history = append(history, e)
				if s.taken {
					wantTaken = append(wantTaken, e)
				}
				if err := proj.Apply(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			row, taken := projection.Replay(history)
			if !slices.EqualFunc(taken, wantTaken, func(a, b tasktype.Event) bool { return a.Seq == b.Seq }) {
				t.Errorf("took %v, want %v", seqs(taken), seqs(wantTaken))
			}
			stored, err := store.GetForUser(ctx, 7, id)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := fmt.Sprint(inUTC(row)), fmt.Sprint(inUTC(stored)); got != want {
				t.Errorf("replay makes\n%s\nthe projection\n%s", got, want)
			}
		})
	}
	if row, taken := projection.Replay([]tasktype.Event{{Kind: tasktype.EventStarted, JobID: "x"}}); row.ID != "" || taken != nil {
		t.Errorf("a history without its enqueued event replays to %+v, %v", row, taken)
	}
}

func seqs(events []tasktype.Event) []uint64 {
	var out []uint64
	for _, e := range events {
		out = append(out, e.Seq)
	}
	return out
}

// inUTC is a row with its times in UTC, as read back from SQLite.
func inUTC(r tasktype.Task) tasktype.Task {
	for _, tp := range []*time.Time{&r.CreatedAt, &r.CompletedAt, &r.StartedAt, &r.UpdatedAt, &r.NextAttemptAt} {
		*tp = tp.UTC()
	}
	return r
}
