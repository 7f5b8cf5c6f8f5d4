package web

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// streamChunk is how much a long response writes between moving its
// deadlines on.
const streamChunk = 64 << 10

// streamResponse copies src to w, a chunk at a time, moving the
// connection's write deadline WriteTimeout past each chunk before
// writing it. A response may then last as long as the client keeps
// reading, while a client that takes no chunk for WriteTimeout is cut
// off. Downloads use it, and so must any other response that lasts (a
// stream of live events). The read deadline needs no moving: once the
// request is read, the server clears it while it waits for the next.
func (s *server) streamResponse(w http.ResponseWriter, src io.Reader) (int64, error) {
	rc := http.NewResponseController(w)
	buf := make([]byte, streamChunk)
	var n int64
	for {
		k, rerr := src.Read(buf)
		if k > 0 {
			d := time.Now().Add(s.cfg.WriteTimeout)
			if err := deadline(rc.SetWriteDeadline(d)); err != nil {
				return n, fmt.Errorf("move write deadline: %w", err)
			}
			wn, werr := w.Write(buf[:k])
			n += int64(wn)
			if werr != nil {
				return n, werr
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// renewWriteDeadline gives the response WriteTimeout from now, for a
// handler that waited on something that may take longer than that: an
// enqueue that ran the job in the request (the Redis broker's fallback).
func (s *server) renewWriteDeadline(w http.ResponseWriter) {
	// Should it fail, the connection is gone, and writing the answer
	// will say so.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
}

// deadline ignores http.ErrNotSupported: a writer without deadlines (a
// test's recorder) has none to move either.
func deadline(err error) error {
	if errors.Is(err, http.ErrNotSupported) {
		return nil
	}
	return err
}
