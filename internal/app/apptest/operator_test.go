package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/internal/app/operator"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// TestOperatorTasksBesideRunningApp drives app tasks and app projections
// through NATS_URL while app web (projection, embedded NATS) and app
// worker run on the same data dir, as an operator would on a live system.
func TestOperatorTasksBesideRunningApp(t *testing.T) {
	t.Parallel()
	env := baseEnv(t)
	web := startApp(t, env, "web")
	nj := web.waitJoin(t)
	// The token is not passed: on app web's data dir, the commands and
	// the worker read it there.
	cliEnv := withEnv(env, "NATS_URL", nj.URL)
	worker := startApp(t, cliEnv, "worker")

	dir := env["OTJ_DATA_DIR"]
	alice := ensureUser(t, dir, "alice@example.org")
	bob := ensureUser(t, dir, "bob@example.org")
	b, nc := opBroker(t, nj)
	failed := opEnqueue(t, b, alice.ID, testFail, `{"times":5}`) // fails all 3 attempts
	again := opEnqueue(t, b, alice.ID, testFail, `{"times":3}`)  // fails 3, then attempt 4 passes
	done := opEnqueue(t, b, bob.ID, testSleep, `{"ms":0}`)       // completes at once
	long := opEnqueue(t, b, bob.ID, testSleep, `{"ms":60000}`)   // runs until cancelled
	opWaitKind(t, b, failed.ID, tasktype.EventFailed)
	opWaitKind(t, b, again.ID, tasktype.EventFailed)
	opWaitKind(t, b, done.ID, tasktype.EventSucceeded)
	opWaitKind(t, b, long.ID, tasktype.EventStarted)

	t.Run("list by state", func(t *testing.T) {
		out := opCLI(t, cliEnv, "tasks", "list", "--state", "failed")
		opContains(t, out, failed.ID, again.ID, "alice@example.org", "failed", "3/3", "planned failure 3 of 5", "planned failure 3 of 3")
		opLacks(t, out, done.ID, long.ID)
		if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], "ID ") {
			t.Errorf("want a header and 2 rows:\n%s", out)
		}
	})
	t.Run("list by user", func(t *testing.T) {
		out := opCLI(t, cliEnv, "tasks", "list", "--user", "Bob@Example.org")
		opContains(t, out, done.ID, long.ID, "bob@example.org", "completed", "running")
		opLacks(t, out, failed.ID, again.ID)
		out = opCLI(t, cliEnv, "tasks", "list", "--user", fmt.Sprint(alice.ID))
		opContains(t, out, failed.ID, again.ID)
		opLacks(t, out, done.ID, long.ID)
		_, err := opCLIErr(t, cliEnv, "tasks", "list", "--user", "nobody@example.org")
		opErrContains(t, err, "--user nobody@example.org", "no user")
	})
	t.Run("list by type, limit and as JSON", func(t *testing.T) {
		out := opCLI(t, cliEnv, "tasks", "list", "--type", testSleep, "--limit", "1")
		opContains(t, out, long.ID, "the newest 1")
		opLacks(t, out, done.ID, failed.ID)
		var rows []operator.TaskView
		if err := json.Unmarshal([]byte(opCLI(t, cliEnv, "tasks", "list", "--json", "--state", "completed")), &rows); err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].ID != done.ID || rows[0].UserEmail != "bob@example.org" || rows[0].Summary != "slept" {
			t.Errorf("JSON rows %+v", rows)
		}
	})
	t.Run("bad flags are one-line errors naming the flag", func(t *testing.T) {
		_, err := opCLIErr(t, cliEnv, "tasks", "list", "--state", "done")
		opErrContains(t, err, `--state "done"`, strings.Join([]string{"pending", "running", "retrying", "completed", "failed", "cancelled"}, ", "))
		_, err = opCLIErr(t, cliEnv, "tasks", "list", "--limit", "0")
		opErrContains(t, err, "--limit")
		_, err = opCLIErr(t, cliEnv, "tasks", "show")
		opErrContains(t, err, "tasks show ID")
		_, err = opCLIErr(t, cliEnv, "tasks", "frobnicate")
		if err == nil || !strings.Contains(err.Error(), `unknown subcommand "frobnicate"`) {
			t.Errorf("unknown subcommand: %v", err)
		}
	})
	t.Run("show prints the row and the whole history", func(t *testing.T) {
		out := opCLI(t, cliEnv, "tasks", "show", failed.ID)
		opContains(t, out, "task", failed.ID, "alice@example.org (id "+fmt.Sprint(alice.ID)+")", "status", "failed", "history (times UTC):",
			`queued, payload {"times":5}`,
			"attempt 1/3 failed: planned failure 1 of 5; next attempt at ",
			"attempt 2/3 failed: planned failure 2 of 5; next attempt at ",
			"attempt 3/3 failed: planned failure 3 of 5; no more attempts")
		h := opHistory(out)
		want := []string{"enqueued", "started", "retrying", "started", "retrying", "started", "failed"}
		if got := opKinds(h); !reflect.DeepEqual(got, want) {
			t.Fatalf("timeline kinds %v, want %v:\n%s", got, want, out)
		}
		if !strings.Contains(h[1], "attempt 1/3 started on worker ") {
			t.Errorf("started line lacks the worker: %q", h[1])
		}
		var js struct {
			Task   operator.TaskView    `json:"task"`
			Events []operator.EventView `json:"events"`
		}
		if err := json.Unmarshal([]byte(opCLI(t, cliEnv, "tasks", "show", failed.ID, "--json")), &js); err != nil {
			t.Fatal(err)
		}
		if js.Task.Status != tasktype.StatusFailed || len(js.Events) != 7 || js.Events[6].Seq == 0 || js.Events[6].Error != "planned failure 3 of 5" {
			t.Errorf("show --json: %+v", js)
		}
	})
	t.Run("retry runs a failed task again", func(t *testing.T) {
		out := opCLI(t, cliEnv, "tasks", "retry", again.ID)
		if want := "retried job " + again.ID + " (was failed): attempt 4 is queued\n"; out != want {
			t.Errorf("retry printed %q, want %q", out, want)
		}
		opWaitKind(t, b, again.ID, tasktype.EventSucceeded)
		out = opCLI(t, cliEnv, "tasks", "show", again.ID)
		opContains(t, out, "completed", "changed by", "operator", "retried by operator; attempt 4 queued", "attempt 4 succeeded: passed")
	})
	t.Run("cancel ends a running task", func(t *testing.T) {
		out := opCLI(t, cliEnv, "tasks", "cancel", long.ID)
		if want := "cancelled job " + long.ID + " (was running)\n"; out != want {
			t.Errorf("cancel printed %q, want %q", out, want)
		}
		// The worker lets go of it: nothing stays handed out.
		opWaitIdle(t, nc)
		if last := opLast(t, b, long.ID); last.Kind != tasktype.EventCancelled || last.By != tasktype.ByOperator {
			t.Errorf("after cancel the last event is %s by %q", last.Kind, last.By)
		}
		opContains(t, opCLI(t, cliEnv, "tasks", "show", long.ID), "cancelled", "cancelled by operator after 1 attempt")
	})
	t.Run("cancel of a completed task is refused and changes nothing", func(t *testing.T) {
		before := opLast(t, b, done.ID)
		_, err := opCLIErr(t, cliEnv, "tasks", "cancel", done.ID)
		opErrContains(t, err, done.ID, "the task is completed", "only pending, retrying or running tasks can be cancelled")
		if after := opLast(t, b, done.ID); after.Seq != before.Seq {
			t.Errorf("refused cancel stored %s event %d", after.Kind, after.Seq)
		}
		_, err = opCLIErr(t, cliEnv, "tasks", "retry", done.ID)
		opErrContains(t, err, "only failed or cancelled tasks can be retried")
	})
	t.Run("unknown id", func(t *testing.T) {
		for _, verb := range []string{"show", "retry", "cancel"} {
			_, err := opCLIErr(t, cliEnv, "tasks", verb, "NoSuchJob42")
			if err == nil || err.Error() != "no task NoSuchJob42" {
				t.Errorf("tasks %s of an unknown id: %v", verb, err)
			}
		}
		_, err := opCLIErr(t, cliEnv, "tasks", "show", "tasks.*.>")
		if err == nil || !strings.HasPrefix(err.Error(), "no task ") {
			t.Errorf("tasks show of a wildcard: %v", err)
		}
	})
	t.Run("rebuild recreates the same rows while app web projects", func(t *testing.T) {
		store := readTasks(t, dataDB(t, dir))
		opCLI(t, cliEnv, "tasks", "list") // catches the table up
		before, err := store.All(testsupport.Context(t))
		if err != nil {
			t.Fatal(err)
		}
		out := opCLI(t, cliEnv, "projections", "rebuild")
		if !regexp.MustCompile(`^rebuilt task_result: read \d+ events \(up to stream sequence \d+\) into 4 rows in \S+\n$`).MatchString(out) {
			t.Errorf("rebuild printed %q", out)
		}
		after, err := store.All(testsupport.Context(t))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(before, after) {
			t.Errorf("rebuilt rows differ:\nbefore %+v\nafter  %+v", before, after)
		}
		// app web's own projection saw its position reset and follows on.
		next := opEnqueue(t, b, bob.ID, testSleep, `{"ms":0}`)
		testsupport.Eventually(t, 30*time.Second, "app web's projection stopped after the rebuild", func() bool {
			row, err := store.GetForUser(testsupport.Context(t), bob.ID, next.ID)
			return err == nil && row.Status == tasktype.StatusCompleted
		})
	})

	nc.Close()
	worker.shutdown(t)
	web.shutdown(t)
}

// TestOperatorTasksOnDataDirStore runs the operator commands without
// NATS_URL, on the embedded store of the data dir, and checks that they
// refuse clearly while an app holds that store.
func TestOperatorTasksOnDataDirStore(t *testing.T) {
	t.Parallel()
	env := baseEnv(t)
	dir := env["OTJ_DATA_DIR"]

	// A job enqueued while app web ran, with no worker to take it.
	web := startApp(t, env, "web")
	nj := web.waitJoin(t)
	user := ensureUser(t, dir, "carol@example.org")
	b, nc := opBroker(t, nj)
	job := opEnqueue(t, b, user.ID, testSleep, `{"ms":0}`)
	nc.Close()
	web.shutdown(t)

	out := opCLI(t, env, "tasks", "list")
	opContains(t, out, job.ID, "carol@example.org", "pending", "0/-")
	out = opCLI(t, env, "tasks", "cancel", job.ID)
	if want := "cancelled job " + job.ID + " (was pending)\n"; out != want {
		t.Errorf("cancel printed %q, want %q", out, want)
	}
	opContains(t, opCLI(t, env, "tasks", "list", "--state", "cancelled"), job.ID)

	store := readTasks(t, dataDB(t, dir))
	before, err := store.All(testsupport.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	opContains(t, opCLI(t, env, "projections", "rebuild"), "read 2 events (up to stream sequence 2) into 1 rows")
	if after, err := store.All(testsupport.Context(t)); err != nil || !reflect.DeepEqual(before, after) {
		t.Errorf("rebuilt rows differ (err %v):\nbefore %+v\nafter  %+v", err, before, after)
	}

	out = opCLI(t, env, "tasks", "retry", job.ID)
	if want := "retried job " + job.ID + " (was cancelled): attempt 1 is queued\n"; out != want {
		t.Errorf("retry printed %q, want %q", out, want)
	}

	// app all holds the store now: the commands say so, and how to go on.
	all := startApp(t, env, "all")
	all.waitOutput(t, runningRE)
	for _, args := range [][]string{{"tasks", "list"}, {"tasks", "cancel", job.ID}, {"projections", "rebuild"}} {
		_, err := opCLIErr(t, env, args...)
		opErrContains(t, err, "OTJ_DATA_DIR "+dir+" is in use by a running app", "NATS_URL=nats://")
	}
	testsupport.Eventually(t, 30*time.Second, "retried job never completed under app all", func() bool {
		row, err := store.GetForUser(testsupport.Context(t), user.ID, job.ID)
		return err == nil && row.Status == tasktype.StatusCompleted
	})
	all.shutdown(t)

	out = opCLI(t, env, "tasks", "show", job.ID)
	want := []string{"enqueued", "cancelled", "retried", "started", "succeeded"}
	if got := opKinds(opHistory(out)); !reflect.DeepEqual(got, want) {
		t.Errorf("timeline kinds %v, want %v:\n%s", got, want, out)
	}
	opContains(t, out, "cancelled by operator before any attempt", "retried by operator; attempt 1 queued")
}

// opCLI runs an operator command as the app binary would and returns its
// stdout, failing the test on error.
func opCLI(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	out, err := opCLIErr(t, env, args...)
	if err != nil {
		t.Fatalf("app %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// opCLIErr is opCLI that returns the error, which must be one line.
func opCLIErr(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, args, mapEnv(env), &out, &tLogWriter{t: t, prefix: strings.Join(args[:min(2, len(args))], " ")})
	t.Logf("app %s: err %v, stdout:\n%s", strings.Join(args, " "), err, out.String())
	if err != nil && strings.Contains(err.Error(), "\n") && !strings.Contains(err.Error(), "unknown subcommand") {
		t.Errorf("app %s: error is not one line: %q", strings.Join(args, " "), err)
	}
	return out.String(), err
}

func withEnv(env map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for key, val := range env {
		if key != k {
			out[key] = val
		}
	}
	return out
}

// opBroker connects to a running app's NATS server as another process
// would, with the app's default lease so as not to change the consumer.
func opBroker(t *testing.T, j natsJoin) (*jetstream.Broker, *nats.Conn) {
	t.Helper()
	nc := j.connect(t, "operator-test")
	b := jetstreamtest.BrokerWith(t, nc, jetstream.Config{AckWait: defaultLease})
	return b, nc
}

func opEnqueue(t *testing.T, b *jetstream.Broker, userID int64, typ, payload string) tasktype.Job {
	t.Helper()
	job, err := b.Enqueue(testsupport.Context(t), tasktype.EnqueueRequest{Type: typ, UserID: userID, Payload: json.RawMessage(payload)})
	if err != nil {
		t.Fatal(err)
	}
	return job
}

func opLast(t *testing.T, b *jetstream.Broker, jobID string) tasktype.Event {
	t.Helper()
	e, err := b.Last(testsupport.Context(t), 0, jobID)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// opWaitKind waits for the job's newest event to be of kind k.
func opWaitKind(t *testing.T, b *jetstream.Broker, jobID string, k tasktype.EventKind) {
	t.Helper()
	var last tasktype.Event
	testsupport.Eventually(t, 30*time.Second, fmt.Sprintf("job %s never reached %s", jobID, k), func() bool {
		last = opLast(t, b, jobID)
		return last.Kind == k
	})
}

// opWaitIdle waits until no job is handed out to a worker.
func opWaitIdle(t *testing.T, nc *nats.Conn) {
	t.Helper()
	js, err := natsjs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testsupport.Context(t)
	testsupport.Eventually(t, 30*time.Second, "a job is still handed out to a worker", func() bool {
		c, err := js.Consumer(ctx, jetstream.StreamName, jetstream.WorkConsumer)
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.NumAckPending == 0 && info.NumPending == 0
	})
}

// opHistory returns the timeline lines of tasks show's output.
func opHistory(out string) []string {
	_, h, _ := strings.Cut(out, "history (times UTC):\n")
	return strings.Split(strings.TrimRight(h, "\n"), "\n")
}

var timelineRE = regexp.MustCompile(`^  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z  \+\S+\s+#\d+\s+(\w+)  `)

// opKinds returns the event kinds of timeline lines.
func opKinds(lines []string) []string {
	var kinds []string
	for _, l := range lines {
		m := timelineRE.FindStringSubmatch(l)
		if m == nil {
			kinds = append(kinds, "?"+l)
			continue
		}
		kinds = append(kinds, m[1])
	}
	return kinds
}

func opContains(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

func opLacks(t *testing.T, out string, unwanted ...string) {
	t.Helper()
	for _, w := range unwanted {
		if strings.Contains(out, w) {
			t.Errorf("output has %q:\n%s", w, out)
		}
	}
}

func opErrContains(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("no error, want one with %q", want)
		return
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}

// readTasks reads db's task_result.
func readTasks(t testing.TB, db *bun.DB) *tasks.Reader {
	t.Helper()
	return tasks.NewReader(db)
}
