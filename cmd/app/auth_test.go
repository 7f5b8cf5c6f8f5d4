package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/platform/testsupport"
)

// The join line, taken apart without assuming what follows the URL.
var (
	joinURLRE   = regexp.MustCompile(`Workers can join with: NATS_URL=(\S+)`)
	joinTokenRE = regexp.MustCompile(`Workers can join with: .*NATS_TOKEN=(\S+) app worker`)
)

// TestWebNATSRefusesClientsWithoutCredentials is the black-box
// test: app web's NATS listener refuses a plain NATS client with no
// credentials, or with a wrong token, while a worker given the token it
// prints joins and runs a job; the operator commands with only NATS_URL,
// on an unrelated data dir, are refused, and on app web's own data dir
// work by reading the token kept there.
func TestWebNATSRefusesClientsWithoutCredentials(t *testing.T) {
	t.Parallel()
	env := baseEnv(t)
	dir := env["OTJ_DATA_DIR"]
	web := startApp(t, env, "web")
	url := web.waitOutput(t, joinURLRE)

	// Plain nats.go clients, as anyone on the machine could run.
	for name, opts := range map[string][]nats.Option{
		"no credentials": nil,
		"wrong token":    {nats.Token("not-the-token-0123456789abcdef")},
		"guessed user":   {nats.UserInfo("otj", "otj")},
	} {
		nc, err := nats.Connect(url, append(opts, nats.Timeout(5*time.Second))...)
		if err == nil {
			_, jsErr := nc.Request("$JS.API.STREAM.NAMES", nil, 5*time.Second)
			nc.Close()
			t.Errorf("a client with %s connected to app web's NATS (JetStream API answered: %v)", name, jsErr == nil)
			continue
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("client with %s: %v, want nats.ErrAuthorization", name, err)
		}
	}

	token := web.waitOutput(t, joinTokenRE)
	kept, err := os.ReadFile(filepath.Join(dir, "nats-token"))
	if err != nil || strings.TrimSpace(string(kept)) != token {
		t.Errorf("token file holds %q (%v), app web printed %q", kept, err, token)
	}
	if fi, err := os.Stat(filepath.Join(dir, "nats-token")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("token file: %v, mode %v, want 0600", err, fi.Mode().Perm())
	}

	// A worker elsewhere, with its own data dir, joins with the token.
	elsewhere := baseEnv(t)
	elsewhere["NATS_URL"], elsewhere["NATS_TOKEN"] = url, token
	startApp(t, elsewhere, "worker")
	nc, err := nats.Connect(url, nats.Token(token))
	if err != nil {
		t.Fatalf("the printed token: %v", err)
	}
	defer nc.Close()
	b, err := jetstream.Open(testsupport.Context(t), jetstream.Config{Conn: nc, AckWait: defaultLease, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	user := ensureUser(t, dir, "alice@example.org")
	job := opEnqueue(t, b, user.ID, testSleep, `{"ms":0}`)
	opWaitKind(t, b, job.ID, tasks.EventSucceeded)

	// The operator commands: only NATS_URL and an empty, unrelated data dir.
	stranger := map[string]string{"OTJ_DATA_DIR": t.TempDir(), "NATS_URL": url}
	for _, args := range [][]string{{"tasks", "list"}, {"tasks", "cancel", job.ID}, {"projections", "rebuild"}} {
		out, err := opCLIErr(t, stranger, args...)
		if err == nil || !strings.HasPrefix(err.Error(), "NATS_TOKEN: ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("app %s with NATS_URL on an unrelated data dir: err %v, want one line naming NATS_TOKEN", strings.Join(args, " "), err)
		}
		if strings.Contains(out, job.ID) {
			t.Errorf("app %s on an unrelated data dir printed the job:\n%s", strings.Join(args, " "), out)
		}
	}
	// On app web's own data dir, the same commands read the token there.
	own := map[string]string{"OTJ_DATA_DIR": dir, "NATS_URL": url}
	out, err := opCLIErr(t, own, "tasks", "list")
	if err != nil || !strings.Contains(out, job.ID) {
		t.Errorf("tasks list on app web's data dir: err %v, out:\n%s", err, out)
	}

	// A worker with a wrong token stops at once, naming the setting.
	wrong := baseEnv(t)
	wrong["NATS_URL"], wrong["NATS_TOKEN"] = url, "not-the-token-0123456789abcdef"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	began := time.Now()
	err = run(ctx, []string{"worker"}, mapEnv(wrong), io.Discard, io.Discard)
	if err == nil || !strings.HasPrefix(err.Error(), "NATS_TOKEN: ") || strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), wrong["NATS_TOKEN"]) {
		t.Errorf("worker with a wrong token: %v, want one line naming NATS_TOKEN and not showing it", err)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("worker with a wrong token took %s to stop", took)
	}
}
