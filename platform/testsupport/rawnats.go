package testsupport

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// RawNATS speaks the NATS protocol by hand to addr, as a client that
// uses no library would: it reads the server's INFO, sends msg (such as
// a CONNECT and a PING), and returns the next line the server answers,
// trimmed, or "" when it closes without one. Tests use it to show what a
// client without the right credentials or TLS is told.
func RawNATS(t testing.TB, addr, msg string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	if info, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(info, "INFO ") {
		t.Fatalf("no INFO from %s: %q %v", addr, info, err)
	}
	if _, err := c.Write([]byte(msg)); err != nil {
		return ""
	}
	line, _ := r.ReadString('\n')
	return strings.TrimSpace(line)
}
