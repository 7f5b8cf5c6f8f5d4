package jetstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// QueueStats implements driver.Transport from the work consumer's
// info, one request. Before any worker has made the consumer it reads
// the stream's info instead: then nothing has taken any item, so every
// stored event counts as pending, from the oldest one's time.
func (b *Broker) QueueStats(ctx context.Context) (tasktype.QueueStats, error) {
	info, err := b.consumerInfo(ctx, WorkConsumer)
	if errors.Is(err, natsjs.ErrConsumerNotFound) {
		rctx, cancel := b.request(ctx)
		defer cancel()
		si, err := b.stream.Info(rctx)
		if err != nil {
			return tasktype.QueueStats{}, fmt.Errorf("queue stats: stream info: %w", classify(err))
		}
		return tasktype.QueueStats{Pending: si.State.Msgs, OldestWaiting: si.State.FirstTime}, nil
	}
	if err != nil {
		return tasktype.QueueStats{}, fmt.Errorf("queue stats: %w", err)
	}
	st := tasktype.QueueStats{
		Joined:        true,
		Pending:       info.NumPending,
		AckPending:    uint64(max(info.NumAckPending, 0)),
		MaxAckPending: info.Config.MaxAckPending,
		Redelivered:   uint64(max(info.NumRedelivered, 0)),
		Waiting:       info.NumWaiting,
		Created:       info.Created,
		Delivered:     info.Delivered.Consumer,
		Acked:         info.AckFloor.Consumer,
	}
	// The server keeps no time of the last pull request, so LastPull is
	// the latest of: the consumer's making (by the first worker, which
	// then asked for work), the last delivery, and, a free worker always
	// holding a pull request, the last time this process saw one held.
	now := b.cfg.Now()
	if info.NumWaiting > 0 {
		b.sawPull.Store(now.UnixNano())
	}
	st.LastPull = info.Created
	if last := info.Delivered.Last; last != nil && last.After(st.LastPull) {
		st.LastPull = *last
	}
	if saw := b.sawPull.Load(); saw != 0 && time.Unix(0, saw).After(st.LastPull) {
		st.LastPull = time.Unix(0, saw)
	}
	return st, nil
}

// FeedBacklog is how many work items FeedWork's consumer named consumer
// has not yet had confirmed: not handed out, or handed out and not yet
// passed on. A consumer that does not exist yet has the whole log's
// work items ahead of it, which only its first process can count; it
// reports 0.
func (b *Broker) FeedBacklog(ctx context.Context, consumer string) (uint64, error) {
	info, err := b.consumerInfo(ctx, consumer)
	if errors.Is(err, natsjs.ErrConsumerNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("feed backlog: %w", err)
	}
	return info.NumPending + uint64(max(info.NumAckPending, 0)), nil
}

// consumerInfo asks the server for a consumer's info, bounded by
// RequestTimeout. A consumer that is not there is
// natsjs.ErrConsumerNotFound.
func (b *Broker) consumerInfo(ctx context.Context, name string) (*natsjs.ConsumerInfo, error) {
	rctx, cancel := b.request(ctx)
	defer cancel()
	// Consumer asks for the info once and keeps it.
	cons, err := b.stream.Consumer(rctx, name)
	if errors.Is(err, natsjs.ErrConsumerNotFound) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", name, classify(err))
	}
	return cons.CachedInfo(), nil
}
