package apptest

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/otjhelper/otj/modules/digest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// TestDigestNotSentTwiceAfterWorkerKilled SIGKILLs the worker while the
// SMTP server holds its digest, after the server has taken the data and
// before the worker hears the reply: the mail went, and nothing of the
// worker recorded it. The job is redelivered to a fresh worker, which
// must not send the week's digest again: the server sees one message.
func TestDigestNotSentTwiceAfterWorkerKilled(t *testing.T) {
	const lease = 2 * time.Second
	n := startNATSNode(t)
	b := openBroker(t, n, lease)
	runs := newRunLog(t)
	env := workerEnv(t, n, lease, runs)
	mail := testsupport.SMTP(t)
	env["SMTP_URL"], env["MAIL_FROM"], env["DIGEST_SCHEDULE"] = mail.URL, "digest@example.org", "off"

	if _, err := startProcess(t, "migrate", env, "migrate").waitExit(t, 60*time.Second); err != nil {
		t.Fatalf("app migrate: %v", err)
	}
	alice := ensureUser(t, env["OTJ_DATA_DIR"], "alice@example.org")
	today := time.Now().In(mustLondon(t)).Format(time.DateOnly)
	insertActivities(t, env["OTJ_DATA_DIR"], alice.ID, []activityFixture{{date: today, title: "Kill-test workshop", typ: "workshop", quality: "good", hours: 2}})

	var victim atomic.Pointer[appProcess]
	mail.Reject(func(attempt int) *smtp.SMTPError {
		if attempt != 1 {
			return nil
		}
		// The data is in; the worker dies before the 250 reaches it.
		p := victim.Load()
		if err := p.cmd.Process.Kill(); err != nil {
			t.Errorf("kill the worker: %v", err)
		}
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("worker still running 10s after SIGKILL")
		}
		return nil
	})
	victim.Store(startWorker(t, "worker-1", env))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	job, err := b.Enqueue(ctx, tasktype.EnqueueRequest{Type: digest.WeeklyDigest, UserID: alice.ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := victim.Load().waitExit(t, 30*time.Second); err == nil {
		t.Fatal("worker-1 exited with status 0: it was never killed mid-send")
	}
	if got := len(mail.Messages()); got != 1 {
		t.Fatalf("server holds %d messages after the kill, want 1", got)
	}

	startWorker(t, "worker-2", env)
	last := waitJobDone(t, b, alice.ID, job.ID, 60*time.Second)
	evs := jobHistory(t, b, alice.ID, job.ID)
	if last.Kind != tasktype.EventSucceeded || !strings.Contains(last.Summary, "Not sent again") {
		t.Fatalf("want the redelivered job to succeed without sending; history:\n%s", describe(evs))
	}
	// Killed before its first heartbeat, attempt 1 left no start on
	// record, which proves nothing ran: it is not counted, and worker-2
	// ran attempt 1 again, its start recorded first.
	if _, lost := firstKind(evs, tasktype.EventRetrying); lost || last.Attempt != 1 || countKind(evs, tasktype.EventStarted) != 1 {
		t.Errorf("want attempt 1 run again by worker-2, uncounted; history:\n%s", describe(evs))
	}
	if got, tries := len(mail.Messages()), mail.Attempts(); got != 1 || tries != 1 {
		t.Errorf("server got %d messages in %d attempts, want the one", got, tries)
	}
}
