package apptest

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/otjhelper/otj/platform/testsupport"
)

// TestSignalsShutDownCleanly runs app all as a real process and stops it
// with each signal: it must exit 0, within a bound, having released the
// data dir (a new process can take it at once).
func TestSignalsShutDownCleanly(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			for round := range 2 { // the second start proves the lock was released
				cmd := exec.Command(os.Args[0], "all")
				cmd.Env = append(os.Environ(), runMainEnv+"=1", "OTJ_DATA_DIR="+dir, "PORT=0", "NATS_URL=", "DEV_AUTO_LOGIN_EMAIL=", "SECRET_KEY="+testsupport.TestSecretKey)
				stdout, err := cmd.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				cmd.Stderr = &tLogWriter{t: t, prefix: "all"}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				started := make(chan bool, 1)
				go func() {
					sc := bufio.NewScanner(stdout)
					re := regexp.MustCompile(`running at http://`)
					ok := false
					for sc.Scan() {
						if !ok && re.MatchString(sc.Text()) {
							ok = true
							started <- true
						}
					}
					if !ok {
						started <- false
					}
				}()
				select {
				case ok := <-started:
					if !ok {
						cmd.Wait()
						t.Fatalf("round %d: app exited before serving", round)
					}
				case <-time.After(60 * time.Second):
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatalf("round %d: app did not start within 60s", round)
				}
				if err := cmd.Process.Signal(sig); err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() { done <- cmd.Wait() }()
				select {
				case err := <-done:
					if err != nil {
						t.Fatalf("round %d: after %s the app exited with %v, want status 0", round, sig, err)
					}
				case <-time.After(40 * time.Second):
					cmd.Process.Kill()
					<-done
					t.Fatalf("round %d: app still running 40s after %s", round, sig)
				}
			}
		})
	}
}
