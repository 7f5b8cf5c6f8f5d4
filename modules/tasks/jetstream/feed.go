package jetstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/otjhelper/otj/modules/tasks/internal/clock"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// feedAckWait is how long a fed item may stay unconfirmed before the
// server hands it to fn again, in this process or another.
const feedAckWait = 30 * time.Second

// feedRetry is how long a failed item waits before it is handed again,
// so that a broker outage does not spin.
const feedRetry = time.Second

// FeedWork hands every work item in the log to fn, at least once, in the
// order stored, through the durable consumer named consumer, which every
// process calling FeedWork with that name shares: each item goes to one
// of them. An item is confirmed when fn returns nil; when fn fails it is
// handed again a second later, and after a crash once feedAckWait has
// passed. redelivered says the item was handed out before, and fn may
// have seen it already. It returns when ctx ends.
//
// It is how a broker that carries jobs outside the log (Redis) is sure
// to get every enqueued, retrying and retried item, whoever wrote it and
// whatever happened to the writer after.
func (b *Broker) FeedWork(ctx context.Context, consumer string, fn func(ctx context.Context, item tasktype.Event, redelivered bool) error) error {
	rctx, cancel := b.request(ctx)
	defer cancel()
	cons, err := b.js.CreateOrUpdateConsumer(rctx, StreamName, natsjs.ConsumerConfig{
		Durable:        consumer,
		Description:    "hands every work item to the broker that carries jobs",
		FilterSubjects: WorkSubjects,
		DeliverPolicy:  natsjs.DeliverAllPolicy,
		AckPolicy:      natsjs.AckExplicitPolicy,
		AckWait:        feedAckWait,
		MaxDeliver:     -1,
		MaxAckPending:  MaxPending,
	})
	if err != nil {
		return fmt.Errorf("feed work: consumer %s: %w", consumer, classify(err))
	}
	it, err := cons.Messages(natsjs.PullMaxMessages(256))
	if err != nil {
		return fmt.Errorf("feed work: %w", classify(err))
	}
	defer it.Stop()
	failing := 0 // items in a row that fn failed on
	for {
		msg, err := it.Next(natsjs.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
				continue
			}
			return fmt.Errorf("feed work: %w", classify(err))
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("feed work: %w", err)
		}
		e, err := decode(msg.Data(), md.Sequence.Stream)
		if err != nil {
			b.cfg.Logger.ErrorContext(ctx, "dropping undecodable work item", "seq", md.Sequence.Stream, "err", err)
			_ = msg.TermWithReason("undecodable")
			continue
		}
		if forged, why := b.forged(ctx, msg.Subject(), e); forged {
			b.cfg.Logger.ErrorContext(ctx, "dropping a work item no job of the log asked for", "seq", md.Sequence.Stream,
				"subject", msg.Subject(), "job_id", e.JobID, "why", why)
			_ = msg.TermWithReason(why)
			continue
		}
		if err := fn(ctx, e, md.NumDelivered > 1); err != nil {
			if ctx.Err() != nil {
				// Stopping: another process may take the item now, rather
				// than after feedAckWait.
				_ = msg.Nak()
				return ctx.Err()
			}
			if failing == 0 {
				b.cfg.Logger.WarnContext(ctx, "cannot pass work items on; trying again every second", "job_id", e.JobID, "seq", e.Seq, "err", err)
			} else {
				b.cfg.Logger.DebugContext(ctx, "work item not passed on", "job_id", e.JobID, "seq", e.Seq, "err", err)
			}
			failing++
			_ = msg.NakWithDelay(feedRetry)
			clock.Sleep(ctx, feedRetry)
			continue
		}
		if failing > 0 {
			b.cfg.Logger.InfoContext(ctx, "passing work items on again", "failed_tries", failing)
			failing = 0
		}
		if err := msg.Ack(); err != nil {
			// Handed again later; fn sees redelivered and copes.
			b.cfg.Logger.DebugContext(ctx, "confirm work item", "seq", e.Seq, "err", err)
		}
	}
}

// ScanWork calls fn for every work item in the log, oldest first, up to
// the newest at the time of the call, with a short-lived ordered
// consumer. It is for rebuilding a broker's queue that lost its data.
func (b *Broker) ScanWork(ctx context.Context, fn func(ctx context.Context, item tasktype.Event) error) error {
	end, err := b.LastSeq(ctx)
	if err != nil {
		return fmt.Errorf("scan work: %w", err)
	}
	if end == 0 {
		return nil
	}
	it, done, err := b.readOnce(ctx, StreamName, natsjs.OrderedConsumerConfig{
		FilterSubjects: WorkSubjects,
		DeliverPolicy:  natsjs.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("scan work: %w", err)
	}
	defer done()
	for {
		// A filter may match nothing up to end: a bounded wait per
		// message tells "no more" from "not yet".
		nctx, cancel := context.WithTimeout(ctx, pullWait)
		msg, err := it.Next(natsjs.NextContext(nctx))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
				return nil // nothing more to come
			}
			return fmt.Errorf("scan work: %w", classify(err))
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("scan work: %w", err)
		}
		if md.Sequence.Stream > end {
			return nil
		}
		// An item no job asked for is skipped here and dropped, logged,
		// where FeedWork meets it.
		if e, err := decode(msg.Data(), md.Sequence.Stream); err == nil {
			if forged, _ := b.forged(ctx, msg.Subject(), e); !forged {
				if err := fn(ctx, e); err != nil {
					return err
				}
			}
		}
		if md.NumPending == 0 || md.Sequence.Stream == end {
			return nil
		}
	}
}
