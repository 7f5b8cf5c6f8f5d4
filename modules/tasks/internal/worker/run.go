package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/otjhelper/otj/modules/tasks/internal/clock"
	"github.com/otjhelper/otj/modules/tasks/internal/driver"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// RunInline runs the work item's attempt here and now, in the caller's
// goroutine, with the same events, checks and outcomes as a delivery from
// a queue: it is the fallback for an enqueue whose broker could not be
// reached. A retry it schedules goes through the event log like any
// other. It returns when the attempt's outcome is recorded; the attempt is
// not cut short when ctx ends (its policy's timeout still applies), so
// that a job accepted for running in a request does not stop half done.
func (w *Worker) RunInline(ctx context.Context, item tasktype.Event) {
	w.process(context.WithoutCancel(ctx), inline{item}, func() {}, func() {})
}

// inline is the delivery of a work item run by RunInline: there is no
// broker to renew, ack or hand back to, so those are no-ops. A retry
// later goes through the event log, and an item held back for its time
// is left to the broker's copy of it.
type inline struct{ item tasktype.Event }

func (d inline) Item() tasktype.Event                     { return d.item }
func (inline) Redelivered() bool                          { return false }
func (inline) Extend(context.Context) error               { return nil }
func (inline) Ack(context.Context) error                  { return nil }
func (inline) Release(context.Context) error              { return nil }
func (inline) Delay(context.Context, time.Duration) error { return nil }

// Causes of a running job's context ending early.
var (
	errShutdown  = errors.New("worker shutting down")
	errCancelled = errors.New("cancelled")
	errLeaseLost = errors.New("job taken over by another worker")
	errTimedOut  = errors.New("attempt timed out")
)

// process runs the delivered item's attempt. handedOff is called once
// the handler has returned (or never ran) and the rest is bookkeeping;
// recorded once after it, when the outcome is stored.
func (w *Worker) process(ctx context.Context, d driver.Delivery, handedOff, recorded func()) {
	item := d.Item()
	job := item.Job()
	log := w.log.With("job_id", job.ID, "job_type", job.Type, "user_id", job.UserID, "attempt", job.Attempt)
	var resumed time.Time
	if w.cfg.Paused != nil {
		var paused bool
		if paused, resumed = w.cfg.Paused(job.Type); paused {
			// Paused by an operator: the item waits with the broker, and
			// nothing of the job is read or written.
			sctx, cancel := w.storeContext(ctx)
			defer cancel()
			if err := d.Delay(sctx, w.cfg.PauseRecheck); err != nil {
				log.WarnContext(ctx, "could not put off a job of a paused type", "err", err)
			}
			return
		}
	}
	h, policy, registered := w.cfg.Registry.Lookup(job.Type)
	maxAttempts := item.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = item.Attempt + policy.MaxAttempts
		if !registered {
			maxAttempts = job.Attempt
		}
	}

	// One delivery of an attempt at a time in this worker: from its
	// claim to its outcome. A second one (a broker restarted after it
	// handed the item out, and forgot that it had) is left with the
	// broker, whichever stage the first is at: the first keeps the item
	// with its heartbeats, or acks it.
	key := attemptKey{job.ID, job.Attempt}
	if _, busy := w.running.LoadOrStore(key, struct{}{}); busy {
		log.InfoContext(ctx, "work item handed out again while this worker handles its attempt; leaving it with the broker")
		return
	}
	defer w.running.Delete(key)
	a, ok := w.claim(ctx, log, d, item, maxAttempts, registered, policy, resumed)
	if !ok {
		return
	}
	kept := w.keepLease(ctx, log, d)
	defer kept.stop()
	d = kept
	started := a.start
	due := item.Time
	if item.RetryAt.After(due) {
		due = item.RetryAt
	}
	w.cfg.Observer.AttemptStarted(job.Type, started.Time.Sub(due))
	var ended tasktype.EventKind // the outcome on record, for the observer
	var took time.Duration
	done := false
	defer func() {
		if !done {
			handedOff() // the handler panicked past run's recover
		}
		w.cfg.Observer.AttemptEnded(job.Type, ended, took)
		recorded()
	}()

	// The attempt's context ends on shutdown (after the grace period), on
	// cancel or takeover (seen by watch), or at the policy's timeout.
	runCtx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	runCtx, stopTimer := context.WithTimeoutCause(runCtx, policy.Timeout, errTimedOut)
	defer stopTimer()
	start := w.cfg.Now()
	out := &output{ctx: runCtx, store: w.cfg.Results, object: tasktype.ResultObjectName(job.ID, job.Attempt), retryFor: w.cfg.OutcomeRetry}
	stopWatch := w.watch(runCtx, log, d, a, out, stopRun)
	res, ref, err := w.run(runCtx, log, h, job, out)
	// From here on, the job's newest event is the last one this worker
	// wrote: its start or its latest progress.
	mine := stopWatch()
	cause := context.Cause(runCtx)
	took = w.cfg.Now().Sub(start)
	handedOff()
	done = true

	switch {
	case errors.Is(cause, errCancelled):
		log.InfoContext(ctx, "job cancelled while running", "duration", took)
		ended = tasktype.EventCancelled
		w.discard(ctx, log, job, ref)
		w.ack(ctx, log, d)
		return
	case errors.Is(cause, errLeaseLost):
		// Whoever took the job over decided its fate; this attempt's
		// result, if any, is not the one on record.
		log.WarnContext(ctx, "job was taken over while running; dropping this attempt's result", "duration", took)
		w.discard(ctx, log, job, ref)
		return
	case err != nil && (errors.Is(cause, errShutdown) || cause == nil && out.storeDown()):
		// Neither is the job's doing: a worker told to stop, or a result
		// store that could not be reached (its host frozen or gone), which
		// says nothing of the next try. The attempt is handed back
		// uncounted, its file (if the store kept one after all) left to
		// be overwritten by the same attempt's next run.
		log.WarnContext(ctx, "job interrupted by shutdown or an unreachable result store; handing it back", "err", err)
		rel := w.event(job, tasktype.EventReleased, job.Attempt, ranBy(started))
		if w.record(ctx, log, d, rel, mine, false) {
			ended = tasktype.EventReleased
			w.release(ctx, log, d)
		}
		return
	}

	var outcome tasktype.Event
	switch {
	case err == nil:
		log.InfoContext(ctx, "job succeeded", "duration", took, "summary", res.Summary)
		outcome = w.event(job, tasktype.EventSucceeded, job.Attempt, func(e *tasktype.Event) {
			ranBy(started)(e)
			e.Result, e.Summary = ref, res.Summary
		})
	default:
		if errors.Is(cause, errTimedOut) {
			err = tasktype.UserMessage(fmt.Errorf("timed out after %s: %w", policy.Timeout, err),
				"It took longer than it is allowed to, and was stopped.")
		}
		outcome = w.failure(job, job.Attempt, maxAttempts, policy, err)
		ranBy(started)(&outcome)
		log.WarnContext(ctx, "job attempt failed", "err", err, "duration", took, "outcome", outcome.Kind, "retry_at", outcome.RetryAt)
	}
	if !w.record(ctx, log, d, outcome, mine, true) {
		w.discard(ctx, log, job, ref)
		return
	}
	ended = outcome.Kind
	if outcome.Kind != tasktype.EventRetrying {
		w.sweep(ctx, log, job, job.Attempt-1)
	}
	if ended == tasktype.EventFailed && tasktype.IsRejected(err) {
		ended = tasktype.OutcomeRejected
	}
	if outcome.Kind == tasktype.EventSucceeded && ref != nil {
		w.prune(ctx, log, job)
	}
}

// ranBy fills in an outcome what the attempt's start says: when and on
// which worker it began, and its allowance of attempts. The start may
// not be on record (an attempt shorter than a heartbeat records none),
// so every outcome carries it.
func ranBy(start tasktype.Event) func(*tasktype.Event) {
	return func(e *tasktype.Event) {
		e.StartedAt, e.Worker, e.MaxAttempts = start.Time, start.Worker, start.MaxAttempts
	}
}

// run calls the handler, turning a panic into an error so that one bad job
// fails on its own instead of taking the worker down.
func (w *Worker) run(ctx context.Context, log *slog.Logger, h tasktype.HandlerFunc, job tasktype.Job, out *output) (res tasktype.Result, ref *tasktype.ResultRef, err error) {
	defer func() {
		if p := recover(); p != nil {
			log.ErrorContext(ctx, "handler panicked", "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", p)
		}
		var ferr error
		ref, ferr = out.finish(err)
		if err == nil && ferr != nil {
			err = fmt.Errorf("store result: %w", ferr)
		}
		// A full store refuses the file however often it is tried, until
		// old results expire: no retry, and a sentence the user can act
		// on. The handler may have seen it first, writing its file.
		if errors.Is(err, tasktype.ErrResultStoreFull) {
			err = tasktype.Permanent(tasktype.UserMessage(err, w.cfg.StoreFullMessage))
		}
	}()
	if w.cfg.JobContext != nil {
		ctx = w.cfg.JobContext(ctx)
	}
	res, err = h(ctx, job, out)
	return res, nil, err
}

// output streams a handler's result file into the ResultStore through a
// pipe, so that a file of any size passes through a fixed-size buffer,
// and spools a copy to the worker's disk: should the store not answer
// (its host frozen or restarting), the handler goes on writing to the
// spool, and the file is uploaded again from there for up to retryFor,
// rather than the finished work thrown away and the handler run again.
type output struct {
	ctx      context.Context
	store    Results
	object   string
	retryFor time.Duration

	name, contentType string
	file              *tee // nil until Create
	done              chan putResult
	// failed is the store's error when the upload failed of itself,
	// rather than because the handler did.
	failed error

	mu      sync.Mutex
	latest  progressReport
	version int // counts Progress calls
}

type progressReport struct {
	percent int
	message string
}

// Progress keeps the latest report for the worker's next heartbeat, so
// that a handler may call it as often as it likes at no cost.
func (o *output) Progress(percent int, message string) {
	percent = min(max(percent, 0), 100)
	if len(message) > maxProgressMessage {
		message = message[:maxProgressMessage]
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.latest = progressReport{percent, message}
	o.version++
}

func (o *output) progress() (progressReport, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.latest, o.version
}

// maxProgressMessage bounds a progress line, which is shown in a table
// cell and stored in every progress event.
const maxProgressMessage = 200

type putResult struct {
	ref tasktype.ResultRef
	err error
}

func (o *output) Create(name, contentType string) (io.Writer, error) {
	if o.file != nil {
		return nil, errors.New("create result: already created")
	}
	pr, pw := io.Pipe()
	o.done = make(chan putResult, 1)
	o.name, o.contentType = name, contentType
	o.file = &tee{pipe: pw}
	// The spool is unlinked at once: it holds the file only while this
	// attempt does, and no crash can leave it behind. Without one (no
	// room, no temporary directory) the upload is the only copy, as it
	// was before spooling.
	if f, err := os.CreateTemp("", "otj-result-*"); err == nil {
		_ = os.Remove(f.Name())
		o.file.spool = f
	}
	go func() {
		ref, err := o.store.Put(o.ctx, o.object, name, contentType, pr)
		// Unblock a handler still writing if the store gave up.
		pr.CloseWithError(fmt.Errorf("result store: %w", errOrClosed(err)))
		o.done <- putResult{ref, err}
	}()
	return o.file, nil
}

// tee writes the handler's file to the upload's pipe and to the spool.
// Once the store has stopped answering, it goes on with the spool alone.
type tee struct {
	pipe    *io.PipeWriter
	pipeErr error    // why the upload stopped taking the file
	spool   *os.File // nil once it could not be written
	size    int64    // bytes in the spool
}

func (t *tee) Write(p []byte) (int, error) {
	if t.spool != nil {
		if _, err := t.spool.Write(p); err != nil {
			t.closeSpool()
		} else {
			t.size += int64(len(p))
		}
	}
	if t.pipeErr == nil {
		if _, err := t.pipe.Write(p); err != nil {
			t.pipeErr = err
		}
	}
	if t.pipeErr != nil && (t.spool == nil || !errors.Is(t.pipeErr, tasktype.ErrUnavailable)) {
		return 0, t.pipeErr
	}
	return len(p), nil
}

func (t *tee) closeSpool() {
	if t.spool != nil {
		_ = t.spool.Close()
		t.spool = nil
	}
}

// finish ends the file: stored if the handler succeeded, discarded if not.
func (o *output) finish(handlerErr error) (*tasktype.ResultRef, error) {
	if o.file == nil {
		return nil, nil
	}
	defer o.file.closeSpool()
	if handlerErr != nil {
		select {
		case r := <-o.done:
			o.failed = r.err // the store gave up first
		default:
			o.file.pipe.CloseWithError(handlerErr)
			<-o.done
		}
		return nil, nil
	}
	o.file.pipe.Close()
	r := <-o.done
	giveUp := time.Now().Add(o.retryFor)
	for errors.Is(r.err, tasktype.ErrUnavailable) && o.file.spool != nil && time.Now().Before(giveUp) {
		// The lease is renewed meanwhile (see keepLease), and the
		// heartbeats go on: a cancel still stops this.
		if clock.Sleep(o.ctx, time.Second); o.ctx.Err() != nil {
			break
		}
		r.ref, r.err = o.store.Put(o.ctx, o.object, o.name, o.contentType, io.NewSectionReader(o.file.spool, 0, o.file.size))
	}
	if r.err != nil {
		o.failed = r.err
		return nil, r.err
	}
	return &r.ref, nil
}

// storeDown says the attempt's upload failed because the result store
// could not be reached. Called after finish.
func (o *output) storeDown() bool { return errors.Is(o.failed, tasktype.ErrUnavailable) }

func errOrClosed(err error) error {
	if err == nil {
		return io.ErrClosedPipe
	}
	return err
}
