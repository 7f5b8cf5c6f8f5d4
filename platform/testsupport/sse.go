package testsupport

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// SSEFrame is one event or comment read from a Server-Sent Events
// stream.
type SSEFrame struct {
	ID, Event, Data, Comment string
}

// SSEStream is an open text/event-stream response, read frame by frame
// in the background until it ends or the test does.
type SSEStream struct {
	// Frames carries each frame as it is read.
	Frames chan SSEFrame
	// Done receives the read's end: io.EOF for a stream the server ended.
	Done   chan error
	cancel context.CancelFunc
}

// Close drops the connection, as a browser leaving the page does.
func (s *SSEStream) Close() { s.cancel() }

// SSE opens the event stream at url with c (its timeout lifted: the
// test's context bounds the stream), sending Last-Event-ID when lastID
// is set. A response that is not a 200 text/event-stream fails the test.
func SSE(t testing.TB, c *http.Client, url, lastID string) *SSEStream {
	t.Helper()
	ctx, cancel := context.WithCancel(Context(t))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	sc := *c
	sc.Timeout = 0
	resp, err := sc.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		cancel()
		resp.Body.Close()
		t.Fatalf("GET %s = %d %q", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &SSEStream{Frames: make(chan SSEFrame, 10000), Done: make(chan error, 1), cancel: cancel}
	go func() {
		defer resp.Body.Close()
		r := bufio.NewScanner(resp.Body)
		var fr SSEFrame
		for r.Scan() {
			line := r.Text()
			switch {
			case line == "":
				if fr != (SSEFrame{}) {
					s.Frames <- fr
				}
				fr = SSEFrame{}
			case strings.HasPrefix(line, ":"):
				fr.Comment = strings.TrimSpace(line[1:])
			default:
				k, v, _ := strings.Cut(line, ":")
				v = strings.TrimPrefix(v, " ")
				switch k {
				case "id":
					fr.ID = v
				case "event":
					fr.Event = v
				case "data":
					fr.Data = v
				}
			}
		}
		err := r.Err()
		if err == nil {
			err = io.EOF
		}
		s.Done <- err
	}()
	t.Cleanup(s.Close)
	return s
}
