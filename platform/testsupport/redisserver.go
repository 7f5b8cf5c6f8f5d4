package testsupport

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// RedisServer starts a redis-server of the test's own on a free loopback
// port, with no persistence and args added to its command line (such as
// --requirepass, or --tls-port with certificates: see RedisTLSArgs), and
// returns its host:port; it is stopped when the test ends. Tests need it
// where a shared server will not do: a password, TLS. Without a
// redis-server binary the test is skipped, or fails under CI=true.
func RedisServer(t testing.TB, args ...string) string {
	t.Helper()
	return StartRedisServer(t, args...).Addr
}

// RedisProcess is a redis-server started by StartRedisServer, which a
// test may kill and start again on the same port, as a crash of the
// Redis host and its restart look to clients. Having no persistence, it
// comes back empty.
type RedisProcess struct {
	// Addr is its host:port, the same across restarts.
	Addr string

	t    testing.TB
	bin  string
	args []string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartRedisServer is RedisServer, returning the process.
func StartRedisServer(t testing.TB, args ...string) *RedisProcess {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no redis-server on PATH: CI must run the Redis tests: %v", err)
		}
		t.Skipf("no redis-server on PATH: %v", err)
	}
	port := freeLoopbackPort(t)
	full := append([]string{"--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--dir", t.TempDir()}, args...)
	for i, a := range full {
		if a == "PORT" { // RedisTLSArgs' stand-in for the port
			full[i], full[3] = port, "0"
		}
	}
	r := &RedisProcess{Addr: net.JoinHostPort("127.0.0.1", port), t: t, bin: bin, args: full}
	r.start()
	// Registered once: it stops whichever process is current.
	t.Cleanup(r.Kill)
	return r
}

func (r *RedisProcess) start() {
	t := r.t
	t.Helper()
	cmd := exec.Command(r.bin, r.args...)
	cmd.Stdout, cmd.Stderr = tWriter{t}, tWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	r.cmd, r.done = cmd, done
	Eventually(t, 10*time.Second, "redis-server never listened on "+r.Addr, func() bool {
		select {
		case <-done:
			t.Fatalf("redis-server exited at start (its log is above)")
		default:
		}
		c, err := net.DialTimeout("tcp", r.Addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// Kill SIGKILLs the server and waits for it to be gone.
func (r *RedisProcess) Kill() {
	_ = r.cmd.Process.Kill()
	<-r.done
}

// Restart starts a killed server again on its port, empty.
func (r *RedisProcess) Restart() {
	r.t.Helper()
	r.start()
}

// RedisTLSArgs are RedisServer's arguments for TLS only, on the port
// RedisServer picks, with the certificate and key given (TLSCert's) and
// no client certificates asked for.
func RedisTLSArgs(certFile, keyFile string) []string {
	return []string{"--tls-port", "PORT", "--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-auth-clients", "no"}
}

// freeLoopbackPort is a loopback port free a moment ago, for a server
// that cannot pick its own and report it.
func freeLoopbackPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}
