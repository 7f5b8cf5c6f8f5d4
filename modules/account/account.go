// Package account gives users their data, to take and to erase (UK
// GDPR): the account_export job, which zips a user's activity log, task
// history and stored results into one download, and the Eraser, which
// removes a user from the task system and the activity log, and has
// every process remove the copies it keeps (HonourErasures).
package account

import (
	"archive/zip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"strings"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/reports"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// ExportType is the job type of a user's data export.
const ExportType = "account_export"

// ExportLabel is how an export task is named to its owner.
const ExportLabel = "Your data (zip)"

// ExportPolicy is how exports are retried: the task defaults, with the
// report's time allowance, as an export holds a full report.
var ExportPolicy = reports.Policy

// maxExportTasks bounds the tasks an export lists: far more than the
// results a user keeps (RESULT_KEEP).
const maxExportTasks = 10000

// TaskSource is what an export reads of the task system (tasks.Client).
type TaskSource interface {
	ListForUser(ctx context.Context, userID int64, limit int) ([]tasktype.Task, error)
	History(ctx context.Context, userID int64, jobID string) ([]tasktype.Event, error)
	Open(ctx context.Context, object string) (*tasktype.StoredResult, error)
}

// Names of the parts of the export zip.
const (
	ActivitiesFile = "activities.csv"
	TasksFile      = "tasks.json"
	ResultsDir     = "results/"
)

// TaskRecord is one task in the export's tasks.json: the task as the
// task list shows it, and its events from the event log.
type TaskRecord struct {
	Task   tasktype.Task    `json:"task"`
	Events []tasktype.Event `json:"events"`
}

// Register adds the export job type to reg. The export reads the task
// system through the client that runs it (tasks.ClientFromContext): the
// client is made with the registry, so it cannot be handed over here.
func Register(reg *tasks.Registry, src reports.Source) error {
	if err := registerExport(reg, src); err != nil {
		return err
	}
	// Started from the account page, not the task list.
	return reg.Describe(tasktype.Kind{Type: ExportType, Label: ExportLabel, Noun: "export"})
}

// registerExport registers the export's handler.
func registerExport(reg *tasks.Registry, src reports.Source) error {
	return reg.Register(ExportType, func(ctx context.Context, job tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
		ts, ok := tasks.ClientFromContext(ctx)
		if !ok {
			// Only a tasks.Client's worker runs jobs: a wiring mistake,
			// which no attempt mends.
			return tasktype.Result{}, tasktype.Permanent(errors.New("account export: the job's context has no task client"))
		}
		if _, err := src.CountActivities(ctx, job.UserID); errors.Is(err, activity.ErrNotFound) {
			// An erased user, or one another database holds: no attempt
			// can find them.
			return tasktype.Result{}, tasktype.Permanent(tasktype.UserMessage(
				fmt.Errorf("account export: user %d: %w", job.UserID, err),
				"Your account could not be found, so no export was made."))
		} else if err != nil {
			return tasktype.Result{}, fmt.Errorf("account export: %w", err)
		}
		w, err := out.Create("otj-your-data-"+job.EnqueuedAt.Format("2006-01-02")+".zip", "application/zip")
		if err != nil {
			return tasktype.Result{}, err
		}
		n, err := Export(ctx, w, src, ts, job.UserID, job.ID)
		if err != nil {
			return tasktype.Result{}, fmt.Errorf("account export: %w", err)
		}
		return tasktype.Result{Summary: fmt.Sprintf("%d activities, %d tasks", n.Activities, n.Tasks)}, nil
	}, ExportPolicy)
}

// Exported counts what an export holds.
type Exported struct {
	Activities, Tasks, Results int
}

// Export writes the user's zip to w: their activities as the report's
// CSV, their tasks with their histories as JSON, and every stored result
// still there. skip is a job id left out (the export's own, unfinished).
// Only the user's own data is read: every read is by their id.
func Export(ctx context.Context, w io.Writer, src reports.Source, ts TaskSource, userID int64, skip string) (Exported, error) {
	var n Exported
	zw := zip.NewWriter(w)
	f, err := zw.Create(ActivitiesFile)
	if err != nil {
		return n, fmt.Errorf("zip %s: %w", ActivitiesFile, err)
	}
	if n.Activities, err = reports.WriteCSV(ctx, f, src, userID); err != nil {
		return n, fmt.Errorf("zip %s: %w", ActivitiesFile, err)
	}
	list, err := ts.ListForUser(ctx, userID, maxExportTasks)
	if err != nil {
		return n, fmt.Errorf("list tasks: %w", err)
	}
	records := make([]TaskRecord, 0, len(list))
	for _, t := range list {
		if t.ID == skip {
			continue
		}
		h, err := ts.History(ctx, userID, t.ID)
		if err != nil && !errors.Is(err, tasktype.ErrNotFound) {
			return n, fmt.Errorf("history of task %s: %w", t.ID, err)
		}
		records = append(records, TaskRecord{Task: t, Events: h})
	}
	n.Tasks = len(records)
	f, err = zw.Create(TasksFile)
	if err != nil {
		return n, fmt.Errorf("zip %s: %w", TasksFile, err)
	}
	enc := json.NewEncoder(f)
	enc.SetIndent("", "  ")
	if err := enc.Encode(records); err != nil {
		return n, fmt.Errorf("zip %s: %w", TasksFile, err)
	}
	for _, r := range records {
		if !r.Task.HasResult() {
			continue
		}
		ok, err := copyResult(ctx, zw, ts, &r.Task)
		if err != nil {
			return n, err
		}
		if ok {
			n.Results++
		}
	}
	if err := zw.Close(); err != nil {
		return n, fmt.Errorf("zip: %w", err)
	}
	return n, nil
}

// copyResult adds a task's stored result to the zip, under its task id
// and download name; one expired or pruned is left out.
func copyResult(ctx context.Context, zw *zip.Writer, ts TaskSource, t *tasktype.Task) (bool, error) {
	res, err := ts.Open(ctx, t.ResultPath)
	if errors.Is(err, tasktype.ErrResultMissing) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("result of task %s: %w", t.ID, err)
	}
	defer res.Close()
	name := path.Base(strings.ReplaceAll(t.ResultName, "\\", "/"))
	if name == "" || name == "." || name == "/" {
		name = "result"
	}
	f, err := zw.Create(ResultsDir + t.ID + "-" + name)
	if err != nil {
		return false, fmt.Errorf("zip result of task %s: %w", t.ID, err)
	}
	if _, err := io.Copy(f, res); err != nil {
		return false, fmt.Errorf("zip result of task %s: %w", t.ID, err)
	}
	return true, nil
}

// TaskEraser erases a user from the task system (tasks.Client).
type TaskEraser interface {
	EraseUser(ctx context.Context, userID int64) (tasktype.Erased, error)
}

// RowEraser erases a user's rows from the activity log (activity.Store).
type RowEraser interface {
	EraseUser(ctx context.Context, userID int64) error
}

// Eraser erases a user everywhere.
type Eraser struct {
	Tasks TaskEraser
	Rows  RowEraser
	// Events, when set, purges the user's activity-log change events
	// (activity.EventPurger).
	Events EventEraser
	// Announcer, when set, tells every process the user is erased, once
	// their rows are gone, so that copies kept on a process's own disk
	// (a worker's digest outbox) go too (HonourErasures).
	Announcer Announcer
	Logger    *slog.Logger
}

// Announcer announces an erasure to every process (Announce).
type Announcer interface {
	AnnounceErased(ctx context.Context, userID int64) error
}

// EventEraser purges a user's activity-log change events from their stream.
type EventEraser interface {
	PurgeUserEvents(ctx context.Context, userID int64) error
}

// Erase removes the user's results, job events and task rows, then
// their activity log and user row. The user row goes last: until it is
// gone the user can sign in and erase again, which finishes an erase cut
// short, as every step is idempotent.
// Then it announces the erasure, for the copies other processes keep on
// their own disks.
func (e *Eraser) Erase(ctx context.Context, userID int64) error {
	got, err := e.Tasks.EraseUser(ctx, userID)
	if err != nil {
		return fmt.Errorf("erase account %d: %w", userID, err)
	}
	// The log's events go before the rows, so that a failure leaves the
	// user row to sign in with and erase again, and once more after, for
	// any change the outbox relayed meanwhile.
	if e.Events != nil {
		if err := e.Events.PurgeUserEvents(ctx, userID); err != nil {
			return fmt.Errorf("erase account %d: %w", userID, err)
		}
	}
	if err := e.Rows.EraseUser(ctx, userID); err != nil {
		return fmt.Errorf("erase account %d: %w", userID, err)
	}
	if e.Events != nil {
		if err := e.Events.PurgeUserEvents(ctx, userID); err != nil {
			return fmt.Errorf("erase account %d: %w", userID, err)
		}
	}
	if e.Announcer != nil {
		// The rows are gone and cannot be erased again by signing in: a
		// lost announcement is made good by the processes' own sweeps
		// (HonourErasures), so it is logged, not the user's failure.
		if err := e.Announcer.AnnounceErased(ctx, userID); err != nil && e.Logger != nil {
			e.Logger.ErrorContext(ctx, "erasure not announced; processes keeping copies remove them at their next sweep", "user_id", userID, "err", err)
		}
	}
	if e.Logger != nil {
		// Counts only: the log keeps nothing of the user but their id.
		e.Logger.InfoContext(ctx, "account erased", "user_id", userID,
			"events", got.Events, "results", got.Results, "task_rows", got.Rows)
	}
	return nil
}
