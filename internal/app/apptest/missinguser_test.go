package apptest

import (
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/reports"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// TestReportOfUserMissingFromWorkersDatabase runs a worker on a data dir
// of its own, as a worker started with the wrong OTJ_DATA_DIR would be:
// a report for a user its database does not have fails at once, for
// good, saying so, rather than complete with no rows; a report for a
// user it has, with no activities, completes with just the header.
func TestReportOfUserMissingFromWorkersDatabase(t *testing.T) {
	const lease = 5 * time.Second
	n := startNATSNode(t)
	b := openBroker(t, n, lease)
	env := workerEnv(t, n, lease, newRunLog(t))
	startWorker(t, "worker", env) // migrates its database
	known := ensureUser(t, env["OTJ_DATA_DIR"], "no-activities@example.org")
	missingID := known.ID + 41

	missing := enqueueReport(t, b, missingID)
	empty := enqueueReport(t, b, known.ID)

	last := waitJobDone(t, b, missingID, missing.ID, 30*time.Second)
	evs := jobHistory(t, b, missingID, missing.ID)
	want := "user " + strconv.FormatInt(missingID, 10) + " is not in this worker's database"
	if last.Kind != tasktype.EventFailed || last.Attempt != 1 || countKind(evs, tasktype.EventRetrying) != 0 || !strings.Contains(last.Error, want) {
		t.Errorf("report for a user the worker lacks: want it failed for good on attempt 1 saying %q; history:\n%s", want, describe(evs))
	}

	last = waitJobDone(t, b, known.ID, empty.ID, 30*time.Second)
	if last.Kind != tasktype.EventSucceeded || last.Result == nil {
		t.Fatalf("report for a user with no activities: want it succeeded with a file; history:\n%s", describe(jobHistory(t, b, known.ID, empty.ID)))
	}
	if got, want := readResult(t, b, last.Result.Object), reports.BOM+strings.Join(reports.Header, ",")+"\r\n"; got != want {
		t.Errorf("report for a user with no activities holds %q, want only the header %q", got, want)
	}
}

func enqueueReport(t *testing.T, b *jetstream.Broker, userID int64) tasktype.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	job, err := b.Enqueue(ctx, tasktype.EnqueueRequest{Type: reports.FullReport, UserID: userID})
	if err != nil {
		t.Fatalf("enqueue %s: %v", reports.FullReport, err)
	}
	return job
}

func readResult(t *testing.T, b *jetstream.Broker, object string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := b.Open(ctx, object)
	if err != nil {
		t.Fatalf("open result %s: %v", object, err)
	}
	defer r.Close()
	body, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read result %s: %v", object, err)
	}
	return string(body)
}
