package jetstream

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// Put streams a result file into the results bucket.
//
// An upload is many requests (a look-up, a publish per chunk and the
// acks for them, a purge if it fails), and nats.go gives none of them a
// deadline of its own when the caller's context has one: a request that a
// dying server took with it would wait for the job's whole attempt. So
// the upload is cancelled once its broker side has gone RequestTimeout
// without progress; the time it waits for the handler to write more does
// not count (see uploadGuard).
func (b *Broker) Put(ctx context.Context, object, name, contentType string, r io.Reader) (tasktype.ResultRef, error) {
	ctx, g := guardUpload(ctx, r, b.cfg.RequestTimeout)
	defer g.stop()
	info, err := b.results.Put(ctx, natsjs.ObjectMeta{
		Name:        object,
		Description: name,
		Headers:     nats.Header{"Content-Type": []string{contentType}},
	}, g)
	if storeFull(err) {
		// The server's wording stays in the chain, for the log and the
		// operator's view.
		return tasktype.ResultRef{}, fmt.Errorf("put result %s: %w: %w", object, tasktype.ErrResultStoreFull, err)
	}
	if err != nil {
		switch {
		case errors.Is(context.Cause(ctx), errUploadStalled):
			err = fmt.Errorf("%w: %w within %s", tasktype.ErrUnavailable, errUploadStalled, b.cfg.RequestTimeout)
		case g.readErr != nil && errors.Is(err, g.readErr), ctx.Err() != nil:
			// The writer failed, or the caller gave up: theirs to say.
		default:
			// The server's refusal, or none at all: a connection that
			// lost its server refuses every publish at once ("outbound
			// buffer limit exceeded": nothing is buffered while
			// disconnected).
			err = classify(err)
		}
		return tasktype.ResultRef{}, fmt.Errorf("put result %s: %w", object, err)
	}
	return tasktype.ResultRef{Object: object, Name: name, ContentType: contentType, Size: info.Size, Digest: info.Digest}, nil
}

var errUploadStalled = errors.New("the server did not answer the upload")

// uploadGuard is the reader an upload reads its file through, and the
// clock of its broker side: the clock runs while the upload is not
// waiting in Read (it is publishing, waiting for acks, or making a
// request), and cancels the upload's context when it reaches within.
// Waiting for the handler's next bytes stops it.
type uploadGuard struct {
	r      io.Reader
	within time.Duration
	timer  *time.Timer
	cancel context.CancelCauseFunc
	// readErr is the file's own error, other than its end: the upload
	// fails with it, and it is no fault of the store's.
	readErr error
}

func guardUpload(ctx context.Context, r io.Reader, within time.Duration) (context.Context, *uploadGuard) {
	ctx, cancel := context.WithCancelCause(ctx)
	g := &uploadGuard{r: r, within: within, cancel: cancel}
	g.timer = time.AfterFunc(within, func() { cancel(errUploadStalled) })
	return ctx, g
}

func (g *uploadGuard) Read(p []byte) (int, error) {
	g.timer.Stop()
	n, err := g.r.Read(p)
	g.timer.Reset(g.within)
	if err != nil && err != io.EOF {
		g.readErr = err
	}
	return n, err
}

func (g *uploadGuard) stop() {
	g.timer.Stop()
	g.cancel(nil)
}

// JetStream's answers that mean there is no room: a stream at its
// MaxBytes ("maximum bytes exceeded", among the store failures of
// 10077), and a server out of the storage JetStream may use (10047).
const (
	errCodeStoreFailed           natsjs.ErrorCode = 10077
	errCodeInsufficientResources natsjs.ErrorCode = 10047
)

// storeFull reports whether err is the server refusing a write for want
// of room.
func storeFull(err error) bool {
	var apiErr *natsjs.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == errCodeInsufficientResources ||
		apiErr.ErrorCode == errCodeStoreFailed && strings.Contains(apiErr.Description, "maximum bytes")
}

// Delete removes a stored result file, if there is one.
func (b *Broker) Delete(ctx context.Context, object string) error {
	ctx, cancel := b.request(ctx)
	defer cancel()
	if b.cfg.NoPurge {
		return b.markDeleted(ctx, object)
	}
	err := b.results.Delete(ctx, object)
	if err != nil && !errors.Is(err, natsjs.ErrObjectNotFound) {
		return fmt.Errorf("delete result %s: %w", object, err)
	}
	return nil
}

// markDeleted is Delete without the purge of the object's chunks: the
// delete marker the bucket's own Delete writes first, a meta message that
// replaces the object's (a roll-up of its subject).
func (b *Broker) markDeleted(ctx context.Context, object string) error {
	info, err := b.results.GetInfo(ctx, object, natsjs.GetObjectInfoShowDeleted())
	if errors.Is(err, natsjs.ErrObjectNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete result %s: %w", object, classify(err))
	}
	if info.Deleted {
		return nil
	}
	info.Deleted, info.Size, info.Chunks, info.Digest, info.ModTime = true, 0, 0, "", time.Time{}
	data, err := json.Marshal(info)
	if err != nil {
		return fmt.Errorf("delete result %s: %w", object, err)
	}
	msg := nats.NewMsg("$O." + ResultsBucket + ".M." + base64.URLEncoding.EncodeToString([]byte(object)))
	msg.Header.Set(natsjs.MsgRollup, natsjs.MsgRollupSubject)
	msg.Data = data
	if _, err := b.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("delete result %s: %w", object, classify(err))
	}
	return nil
}

// Open streams a stored result file, with the size and digest the
// bucket recorded when it was put. One that is not there (expired,
// pruned, never stored) is tasktype.ErrResultMissing.
//
// The look-up is one request, bounded by RequestTimeout. The reading is
// not: it goes at the reader's pace (a download to a slow phone), so it
// is bounded by the file's size instead, at minDownloadRate. nats.go's
// Get would give a context without a deadline its default timeout for
// the whole file, cutting off any download that takes longer.
func (b *Broker) Open(ctx context.Context, object string) (*tasktype.StoredResult, error) {
	rctx, cancel := b.request(ctx)
	info, err := b.results.GetInfo(rctx, object)
	cancel()
	if errors.Is(err, natsjs.ErrObjectNotFound) {
		return nil, fmt.Errorf("open result %s: %w", object, tasktype.ErrResultMissing)
	}
	if err != nil {
		return nil, fmt.Errorf("open result %s: %w", object, classify(err))
	}
	budget := 2*b.cfg.RequestTimeout + time.Duration(info.Size/minDownloadRate+1)*time.Second
	dctx, cancel := context.WithTimeout(ctx, budget)
	r, err := b.openChunks(dctx, info)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open result %s: %w", object, err)
	}
	return &tasktype.StoredResult{ReadCloser: cancelOnClose{r, cancel}, Size: info.Size, Digest: info.Digest}, nil
}

// minDownloadRate, in bytes per second, is the slowest reading of a
// result file that still gets all of it: a 3 MB report has 47 s, a
// 280 MB one 73 minutes.
const minDownloadRate = 64 << 10

// cancelOnClose ends a download's context when its reader is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// Succeeded implements driver.Log: it reads the user's succeeded
// events of one job type stored since the given time, in stream order,
// with a short-lived ordered consumer filtered to
// tasks.<type>.<user>.*.succeeded and starting at that time, so that it
// reads neither other users' events nor the whole log.
func (b *Broker) Succeeded(ctx context.Context, userID int64, jobType string, since time.Time) ([]tasktype.Event, error) {
	filter := SubjectPrefix + "." + jobType + "." + strconv.FormatInt(userID, 10) + ".*." + string(tasktype.EventSucceeded)
	last, err := b.stream.GetLastMsgForSubject(ctx, filter)
	if errors.Is(err, natsjs.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("succeeded events of %s for user %d: %w", jobType, userID, classify(err))
	}
	if last.Time.Before(since) {
		return nil, nil
	}
	cfg := natsjs.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: natsjs.DeliverAllPolicy}
	if !since.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = natsjs.DeliverByStartTimePolicy, &since
	}
	it, done, err := b.readOnce(ctx, StreamName, cfg)
	if err != nil {
		return nil, fmt.Errorf("succeeded events of %s for user %d: %w", jobType, userID, err)
	}
	defer done()
	var events []tasktype.Event
	for {
		msg, err := it.Next(natsjs.NextContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("succeeded events of %s for user %d: %w", jobType, userID, classify(err))
		}
		md, err := msg.Metadata()
		if err != nil {
			return nil, fmt.Errorf("succeeded events of %s for user %d: %w", jobType, userID, err)
		}
		if e, err := decode(msg.Data(), md.Sequence.Stream); err == nil {
			events = append(events, e)
		}
		if md.Sequence.Stream >= last.Sequence {
			return events, nil
		}
	}
}
