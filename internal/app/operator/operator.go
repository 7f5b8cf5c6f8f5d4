// Package operator is the app's operator commands: app tasks
// list|show|retry|cancel and app projections rebuild. They see every
// user's tasks. They read task_result after bringing it up to date with
// the event stream, and change tasks only by appending events (through
// the tasks.Client), exactly as the web UI does, so they are safe beside
// running web and worker processes.
//
// The package holds the commands' flags, formatting and printing; the app
// opens the backend for it (OpenFunc), so that a command stands on the
// app's own settings and wiring.
package operator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/otjhelper/otj/internal/app/cli"
	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// Backend is what a command works on, opened by the app for it.
type Backend struct {
	// Tasks reads, cancels and retries tasks and runs no jobs.
	Tasks *tasks.Client
	// Users finds the tasks' owners.
	Users *activity.Store
	// Logger takes what goes wrong after a change is stored.
	Logger *slog.Logger
	// Close closes everything the OpenFunc opened.
	Close func(ctx context.Context)
}

// OpenFunc opens the app's backend for one command. A command calls it
// only once its arguments are found good, so that a mistyped flag is
// answered without touching the data dir.
type OpenFunc func(ctx context.Context) (*Backend, error)

const tasksUsage = `usage: app tasks <subcommand>

  list [--state S] [--user EMAIL_OR_ID] [--type T] [--limit N] [--json]
                 every user's tasks, newest first (default limit 50)
  show ID [--json]
                 one task and its whole event history
  retry ID       runs a failed or cancelled task again
  cancel ID      cancels a pending, retrying or running task`

// Defaults and bounds of app tasks list.
const (
	defaultListLimit = 50
	maxListLimit     = 10000
	// errorWidth is how much of a task's last error the list shows.
	errorWidth = 60
)

// Tasks is app tasks: the operator's view of every user's tasks, and
// cancel and retry by hand. args are what follows "tasks".
func Tasks(ctx context.Context, args []string, open OpenFunc, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("tasks: missing subcommand\n" + tasksUsage)
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "list":
		return runTasksList(ctx, rest, open, stdout, stderr)
	case "show":
		return runTasksShow(ctx, rest, open, stdout, stderr)
	case "retry", "cancel":
		return runTasksChange(ctx, sub, rest, open, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, tasksUsage)
		return nil
	}
	return fmt.Errorf("tasks: unknown subcommand %q\n%s", sub, tasksUsage)
}

// listOptions are app tasks list's flags.
type listOptions struct {
	state, user, typ string
	limit            int
	json             bool
}

// listFlags is app tasks list's flag set, read into o.
func listFlags(o *listOptions, stderr io.Writer) *flag.FlagSet {
	fs := cli.NewFlagSet("tasks list", "", stderr)
	fs.StringVar(&o.state, "state", "", "only tasks in this state: "+statusNames())
	fs.StringVar(&o.user, "user", "", "only this user's tasks: an email address or a user id")
	fs.StringVar(&o.typ, "type", "", "only tasks of this job type, e.g. full_report")
	fs.IntVar(&o.limit, "limit", defaultListLimit, "at most this many tasks, newest first")
	fs.BoolVar(&o.json, "json", false, "print JSON instead of a table")
	return fs
}

// showFlags is app tasks show's flag set.
func showFlags(asJSON *bool, stderr io.Writer) *flag.FlagSet {
	fs := cli.NewFlagSet("tasks show", " ID", stderr)
	fs.BoolVar(asJSON, "json", false, "print JSON instead of text")
	return fs
}

// FlagSets are the operator commands' flag sets, by the command's words
// after "app " ("tasks list"), made as the commands make them: the one
// table their help and shell completion read.
func FlagSets() map[string]*flag.FlagSet {
	var (
		o   listOptions
		b   bool
		all bool
		n   int
	)
	return map[string]*flag.FlagSet{
		"tasks list":          listFlags(&o, io.Discard),
		"tasks show":          showFlags(&b, io.Discard),
		"tasks retry":         cli.NewFlagSet("tasks retry", " ID", io.Discard),
		"tasks cancel":        cli.NewFlagSet("tasks cancel", " ID", io.Discard),
		"projections rebuild": cli.NewFlagSet("projections rebuild", "", io.Discard),
		"analytics":           analyticsFlags(&all, &n, io.Discard),
	}
}

// runTasksList prints task_result, filtered, as a table or as JSON.
func runTasksList(ctx context.Context, args []string, open OpenFunc, stdout, stderr io.Writer) error {
	var o listOptions
	fs := listFlags(&o, stderr)
	state, user, typ, limit, asJSON := &o.state, &o.user, &o.typ, &o.limit, &o.json
	pos, err := cli.ParseFlags(fs, args)
	if err != nil || len(pos) > 0 {
		return cli.FlagError(err, fs, "tasks list [--state S] [--user EMAIL_OR_ID] [--type T] [--limit N] [--json]", pos)
	}
	f := tasktype.Filter{Status: tasktype.Status(*state), Type: *typ, Limit: *limit}
	if f.Status != "" && !f.Status.Valid() {
		return fmt.Errorf("tasks list: --state %q: want one of %s", *state, statusNames())
	}
	if f.Limit < 1 || f.Limit > maxListLimit {
		return fmt.Errorf("tasks list: --limit %d: want a whole number from 1 to %d", f.Limit, maxListLimit)
	}
	return withBackend(ctx, open, func(b *Backend) error {
		if *user != "" {
			id, err := resolveUser(ctx, b.Users, *user)
			if err != nil {
				return fmt.Errorf("tasks list: --user %s: %w", *user, err)
			}
			f.UserID = id
		}
		if err := b.Tasks.CatchUp(ctx); err != nil {
			return err
		}
		rows, err := b.Tasks.List(ctx, f)
		if err != nil {
			return err
		}
		emails, err := b.Users.UserEmails(ctx, userIDs(rows))
		if err != nil {
			return err
		}
		if *asJSON {
			views := make([]TaskView, 0, len(rows))
			for _, r := range rows {
				views = append(views, newTaskView(r, emails[r.UserID]))
			}
			return cli.WriteJSON(stdout, views)
		}
		printTaskTable(stdout, rows, emails)
		if len(rows) == f.Limit {
			fmt.Fprintf(stdout, "(the newest %d; --limit shows more)\n", f.Limit)
		}
		return nil
	})
}

// runTasksShow prints one task's row and its event history.
func runTasksShow(ctx context.Context, args []string, open OpenFunc, stdout, stderr io.Writer) error {
	asJSON := new(bool)
	fs := showFlags(asJSON, stderr)
	pos, err := cli.ParseFlags(fs, args)
	if err != nil || len(pos) != 1 {
		return cli.FlagError(err, fs, "tasks show ID [--json]", pos)
	}
	id := pos[0]
	return withBackend(ctx, open, func(b *Backend) error {
		if err := b.Tasks.CatchUp(ctx); err != nil {
			return err
		}
		row, rowErr := b.Tasks.Get(ctx, id)
		if rowErr != nil && !errors.Is(rowErr, tasktype.ErrNotFound) {
			return rowErr
		}
		history, histErr := b.Tasks.History(ctx, 0, id)
		if histErr != nil && !errors.Is(histErr, tasktype.ErrNotFound) {
			return fmt.Errorf("tasks show %s: %w", id, histErr)
		}
		if rowErr != nil && histErr != nil {
			return fmt.Errorf("no task %s", id)
		}
		email := ""
		if rowErr == nil {
			emails, err := b.Users.UserEmails(ctx, []int64{row.UserID})
			if err != nil {
				return err
			}
			email = emails[row.UserID]
		}
		if *asJSON {
			out := struct {
				Task   *TaskView   `json:"task"`
				Events []EventView `json:"events"`
			}{Events: make([]EventView, 0, len(history))}
			if rowErr == nil {
				v := newTaskView(row, email)
				out.Task = &v
			}
			for _, e := range history {
				out.Events = append(out.Events, EventView{Seq: e.Seq, Event: e})
			}
			return cli.WriteJSON(stdout, out)
		}
		if rowErr == nil {
			printTask(stdout, row, email)
		} else {
			// Only possible if the stream holds events the projection
			// skipped (an event kind this version does not know).
			fmt.Fprintf(stdout, "task %s has events but no task_result row\n", id)
		}
		fmt.Fprintln(stdout)
		if histErr != nil {
			// The row outlived its events: the stream was purged, or
			// NATS_URL names another server than the one that ran it.
			fmt.Fprintln(stdout, "history: none on this NATS server")
			return nil
		}
		printHistory(stdout, history)
		return nil
	})
}

// runTasksChange is app tasks retry|cancel ID, as an operator, whoever
// owns the task.
func runTasksChange(ctx context.Context, verb string, args []string, open OpenFunc, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("tasks "+verb, " ID", stderr)
	pos, err := cli.ParseFlags(fs, args)
	if err != nil || len(pos) != 1 {
		return cli.FlagError(err, fs, "tasks "+verb+" ID", pos)
	}
	id := pos[0]
	return withBackend(ctx, open, func(b *Backend) error {
		change := b.Tasks.Retry
		if verb == "cancel" {
			change = b.Tasks.Cancel
		}
		e, err := change(ctx, 0, id, tasktype.ByOperator)
		if errors.Is(err, tasktype.ErrNotFound) {
			return fmt.Errorf("no task %s", id)
		}
		if err != nil {
			return err // names the task; ErrWrongState says what is possible
		}
		was := ""
		if prev, err := b.Tasks.StatusBefore(ctx, e); err != nil {
			b.Logger.Warn("could not read the task's state before the change", "job", id, "err", err)
		} else {
			was = " (was " + string(prev) + ")"
		}
		switch verb {
		case "cancel":
			fmt.Fprintf(stdout, "cancelled job %s%s\n", id, was)
		case "retry":
			fmt.Fprintf(stdout, "retried job %s%s: attempt %d is queued\n", id, was, e.Attempt+1)
		}
		// Keep task_result in step even when no app web runs the
		// projection; the change itself is already stored.
		if err := b.Tasks.CatchUp(ctx); err != nil {
			b.Logger.Warn("task_result not updated; the next app web or app tasks will", "err", err)
		}
		return nil
	})
}

// Projections is app projections rebuild: it recreates task_result from
// the event stream. args are what follows "projections".
func Projections(ctx context.Context, args []string, open OpenFunc, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rebuild" {
		return errors.New("projections: want: app projections rebuild")
	}
	fs := cli.NewFlagSet("projections rebuild", "", stderr)
	pos, err := cli.ParseFlags(fs, args[1:])
	if err != nil || len(pos) > 0 {
		return cli.FlagError(err, fs, "projections rebuild", pos)
	}
	return withBackend(ctx, open, func(b *Backend) error {
		st, err := b.Tasks.Rebuild(ctx)
		if err != nil {
			return fmt.Errorf("projections rebuild: %w", err)
		}
		fmt.Fprintf(stdout, "rebuilt %s: read %d events (up to stream sequence %d) into %d rows in %s\n",
			tasks.ProjectionName, st.Events, st.Seq, st.Rows, st.Took.Round(time.Millisecond))
		return nil
	})
}

// withBackend opens the backend, runs fn and closes the backend.
func withBackend(ctx context.Context, open OpenFunc, fn func(*Backend) error) error {
	b, err := open(ctx)
	if err != nil {
		return err
	}
	defer b.Close(ctx)
	return fn(b)
}

// resolveUser turns --user (a user id or an email address) into a user id.
func resolveUser(ctx context.Context, users *activity.Store, s string) (int64, error) {
	if id, err := strconv.ParseInt(s, 10, 64); err == nil {
		emails, err := users.UserEmails(ctx, []int64{id})
		if err != nil {
			return 0, err
		}
		if _, ok := emails[id]; !ok {
			return 0, errors.New("no user with that id")
		}
		return id, nil
	}
	u, err := users.UserByEmail(ctx, s)
	if errors.Is(err, activity.ErrNotFound) {
		return 0, errors.New("no user with that email (give an email address or a user id)")
	}
	if err != nil {
		return 0, fmt.Errorf("find user: %w", err)
	}
	return u.ID, nil
}

// userIDs are the rows' owners.
func userIDs(rows []tasktype.Task) []int64 {
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.UserID
	}
	return ids
}
