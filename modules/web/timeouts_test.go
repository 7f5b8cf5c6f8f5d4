package web_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/modules/web"
	"github.com/otjhelper/otj/platform/testsupport"
)

// A client that announces a body and then sends only part of it is cut
// off once ReadTimeout has passed, instead of holding the connection.
func TestHalfSentBodyIsCutOff(t *testing.T) {
	const readTimeout = 300 * time.Millisecond
	enq := &fakeEnqueuer{}
	f := newFixture(t, web.Config{Enqueuer: enq, ReadTimeout: readTimeout})
	conn, err := net.Dial("tcp", f.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cookie := testsupport.Signer(t).Cookie(f.alice.ID, time.Hour)
	start := time.Now()
	_, err = io.WriteString(conn, "POST /tasks/generate-report HTTP/1.1\r\nHost: "+f.srv.Listener.Addr().String()+"\r\n"+
		"Cookie: "+cookie.Name+"="+cookie.Value+"\r\n"+
		"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"+
		"key=K12") // 7 of the 100 bytes
	if err != nil {
		t.Fatal(err)
	}
	// Well past the bound, so that a server without one shows as a
	// read that times out here rather than a hung test.
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	reply, err := io.ReadAll(conn)
	took := time.Since(start)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %s (reply so far %q)", took.Round(time.Millisecond), reply)
	}
	if took < readTimeout || took > readTimeout+2*time.Second {
		t.Errorf("connection closed after %s, want about %s", took.Round(time.Millisecond), readTimeout)
	}
	if len(enq.calls) != 0 {
		t.Errorf("a half-sent request enqueued %+v", enq.calls)
	}
	t.Logf("closed after %s with %q", took.Round(time.Millisecond), firstLine(reply))
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\r\n")
	return s
}

// bigResult is a result larger than loopback's socket buffers, so that a
// download of it lasts as long as the client takes to read it.
var bigResult = bytes.Repeat([]byte("2026-03-05,1.5,Shadowed the site manager on the morning round\n"), 512<<10) // 31 MiB

// bigDownload starts the download of a completed report of bigResult
// from a live fixture with the given write timeout (whose read timeout is
// shorter still), and returns the response once its headers say 200.
func bigDownload(t *testing.T, writeTimeout time.Duration) *http.Response {
	t.Helper()
	_, c, u := bigReportFixture(t, writeTimeout)
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("download = %d", resp.StatusCode)
	}
	return resp
}

// bigReportFixture is a live fixture with the given write timeout, whose
// read timeout is shorter still, and a completed report of bigResult;
// it returns the fixture, a client and the download's URL.
func bigReportFixture(t *testing.T, writeTimeout time.Duration) (*fixture, *http.Client, string) {
	t.Helper()
	f := liveFixtureWith(t, liveOptions{web: func(c *web.Config) {
		c.ReadTimeout, c.WriteTimeout = writeTimeout/2, writeTimeout
	}, register: func(r *tasks.Registry) error {
		return r.Register(reportType, func(_ context.Context, _ tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
			w, err := out.Create("report.csv", "text/csv")
			if err != nil {
				return tasktype.Result{}, err
			}
			_, err = w.Write(bigResult)
			return tasktype.Result{Summary: "a big one"}, err
		}, tasktype.Policy{MaxAttempts: 1})
	}})
	c := f.client(t, f.alice)
	id := startReport(t, f, c)
	waitForStatus(t, f, c, "/tasks/"+id, tasktype.StatusCompleted)
	return f, c, f.srv.URL + "/tasks/" + id + "/download"
}

// A download that takes several times the write timeout, to a client
// that keeps reading, arrives whole: each chunk moves the deadline on.
func TestSlowDownloadThatKeepsReadingSucceeds(t *testing.T) {
	// Long enough that a loaded machine's pause between two chunks (the
	// race detector, a collection) does not pass it: at 500 ms it did.
	const writeTimeout = 1500 * time.Millisecond
	resp := bigDownload(t, writeTimeout)
	start := time.Now()
	h := sha256.New()
	buf := make([]byte, 256<<10)
	var n int
	for {
		k, err := io.ReadFull(resp.Body, buf)
		h.Write(buf[:k])
		n += k
		if err == io.EOF || err == io.ErrUnexpectedEOF && n == len(bigResult) {
			break
		}
		if err != nil {
			t.Fatalf("download cut off after %d of %d bytes, %s: %v", n, len(bigResult), time.Since(start).Round(time.Millisecond), err)
		}
		time.Sleep(50 * time.Millisecond) // a slow but steady reader
	}
	took := time.Since(start)
	if want := sha256.Sum256(bigResult); n != len(bigResult) || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("got %d bytes of %d, or other bytes", n, len(bigResult))
	}
	if took < 3*writeTimeout {
		t.Fatalf("the download took %s, not long enough to test the deadline (%s)", took, writeTimeout)
	}
	t.Logf("%d bytes in %s", n, took.Round(time.Millisecond))
}

// A client that stops reading is cut off once the write timeout passes
// without progress: resuming much later, it finds the response cut.
func TestStalledDownloadIsCutOff(t *testing.T) {
	const writeTimeout = 500 * time.Millisecond
	resp := bigDownload(t, writeTimeout)
	time.Sleep(5 * writeTimeout) // stalled
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil || n >= int64(len(bigResult)) {
		t.Fatalf("a stalled client still got %d of %d bytes (err %v)", n, len(bigResult), err)
	}
	t.Logf("cut off after %d of %d bytes: %v", n, len(bigResult), err)
}

// An enqueue that runs the job in the request (the Redis broker's
// fallback) may outlast the write timeout; its answer still goes out.
func TestLongEnqueueStillAnswers(t *testing.T) {
	const writeTimeout = 200 * time.Millisecond
	enq := &fakeEnqueuer{takes: 3 * writeTimeout}
	f := newFixture(t, web.Config{Enqueuer: enq, WriteTimeout: writeTimeout})
	req, err := http.NewRequest("POST", f.srv.URL+"/tasks/generate-report", strings.NewReader("key=K1"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := f.client(t, f.alice).Do(req)
	if err != nil {
		t.Fatalf("no answer to an enqueue that took %s: %v", enq.takes, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST = %d", resp.StatusCode)
	}
}
