package jetstream_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/natsconn"
	"github.com/otjhelper/otj/platform/testsupport"
)

// stallTimeout is the brokers' RequestTimeout in these tests.
const stallTimeout = 500 * time.Millisecond

// TestPutGivesUpWhenTheServerStopsAnswering starts an upload against a
// server that has stopped answering (and would never answer, as one that
// died with the requests): Put returns ErrUnavailable within about its
// RequestTimeout, though the caller's context allows a minute.
func TestPutGivesUpWhenTheServerStopsAnswering(t *testing.T) {
	b, f := stallSetup(t)
	f.freeze()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	_, err := b.Put(ctx, "frozen-a1", "report.csv", "text/csv", bytes.NewReader(make([]byte, 3<<20)))
	took := time.Since(start)
	t.Logf("Put against a frozen server returned after %s: %v", took.Round(time.Millisecond), err)
	if !errors.Is(err, tasktype.ErrUnavailable) {
		t.Fatalf("Put against a frozen server: %v, want ErrUnavailable", err)
	}
	if took > 4*stallTimeout {
		t.Fatalf("Put took %s to give up, want about its RequestTimeout (%s)", took, stallTimeout)
	}
}

// TestPutGivesUpWhenTheServerStopsAnsweringMidUpload freezes the server
// once the upload's first megabyte is through: the chunks sent after it
// are never acknowledged, and Put returns ErrUnavailable within about its
// RequestTimeout of the last bytes it read.
func TestPutGivesUpWhenTheServerStopsAnsweringMidUpload(t *testing.T) {
	b, f := stallSetup(t)
	// A few chunks after the freeze: they fit in the sockets' buffers,
	// so the client sends them and then waits for their acks.
	r := &cueReader{first: make([]byte, 1<<20), rest: make([]byte, 256<<10), atCue: f.freeze}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := b.Put(ctx, "midway-a1", "report.csv", "text/csv", r)
	took := time.Since(r.cued)
	t.Logf("Put returned %s after the server froze mid-upload: %v", took.Round(time.Millisecond), err)
	if !errors.Is(err, tasktype.ErrUnavailable) {
		t.Fatalf("Put with the server frozen mid-upload: %v, want ErrUnavailable", err)
	}
	if took > 4*stallTimeout {
		t.Fatalf("Put took %s after the freeze to give up, want about its RequestTimeout (%s)", took, stallTimeout)
	}
}

// TestSlowWriterKeepsItsUpload feeds an upload slower than RequestTimeout
// between chunks: time spent waiting for the handler's bytes is not the
// broker's, so the upload completes.
func TestSlowWriterKeepsItsUpload(t *testing.T) {
	b, _ := stallSetup(t)
	r := &slowReader{parts: 3, size: 200 << 10, pause: 2 * stallTimeout}
	ref, err := b.Put(testsupport.Context(t), "slow-a1", "report.csv", "text/csv", r)
	if err != nil {
		t.Fatalf("slow upload: %v", err)
	}
	if ref.Size != 3*200<<10 {
		t.Fatalf("slow upload stored %d bytes, want %d", ref.Size, 3*200<<10)
	}
}

// TestLastGivesUpWhenTheServerStopsAnswering reads a job's last event from
// a server that has stopped answering: ErrUnavailable within about
// RequestTimeout, not at the caller's deadline.
func TestLastGivesUpWhenTheServerStopsAnswering(t *testing.T) {
	b, f := stallSetup(t)
	job, err := b.Enqueue(testsupport.Context(t), tasktype.EnqueueRequest{Type: "full_report", UserID: 3})
	if err != nil {
		t.Fatal(err)
	}
	f.freeze()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	_, err = b.Last(ctx, 3, job.ID)
	took := time.Since(start)
	if !errors.Is(err, tasktype.ErrUnavailable) || took > 4*stallTimeout {
		t.Fatalf("Last against a frozen server: %v after %s, want ErrUnavailable within about %s", err, took, stallTimeout)
	}
}

// stallSetup starts a server, a freezer in front of it and a broker that
// reaches the server through the freezer.
func stallSetup(t *testing.T) (*jetstream.Broker, *freezer) {
	t.Helper()
	srv := testsupport.NATS(t)
	u, err := url.Parse(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	f := startFreezer(t, u.Host)
	nc, err := natsconn.Connect(natsconn.Options{URL: "nats://" + f.addr(), Name: "stall", Token: testsupport.NATSToken, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	b, err := jetstream.Open(testsupport.Context(t), jetstream.Config{Conn: nc, RequestTimeout: stallTimeout, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return b, f
}

// freezer is a TCP proxy that can stop passing bytes, both ways, while
// keeping its connections open: the client sees a server that takes its
// requests and never answers, as a frozen server, or one that died with
// them, does.
type freezer struct {
	ln       net.Listener
	upstream string
	frozen   chan struct{} // closed by freeze
	once     sync.Once
	closed   chan struct{}
	mu       sync.Mutex
	conns    []net.Conn
	wg       sync.WaitGroup
}

func startFreezer(t *testing.T, upstream string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, upstream: upstream, frozen: make(chan struct{}), closed: make(chan struct{})}
	f.wg.Go(f.accept)
	t.Cleanup(f.close)
	return f
}

func (f *freezer) addr() string { return f.ln.Addr().String() }

// freeze stops every connection from passing any more bytes.
func (f *freezer) freeze() { f.once.Do(func() { close(f.frozen) }) }

func (f *freezer) accept() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", f.upstream)
		if err != nil {
			c.Close()
			continue
		}
		f.mu.Lock()
		f.conns = append(f.conns, c, u)
		f.mu.Unlock()
		f.wg.Go(func() { f.pass(u, c) })
		f.wg.Go(func() { f.pass(c, u) })
	}
}

// pass copies src to dst until either fails, or the freezer freezes or
// closes.
func (f *freezer) pass(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-f.frozen:
			<-f.closed
			return
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (f *freezer) close() {
	close(f.closed)
	f.ln.Close()
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// cueReader yields first, calls atCue, then yields rest.
type cueReader struct {
	first, rest []byte
	atCue       func()
	cued        time.Time
	done        bool
}

func (r *cueReader) Read(p []byte) (int, error) {
	if len(r.first) > 0 {
		n := copy(p, r.first)
		r.first = r.first[n:]
		return n, nil
	}
	if !r.done {
		r.done = true
		r.atCue()
		r.cued = time.Now()
	}
	if len(r.rest) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.rest)
	r.rest = r.rest[n:]
	return n, nil
}

// slowReader yields parts pieces of size bytes, pausing before each.
type slowReader struct {
	parts, size int
	pause       time.Duration
	left        []byte
}

func (r *slowReader) Read(p []byte) (int, error) {
	if len(r.left) == 0 {
		if r.parts == 0 {
			return 0, io.EOF
		}
		time.Sleep(r.pause)
		r.parts--
		r.left = make([]byte, r.size)
	}
	n := copy(p, r.left)
	r.left = r.left[n:]
	return n, nil
}

// TestPutOnAServerThatDiedMidUploadIsUnavailable kills the server once
// the upload's first megabyte is through. The connection, reconnecting,
// refuses the next chunks at once ("outbound buffer limit exceeded":
// nothing is buffered while disconnected): that is an unreachable store,
// ErrUnavailable, as a frozen one is, and not a failure of the job.
func TestPutOnAServerThatDiedMidUploadIsUnavailable(t *testing.T) {
	srv := testsupport.NATS(t)
	b := jetstreamtest.Broker(t, testsupport.Connect(t, srv, "died"))
	r := &cueReader{first: make([]byte, 1<<20), rest: make([]byte, 1<<20), atCue: srv.Shutdown}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := b.Put(ctx, "died-a1", "report.csv", "text/csv", r)
	if !errors.Is(err, tasktype.ErrUnavailable) {
		t.Fatalf("Put with the server killed mid-upload: %v, want ErrUnavailable", err)
	}
}

// TestPutPassesTheWritersErrorOn fails the file's writer mid-upload: Put
// returns the writer's error, not an unreachable store's.
func TestPutPassesTheWritersErrorOn(t *testing.T) {
	b := jetstreamtest.Broker(t, testsupport.Connect(t, testsupport.NATS(t), "writer"))
	pr, pw := io.Pipe()
	boom := errors.New("the handler failed")
	go func() {
		_, _ = pw.Write(make([]byte, 300<<10))
		pw.CloseWithError(boom)
	}()
	_, err := b.Put(testsupport.Context(t), "writer-a1", "report.csv", "text/csv", pr)
	if !errors.Is(err, boom) || errors.Is(err, tasktype.ErrUnavailable) {
		t.Fatalf("Put whose writer failed: %v, want the writer's error and not ErrUnavailable", err)
	}
}
