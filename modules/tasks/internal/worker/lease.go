package worker

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/otjhelper/otj/modules/tasks/internal/driver"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// watch beats every ExtendEvery while the handler runs. At the first
// beat it records the attempt's start if that is not on record yet: an
// attempt shorter than a heartbeat never writes one, and one that lasts
// shows as running from then on. It then records the handler's latest
// progress report, if it made a new one, as a progress event, and
// repeats the latest one when a third of the lease has passed without an
// event of the attempt: the start records the lease, which promises the
// task page a sign of life at least that often (tasktype.Task.WorkerLost),
// at one event every few seconds of a long job rather than one per
// heartbeat. It also
// makes sure the job is still this attempt's: if it was cancelled, or
// another worker took it over, it ends the attempt's context. The
// returned func stops it and returns the sequence of the job's newest
// event written by this worker (the work item's while none is).
func (w *Worker) watch(ctx context.Context, log *slog.Logger, d driver.Delivery, a attempt, out *output, stopRun context.CancelCauseFunc) (stop func() uint64) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	mine, recorded := a.after, a.recorded // written only by the goroutine until done
	started := a.start
	heard := started.Time // time of the attempt's newest event on record
	go func() {
		defer close(done)
		t := time.NewTicker(w.cfg.ExtendEvery)
		defer t.Stop()
		reported := 0 // version of the progress last recorded
		// unsure holds the events this attempt sent whose append failed
		// without an answer (a frozen server may store one and reply
		// too late): should one turn out to be the job's newest, the
		// job is still this attempt's, not taken over.
		var unsure []string
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			proved := false // an append this beat proved the job is still ours
			if !recorded {
				seq, err := w.cfg.Events.Append(ctx, started, mine)
				switch {
				case err == nil:
					mine, recorded, proved = seq, true, true
					heard = started.Time
				case errors.Is(err, tasktype.ErrConflict):
					// The job moved on: the check below says how.
				default:
					if ctx.Err() == nil {
						log.WarnContext(ctx, "could not record the attempt's start; its outcome will carry it", "err", err)
					}
					unsure = append(unsure, started.ID)
					continue
				}
			}
			p, v := out.progress()
			silent := w.cfg.Now().Sub(heard) >= w.cfg.Lease/3
			if recorded && (v != reported || silent) {
				e := w.event(started.Job(), tasktype.EventProgress, started.Attempt, func(e *tasktype.Event) {
					e.Percent, e.Message, e.Worker = p.percent, p.message, w.cfg.Name
				})
				seq, err := w.cfg.Events.Append(ctx, e, mine)
				if err == nil {
					mine, reported, heard, unsure = seq, v, e.Time, unsure[:0]
					continue // the job is still ours: the append proved it
				}
				if !errors.Is(err, tasktype.ErrConflict) && ctx.Err() == nil {
					log.WarnContext(ctx, "could not record progress", "err", err)
					unsure = append(unsure, e.ID)
				}
			} else if proved {
				continue
			}
			last, err := w.cfg.Events.Last(ctx, started.UserID, started.JobID)
			if err != nil {
				if ctx.Err() == nil {
					log.WarnContext(ctx, "could not check job state", "err", err)
				}
				continue
			}
			if last.Seq != mine && slices.Contains(unsure, last.ID) {
				// Stored after all: the job is still this attempt's.
				mine, heard, unsure = last.Seq, last.Time, unsure[:0]
				recorded = true
				continue
			}
			if last.Seq != mine {
				if last.Kind == tasktype.EventCancelled {
					stopRun(errCancelled)
				} else {
					stopRun(errLeaseLost)
				}
				return
			}
		}
	}()
	return func() uint64 { cancel(); <-done; return mine }
}

// keptDelivery is a delivery whose lease keepLease renews until the item
// is acked, handed back or put off, or stop is called.
type keptDelivery struct {
	driver.Delivery
	stop func()
}

func (k keptDelivery) Ack(ctx context.Context) error { k.stop(); return k.Delivery.Ack(ctx) }

func (k keptDelivery) Release(ctx context.Context) error {
	k.stop()
	return k.Delivery.Release(ctx)
}

func (k keptDelivery) Delay(ctx context.Context, wait time.Duration) error {
	k.stop()
	return k.Delivery.Delay(ctx, wait)
}

// keepLease renews d's lease every ExtendEvery from the attempt's start
// until its outcome is recorded, on its own. The renewal must never wait
// behind an event write: while the event log's host is unreachable each
// write waits out its whole request timeout, longer than the lease, and
// where the work queue is elsewhere (Redis) the lease would run out while
// the attempt runs or retries its outcome, and another worker take it
// over.
func (w *Worker) keepLease(ctx context.Context, log *slog.Logger, d driver.Delivery) keptDelivery {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(w.cfg.ExtendEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			ectx, cancelExtend := context.WithTimeout(ctx, w.cfg.StoreTimeout)
			if err := d.Extend(ectx); err != nil && ctx.Err() == nil {
				log.WarnContext(ctx, "lease renewal failed", "err", err)
			}
			cancelExtend()
		}
	}()
	var once sync.Once
	return keptDelivery{Delivery: d, stop: func() { once.Do(func() { cancel(); <-done }) }}
}
