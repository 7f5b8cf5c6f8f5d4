package projection

import "github.com/otjhelper/otj/modules/tasks/tasktype"

// Replay runs one job's history, oldest first as the event log holds it,
// through the projection's state machine: the same steps, taken or
// skipped alike. It returns the row the projection makes of the history
// and the events it took, in order. An event it skips changed nothing
// (a failed event after the job succeeded, a start after it finished, a
// kind this version does not know), so a page showing the job's life
// leaves it out, as the row does. Without an enqueued event first there
// is no task, and nothing is taken.
func Replay(history []tasktype.Event) (tasktype.Task, []tasktype.Event) {
	var (
		row   *taskRow
		taken []tasktype.Event
	)
	for i, e := range history {
		// The position in the history orders the events as the stream's
		// sequence does; events from elsewhere (tests, a decoder) may not
		// carry one.
		step := e
		step.Seq = uint64(i + 1)
		ok := false
		switch {
		case e.Kind == tasktype.EventEnqueued && row == nil:
			row, ok = newTask(step), true
		case row != nil && e.JobID == row.ID:
			ok = applyTo(row, step)
		}
		if ok {
			taken = append(taken, e)
		}
	}
	if row == nil {
		return tasktype.Task{}, nil
	}
	row.LastSeq = taken[len(taken)-1].Seq // the stream's, not the position's
	return row.task(), taken
}
