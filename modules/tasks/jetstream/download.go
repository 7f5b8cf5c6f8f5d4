package jetstream

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	natsjs "github.com/nats-io/nats.go/jetstream"
)

// resultsStream is the stream that holds the results bucket.
const resultsStream = "OBJ_" + ResultsBucket

// downloadAhead is how many chunks of a result file a download holds
// ahead of its reader: the bucket's own Get lets the server push up to
// 64 MB ahead into the subscription, so that a 1M-activity report read
// at a spreadsheet converter's pace held its whole 150 MB read-ahead in
// memory, and each slow download as much. Pulled a few chunks at a
// time (128 KiB each), a download holds about four megabytes.
const downloadAhead = 32

// chunks reads a stored object's chunks in order through an ordered
// pull consumer, at most downloadAhead ahead of its reader, and checks
// the file's size and digest at its end, as the bucket's Get does.
type chunks struct {
	ctx    context.Context
	it     natsjs.MessagesContext
	done   func()
	info   *natsjs.ObjectInfo
	left   uint32 // chunks not yet read
	read   uint64 // bytes read
	buf    []byte
	digest hash.Hash
	err    error
}

// openChunks starts reading the chunks of the object info describes.
func (b *Broker) openChunks(ctx context.Context, info *natsjs.ObjectInfo) (*chunks, error) {
	c := &chunks{ctx: ctx, info: info, left: info.Chunks, digest: sha256.New(), done: func() {}}
	if info.Chunks == 0 {
		return c, nil
	}
	it, done, err := b.readOnce(ctx, resultsStream, natsjs.OrderedConsumerConfig{
		FilterSubjects: []string{"$O." + ResultsBucket + ".C." + info.NUID},
		DeliverPolicy:  natsjs.DeliverAllPolicy,
	}, natsjs.PullMaxMessages(downloadAhead))
	if err != nil {
		return nil, err
	}
	c.it, c.done = it, done
	return c, nil
}

func (c *chunks) Read(p []byte) (int, error) {
	for len(c.buf) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		if c.left == 0 {
			c.err = c.check()
			return 0, c.err
		}
		msg, err := c.it.Next(natsjs.NextContext(c.ctx))
		if err != nil {
			if ctxErr := c.ctx.Err(); ctxErr != nil {
				err = ctxErr
			}
			c.err = fmt.Errorf("read result %s: %w", c.info.Name, classify(err))
			return 0, c.err
		}
		c.buf = msg.Data()
		c.left--
		c.read += uint64(len(c.buf))
		c.digest.Write(c.buf)
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

// check is the end of the file: every byte there, and the digest the
// bucket recorded.
func (c *chunks) check() error {
	if c.read != c.info.Size {
		return fmt.Errorf("read result %s: %d bytes, want %d", c.info.Name, c.read, c.info.Size)
	}
	if got := natsjs.GetObjectDigestValue(c.digest); got != c.info.Digest {
		return fmt.Errorf("read result %s: %w", c.info.Name, errDigestMismatch)
	}
	return io.EOF
}

var errDigestMismatch = errors.New("digest does not match the stored one")

func (c *chunks) Close() error {
	c.done()
	return nil
}
