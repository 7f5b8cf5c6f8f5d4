package main

// Operator commands: app tasks list|show|retry|cancel and app projections
// rebuild. They see every user's tasks. They read task_result after
// bringing it up to date with the event stream, and change tasks only by
// appending events (tasks.Client), exactly as the web UI does, so they
// are safe beside running web and worker processes.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/cmd/app/internal/cli"
	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/natsserver"
)

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

// runTasks is app tasks: the operator's view of every user's tasks, and
// cancel and retry by hand.
func runTasks(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("tasks: missing subcommand\n" + tasksUsage)
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "list":
		return runTasksList(ctx, rest, getenv, stdout, stderr)
	case "show":
		return runTasksShow(ctx, rest, getenv, stdout, stderr)
	case "retry", "cancel":
		return runTasksChange(ctx, sub, rest, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, tasksUsage)
		return nil
	}
	return fmt.Errorf("tasks: unknown subcommand %q\n%s", sub, tasksUsage)
}

// runTasksList prints task_result, filtered, as a table or as JSON.
func runTasksList(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("tasks list", "", stderr)
	state := fs.String("state", "", "only tasks in this state: "+statusNames())
	user := fs.String("user", "", "only this user's tasks: an email address or a user id")
	typ := fs.String("type", "", "only tasks of this job type, e.g. full_report")
	limit := fs.Int("limit", defaultListLimit, "at most this many tasks, newest first")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
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
	return withBackend(ctx, getenv, stderr, "tasks", func(b *backend, log *slog.Logger) error {
		if *user != "" {
			id, err := resolveUser(ctx, b.DB, *user)
			if err != nil {
				return fmt.Errorf("tasks list: --user %s: %w", *user, err)
			}
			f.UserID = id
		}
		tc, err := b.tasks(log)
		if err != nil {
			return err
		}
		if err := tc.CatchUp(ctx); err != nil {
			return err
		}
		rows, err := tc.List(ctx, f)
		if err != nil {
			return err
		}
		emails, err := userEmails(ctx, b.DB, rows)
		if err != nil {
			return err
		}
		if *asJSON {
			views := make([]taskView, 0, len(rows))
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
func runTasksShow(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("tasks show", " ID", stderr)
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	pos, err := cli.ParseFlags(fs, args)
	if err != nil || len(pos) != 1 {
		return cli.FlagError(err, fs, "tasks show ID [--json]", pos)
	}
	id := pos[0]
	return withBackend(ctx, getenv, stderr, "tasks", func(b *backend, log *slog.Logger) error {
		tc, err := b.tasks(log)
		if err != nil {
			return err
		}
		if err := tc.CatchUp(ctx); err != nil {
			return err
		}
		row, rowErr := tc.Get(ctx, id)
		if rowErr != nil && !errors.Is(rowErr, tasktype.ErrNotFound) {
			return rowErr
		}
		history, histErr := tc.History(ctx, 0, id)
		if histErr != nil && !errors.Is(histErr, tasktype.ErrNotFound) {
			return fmt.Errorf("tasks show %s: %w", id, histErr)
		}
		if rowErr != nil && histErr != nil {
			return fmt.Errorf("no task %s", id)
		}
		email := ""
		if rowErr == nil {
			emails, err := userEmails(ctx, b.DB, []tasktype.Task{row})
			if err != nil {
				return err
			}
			email = emails[row.UserID]
		}
		if *asJSON {
			out := struct {
				Task   *taskView   `json:"task"`
				Events []eventView `json:"events"`
			}{Events: make([]eventView, 0, len(history))}
			if rowErr == nil {
				v := newTaskView(row, email)
				out.Task = &v
			}
			for _, e := range history {
				out.Events = append(out.Events, eventView{Seq: e.Seq, Event: e})
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
func runTasksChange(ctx context.Context, verb string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("tasks "+verb, " ID", stderr)
	pos, err := cli.ParseFlags(fs, args)
	if err != nil || len(pos) != 1 {
		return cli.FlagError(err, fs, "tasks "+verb+" ID", pos)
	}
	id := pos[0]
	return withBackend(ctx, getenv, stderr, "tasks", func(b *backend, log *slog.Logger) error {
		tc, err := b.tasks(log)
		if err != nil {
			return err
		}
		change := tc.Retry
		if verb == "cancel" {
			change = tc.Cancel
		}
		e, err := change(ctx, 0, id, tasktype.ByOperator)
		if errors.Is(err, tasktype.ErrNotFound) {
			return fmt.Errorf("no task %s", id)
		}
		if err != nil {
			return err // names the task; ErrWrongState says what is possible
		}
		was := ""
		if prev, err := tc.StatusBefore(ctx, e); err != nil {
			log.Warn("could not read the task's state before the change", "job", id, "err", err)
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
		if err := tc.CatchUp(ctx); err != nil {
			log.Warn("task_result not updated; the next app web or app tasks will", "err", err)
		}
		return nil
	})
}

// runProjections is app projections rebuild: it recreates task_result
// from the event stream.
func runProjections(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rebuild" {
		return errors.New("projections: want: app projections rebuild")
	}
	fs := cli.NewFlagSet("projections rebuild", "", stderr)
	pos, err := cli.ParseFlags(fs, args[1:])
	if err != nil || len(pos) > 0 {
		return cli.FlagError(err, fs, "projections rebuild", pos)
	}
	return withBackend(ctx, getenv, stderr, "projections", func(b *backend, log *slog.Logger) error {
		tc, err := b.tasks(log)
		if err != nil {
			return err
		}
		st, err := tc.Rebuild(ctx)
		if err != nil {
			return fmt.Errorf("projections rebuild: %w", err)
		}
		fmt.Fprintf(stdout, "rebuilt %s: read %d events (up to stream sequence %d) into %d rows in %s\n",
			tasks.ProjectionName, st.Events, st.Seq, st.Rows, st.Took.Round(time.Millisecond))
		return nil
	})
}

// withBackend loads the configuration, opens the backend for an operator
// command, runs fn and closes the backend. With NATS_URL unset it runs an
// embedded server on the data dir's own store, which works only while no
// app all or app web holds that store.
func withBackend(ctx context.Context, getenv func(string) string, stderr io.Writer, name string, fn func(*backend, *slog.Logger) error) error {
	cfg, err := LoadConfig(getenv)
	if err != nil {
		return err
	}
	if getenv("LOG_LEVEL") == "" {
		// Commands print their answer on stdout; the embedded server's
		// start and stop are not news here.
		cfg.LogLevel = slog.LevelWarn
	}
	log := newLogger(stderr, cfg.LogLevel).With("command", name)
	// An operator command never creates a data dir: a mistyped
	// OTJ_DATA_DIR should not yield an empty, freshly migrated one.
	if _, err := os.Stat(cfg.DataDir); err != nil {
		return fmt.Errorf("OTJ_DATA_DIR %s: %w; point it at the app's data dir", cfg.DataDir, err)
	}
	b, err := openBackend(ctx, cfg, log, backendOptions{Name: "otj-" + name})
	if errors.Is(err, natsserver.ErrStoreInUse) {
		// Only one process may run a server on the store; app web's
		// server takes clients, so going through it is the way in.
		addr := cfg.NATSListen
		if _, port, _ := net.SplitHostPort(addr); port == "0" {
			addr = "host:port"
		}
		return fmt.Errorf("OTJ_DATA_DIR %s is in use by a running app (app all or app web); stop it, or run this command with NATS_URL set to its NATS address (app web prints it, e.g. NATS_URL=nats://%s; the token is read from the data dir)",
			cfg.DataDir, addr)
	}
	if err != nil {
		return err
	}
	defer b.Close(ctx)
	return fn(b, log)
}

// resolveUser turns --user (a user id or an email address) into a user id.
func resolveUser(ctx context.Context, db *bun.DB, s string) (int64, error) {
	if id, err := strconv.ParseInt(s, 10, 64); err == nil {
		if _, err := activity.NewStore(db).UserByID(ctx, id); err != nil {
			if errors.Is(err, activity.ErrNotFound) {
				return 0, errors.New("no user with that id")
			}
			return 0, err
		}
		return id, nil
	}
	u, err := activity.NewStore(db).UserByEmail(ctx, s)
	if errors.Is(err, activity.ErrNotFound) {
		return 0, errors.New("no user with that email (give an email address or a user id)")
	}
	if err != nil {
		return 0, fmt.Errorf("find user: %w", err)
	}
	return u.ID, nil
}

// userEmails maps the rows' user ids to their emails; a user that no
// longer exists is left out.
func userEmails(ctx context.Context, db *bun.DB, rows []tasktype.Task) (map[int64]string, error) {
	users := activity.NewStore(db)
	emails := map[int64]string{}
	for _, r := range rows {
		if _, done := emails[r.UserID]; done {
			continue
		}
		u, err := users.UserByID(ctx, r.UserID)
		if errors.Is(err, activity.ErrNotFound) {
			emails[r.UserID] = ""
			continue
		}
		if err != nil {
			return nil, err
		}
		emails[r.UserID] = u.Email
	}
	return emails, nil
}

// printTaskTable prints rows as an aligned table, times in UTC.
func printTaskTable(w io.Writer, rows []tasktype.Task, emails map[int64]string) {
	if len(rows) == 0 {
		fmt.Fprintln(w, "no tasks match")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tTYPE\tSTATUS\tATTEMPTS\tCREATED (UTC)\tUPDATED (UTC)\tLAST ERROR")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, userLabel(r.UserID, emails[r.UserID]), r.TaskType, r.Status,
			attempts(r.Attempts, r.MaxAttempts), utc(r.CreatedAt, false), utc(r.UpdatedAt, false), truncate(oneLine(r.Error), errorWidth))
	}
	tw.Flush()
}

// printTask prints a task_result row, one field a line, times in UTC.
func printTask(w io.Writer, r tasktype.Task, email string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	field := func(name, value string) {
		if value != "" {
			fmt.Fprintf(tw, "%s\t%s\n", name, value)
		}
	}
	field("task", r.ID)
	field("user", fmt.Sprintf("%s (id %d)", or(email, "unknown user"), r.UserID))
	field("type", r.TaskType)
	field("status", string(r.Status))
	field("attempts", attempts(r.Attempts, r.MaxAttempts))
	field("created", utc(r.CreatedAt, false))
	field("started", utc(r.StartedAt, false))
	field("updated", utc(r.UpdatedAt, false))
	field("finished", utc(r.CompletedAt, false))
	field("next attempt", utc(r.NextAttemptAt, false))
	field("worker", r.Worker)
	if r.Status == tasktype.StatusRunning && r.ProgressMessage != "" {
		field("progress", fmt.Sprintf("%d%% %s", r.ProgressPercent, r.ProgressMessage))
	}
	field("changed by", r.ChangedBy)
	field("error", oneLine(r.Error))
	if r.UserMessage != "" {
		field("user sees", oneLine(r.UserMessage))
	}
	field("summary", r.ResultData)
	if r.ResultPath != "" {
		field("result", fmt.Sprintf("%s (%s, %d bytes, %s)", r.ResultName, r.ResultType, r.ResultSize, r.Digest))
	}
	tw.Flush()
}

// printHistory prints a job's events as a timeline, one line each: time
// (UTC), time since enqueue, stream sequence, kind and what happened.
func printHistory(w io.Writer, events []tasktype.Event) {
	fmt.Fprintln(w, "history (times UTC):")
	var first time.Time
	for i, e := range events {
		if i == 0 {
			first = e.Time
		}
		since := "+" + e.Time.Sub(first).Round(time.Millisecond).String()
		fmt.Fprintf(w, "  %s  %-9s  #%-6d %-9s  %s\n", utc(e.Time, true), since, e.Seq, e.Kind, describeEvent(e))
	}
}

// describeEvent says what an event records, for the timeline.
// userSees quotes the sentence a failure showed the task's owner, if it
// carried one, after the error operators see.
func userSees(e tasktype.Event) string {
	if e.Message == "" {
		return ""
	}
	return fmt.Sprintf(" (the user sees: %q)", oneLine(e.Message))
}

func describeEvent(e tasktype.Event) string {
	switch e.Kind {
	case tasktype.EventEnqueued:
		if len(e.Payload) == 0 {
			return "queued"
		}
		return "queued, payload " + truncate(string(e.Payload), 80)
	case tasktype.EventStarted:
		return fmt.Sprintf("attempt %s started on worker %s", attempts(e.Attempt, e.MaxAttempts), e.Worker)
	case tasktype.EventSucceeded:
		s := fmt.Sprintf("attempt %d succeeded", e.Attempt)
		if e.Summary != "" {
			s += ": " + e.Summary
		}
		if r := e.Result; r != nil {
			s += fmt.Sprintf("; result %s (%d bytes)", r.Name, r.Size)
		}
		return s
	case tasktype.EventRetrying:
		return fmt.Sprintf("attempt %s failed: %s; next attempt at %s%s", attempts(e.Attempt, e.MaxAttempts), oneLine(e.Error), utc(e.RetryAt, true), userSees(e))
	case tasktype.EventFailed:
		if e.Attempt == 0 {
			return "failed before any attempt: " + oneLine(e.Error) + userSees(e)
		}
		return fmt.Sprintf("attempt %s failed: %s; no more attempts%s", attempts(e.Attempt, e.MaxAttempts), oneLine(e.Error), userSees(e))
	case tasktype.EventCancelled:
		return fmt.Sprintf("cancelled by %s %s", or(e.By, "?"), afterAttempts(e.Attempt))
	case tasktype.EventRetried:
		return fmt.Sprintf("retried by %s; attempt %d queued", or(e.By, "?"), e.Attempt+1)
	case tasktype.EventReleased:
		return fmt.Sprintf("attempt %d handed back by worker %s as it shut down; it runs again", e.Attempt, e.Worker)
	case tasktype.EventProgress:
		return fmt.Sprintf("attempt %d at %d%%: %s", e.Attempt, e.Percent, oneLine(e.Message))
	}
	return "(an event kind this version does not know)"
}

// taskView is a task_result row as app tasks list/show --json print it.
type taskView struct {
	ID            string              `json:"id"`
	UserID        int64               `json:"user_id"`
	UserEmail     string              `json:"user_email,omitempty"`
	Type          string              `json:"type"`
	Status        tasktype.Status     `json:"status"`
	Attempts      int                 `json:"attempts"`
	MaxAttempts   int                 `json:"max_attempts"`
	CreatedAt     time.Time           `json:"created_at"`
	StartedAt     time.Time           `json:"started_at,omitzero"`
	UpdatedAt     time.Time           `json:"updated_at"`
	CompletedAt   time.Time           `json:"completed_at,omitzero"`
	NextAttemptAt time.Time           `json:"next_attempt_at,omitzero"`
	Worker        string              `json:"worker,omitempty"`
	ChangedBy     string              `json:"changed_by,omitempty"`
	Error         string              `json:"error,omitempty"`
	UserMessage   string              `json:"user_message,omitempty"`
	Summary       string              `json:"summary,omitempty"`
	Result        *tasktype.ResultRef `json:"result,omitempty"`
}

func newTaskView(r tasktype.Task, email string) taskView {
	v := taskView{
		ID: r.ID, UserID: r.UserID, UserEmail: email, Type: r.TaskType, Status: r.Status,
		Attempts: r.Attempts, MaxAttempts: r.MaxAttempts,
		CreatedAt: r.CreatedAt.UTC(), StartedAt: r.StartedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
		CompletedAt: r.CompletedAt.UTC(), NextAttemptAt: r.NextAttemptAt.UTC(),
		Worker: r.Worker, ChangedBy: r.ChangedBy, Error: r.Error, UserMessage: r.UserMessage, Summary: r.ResultData,
	}
	if r.ResultPath != "" {
		v.Result = &tasktype.ResultRef{Object: r.ResultPath, Name: r.ResultName, ContentType: r.ResultType, Size: uint64(r.ResultSize), Digest: r.Digest}
	}
	return v
}

// eventView is an event with its stream sequence, which tasktype.Event
// leaves out of its JSON.
type eventView struct {
	Seq uint64 `json:"seq"`
	tasktype.Event
}

func statusNames() string {
	names := make([]string, len(tasktype.Statuses))
	for i, s := range tasktype.Statuses {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// utc formats t in UTC, to the millisecond for timelines; "" when zero.
func utc(t time.Time, millis bool) string {
	if t.IsZero() {
		return ""
	}
	if millis {
		return t.UTC().Format("2006-01-02 15:04:05.000Z")
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func attempts(n, allowed int) string {
	if allowed <= 0 {
		return strconv.Itoa(n) + "/-" // not started: the job type's policy decides
	}
	return strconv.Itoa(n) + "/" + strconv.Itoa(allowed)
}

// afterAttempts says how many attempts came before a cancel.
func afterAttempts(n int) string {
	switch n {
	case 0:
		return "before any attempt"
	case 1:
		return "after 1 attempt"
	}
	return "after " + strconv.Itoa(n) + " attempts"
}

func userLabel(id int64, email string) string {
	if email == "" {
		return "#" + strconv.FormatInt(id, 10)
	}
	return email
}

// oneLine keeps a multi-line error on one line of a table or timeline.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// truncate shortens s to at most n runes, marking the cut with "…".
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
