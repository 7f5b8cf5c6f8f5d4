package apptest

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/platform/testsupport"
)

// oldNATSServer starts the nats-server on PATH (Debian's package is
// 2.9.10) with JetStream on a free loopback port, and returns its URL and
// version, or skips when there is none older than the broker needs: on a
// fresh machine scripts/test installs Debian's, and under CI=true a
// missing one fails the test.
func oldNATSServer(t *testing.T) (url, version string) {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no nats-server on PATH (scripts/test installs Debian's): %v", err)
		}
		t.Skip("no nats-server on PATH; install Debian's nats-server package to run this test")
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", bin, err)
	}
	m := regexp.MustCompile(`v?(\d+\.\d+\.\d+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("%s --version: no version in %q", bin, out)
	}
	version = m[1]
	if !strings.HasPrefix(version, "2.9.") && !strings.HasPrefix(version, "2.10.") {
		t.Skipf("nats-server on PATH is %s, not one older than 2.11", version)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", filepath.Join(t.TempDir(), "js"))
	cmd.Stderr = &tLogWriter{t: t, prefix: "nats-server " + version}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	addr := "127.0.0.1:" + strconv.Itoa(port)
	testsupport.Eventually(t, 10*time.Second, "nats-server "+version+" listens on "+addr, func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return "nats://" + addr, version
}

// Every mode that uses NATS_URL refuses a server too old for the broker
// at start, with one line naming the setting and the version needed,
// instead of web taking reports that no worker will ever run.
func TestOldNATSServerIsRefusedAtStart(t *testing.T) {
	url, version := oldNATSServer(t)
	want := "NATS_URL " + url + ": nats-server " + version + " is too old: OTJ Helper needs nats-server 2.11 or newer"
	for _, mode := range []string{"all", "web", "worker"} {
		t.Run(mode, func(t *testing.T) {
			env := baseEnv(t)
			env["NATS_URL"] = url
			p := startProcess(t, mode, env, mode)
			took, err := p.waitExit(t, 20*time.Second)
			if err == nil {
				t.Fatalf("app %s against nats-server %s exited 0", mode, version)
			}
			lines := strings.Split(strings.TrimSpace(p.stderr.String()), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "app: ") || !strings.Contains(last, want) {
				t.Fatalf("app %s's last line %q, want it to say %q", mode, last, want)
			}
			t.Logf("app %s refused nats-server %s in %s: %s", mode, version, took, last)
		})
	}
}

// NATS_REPLICAS above 1 on a single external server is refused at start
// by app web, which applies it, in one line that names the setting.
func TestReplicasOnASingleServerAreRefused(t *testing.T) {
	srv := testsupport.NATS(t)
	env := baseEnv(t)
	env["NATS_URL"], env["NATS_TOKEN"], env["NATS_REPLICAS"] = srv.ClientURL(), testsupport.NATSToken, "3"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := run(ctx, []string{"web"}, mapEnv(env), io.Discard, io.Discard)
	if err == nil || !strings.HasPrefix(err.Error(), "NATS_REPLICAS 3: ") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("web with NATS_REPLICAS=3 on one server: %v", err)
	}
	t.Log(err)
}
