package jetstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// userConsumerIdle is how long the server keeps a user's ordered
// consumer whose client vanished without deleting it (a process
// killed): longer than a pull's expiry, so that a live follower's is
// never taken from under it.
const userConsumerIdle = 2 * time.Minute

// FollowUser calls fn with each of the user's events stored after
// sequence after, in order, until ctx ends or fn fails. It reads
// through an ordered consumer, ephemeral and in memory, filtered on the
// user's subjects, so that the server picks the user's events out; the
// consumer is deleted on return, and one whose client died goes after
// userConsumerIdle. A stored message that is not a readable event is
// passed with only Seq and UserID set.
func (b *Broker) FollowUser(ctx context.Context, userID int64, after uint64, fn func(tasktype.Event) error) error {
	if userID <= 0 {
		return errors.New("follow user events: no user")
	}
	cfg := natsjs.OrderedConsumerConfig{
		FilterSubjects:    []string{UserFilter(userID)},
		DeliverPolicy:     natsjs.DeliverByStartSequencePolicy,
		OptStartSeq:       after + 1,
		InactiveThreshold: userConsumerIdle,
	}
	rctx, cancel := b.request(ctx)
	cons, err := b.js.OrderedConsumer(rctx, StreamName, cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("follow events of user %d: %w", userID, classify(err))
	}
	it, err := cons.Messages()
	if err != nil {
		b.deleteConsumer(ctx, cons)
		return fmt.Errorf("follow events of user %d: %w", userID, classify(err))
	}
	defer func() {
		it.Stop()
		b.deleteConsumer(ctx, cons)
	}()
	for {
		msg, err := it.Next(natsjs.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("follow events of user %d: %w", userID, classify(err))
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("follow events of user %d: %w", userID, err)
		}
		e, err := decode(msg.Data(), md.Sequence.Stream)
		if err != nil {
			b.cfg.Logger.WarnContext(ctx, "skipping an undecodable event", "seq", md.Sequence.Stream, "err", err)
			e = tasktype.Event{Seq: md.Sequence.Stream, UserID: userID}
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// readConsumerIdle is how long the server keeps a one-shot read's
// consumer once it is idle, where the reader may not delete it (a
// worker's role may not): nats.go's default, five minutes, let a burst
// of reads (page views, prunes) reach the server's 1,000 consumers per
// stream and fail every read after it. A read pulls without pause until
// it is done, and a consumer with a pull waiting is not idle.
const readConsumerIdle = 10 * time.Second

// readOnce opens an ordered consumer on stream for a one-shot read, and
// returns its messages and the func that ends the read: it stops them
// and deletes the consumer where this connection may, so that no read
// leaves one behind for long.
func (b *Broker) readOnce(ctx context.Context, stream string, cfg natsjs.OrderedConsumerConfig, opts ...natsjs.PullMessagesOpt) (natsjs.MessagesContext, func(), error) {
	cfg.InactiveThreshold = readConsumerIdle
	rctx, cancel := b.request(ctx)
	cons, err := b.js.OrderedConsumer(rctx, stream, cfg)
	cancel()
	if err != nil {
		return nil, nil, classify(err)
	}
	drop := func() {
		// A worker (JoinOnly) may not delete consumers of the log: its
		// reads' go once idle.
		if stream != StreamName || !b.cfg.JoinOnly {
			b.deleteConsumerOf(ctx, stream, cons)
		}
	}
	it, err := cons.Messages(opts...)
	if err != nil {
		drop()
		return nil, nil, classify(err)
	}
	return it, func() { it.Stop(); drop() }, nil
}

// deleteConsumer removes an ordered consumer from the server at once,
// rather than leave it for its inactivity threshold: a hundred pages
// opened and closed then cost no consumers. It is best effort, on its
// own deadline, since ctx has usually ended by now.
func (b *Broker) deleteConsumer(ctx context.Context, cons natsjs.Consumer) {
	b.deleteConsumerOf(ctx, StreamName, cons)
}

// deleteConsumerOf is deleteConsumer for a consumer of stream.
func (b *Broker) deleteConsumerOf(ctx context.Context, stream string, cons natsjs.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.RequestTimeout)
	defer cancel()
	if err := b.js.DeleteConsumer(dctx, stream, info.Name); err != nil && !errors.Is(err, natsjs.ErrConsumerNotFound) {
		b.cfg.Logger.DebugContext(ctx, "delete a user's event consumer", "consumer", info.Name, "err", err)
	}
}
