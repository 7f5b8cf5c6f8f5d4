package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/otjhelper/otj/modules/tasks/internal/clock"
	"github.com/otjhelper/otj/modules/tasks/internal/driver"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// attempt is how a claimed attempt begins: its start, and the event its
// next event is appended after.
type attempt struct {
	// start is the attempt's started event: the start its outcome
	// carries, and what the first heartbeat records if it runs that long.
	start tasktype.Event
	// after is the sequence of the job's newest event: the work item (or
	// the hand-back it follows) until the start is recorded, then the
	// start.
	after uint64
	// recorded says start is on record.
	recorded bool
}

// claim decides what the delivered work item asks for, given the job's
// newest event. An attempt that should run begins without a write: its
// start is recorded at its first heartbeat, if it lasts that long, and
// otherwise its outcome carries it. Every step that is recorded is
// appended on condition that the job has not changed since it was read;
// after a lost race the decision is made again.
func (w *Worker) claim(ctx context.Context, log *slog.Logger, d driver.Delivery, item tasktype.Event, maxAttempts int, registered bool, policy tasktype.Policy, resumed time.Time) (attempt, bool) {
	parent := ctx
	ctx, cancel := w.storeContext(parent)
	defer func() { cancel() }()
	job := item.Job()
	start := w.event(job, tasktype.EventStarted, job.Attempt, func(e *tasktype.Event) {
		e.MaxAttempts = maxAttempts
		e.Worker = w.cfg.Name
		e.Lease = w.cfg.Lease // and so the promise to be heard from (see watch)
	})
	// silent is the sequence of the job's newest event once it has been
	// seen to stay so for a while (see listen): an attempt that has
	// kept that silent is judged, not an attempt still heard from.
	var silent uint64
	for try := range 5 {
		last, err := w.cfg.Events.Last(ctx, item.UserID, item.JobID)
		if errors.Is(err, tasktype.ErrNotFound) {
			// Only a broker that carries jobs outside the log can hold
			// one the log does not know (a log wiped, a broker shared by
			// mistake); it can never run. A new one may be a replica's
			// read lagging behind, so it gets a minute.
			if w.cfg.Now().Sub(item.Time) < time.Minute {
				if err := d.Delay(ctx, time.Second); err != nil {
					log.WarnContext(ctx, "could not put off a job not yet in the event log", "err", err)
				}
				return attempt{}, false
			}
			log.ErrorContext(ctx, "work item of a job not in the event log; dropping it", "seq", item.Seq)
			w.ack(ctx, log, d)
			return attempt{}, false
		}
		if err != nil {
			log.WarnContext(ctx, "could not read job state; handing the job back", "err", err)
			w.handBack(ctx, log, d)
			return attempt{}, false
		}
		act := decide(item, last, w.facts(d, resumed), w.cfg.Now(), w.cfg.Lease)
		if (act == actLost || act == actRunRecorded) && last.Seq != silent {
			// A redelivery says only that the broker saw no renewal for a
			// lease, not that the attempt's worker is gone: a broker
			// frozen that long (SIGSTOP, a stalled VM, a long GC) runs
			// out every lease when it resumes, before it reads the
			// renewals and heartbeats waiting in its sockets. The
			// attempt is judged only once it has kept silent here for
			// longer than its worker's heartbeats allow.
			newest, err := w.listen(parent, d, item, last)
			cancel()
			ctx, cancel = w.storeContext(parent)
			switch {
			case err != nil:
				log.WarnContext(ctx, "could not read job state; handing the job back", "err", err)
				w.handBack(ctx, log, d)
				return attempt{}, false
			case newest.Seq == last.Seq:
				silent = last.Seq
			case heardFrom(item, newest):
				log.InfoContext(ctx, "work item handed out again while its attempt's worker is still heard from; leaving it with the broker", "attempt_worker", newest.Worker)
				return attempt{}, false
			}
			continue // decide again, on what the job is now
		}
		var next tasktype.Event
		switch {
		case act == actLeave:
			// The broker forgot handing this item out (see ItemLease), or
			// its lease ran out while the broker was away: the attempt's
			// worker keeps it with its heartbeats, or it comes back as a
			// redelivery once the lease runs out. (One running here is
			// left alone before the claim: see process.)
			log.InfoContext(ctx, "work item handed out again while its attempt runs; leaving it with the broker", "job_state", last.Kind, "attempt_worker", last.Worker)
			return attempt{}, false
		case act == actStale:
			// The job moved on (finished, cancelled, or another item
			// carries it): this item's work is done.
			log.DebugContext(ctx, "work item is stale; dropping it", "job_state", last.Kind)
			w.ack(ctx, log, d)
			return attempt{}, false
		case act == actWait && last.Seq < item.Seq && try < lagRereads:
			// The read lagged behind the delivery (a replica behind its
			// leader): read again here rather than put the item off,
			// since a delivery put off counts as one more delivery.
			clock.Sleep(ctx, time.Duration(try+1)*20*time.Millisecond)
			continue
		case act == actWait:
			wait := max(item.RetryAt.Sub(w.cfg.Now()), 0)
			if last.Seq < item.Seq {
				wait = time.Second // the read still lags behind the delivery
			}
			if err := d.Delay(ctx, wait); err != nil {
				log.WarnContext(ctx, "could not put off early retry", "err", err)
			}
			return attempt{}, false
		case act == actLost:
			// The attempt's worker stopped renewing it after recording
			// its start: count the attempt as failed, so that a job that
			// kills its worker every time still reaches an outcome.
			cause := fmt.Errorf("worker %s stopped responding during attempt %d", last.Worker, job.Attempt)
			next = w.failure(job, job.Attempt, maxAttempts, policy, tasktype.UserMessage(cause, tasktype.LostWorkerMessage))
			log.WarnContext(ctx, "previous worker lost", "lost_worker", last.Worker, "outcome", next.Kind)
		case !registered:
			next = w.event(job, tasktype.EventFailed, job.Attempt, func(e *tasktype.Event) {
				e.Error = fmt.Sprintf("no handler registered for job type %q", job.Type)
				e.Message = "This kind of task cannot be run at the moment."
			})
		case act == actRun:
			// The usual case: no write before the handler runs. The
			// attempt starts now, not when the claim began: a slow read
			// would otherwise date a retry's start before its time.
			start.Time = w.cfg.Now().UTC()
			return attempt{start: start, after: last.Seq}, true
		case act == actRunRecorded:
			start.Time = w.cfg.Now().UTC()
			next = start
		}
		seq, err := w.cfg.Events.Append(ctx, next, last.Seq)
		if errors.Is(err, tasktype.ErrConflict) {
			continue
		}
		if err != nil {
			log.WarnContext(ctx, "could not record job event; handing the job back", "event", next.Kind, "err", err)
			w.handBack(ctx, log, d)
			return attempt{}, false
		}
		if next.Kind != tasktype.EventStarted {
			w.ack(ctx, log, d)
			if next.Kind == tasktype.EventFailed {
				w.sweep(ctx, log, job, job.Attempt)
			}
			return attempt{}, false
		}
		next.Seq = seq
		return attempt{start: next, after: seq, recorded: true}, true
	}
	log.WarnContext(ctx, "job kept changing under this worker; leaving it for redelivery")
	return attempt{}, false
}

// listen waits for a sign of life from the attempt whose newest event is
// last, reading the job's state every heartbeat for longer than a worker
// that is alive goes without writing one (a third of the lease, then a
// write that may wait out a request left hanging by a frozen server),
// and renewing d's lease meanwhile, so that no third worker takes the
// item. It returns the job's newest event as soon as it differs from
// last, or last when the wait is over; an error only if the state could
// not be read at the end.
func (w *Worker) listen(ctx context.Context, d driver.Delivery, item, last tasktype.Event) (tasktype.Event, error) {
	until := w.cfg.Now().Add(w.cfg.Lease + w.cfg.Lease/2)
	for {
		if clock.Sleep(ctx, w.cfg.ExtendEvery); ctx.Err() != nil {
			return tasktype.Event{}, ctx.Err()
		}
		sctx, cancel := w.storeContext(ctx)
		_ = d.Extend(sctx) // at worst the item comes back sooner, and is read again
		newest, err := w.cfg.Events.Last(sctx, item.UserID, item.JobID)
		cancel()
		switch {
		case err == nil && newest.Seq != last.Seq:
			return newest, nil
		case !w.cfg.Now().Before(until):
			if err != nil {
				return tasktype.Event{}, err
			}
			return last, nil
		}
	}
}

// heardFrom says newest is a sign of life of item's attempt: its start or
// a progress report, written by the worker running it.
func heardFrom(item, newest tasktype.Event) bool {
	return newest.Attempt == item.Attempt+1 &&
		(newest.Kind == tasktype.EventStarted || newest.Kind == tasktype.EventProgress)
}

// lagRereads is how many times claim reads a job again whose newest
// event it read is older than the item delivered.
const lagRereads = 3

// delivered is what the worker knows of how the broker handed out an
// item, beyond the item itself.
type delivered struct {
	redelivered bool      // driver.Delivery.Redelivered
	perItem     bool      // driver.Capabilities.ItemLease
	resumed     time.Time // when the job's type was last resumed (Config.Paused)
}

func (w *Worker) facts(d driver.Delivery, resumed time.Time) delivered {
	return delivered{redelivered: d.Redelivered(), perItem: w.cfg.Capabilities.ItemLease, resumed: resumed}
}

type action int

const (
	actStale       action = iota // the item has nothing left to do
	actWait                      // the item's retry is not due yet
	actRun                       // run the item's attempt, its start recorded at its first heartbeat
	actRunRecorded               // record the attempt's start, then run it
	actLost                      // the item's attempt was started, on record, by a worker now gone
	actLeave                     // the item's attempt runs elsewhere under the same lease
)

// decide is the work item's part of the job state machine. lease is the
// broker's lease on a delivery.
func decide(item, last tasktype.Event, d delivered, now time.Time, lease time.Duration) action {
	attempt := item.Attempt + 1
	switch {
	case last.Seq < item.Seq:
		return actWait
	case last.Seq == item.Seq:
		if item.RetryAt.After(now) {
			return actWait
		}
		if !d.redelivered {
			return actRun
		}
		// Redelivered, and no start on record. The broker cannot say
		// whether the delivery before ran its handler: its worker may
		// have died before its first heartbeat, or never have begun
		// (it could not read the log, or handed the item back) and a
		// lease later another worker claimed it. Only a start on record
		// proves an attempt ran, so none is counted here: the attempt
		// runs with its start recorded first, and if it is lost it is
		// counted from that. A job that kills its worker at once thus
		// costs two runs per attempt, which is the price of never
		// charging an attempt that did not run. A redelivery sooner than
		// a lease after the item was due follows a put-off delivery,
		// not a lost one, and runs without the write. (A heartbeat of
		// slack covers clocks that disagree.)
		due := item.Time
		if item.RetryAt.After(due) {
			due = item.RetryAt
		}
		if now.Sub(due) < lease-lease/5 {
			return actRun
		}
		if d.resumed.After(due) {
			// Its type was paused since it fell due, and every worker
			// put it off until the resume: nothing ran it.
			return actRun
		}
		return actRunRecorded
	case last.Kind == tasktype.EventReleased:
		if last.Attempt != attempt {
			return actStale
		}
		return actRun
	case last.Attempt != attempt:
		return actStale
	case last.Kind == tasktype.EventStarted || last.Kind == tasktype.EventProgress:
		// The broker redelivers an item only when its worker stopped
		// renewing it or gave it back, and giving back is recorded. A
		// first delivery here is a copy (a broker that carries jobs
		// outside the log may send one twice): the holder of the other
		// copy runs the attempt, or it is redelivered if it dies. With
		// one lease per item there is no other copy, only a delivery the
		// broker forgot.
		if !d.redelivered {
			if d.perItem {
				return actLeave
			}
			return actStale
		}
		return actLost
	}
	return actStale
}
