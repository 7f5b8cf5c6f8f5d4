package apptest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/digest"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// TestErasureReachesEveryOutbox runs app web and two app worker as OS
// processes, each on a data dir of its own, over one PostgreSQL: each
// worker writes digests of alice and bob into its own outbox. Alice
// deletes her account while worker 1 is down and worker 2 runs: worker 2
// removes her digests at once (the erasure's announcement), worker 1 at
// its next start (its sweep); bob's stay on both.
func TestErasureReachesEveryOutbox(t *testing.T) {
	dbURL := testsupport.PostgresURL(t)
	env := baseEnv(t)
	usePostgres(t, env, dbURL)
	web := startProcess(t, "web", env, "web")
	base := web.waitStdout(t, runningRE)
	j := web.waitJoin(t)
	workerEnv := func() map[string]string {
		return map[string]string{"OTJ_DATA_DIR": t.TempDir(), "DATABASE_URL": dbURL, "NATS_URL": j.URL, "NATS_TOKEN": j.Token,
			"DIGEST_SCHEDULE": "off", "LOG_LEVEL": "info"}
	}
	env1, env2 := workerEnv(), workerEnv()
	outbox1, outbox2 := filepath.Join(env1["OTJ_DATA_DIR"], "outbox"), filepath.Join(env2["OTJ_DATA_DIR"], "outbox")

	dir := env["OTJ_DATA_DIR"]
	alice := ensureUser(t, dir, "alice@example.org")
	bob := ensureUser(t, dir, "bob@example.org")
	for _, u := range []int64{alice.ID, bob.ID} {
		insertActivities(t, dir, u, []activityFixture{{date: "2026-11-25", title: "Private workshop", typ: "workshop", quality: "good", hours: 2}})
	}
	b, err := jetstream.Open(testsupport.Context(t), jetstream.Config{Conn: j.connect(t, "test"), Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	sendDigests := func(week string) {
		t.Helper()
		for _, u := range []int64{alice.ID, bob.ID} {
			payload, _ := json.Marshal(digest.Payload{Week: week})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			job, err := b.Enqueue(ctx, tasktype.EnqueueRequest{Type: digest.WeeklyDigest, UserID: u, Payload: payload})
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			if last := waitJobDone(t, b, u, job.ID, 60*time.Second); last.Kind != tasktype.EventSucceeded {
				t.Fatalf("digest %s of user %d: %s %s", week, u, last.Kind, last.Error)
			}
		}
	}

	// Worker 1 alone sends week 48's; worker 2 alone week 49's.
	w1 := startWorker(t, "worker-1", env1)
	sendDigests("2026-W48")
	stopProcess(t, w1)
	startWorker(t, "worker-2", env2)
	sendDigests("2026-W49")
	want1 := []string{"otj-digest-2026-W48-user" + strconv.FormatInt(alice.ID, 10) + ".eml", "otj-digest-2026-W48-user" + strconv.FormatInt(bob.ID, 10) + ".eml"}
	want2 := []string{"otj-digest-2026-W49-user" + strconv.FormatInt(alice.ID, 10) + ".eml", "otj-digest-2026-W49-user" + strconv.FormatInt(bob.ID, 10) + ".eml"}
	if got := outboxFiles(t, outbox1); !slices.Equal(got, want1) {
		t.Fatalf("worker 1's outbox = %v, want %v", got, want1)
	}
	if got := outboxFiles(t, outbox2); !slices.Equal(got, want2) {
		t.Fatalf("worker 2's outbox = %v, want %v", got, want2)
	}

	signer := testsupport.Signer(t)
	ca := testsupport.Client(t, base, signer, alice.ID)
	resp, page := testsupport.PostForm(t, ca, base+"/account/delete", url.Values{"confirm": {alice.Email}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Your account is deleted") {
		t.Fatalf("delete = %d:\n%s", resp.StatusCode, page)
	}
	bobs2 := []string{want2[1]}
	testsupport.Eventually(t, 30*time.Second, "worker 2 kept alice's digest after her erasure", func() bool {
		return slices.Equal(outboxFiles(t, outbox2), bobs2)
	})
	// Nothing runs on worker 1's disk: her digest is there until it starts.
	if got := outboxFiles(t, outbox1); !slices.Equal(got, want1) {
		t.Fatalf("worker 1's outbox while it was down = %v, want %v", got, want1)
	}
	startWorker(t, "worker-1", env1)
	bobs1 := []string{want1[1]}
	testsupport.Eventually(t, 30*time.Second, "worker 1 kept alice's digest after its restart", func() bool {
		return slices.Equal(outboxFiles(t, outbox1), bobs1)
	})
}

// outboxFiles lists an outbox's files, sorted.
func outboxFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("outbox: %v", err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// stopProcess stops p with SIGTERM and waits for a clean exit.
func stopProcess(t *testing.T, p *appProcess) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if _, err := p.waitExit(t, 60*time.Second); err != nil {
		t.Fatalf("%s exited with %v after SIGTERM", p.name, err)
	}
}
