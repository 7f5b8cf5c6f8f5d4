package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// relayConsumer is the event log's consumer that every process's relay
// shares.
const relayConsumer = "redis-relay"

// QueueStats implements driver.Transport in one pipeline: the
// stream's length (it holds only items not yet acked), the group's
// pending entries, the delayed set, the consumers' idle times, and the
// oldest entry (its id is the time it was added: how long items have
// waited before any worker made the group), and when a worker last
// asked for work. The pending entries and the delayed items count as
// AckPending, as on JetStream, where a retry waiting for its time stays
// with its consumer; the rest of the stream is Pending.
//
// LastPull is the time workers note, by Redis's clock, at least once a
// poll while they ask for work (see promote), read against Redis's
// clock now, so that the clocks of the machines do not matter. The
// consumers' idle times cannot say it: on Redis 7.0 a read that finds
// nothing leaves them running, so they say when a worker was last handed
// an item (a later time, if there is one, is taken too). With an event
// log that reports its FeedWork backlog, it adds the relay's, one more
// request.
func (b *Broker) QueueStats(ctx context.Context) (tasktype.QueueStats, error) {
	pipe := b.rdb.Pipeline()
	xlen := pipe.XLen(ctx, b.stream)
	pending := pipe.XPending(ctx, b.stream, Group)
	delayed := pipe.ZCard(ctx, b.delayed)
	consumers := pipe.XInfoConsumers(ctx, b.stream, Group)
	oldest := pipe.XRangeN(ctx, b.stream, "-", "+", 1)
	lastAsk := pipe.Get(ctx, b.lastAsk)
	redisNow := pipe.Time(ctx)
	_, _ = pipe.Exec(ctx) // each command's error is read below
	var st tasktype.QueueStats
	if err := xlen.Err(); err != nil {
		return st, fmt.Errorf("queue stats: %w", unavailable(err))
	}
	if err := delayed.Err(); err != nil {
		return st, fmt.Errorf("queue stats: %w", unavailable(err))
	}
	length, held := uint64(xlen.Val()), uint64(0)
	switch err := pending.Err(); {
	case err == nil:
		st.Joined = true
		held = uint64(max(pending.Val().Count, 0))
	case isNoGroup(err):
		// No worker has made the group: nothing was handed out.
	default:
		return st, fmt.Errorf("queue stats: %w", unavailable(err))
	}
	st.Pending = length - min(held, length)
	st.AckPending = held + uint64(delayed.Val())
	now := b.cfg.Now()
	if st.Joined && consumers.Err() == nil {
		for _, c := range consumers.Val() {
			if seen := now.Add(-c.Idle); seen.After(st.LastPull) {
				st.LastPull = seen
			}
		}
	}
	if ms, err := lastAsk.Int64(); err == nil && redisNow.Err() == nil {
		ago := redisNow.Val().Sub(time.UnixMilli(ms))
		if asked := now.Add(-max(ago, 0)); asked.After(st.LastPull) {
			st.LastPull = asked
		}
	}
	if !st.Joined && oldest.Err() == nil && len(oldest.Val()) == 1 {
		st.OldestWaiting = entryTime(oldest.Val()[0].ID)
	}
	n, err := b.cfg.Events.FeedBacklog(ctx, relayConsumer)
	if err != nil {
		return st, fmt.Errorf("queue stats: relay: %w", err)
	}
	st.Relay = &tasktype.RelayStats{Backlog: n}
	return st, nil
}

// entryTime is when a stream entry was added: its id is
// "<Unix ms>-<n>". An id that is not is the zero time.
func entryTime(id string) time.Time {
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

// isNoGroup says Redis has no consumer group, or no stream, to answer
// about.
func isNoGroup(err error) bool {
	return err != nil && !errors.Is(err, redis.Nil) && (strings.HasPrefix(err.Error(), "NOGROUP") || strings.Contains(err.Error(), "no such key"))
}
