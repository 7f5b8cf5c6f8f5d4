package jetstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/tasks"
)

// pullWait bounds one pull request, so that a stopping worker notices
// within that time.
const pullWait = 5 * time.Second

// Queue sets up the shared worker consumer with this broker's AckWait
// and returns a tasks.Queue on it. Every worker calls it at start, so all
// workers of a deployment should share one AckWait (JOB_LEASE).
//
// The queue pulls one job at a time, only when the worker has a free
// slot: prefetched jobs would wait in the client while their visibility
// timeout ran (nats.go #1929), and another worker would get them too.
func (b *Broker) Queue(ctx context.Context) (tasks.Queue, error) {
	cons, err := b.js.CreateOrUpdateConsumer(ctx, StreamName, natsjs.ConsumerConfig{
		Durable:        WorkConsumer,
		Description:    "workers share this consumer; each work item goes to one of them",
		FilterSubjects: WorkSubjects,
		DeliverPolicy:  natsjs.DeliverAllPolicy,
		AckPolicy:      natsjs.AckExplicitPolicy,
		AckWait:        b.cfg.AckWait,
		MaxDeliver:     -1,
		// Retries waiting for their time stay pending on the consumer
		// (NakWithDelay), so the bound is well above any worker pool.
		MaxAckPending: MaxPending,
	})
	if err != nil {
		return nil, fmt.Errorf("worker queue: consumer %s: %w", WorkConsumer, classify(err))
	}
	return &queue{b: b, cons: cons}, nil
}

type queue struct {
	b    *Broker
	cons natsjs.Consumer
}

func (q *queue) Next(ctx context.Context) (tasks.Delivery, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pctx, cancel := context.WithTimeout(ctx, pullWait)
		msg, err := q.cons.Next(natsjs.FetchContext(pctx))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			// nats.go refuses a deadline that has passed before the
			// context's own timer has ended it: still the caller's.
			if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
				return nil, context.DeadlineExceeded
			}
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, natsjs.ErrNoMessages) || errors.Is(err, nats.ErrTimeout) {
				continue // nothing to do yet
			}
			return nil, fmt.Errorf("pull job: %w", classify(err))
		}
		md, err := msg.Metadata()
		if err != nil {
			return nil, fmt.Errorf("pull job: %w", err)
		}
		e, err := decode(msg.Data(), md.Sequence.Stream)
		if err != nil {
			// Never runnable; terminate it so it does not come back.
			q.b.cfg.Logger.ErrorContext(ctx, "dropping undecodable work item", "seq", md.Sequence.Stream, "err", err)
			_ = msg.TermWithReason("undecodable")
			continue
		}
		return &delivery{msg: msg, item: e, redelivered: md.NumDelivered > 1}, nil
	}
}

type delivery struct {
	msg         natsjs.Msg
	item        tasks.Event
	redelivered bool
}

func (d *delivery) Item() tasks.Event { return d.item }

func (d *delivery) Redelivered() bool { return d.redelivered }

func (d *delivery) Extend(ctx context.Context) error {
	if err := d.msg.InProgress(); err != nil {
		return fmt.Errorf("extend job %s: %w", d.item.JobID, err)
	}
	return nil
}

// Ack waits for the server to confirm, so that a worker never reports a
// job done that the server will deliver again.
func (d *delivery) Ack(ctx context.Context) error {
	if err := d.msg.DoubleAck(ctx); err != nil {
		return fmt.Errorf("ack job %s: %w", d.item.JobID, err)
	}
	return nil
}

// Delay asks the server to deliver the item again after wait. The server
// does not keep the delay across its own restart; the worker then finds
// the retry early and delays it again.
func (d *delivery) Delay(ctx context.Context, wait time.Duration) error {
	if err := d.msg.NakWithDelay(wait); err != nil {
		return fmt.Errorf("delay job %s: %w", d.item.JobID, err)
	}
	return nil
}

func (d *delivery) Release(ctx context.Context) error {
	if err := d.msg.Nak(); err != nil {
		return fmt.Errorf("release job %s: %w", d.item.JobID, err)
	}
	return nil
}
