package jetstream

import (
	"context"
	"errors"
	"fmt"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// EraseUser implements driver.Log. It reads the user's events
// to learn their jobs and attempts, deletes the result file of every
// attempt (one per attempt, named by tasktype.ResultObjectName, including
// any an attempt stored without its outcome being recorded), and only
// then purges the events by the user's subject filter: a call cut short
// before the purge still knows, when run again, which results to delete.
// A job of the user running meanwhile cannot append to the purged job (its
// writes are conditional on the job's last event), so it ends as a
// conflict, not as a new history.
func (b *Broker) EraseUser(ctx context.Context, userID int64) (tasktype.Erased, error) {
	var out tasktype.Erased
	if userID <= 0 {
		return out, fmt.Errorf("erase user %d: not a user id", userID)
	}
	attempts, err := b.userAttempts(ctx, userID)
	if err != nil {
		return out, fmt.Errorf("erase user %d: %w", userID, err)
	}
	for job, n := range attempts {
		for a := 1; a <= n; a++ {
			if err := b.Delete(ctx, tasktype.ResultObjectName(job, a)); err != nil {
				return out, fmt.Errorf("erase user %d: %w", userID, err)
			}
			out.Results++
		}
	}
	before, err := b.userEventCount(ctx, userID)
	if err != nil {
		return out, fmt.Errorf("erase user %d: %w", userID, err)
	}
	rctx, cancel := b.request(ctx)
	defer cancel()
	// Through Admin: the everyday connection may not purge the log.
	if err := b.adminStream.Purge(rctx, natsjs.WithPurgeSubject(UserFilter(userID))); err != nil {
		return out, fmt.Errorf("erase user %d: purge events: %w", userID, classify(err))
	}
	out.Events = before
	return out, nil
}

// userEventCount is how many events the stream holds for the user.
func (b *Broker) userEventCount(ctx context.Context, userID int64) (uint64, error) {
	rctx, cancel := b.request(ctx)
	defer cancel()
	info, err := b.stream.Info(rctx, natsjs.WithSubjectFilter(UserFilter(userID)))
	if err != nil {
		return 0, fmt.Errorf("count events: %w", classify(err))
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n, nil
}

// userAttempts reads the user's events with a short-lived ordered
// consumer filtered to their subjects, up to the newest, and returns the
// highest attempt each of their jobs reached (0 for a job never started).
func (b *Broker) userAttempts(ctx context.Context, userID int64) (map[string]int, error) {
	filter := UserFilter(userID)
	attempts := map[string]int{}
	rctx, cancel := b.request(ctx)
	last, err := b.stream.GetLastMsgForSubject(rctx, filter)
	cancel()
	if errors.Is(err, natsjs.ErrMsgNotFound) {
		return attempts, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read events: %w", classify(err))
	}
	it, done, err := b.readOnce(ctx, StreamName, natsjs.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		DeliverPolicy:  natsjs.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	defer done()
	for {
		nctx, cancel := b.request(ctx)
		msg, err := it.Next(natsjs.NextContext(nctx))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("read events: %w", classify(err))
		}
		md, err := msg.Metadata()
		if err != nil {
			return nil, fmt.Errorf("read events: %w", err)
		}
		// An unreadable message is purged with the rest; it names no
		// result to delete.
		if e, err := decode(msg.Data(), md.Sequence.Stream); err == nil && e.UserID == userID {
			attempts[e.JobID] = max(attempts[e.JobID], e.Attempt)
		}
		if md.Sequence.Stream >= last.Sequence {
			return attempts, nil
		}
	}
}
