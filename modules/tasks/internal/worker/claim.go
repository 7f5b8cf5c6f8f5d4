package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/otjhelper/otj/modules/tasks/taskdriver"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// claim decides what the delivered work item asks for, given the job's
// newest event, and records the start of an attempt if one should run.
// Each step is appended on condition that the job has not changed since
// it was read; after a lost race the decision is made again.
func (w *Worker) claim(ctx context.Context, log *slog.Logger, d taskdriver.Delivery, item tasktype.Event, maxAttempts int, registered bool, policy tasktype.Policy) (tasktype.Event, bool) {
	ctx, cancel := w.storeContext(ctx)
	defer cancel()
	job := item.Job()
	start := func() tasktype.Event {
		return w.event(job, tasktype.EventStarted, job.Attempt, func(e *tasktype.Event) {
			e.MaxAttempts = maxAttempts
			e.Worker = w.cfg.Name
		})
	}
	if registered && !item.RetryAt.After(w.cfg.Now()) {
		// The usual case: the item is still the job's newest event, and
		// then the attempt runs (see decide). The start is appended on
		// that condition without reading the job first; if the job moved
		// on, the append fails and the full check below decides.
		next := start()
		seq, err := w.cfg.Events.Append(ctx, next, item.Seq)
		if err == nil {
			next.Seq = seq
			return next, true
		}
		if !errors.Is(err, tasktype.ErrConflict) {
			log.WarnContext(ctx, "could not record job event; leaving it for redelivery", "event", next.Kind, "err", err)
			return tasktype.Event{}, false
		}
	}
	for range 5 {
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
				return tasktype.Event{}, false
			}
			log.ErrorContext(ctx, "work item of a job not in the event log; dropping it", "seq", item.Seq)
			w.ack(ctx, log, d)
			return tasktype.Event{}, false
		}
		if err != nil {
			log.WarnContext(ctx, "could not read job state; leaving it for redelivery", "err", err)
			return tasktype.Event{}, false
		}
		var next tasktype.Event
		switch act := decide(item, last, d.Redelivered(), leasePerItem(d), w.cfg.Now()); act {
		case actLeave:
			// The broker forgot handing this item out (see ItemLease):
			// the attempt's worker keeps it, or it comes back as a
			// redelivery once the lease runs out.
			log.InfoContext(ctx, "work item handed out again while its attempt runs; leaving it with the broker", "job_state", last.Kind, "attempt_worker", last.Worker)
			return tasktype.Event{}, false
		case actStale:
			// The job moved on (finished, cancelled, or another item
			// carries it): this item's work is done.
			log.DebugContext(ctx, "work item is stale; dropping it", "job_state", last.Kind)
			w.ack(ctx, log, d)
			return tasktype.Event{}, false
		case actWait:
			wait := max(item.RetryAt.Sub(w.cfg.Now()), 0)
			if last.Seq < item.Seq {
				wait = time.Second // the read lagged behind the delivery
			}
			if err := d.Delay(ctx, wait); err != nil {
				log.WarnContext(ctx, "could not put off early retry", "err", err)
			}
			return tasktype.Event{}, false
		case actLost:
			if _, mine := w.running.Load(attemptKey{job.ID, job.Attempt}); mine && last.Worker == w.cfg.Name {
				// This worker runs the attempt: its lease ran out while
				// the broker was away. The attempt goes on renewing it,
				// and records its outcome itself.
				log.InfoContext(ctx, "work item handed out again while this worker runs its attempt; leaving it with the broker")
				return tasktype.Event{}, false
			}
			// The attempt's worker stopped renewing it: count the attempt
			// as failed, so that a job that kills its worker every time
			// still reaches an outcome.
			cause := fmt.Errorf("worker %s stopped responding during attempt %d", last.Worker, job.Attempt)
			next = w.failure(job, job.Attempt, maxAttempts, policy, cause)
			log.WarnContext(ctx, "previous worker lost", "lost_worker", last.Worker, "outcome", next.Kind)
		case actRun:
			if !registered {
				next = w.event(job, tasktype.EventFailed, job.Attempt, func(e *tasktype.Event) {
					e.Error = fmt.Sprintf("no handler registered for job type %q", job.Type)
					e.Message = "This kind of task cannot be run at the moment."
				})
				break
			}
			next = start()
		}
		seq, err := w.cfg.Events.Append(ctx, next, last.Seq)
		if errors.Is(err, tasktype.ErrConflict) {
			continue
		}
		if err != nil {
			log.WarnContext(ctx, "could not record job event; leaving it for redelivery", "event", next.Kind, "err", err)
			return tasktype.Event{}, false
		}
		if next.Kind != tasktype.EventStarted {
			w.ack(ctx, log, d)
			return tasktype.Event{}, false
		}
		next.Seq = seq
		return next, true
	}
	log.WarnContext(ctx, "job kept changing under this worker; leaving it for redelivery")
	return tasktype.Event{}, false
}

type action int

const (
	actStale action = iota // the item has nothing left to do
	actWait                // the item's retry is not due yet
	actRun                 // start the item's attempt
	actLost                // the item's attempt was started by a worker now gone
	actLeave               // the item's attempt runs elsewhere under the same lease
)

func leasePerItem(d taskdriver.Delivery) bool {
	l, ok := d.(taskdriver.ItemLease)
	return ok && l.LeasePerItem()
}

// decide is the work item's part of the job state machine.
func decide(item, last tasktype.Event, redelivered, perItem bool, now time.Time) action {
	attempt := item.Attempt + 1
	switch {
	case last.Seq < item.Seq:
		return actWait
	case last.Seq == item.Seq:
		if item.RetryAt.After(now) {
			return actWait
		}
		return actRun
	case last.Attempt != attempt:
		return actStale
	case last.Kind == tasktype.EventReleased:
		return actRun
	case last.Kind == tasktype.EventStarted || last.Kind == tasktype.EventProgress:
		// The broker redelivers an item only when its worker stopped
		// renewing it or gave it back, and giving back is recorded. A
		// first delivery here is a copy (a broker that carries jobs
		// outside the log may send one twice): the holder of the other
		// copy runs the attempt, or it is redelivered if it dies. With
		// one lease per item there is no other copy, only a delivery the
		// broker forgot.
		if !redelivered {
			if perItem {
				return actLeave
			}
			return actStale
		}
		return actLost
	}
	return actStale
}
