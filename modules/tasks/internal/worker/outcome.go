package worker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nuid"
	"github.com/otjhelper/otj/modules/tasks/internal/clock"
	"github.com/otjhelper/otj/modules/tasks/internal/driver"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// prune deletes the results of the user's older jobs of job's type
// beyond the newest ResultKeep (PruneOlder). It runs after the job's
// outcome is stored and acked, so a failure here costs only the space:
// it is logged, and the job stays completed.
func (w *Worker) prune(ctx context.Context, log *slog.Logger, job tasktype.Job) {
	if w.cfg.ResultKeep <= 0 {
		return
	}
	ctx, cancel := w.storeContext(ctx)
	defer cancel()
	var since time.Time
	if w.cfg.ResultTTL > 0 {
		since = w.cfg.Now().Add(-w.cfg.ResultTTL)
	}
	PruneOlder(ctx, log, w.cfg.Succeeded, w.cfg.Results, job.UserID, job.Type, w.cfg.ResultKeep, since)
}

// Deleter deletes a stored result; one already gone is no error.
type Deleter interface {
	Delete(ctx context.Context, object string) error
}

// PruneOlder deletes the results of the user's jobs of jobType beyond
// the newest keep, found from the log's succeeded events stored since
// (older results have expired): the one pruning of RESULT_KEEP, run by a
// worker after a success, or by the projection (tasks'
// PruneOnProjection) for workers that may not delete. A failure costs
// only the space until the results expire: it is logged, not returned.
func PruneOlder(ctx context.Context, log *slog.Logger, s Succeeded, d Deleter, userID int64, jobType string, keep int, since time.Time) {
	events, err := s.Succeeded(ctx, userID, jobType, since)
	if err != nil {
		log.WarnContext(ctx, "could not look for older results to delete", "err", err)
		return
	}
	// Only results stored by their own jobs count: an event naming
	// another job's file is no result of this user's.
	var objects []string
	for _, e := range events {
		if e.Result != nil && tasktype.OwnsResult(e.JobID, e.Attempt, e.Result.Object) {
			objects = append(objects, e.Result.Object)
		}
	}
	if len(objects) <= keep {
		return
	}
	deleted := 0
	for _, object := range objects[:len(objects)-keep] {
		if err := d.Delete(ctx, object); err != nil {
			log.WarnContext(ctx, "could not delete an older result", "object", object, "err", err)
			continue
		}
		deleted++
	}
	log.DebugContext(ctx, "deleted older results", "kept", keep, "deleted", deleted)
}

// failure is the event for a failed attempt: retrying if the error may
// pass and attempts remain, failed otherwise.
func (w *Worker) failure(job tasktype.Job, attempt, maxAttempts int, policy tasktype.Policy, err error) tasktype.Event {
	// The error goes to operators; its owner sees the handler's sentence
	// for it, or one for the state it leaves the task in.
	message := func(s tasktype.Status) string {
		if m := tasktype.MessageOf(err); m != "" {
			return m
		}
		return tasktype.FailureMessage(s)
	}
	if tasktype.IsPermanent(err) || attempt >= maxAttempts {
		return w.event(job, tasktype.EventFailed, attempt, func(e *tasktype.Event) {
			e.Error, e.Message = err.Error(), message(tasktype.StatusFailed)
			e.MaxAttempts = maxAttempts
			e.Fix = tasktype.FixOf(err)
		})
	}
	return w.event(job, tasktype.EventRetrying, attempt, func(e *tasktype.Event) {
		e.Payload = job.Payload
		e.EnqueuedAt = job.EnqueuedAt
		e.Error, e.Message = err.Error(), message(tasktype.StatusRetrying)
		e.MaxAttempts = maxAttempts
		e.RetryAt = e.Time.Add(policy.Backoff(attempt))
	})
}

// storeContext bounds event writes and acks. It is detached from ctx's
// cancellation so that a job finishing during shutdown is still recorded.
func (w *Worker) storeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), w.cfg.StoreTimeout)
}

// record appends e after the job's event at sequence after, then acks
// the delivery if ack is set: in that order, so that a crash between the
// two leaves the item to be redelivered and found stale, never a job
// without its event. A lost race means the job moved on without this
// worker (cancelled, taken over); the item is acked all the same. It
// reports whether e was stored.
func (w *Worker) record(ctx context.Context, log *slog.Logger, d driver.Delivery, e tasktype.Event, after uint64, ack bool) bool {
	err := w.appendOutcome(ctx, log, d, e, after)
	if errors.Is(err, tasktype.ErrConflict) {
		if last, ok := w.ownNewest(ctx, e); ok && last.Seq > after {
			// A start or progress this worker sent as the attempt ended
			// was stored though its reply never came (the heartbeat was
			// stopped mid-request): the job is still this attempt's.
			err = w.appendOutcome(ctx, log, d, e, last.Seq)
		}
	}
	switch {
	case errors.Is(err, tasktype.ErrConflict):
		log.InfoContext(ctx, "job changed while it ran; its new state stands", "event", e.Kind)
		w.ack(ctx, log, d)
		return false
	case err != nil:
		log.ErrorContext(ctx, "could not record job event; leaving it for redelivery", "event", e.Kind, "err", err)
		return false
	}
	if ack {
		w.ack(ctx, log, d)
	}
	return true
}

// ownNewest returns the job's newest event if this worker wrote it for
// outcome e's attempt: its start or a progress report.
func (w *Worker) ownNewest(ctx context.Context, e tasktype.Event) (tasktype.Event, bool) {
	ctx, cancel := w.storeContext(ctx)
	defer cancel()
	last, err := w.cfg.Events.Last(ctx, e.UserID, e.JobID)
	if err != nil {
		return tasktype.Event{}, false
	}
	mine := (last.Kind == tasktype.EventStarted || last.Kind == tasktype.EventProgress) &&
		last.Worker == w.cfg.Name && last.Attempt == e.Attempt
	return last, mine
}

// appendOutcome appends e, trying again for up to OutcomeRetry while the
// broker is unreachable (the lease is renewed meanwhile: see keepLease):
// the work is done, and a redelivery would do it all again.
func (w *Worker) appendOutcome(ctx context.Context, log *slog.Logger, d driver.Delivery, e tasktype.Event, after uint64) error {
	giveUp := w.cfg.Now().Add(w.cfg.OutcomeRetry)
	for {
		actx, cancel := w.storeContext(ctx)
		_, err := w.cfg.Events.Append(actx, e, after)
		if err == nil || !errors.Is(err, tasktype.ErrUnavailable) || w.cfg.Now().After(giveUp) {
			cancel()
			return err
		}
		log.WarnContext(actx, "broker unreachable; will try again to record the job's outcome", "event", e.Kind, "err", err)
		clock.Sleep(actx, time.Second)
		cancel()
	}
}

func (w *Worker) ack(ctx context.Context, log *slog.Logger, d driver.Delivery) {
	ctx, cancel := w.storeContext(ctx)
	defer cancel()
	if err := d.Ack(ctx); err != nil {
		log.WarnContext(ctx, "ack failed; the redelivery will be found stale and dropped", "err", err)
	}
}

func (w *Worker) release(ctx context.Context, log *slog.Logger, d driver.Delivery) {
	ctx, cancel := w.storeContext(ctx)
	defer cancel()
	if err := d.Release(ctx); err != nil {
		log.WarnContext(ctx, "release failed; the broker will redeliver after its timeout", "err", err)
	}
}

// discard deletes a result file that will not be on record. It is
// called after the job moved on without this worker, when another run
// of the same attempt (a copy of the item the broker handed out twice)
// may have stored its file under the same name and recorded it: that
// one stays.
func (w *Worker) discard(ctx context.Context, log *slog.Logger, job tasktype.Job, ref *tasktype.ResultRef) {
	if ref == nil {
		return
	}
	ctx, cancel := w.storeContext(ctx)
	defer cancel()
	last, err := w.cfg.Events.Last(ctx, job.UserID, job.ID)
	if err == nil && last.Result != nil && last.Result.Object == ref.Object {
		return
	}
	if err := w.cfg.Results.Delete(ctx, ref.Object); err != nil {
		log.WarnContext(ctx, "could not delete unused result", "object", ref.Object, "err", err)
	}
}

// sweep deletes the result files of the job's attempts before upTo, and
// of upTo itself when the job failed there, once the job's end is on
// record: only the winning attempt's file is named by an event. An
// earlier attempt may have stored its file and then lost its outcome (its
// worker died, or the log was unreachable when it finished), or stored
// it on the server after giving up waiting for it. Missing files are the
// usual case and cost one request each; a first attempt that succeeds,
// the usual job, has none to sweep.
func (w *Worker) sweep(ctx context.Context, log *slog.Logger, job tasktype.Job, upTo int) {
	if upTo < 1 || w.cfg.LeaveDeletes {
		return
	}
	ctx, cancel := w.storeContext(ctx)
	defer cancel()
	for n := 1; n <= upTo; n++ {
		object := tasktype.ResultObjectName(job.ID, n)
		if err := w.cfg.Results.Delete(ctx, object); err != nil {
			log.WarnContext(ctx, "could not delete the result of an attempt that did not win", "object", object, "err", err)
		}
	}
}

// handBack gives the item back to the broker, to come again soon, when
// the worker could not read or write the job's events: the attempt has
// not begun, so nothing is recorded and nothing counted. Should the
// broker not take it back either, it comes back once its lease runs out,
// as a redelivery with no start on record, which costs no attempt.
func (w *Worker) handBack(ctx context.Context, log *slog.Logger, d driver.Delivery) {
	ctx, cancel := w.storeContext(ctx)
	defer cancel()
	if err := d.Delay(ctx, time.Second); err != nil {
		log.WarnContext(ctx, "could not hand the job back; it comes back when its lease runs out", "err", err)
	}
}

func (w *Worker) event(job tasktype.Job, kind tasktype.EventKind, attempt int, fill func(*tasktype.Event)) tasktype.Event {
	e := tasktype.Event{
		ID:      nuid.Next(),
		Kind:    kind,
		JobID:   job.ID,
		JobType: job.Type,
		UserID:  job.UserID,
		Time:    w.cfg.Now().UTC(),
		Attempt: attempt,
	}
	if fill != nil {
		fill(&e)
	}
	return e
}
