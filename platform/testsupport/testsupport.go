// Package testsupport holds the helpers every integration test needs: an
// embedded NATS server on a temp dir, a fresh migrated database (SQLite
// or PostgreSQL, see database.go), signed-in HTTP clients, and polling with a deadline instead of sleeping. It
// imports no module: helpers that start a module's driver live beside
// that driver (modules/tasks/jetstream/jetstreamtest).
package testsupport

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/otjhelper/otj/platform/natsconn"
	"github.com/otjhelper/otj/platform/natsserver"
	"github.com/otjhelper/otj/platform/session"
)

// Logger returns a logger that writes through t.Log.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// NATSToken is the token every test server from NATS and NATSAt
// requires; Connect presents it, and tests that start app processes
// against such a server give it to them as NATS_TOKEN.
const NATSToken = "test-nats-token-0123456789abcdef"

// NATS starts an embedded JetStream server on a random loopback port
// with its store in a temp dir, shut down when the test ends. It requires
// NATSToken from every client.
func NATS(t testing.TB) *natsserver.Server {
	t.Helper()
	return NATSAt(t, t.TempDir())
}

// NATSAt is NATS with a given store dir, for restarting a server on the
// same store.
func NATSAt(t testing.TB, storeDir string) *natsserver.Server {
	t.Helper()
	s, err := natsserver.Start(natsserver.Config{StoreDir: storeDir, Listen: "127.0.0.1:-1", Auth: natsserver.Auth{Token: NATSToken}})
	if err != nil {
		t.Fatalf("start embedded nats: %v", err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// Connect opens a separate TCP connection to s, a server from NATS or
// NATSAt, as another process would, closed when the test ends.
func Connect(t testing.TB, s *natsserver.Server, name string) *nats.Conn {
	t.Helper()
	nc, err := natsconn.Connect(natsconn.Options{URL: s.ClientURL(), Name: name, Token: NATSToken, Logger: Logger(t)})
	if err != nil {
		t.Fatalf("connect %s: %v", name, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Context returns a context cancelled when the test ends.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

// Go runs fn in a goroutine whose context is cancelled at cleanup, and
// waits for it to return before the test ends, so nothing leaks.
func Go(t testing.TB, fn func(ctx context.Context)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); fn(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// Eventually polls cond every 10ms until it holds, failing the test after
// timeout with msg.
func Eventually(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Client returns an HTTP client signed in as userID (a session cookie
// signed by signer for baseURL) that does not follow redirects, so tests
// see the 303s themselves.
func Client(t testing.TB, baseURL string, signer *session.Signer, userID int64) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	u, err := url.Parse(baseURL)
	if err != nil {
		t.Fatal(err)
	}
	jar.SetCookies(u, []*http.Cookie{signer.Cookie(userID, time.Hour)})
	return &http.Client{
		Jar:           jar,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Signer returns a session signer with a fixed test key.
func Signer(t testing.TB) *session.Signer {
	t.Helper()
	s, err := session.NewSigner([]byte(TestSecretKey))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSecretKey is the SECRET_KEY tests sign sessions with.
const TestSecretKey = "test-secret-key-0123456789abcdef-0123456789"

// Get fetches u with c and returns the response and its whole body.
func Get(t testing.TB, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	return resp, readBody(t, resp)
}

// PostForm posts form to u with c, with extra headers given as name,
// value pairs, and returns the response and its whole body.
func PostForm(t testing.TB, c *http.Client, u string, form url.Values, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp, readBody(t, resp)
}

func readBody(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// CPUTime is the CPU time, user and system, this process has used so
// far: benchmarks report it per operation, a figure that holds still on a
// busy machine where rates do not. It is 0 where the system cannot tell.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
