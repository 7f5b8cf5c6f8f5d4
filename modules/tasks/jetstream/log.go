package jetstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/tasks/jetstream/internal/codec"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// Append stores e if the newest event of its job is still at sequence
// after: the server checks the last sequence on the job's subjects
// (tasks.*.<user>.<job>.*) as it stores the message, so of two racing
// writers exactly one wins.
func (b *Broker) Append(ctx context.Context, e tasktype.Event, after uint64) (uint64, error) {
	ack, err := b.publish(ctx, &e, natsjs.WithExpectLastSequenceForSubject(after, JobFilter(e.UserID, e.JobID)))
	if err != nil {
		var apiErr *natsjs.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == natsjs.JSErrCodeStreamWrongLastSequence {
			err = tasktype.ErrConflict
		}
		return 0, fmt.Errorf("append %s event of job %s: %w", e.Kind, e.JobID, err)
	}
	return ack.Sequence, nil
}

// eventBufs holds the buffers events are encoded into for a publish that
// waits for its ack: the client has copied the bytes by then (an
// asynchronous publish keeps them for its retries, so it gets its own).
var eventBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (b *Broker) publish(ctx context.Context, e *tasktype.Event, opts ...natsjs.PublishOpt) (*natsjs.PubAck, error) {
	buf := eventBufs.Get().(*[]byte)
	*buf = codec.AppendEvent((*buf)[:0], e)
	defer eventBufs.Put(buf)
	ctx, cancel := b.request(ctx)
	defer cancel()
	ack, err := b.js.Publish(ctx, EventSubject(e), *buf, opts...)
	if err != nil {
		return nil, classify(err)
	}
	return ack, nil
}

// Last returns the job's newest event: a direct get of the last message
// on the job's subjects.
func (b *Broker) Last(ctx context.Context, userID int64, jobID string) (tasktype.Event, error) {
	if !tasktype.ValidID(jobID) {
		return tasktype.Event{}, fmt.Errorf("last event of job %q: %w", jobID, tasktype.ErrNotFound)
	}
	rctx, cancel := b.request(ctx)
	defer cancel()
	raw, err := b.stream.GetLastMsgForSubject(rctx, JobFilter(userID, jobID))
	if errors.Is(err, natsjs.ErrMsgNotFound) {
		return tasktype.Event{}, fmt.Errorf("last event of job %s: %w", jobID, tasktype.ErrNotFound)
	}
	if err != nil {
		return tasktype.Event{}, fmt.Errorf("last event of job %s: %w", jobID, classify(err))
	}
	e, err := decode(raw.Data, raw.Sequence)
	if err != nil {
		return tasktype.Event{}, fmt.Errorf("last event of job %s: %w", jobID, err)
	}
	return e, nil
}

// History reads the job's events with a short-lived ordered consumer
// filtered to the job's subjects, up to the newest one.
func (b *Broker) History(ctx context.Context, userID int64, jobID string) ([]tasktype.Event, error) {
	last, err := b.Last(ctx, userID, jobID)
	if err != nil {
		return nil, err
	}
	it, done, err := b.readOnce(ctx, StreamName, natsjs.OrderedConsumerConfig{
		FilterSubjects: []string{JobFilter(userID, jobID)},
		DeliverPolicy:  natsjs.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("history of job %s: %w", jobID, err)
	}
	defer done()
	var events []tasktype.Event
	for {
		// Every event up to last is stored: each one is a request's
		// worth of waiting.
		nctx, cancel := b.request(ctx)
		msg, err := it.Next(natsjs.NextContext(nctx))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("history of job %s: %w", jobID, classify(err))
		}
		md, err := msg.Metadata()
		if err != nil {
			return nil, fmt.Errorf("history of job %s: %w", jobID, err)
		}
		e, err := decode(msg.Data(), md.Sequence.Stream)
		if err != nil {
			return nil, fmt.Errorf("history of job %s: %w", jobID, err)
		}
		events = append(events, e)
		if e.Seq >= last.Seq {
			return events, nil
		}
	}
}

func decode(data []byte, seq uint64) (tasktype.Event, error) {
	var e tasktype.Event
	if err := codec.DecodeEvent(data, &e); err != nil {
		return tasktype.Event{}, fmt.Errorf("decode event %d: %w", seq, err)
	}
	e.Seq = seq
	return e, nil
}

// followBatch bounds the events Follow hands over at once: enough that a
// projection catching up commits rarely, few enough that one batch is a
// short transaction.
const followBatch = 512

// followGap is the least time between two batches: followEvery after a
// batch of one event, growing by followGapPerEvent for each event of the
// last batch up to followMaxGap. Under load, each batch is then a few
// milliseconds' events rather than one or two, and more of a job's events
// (started and succeeded, a few hundred microseconds apart) fall in one
// batch, where the projection writes its row once: batches and rows
// written are most of what a projection costs. When events are few, a
// batch follows the last within followEvery, and an event after a quiet
// spell goes at once.
func followGap(last int) time.Duration {
	return min(max(time.Duration(last)*followGapPerEvent, followEvery), followMaxGap)
}

const (
	followEvery       = time.Millisecond
	followGapPerEvent = 100 * time.Microsecond
	followMaxGap      = 5 * time.Millisecond
)

// Follow implements driver.Log with an ordered consumer: an
// ephemeral, flow-controlled consumer that the client recreates from the
// last sequence it saw if messages go missing or the server restarts.
//
// One goroutine reads the stream while fn runs, and each batch is what it
// read meanwhile (a group commit): a single event when events are few, so
// none waits for another, and under load all that arrived since the last
// batch, at most one batch every followGap, so a follower that pays per
// call (a projection's transaction) keeps up without tuning.
func (b *Broker) Follow(ctx context.Context, from uint64, fn func([]tasktype.Event) error) error {
	cfg := natsjs.OrderedConsumerConfig{DeliverPolicy: natsjs.DeliverAllPolicy}
	if from > 0 {
		cfg.DeliverPolicy = natsjs.DeliverByStartSequencePolicy
		cfg.OptStartSeq = from + 1
	}
	rctx, cancel := b.request(ctx)
	cons, err := b.js.OrderedConsumer(rctx, StreamName, cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("follow events: %w", classify(err))
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("follow events: %w", classify(err))
	}
	rctx, stop := context.WithCancel(ctx)
	events := make(chan tasktype.Event, followBatch)
	readErr := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		readErr <- b.read(rctx, it, events)
	}()
	defer func() { stop(); it.Stop(); <-done }()

	batch := make([]tasktype.Event, 0, followBatch)
	var last time.Time // when fn was last called
	gap := followEvery // the least time from last to the next call
	pause := time.NewTimer(0)
	defer pause.Stop()
	for {
		select {
		case e := <-events:
			batch = append(batch, e)
			if wait := gap - time.Since(last); wait > 0 {
				pause.Reset(wait)
				select {
				case <-pause.C:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		case err := <-readErr:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("follow events: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	more:
		for len(batch) < followBatch {
			select {
			case e := <-events:
				batch = append(batch, e)
			default:
				break more
			}
		}
		last, gap = time.Now(), followGap(len(batch))
		if err := fn(batch); err != nil {
			return err
		}
		clear(batch) // let go of payloads
		batch = batch[:0]
	}
}

// read passes the stream's events, in order, to out until ctx ends or the
// stream fails.
func (b *Broker) read(ctx context.Context, it natsjs.MessagesContext, out chan<- tasktype.Event) error {
	for {
		msg, err := it.Next(natsjs.NextContext(ctx))
		if err != nil {
			return err
		}
		md, err := msg.Metadata()
		if err != nil {
			return err
		}
		e, err := decode(msg.Data(), md.Sequence.Stream)
		if err != nil {
			// Not an event this code can read. It is passed on with only
			// its sequence, so followers move past it (a projection's
			// position, a catch-up's target) instead of stalling; the log
			// says which one it was.
			b.cfg.Logger.ErrorContext(ctx, "undecodable event", "seq", md.Sequence.Stream, "subject", msg.Subject(), "err", err)
			e = tasktype.Event{Seq: md.Sequence.Stream}
		}
		select {
		case out <- e:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// LastSeq is the sequence of the newest event in the stream.
func (b *Broker) LastSeq(ctx context.Context) (uint64, error) {
	ctx, cancel := b.request(ctx)
	defer cancel()
	info, err := b.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream info: %w", classify(err))
	}
	return info.State.LastSeq, nil
}

// Created implements driver.Log: the stream's creation time,
// as the server keeps it (it survives restarts, and a cluster's nodes
// agree on it).
func (b *Broker) Created(ctx context.Context) (time.Time, error) {
	ctx, cancel := b.request(ctx)
	defer cancel()
	info, err := b.stream.Info(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("stream info: %w", classify(err))
	}
	return info.Created, nil
}

// EventFrom implements driver.Log with one direct get of the
// first message at or after seq.
func (b *Broker) EventFrom(ctx context.Context, seq uint64) (tasktype.Event, error) {
	rctx, cancel := b.request(ctx)
	defer cancel()
	raw, err := b.stream.GetMsg(rctx, seq, natsjs.WithGetMsgSubject(SubjectPrefix+".>"))
	if errors.Is(err, natsjs.ErrMsgNotFound) {
		return tasktype.Event{}, fmt.Errorf("event from %d: %w", seq, tasktype.ErrNotFound)
	}
	if err != nil {
		return tasktype.Event{}, fmt.Errorf("event from %d: %w", seq, classify(err))
	}
	return decode(raw.Data, raw.Sequence)
}

// LastStoredSeq implements driver.Log. The stream's last
// sequence stays where it was when a purge removes the events at its end,
// so the newest stored event is looked up when that one is gone.
func (b *Broker) LastStoredSeq(ctx context.Context) (uint64, error) {
	rctx, cancel := b.request(ctx)
	defer cancel()
	info, err := b.stream.Info(rctx)
	if err != nil {
		return 0, fmt.Errorf("stream info: %w", classify(err))
	}
	if info.State.Msgs == 0 {
		return 0, nil
	}
	if _, err := b.stream.GetMsg(rctx, info.State.LastSeq); err == nil {
		return info.State.LastSeq, nil
	} else if !errors.Is(err, natsjs.ErrMsgNotFound) {
		return 0, fmt.Errorf("newest event: %w", classify(err))
	}
	raw, err := b.stream.GetLastMsgForSubject(rctx, SubjectPrefix+".>")
	if errors.Is(err, natsjs.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("newest stored event: %w", classify(err))
	}
	return raw.Sequence, nil
}
