package apptest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	natsroles "github.com/otjhelper/otj/deploy/nats"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/natsserver"
	"github.com/otjhelper/otj/platform/testsupport"
)

// The join line, taken apart without assuming what follows the URL.
var (
	joinURLRE   = regexp.MustCompile(`Workers can join with: NATS_URL=(\S+)`)
	joinTokenRE = regexp.MustCompile(`Workers can join with: .*NATS_TOKEN=(\S+) .*app worker`)
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

	// The join line prints the worker role's token, kept in the data
	// dir beside the web role's, each readable by the owner only.
	token := web.waitOutput(t, joinTokenRE)
	kept, err := os.ReadFile(filepath.Join(dir, roleTokenFiles[natsroles.Worker]))
	if err != nil || strings.TrimSpace(string(kept)) != token {
		t.Errorf("worker token file holds %q (%v), app web printed %q", kept, err, token)
	}
	for _, f := range roleTokenFiles {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("token file %s: %v, mode %v, want 0600", f, err, fi.Mode().Perm())
		}
	}
	webToken, err := natsserver.ReadToken(filepath.Join(dir, roleTokenFiles[natsroles.Web]))
	if err != nil {
		t.Fatal(err)
	}

	// A worker elsewhere, with its own data dir, joins with the token.
	elsewhere := baseEnv(t)
	elsewhere["NATS_URL"], elsewhere["NATS_TOKEN"] = url, token
	startApp(t, elsewhere, "worker")
	// The test enqueues as the web side does.
	nc, err := nats.Connect(url, nats.Token(webToken))
	if err != nil {
		t.Fatalf("the printed token: %v", err)
	}
	defer nc.Close()
	b := jetstreamtest.BrokerWith(t, nc, jetstream.Config{AckWait: defaultLease})
	user := ensureUser(t, dir, "alice@example.org")
	job := opEnqueue(t, b, user.ID, testSleep, `{"ms":0}`)
	opWaitKind(t, b, job.ID, tasktype.EventSucceeded)

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
	if left, _ := os.ReadDir(stranger["OTJ_DATA_DIR"]); len(left) > 0 {
		t.Errorf("the refused commands left %d files in the unrelated data dir, e.g. %s", len(left), left[0].Name())
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

// webWithJoinedWorker starts app web on a NATS port of its own, which
// a restart keeps, and a worker on another data dir that joins it with
// the printed URL and token, once that worker has started.
func webWithJoinedWorker(t *testing.T) (env map[string]string, web *proc, url, token string, worker *proc) {
	t.Helper()
	env = baseEnv(t)
	env["NATS_LISTEN"] = "127.0.0.1:" + freePort(t)
	web = startApp(t, env, "web")
	url, token = web.waitOutput(t, joinURLRE), web.waitOutput(t, joinTokenRE)
	wenv := baseEnv(t)
	wenv["NATS_URL"], wenv["NATS_TOKEN"] = url, token
	worker = startApp(t, wenv, "worker")
	testsupport.Eventually(t, 30*time.Second, "the worker never started", func() bool {
		return strings.Contains(worker.logs.String(), `msg="worker started"`)
	})
	return env, web, url, token, worker
}

// TestWorkerRejoinsAfterWebRestarts restarts app web on its data dir and
// NATS port: the token it made at first start is kept and used again, so
// the worker that joined with it reconnects and runs the next job.
func TestWorkerRejoinsAfterWebRestarts(t *testing.T) {
	t.Parallel()
	env, web, url, token, _ := webWithJoinedWorker(t)
	web.shutdown(t)

	web = startApp(t, env, "web")
	if again := web.waitOutput(t, joinTokenRE); again != token {
		t.Fatalf("app web came back with token %q, had %q", again, token)
	}
	// The test enqueues as the web side does.
	nc, err := nats.Connect(url, nats.Token(web.waitJoin(t).WebToken))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	b := jetstreamtest.BrokerWith(t, nc, jetstream.Config{AckWait: defaultLease})
	job := opEnqueue(t, b, ensureUser(t, env["OTJ_DATA_DIR"], "alice@example.org").ID, testSleep, `{"ms":0}`)
	opWaitKind(t, b, job.ID, tasktype.EventSucceeded)
}

// freePort is a loopback port free a moment ago, for a process that must
// listen on the same port across a restart.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// TestNATSListenerTLS runs app web's NATS listener beyond loopback with
// TLS, on a certificate made for the test: a worker that trusts it
// (NATS_TLS_CA) joins and runs a job; a client that does not, and one
// that speaks plain text, are refused.
func TestNATSListenerTLS(t *testing.T) {
	t.Parallel()
	cert, key := testsupport.TLSCert(t)
	env := baseEnv(t)
	env["NATS_LISTEN"], env["NATS_TLS_CERT"], env["NATS_TLS_KEY"] = "0.0.0.0:0", cert, key
	web := startApp(t, env, "web")
	printed := web.waitOutput(t, joinURLRE)
	if !strings.HasPrefix(printed, "tls://") {
		t.Fatalf("join line's URL %q, want tls://", printed)
	}
	token := web.waitOutput(t, joinTokenRE)
	port := printed[strings.LastIndex(printed, ":")+1:]
	url := "tls://127.0.0.1:" + port // the name the certificate has

	worker := baseEnv(t)
	worker["NATS_URL"], worker["NATS_TOKEN"], worker["NATS_TLS_CA"] = url, token, cert
	startApp(t, worker, "worker")
	// The test enqueues as the web side, with its token.
	nc, err := nats.Connect(url, nats.Token(web.waitJoin(t).WebToken), nats.RootCAs(cert))
	if err != nil {
		t.Fatalf("client trusting the certificate: %v", err)
	}
	defer nc.Close()
	b := jetstreamtest.BrokerWith(t, nc, jetstream.Config{AckWait: defaultLease})
	job := opEnqueue(t, b, ensureUser(t, env["OTJ_DATA_DIR"], "alice@example.org").ID, testSleep, `{"ms":0}`)
	opWaitKind(t, b, job.ID, tasktype.EventSucceeded)

	if nc, err := nats.Connect(url, nats.Token(token), nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Error("a client that does not trust the certificate connected")
	}
	if answer := testsupport.RawNATS(t, "127.0.0.1:"+port, fmt.Sprintf("CONNECT {\"auth_token\":%q,\"verbose\":false}\r\nPING\r\n", token)); answer == "PONG" {
		t.Error("a plain-text client with the token was answered")
	}
	// A worker without NATS_TLS_CA stops at once, saying why.
	untrusting := baseEnv(t)
	untrusting["NATS_URL"], untrusting["NATS_TOKEN"] = url, token
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = run(ctx, []string{"worker"}, mapEnv(untrusting), io.Discard, io.Discard)
	if err == nil || !strings.HasPrefix(err.Error(), "NATS_URL ") || !strings.Contains(err.Error(), "certificate") || strings.Contains(err.Error(), "\n") {
		t.Errorf("worker without NATS_TLS_CA: %v, want one line naming NATS_URL and the certificate", err)
	}
}

// TestNATSListenInsecureIsExplicit listens beyond loopback in plain text
// only when NATS_LISTEN_INSECURE says so, with a warning; credentials are
// still required.
func TestNATSListenInsecureIsExplicit(t *testing.T) {
	t.Parallel()
	env := baseEnv(t)
	env["NATS_LISTEN"] = "0.0.0.0:0"
	// Bounded: an app that does start would run until its context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := run(ctx, []string{"web"}, mapEnv(env), io.Discard, io.Discard)
	if err == nil || !strings.HasPrefix(err.Error(), "NATS_LISTEN ") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("app web on 0.0.0.0 without TLS: %v, want one line naming NATS_LISTEN", err)
	}
	env["NATS_LISTEN_INSECURE"] = "true"
	web := startApp(t, env, "web")
	url := web.waitOutput(t, joinURLRE)
	if !strings.Contains(web.logs.String(), "NATS_LISTEN_INSECURE") {
		t.Error("no warning naming NATS_LISTEN_INSECURE in the log")
	}
	port := url[strings.LastIndex(url, ":")+1:]
	if nc, err := nats.Connect("nats://127.0.0.1:"+port, nats.Timeout(5*time.Second)); !errors.Is(err, nats.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Errorf("client without credentials: %v, want nats.ErrAuthorization", err)
	}
}

// TestInProcessConnectionsUseNoListener looks at the sockets of real app
// processes: app all listens on its web port only, with no NATS port at
// all; app web listens for workers, but its own connections to its
// server are in-process, with no TCP connection to the NATS port.
func TestInProcessConnectionsUseNoListener(t *testing.T) {
	t.Parallel()
	env := func() map[string]string {
		e := baseEnv(t)
		e["LOG_LEVEL"] = "warn"
		return e
	}
	t.Run("all", func(t *testing.T) {
		t.Parallel()
		all := startProcess(t, "all", env(), "all")
		web := all.waitStdout(t, runningRE)
		listening, _ := processSockets(t, all.pid())
		if want := []int{portOf(t, web)}; !slices.Equal(listening, want) {
			t.Errorf("app all listens on ports %v, want only its web port %v", listening, want)
		}
	})
	t.Run("web", func(t *testing.T) {
		t.Parallel()
		web := startProcess(t, "web", env(), "web")
		base := web.waitStdout(t, runningRE)
		natsPort := portOf(t, web.waitStdout(t, joinURLRE))
		// Once the projection has read the stream and the health check
		// has asked the broker, every connection the process uses is up.
		if resp, health := testsupport.Get(t, http.DefaultClient, base+"/healthz"); resp.StatusCode != http.StatusOK {
			t.Fatalf("healthz %d %s", resp.StatusCode, health)
		}
		listening, remote := processSockets(t, web.pid())
		if want := []int{portOf(t, base), natsPort}; !slices.Equal(listening, slices.Sorted(slices.Values(want))) {
			t.Errorf("app web listens on ports %v, want its web and NATS ports %v", listening, want)
		}
		if slices.Contains(remote, natsPort) {
			t.Errorf("app web has a TCP connection to its own NATS port %d (connections to ports %v)", natsPort, remote)
		}
	})
}

// portOf is the port of a URL such as http://127.0.0.1:8080/x.
func portOf(t *testing.T, rawURL string) int {
	t.Helper()
	u, err := neturl.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("no port in %q", rawURL)
	}
	return p
}

// processSockets returns the TCP ports process pid listens on, and the
// remote ports of its established TCP connections, sorted, read from
// /proc: its file descriptors name socket inodes, and the kernel's TCP
// tables say what each inode is.
func processSockets(t *testing.T, pid int) (listening, remote []int) {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Skipf("no /proc to read sockets from: %v", err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && strings.HasPrefix(target, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] = true
		}
	}
	for _, table := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || !inodes[f[9]] {
				continue
			}
			port := func(addr string) int {
				n, _ := strconv.ParseInt(addr[strings.LastIndex(addr, ":")+1:], 16, 32)
				return int(n)
			}
			switch f[3] {
			case "0A": // LISTEN
				listening = append(listening, port(f[1]))
			case "01": // ESTABLISHED
				remote = append(remote, port(f[2]))
			}
		}
	}
	slices.Sort(listening)
	slices.Sort(remote)
	return listening, remote
}

// TestWorkerStopsWhenItsTokenIsRefusedOnReconnect restarts app web with
// another worker token (its file deleted, so another is made up): the
// worker that joined with the old one is refused when it reconnects, and
// stops naming NATS_TOKEN, instead of running on with a connection that
// is closed for good.
func TestWorkerStopsWhenItsTokenIsRefusedOnReconnect(t *testing.T) {
	t.Parallel()
	env, web, _, _, joined := webWithJoinedWorker(t)
	web.shutdown(t)

	if err := os.Remove(filepath.Join(env["OTJ_DATA_DIR"], roleTokenFiles[natsroles.Worker])); err != nil {
		t.Fatal(err)
	}
	startApp(t, env, "web").waitOutput(t, joinURLRE)
	select {
	case <-joined.done:
		// The error of a service that stopped starts with the service's
		// name ("nats: NATS_TOKEN: ...").
		if joined.err == nil || !strings.Contains(joined.err.Error(), "NATS_TOKEN: ") || strings.Contains(joined.err.Error(), "\n") {
			t.Errorf("worker ended with %v, want one line naming NATS_TOKEN", joined.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the worker still runs 30s after app web came back with another token")
	}
}
