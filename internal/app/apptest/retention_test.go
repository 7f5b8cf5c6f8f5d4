package apptest

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// TestTaskRetentionAgesOutAndIsRefusedUnlessReset runs app web with
// TASK_RETENTION=10s and its embedded server, whose roles are
// deploy/nats/roles.conf's: it removes a cancelled task's events and row
// by itself once the task is 10s old, purging through its maintenance
// connection. A second app web, on that server with another
// TASK_RETENTION, refuses to start, naming the value in force, and leaves
// it; app web started again with TASK_RETENTION_RESET=true changes it.
func TestTaskRetentionAgesOutAndIsRefusedUnlessReset(t *testing.T) {
	env := baseEnv(t)
	env["TASK_RETENTION"] = "10s"
	web := startProcess(t, "web-10s", env, "web")
	web.waitStdout(t, runningRE)
	j := web.waitJoin(t)

	ctx := testsupport.Context(t)
	b, err := jetstream.Open(ctx, jetstream.Config{Conn: j.connect(t, "test"), Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := tasks.NewClient(tasks.Config{DB: dataDB(t, env["OTJ_DATA_DIR"]), Log: b, Transport: b, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	// No worker runs: the job waits until it is cancelled, and finished.
	job, err := c.Enqueue(ctx, tasktype.EnqueueRequest{Type: "aging_job", UserID: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Cancel(ctx, 1, job.ID, tasktype.ByUser); err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, 20*time.Second, "app web's projection never showed the cancelled task", func() bool {
		task, err := c.Get(ctx, job.ID)
		return err == nil && task.Status == tasktype.StatusCancelled
	})
	testsupport.Eventually(t, 40*time.Second, "app web never pruned the task past TASK_RETENTION=10s", func() bool {
		_, err := c.Get(ctx, job.ID)
		return errors.Is(err, tasktype.ErrNotFound)
	})
	if _, err := c.History(ctx, 1, job.ID); !errors.Is(err, tasktype.ErrNotFound) {
		t.Errorf("events of the pruned task: %v; want ErrNotFound", err)
	}

	oddEnv := baseEnv(t)
	oddEnv["NATS_URL"], oddEnv["NATS_TOKEN"], oddEnv["TASK_RETENTION"] = j.URL, j.WebToken, "20s"
	odd := startProcess(t, "web-20s", oddEnv, "web")
	if _, err := odd.waitExit(t, 30*time.Second); err == nil {
		t.Fatal("web with TASK_RETENTION=20s against a stream keeping 10s exited with status 0")
	}
	const want = "app: TASK_RETENTION 20s: the deployed stream TASKS keeps finished tasks for 10s; set TASK_RETENTION=10s, or TASK_RETENTION_RESET=true on one web process to change it for all\n"
	if got := odd.stderr.String(); !strings.HasSuffix(got, want) {
		t.Errorf("refused web's stderr ends %q, want the line %q", lastLine(got), want)
	}
	if got := streamRetention(t, b); got != "10s" {
		t.Fatalf("after the refused web: the stream's retention %q, want 10s", got)
	}

	stopProcess(t, web)
	env["TASK_RETENTION"], env["TASK_RETENTION_RESET"] = "20d", "true"
	web = startProcess(t, "web-reset", env, "web")
	web.waitStderr(t, regexp.MustCompile(`msg="recording the task retention on the stream" .*retention=480h0m0s`))
	j = web.waitJoin(t)
	b, err = jetstream.Open(ctx, jetstream.Config{Conn: j.connect(t, "test"), Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if got := streamRetention(t, b); got != "480h0m0s" {
		t.Fatalf("after TASK_RETENTION_RESET=true with TASK_RETENTION=20d: the stream's retention %q, want 480h0m0s", got)
	}
}

// streamRetention is the task retention recorded on the TASKS stream.
func streamRetention(t *testing.T, b *jetstream.Broker) string {
	t.Helper()
	d, err := b.TaskRetention(testsupport.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}
