package jetstream

import (
	"context"
	"fmt"
	"strconv"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/otjhelper/otj/modules/tasks/jetstream/internal/codec"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// Enqueue stores the job's enqueued event, which is also its work item.
// With a key, a repeat within the dedupe window returns the first job.
func (b *Broker) Enqueue(ctx context.Context, r tasktype.EnqueueRequest) (tasktype.Job, error) {
	ev, _, err := b.EnqueueEvent(ctx, r)
	if err != nil {
		return tasktype.Job{}, err
	}
	return ev.Job(), nil
}

// EnqueueEvent is Enqueue returning the stored enqueued event, and
// whether the request repeated an earlier one's key (the event is then
// the first request's). Brokers that carry jobs elsewhere record jobs
// with it.
func (b *Broker) EnqueueEvent(ctx context.Context, r tasktype.EnqueueRequest) (tasktype.Event, bool, error) {
	if err := r.Validate(); err != nil {
		return tasktype.Event{}, false, fmt.Errorf("enqueue %s: %w", r.Type, err)
	}
	ev, opts := b.newEnqueued(r)
	ack, err := b.publish(ctx, &ev, opts...)
	if err != nil {
		return tasktype.Event{}, false, fmt.Errorf("enqueue %s: %w", r.Type, err)
	}
	if ack.Duplicate {
		first, err := b.eventAt(ctx, ack.Sequence)
		if err != nil {
			return tasktype.Event{}, false, fmt.Errorf("enqueue %s: read first job of key: %w", r.Type, err)
		}
		return first, true, nil
	}
	ev.Seq = ack.Sequence
	return ev, false, nil
}

// batchWindow bounds the enqueues of one EnqueueBatch in flight at once:
// enough to keep the server busy, few enough that a slow server holds
// back the caller instead of a growing backlog of unanswered publishes.
const batchWindow = 256

// EnqueueBatch implements driver.Transport: it sends the requests'
// enqueued events without waiting for each to be stored before the next,
// at most batchWindow at a time, and returns when every one is stored.
// Every request is checked before any is sent, so a bad one changes
// nothing. On a failed publish it sends no more and returns the jobs of
// the requests before the first failure.
func (b *Broker) EnqueueBatch(ctx context.Context, rs []tasktype.EnqueueRequest) ([]tasktype.Job, error) {
	events, _, err := b.EnqueueEventBatch(ctx, rs)
	jobs := make([]tasktype.Job, len(events))
	for i := range events {
		jobs[i] = events[i].Job()
	}
	return jobs, err
}

// EnqueueEventBatch is EnqueueBatch returning the stored enqueued events,
// and for each whether its request repeated an earlier one's key, in this
// batch or before (its event is then the first request's). Brokers that
// carry jobs elsewhere record batches of jobs with it.
func (b *Broker) EnqueueEventBatch(ctx context.Context, rs []tasktype.EnqueueRequest) ([]tasktype.Event, []bool, error) {
	for i, r := range rs {
		if err := r.Validate(); err != nil {
			return nil, nil, fmt.Errorf("enqueue batch: request %d: enqueue %s: %w", i, r.Type, err)
		}
	}
	sentEvents := make([]tasktype.Event, len(rs))
	futures := make([]natsjs.PubAckFuture, len(rs))
	events := make([]tasktype.Event, 0, len(rs))
	repeats := make([]bool, 0, len(rs))
	var firstErr error
	// wait collects the outcome of request i, in order.
	wait := func(i int) {
		if firstErr != nil {
			return
		}
		ev, repeat, err := b.awaitEnqueue(ctx, &sentEvents[i], futures[i])
		if err != nil {
			firstErr = fmt.Errorf("enqueue batch: request %d: enqueue %s: %w", i, rs[i].Type, err)
			return
		}
		events = append(events, ev)
		repeats = append(repeats, repeat)
	}
	sent := 0
	for i, r := range rs {
		if i >= batchWindow {
			wait(i - batchWindow)
		}
		if firstErr != nil {
			break
		}
		var err error
		sentEvents[i], futures[i], err = b.publishEnqueueAsync(r)
		if err != nil {
			firstErr = fmt.Errorf("enqueue batch: request %d: enqueue %s: %w", i, r.Type, err)
			break
		}
		sent = i + 1
	}
	for i := max(sent-batchWindow, 0); i < sent; i++ {
		wait(i)
	}
	return events, repeats, firstErr
}

// newEnqueued builds the enqueued event of r, and the publish options
// that dedupe it if it has a key. A job without one is sent with no
// message id: the server would keep every id for the whole dedupe window
// (at thousands of jobs a second, a map of millions) to guard against a
// resend that nothing makes.
func (b *Broker) newEnqueued(r tasktype.EnqueueRequest) (tasktype.Event, []natsjs.PublishOpt) {
	ev := tasktype.Event{
		ID:      nuid.Next(),
		Kind:    tasktype.EventEnqueued,
		JobID:   nuid.Next(),
		JobType: r.Type,
		UserID:  r.UserID,
		Time:    b.cfg.Now().UTC(),
		Payload: r.Payload,
	}
	if r.Key == "" {
		return ev, nil
	}
	return ev, []natsjs.PublishOpt{natsjs.WithMsgID("enqueue." + r.Type + "." + strconv.FormatInt(r.UserID, 10) + "." + r.Key)}
}

func (b *Broker) publishEnqueueAsync(r tasktype.EnqueueRequest) (tasktype.Event, natsjs.PubAckFuture, error) {
	ev, opts := b.newEnqueued(r)
	data := codec.AppendEvent(make([]byte, 0, 256), &ev)
	f, err := b.js.PublishAsync(EventSubject(&ev), data, opts...)
	if err != nil {
		return tasktype.Event{}, nil, classify(err)
	}
	return ev, f, nil
}

// awaitEnqueue waits, within RequestTimeout, for the server to store an
// enqueued event sent by publishEnqueueAsync, and returns the stored
// event: ev with its sequence, or the first job of a repeated key (and
// true).
func (b *Broker) awaitEnqueue(ctx context.Context, ev *tasktype.Event, f natsjs.PubAckFuture) (tasktype.Event, bool, error) {
	t := time.NewTimer(b.cfg.RequestTimeout)
	defer t.Stop()
	select {
	case ack := <-f.Ok():
		if ack.Duplicate {
			first, err := b.eventAt(ctx, ack.Sequence)
			if err != nil {
				return tasktype.Event{}, false, fmt.Errorf("read first job of key: %w", err)
			}
			return first, true, nil
		}
		ev.Seq = ack.Sequence
		return *ev, false, nil
	case err := <-f.Err():
		return tasktype.Event{}, false, classify(err)
	case <-ctx.Done():
		return tasktype.Event{}, false, ctx.Err()
	case <-t.C:
		return tasktype.Event{}, false, fmt.Errorf("%w: no answer within %s", tasktype.ErrUnavailable, b.cfg.RequestTimeout)
	}
}

func (b *Broker) eventAt(ctx context.Context, seq uint64) (tasktype.Event, error) {
	ctx, cancel := b.request(ctx)
	defer cancel()
	raw, err := b.stream.GetMsg(ctx, seq)
	if err != nil {
		return tasktype.Event{}, classify(err)
	}
	return decode(raw.Data, raw.Sequence)
}
