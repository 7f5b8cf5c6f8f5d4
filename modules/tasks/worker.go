package tasks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"time"
)

// WorkerConfig configures a Worker. Zero fields take the defaults below.
type WorkerConfig struct {
	Queue    Queue       // required
	Events   EventLog    // required
	Results  ResultStore // required
	Registry *Registry   // required

	// Concurrency is how many jobs run at once. Default 4.
	Concurrency int
	// ExtendEvery is how often a running job's lease is renewed. It must
	// be well under the broker's visibility timeout. Default 5s.
	ExtendEvery time.Duration
	// ShutdownGrace is how long running jobs may take to finish once the
	// worker is told to stop; jobs still running then are cancelled and
	// handed back to the queue. Default 20s.
	ShutdownGrace time.Duration
	// StoreTimeout bounds each event write and ack around a job. They
	// run even while the worker shuts down. Default 10s.
	StoreTimeout time.Duration
	// Name identifies this worker in events and logs. Default host:pid.
	Name   string
	Logger *slog.Logger
	Now    func() time.Time
}

func (c *WorkerConfig) setDefaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.ExtendEvery <= 0 {
		c.ExtendEvery = 5 * time.Second
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 20 * time.Second
	}
	if c.StoreTimeout <= 0 {
		c.StoreTimeout = 10 * time.Second
	}
	if c.Name == "" {
		host, _ := os.Hostname()
		c.Name = host + ":" + strconv.Itoa(os.Getpid())
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

func (c *WorkerConfig) validate() error {
	var errs []error
	if c.Queue == nil {
		errs = append(errs, errors.New("config: Queue is required"))
	}
	if c.Events == nil {
		errs = append(errs, errors.New("config: Events is required"))
	}
	if c.Results == nil {
		errs = append(errs, errors.New("config: Results is required"))
	}
	if c.Registry == nil {
		errs = append(errs, errors.New("config: Registry is required"))
	}
	return errors.Join(errs...)
}

// Worker takes jobs from a Queue and runs their handlers, recording every
// state change as an event. A job is acked only after its outcome event is
// stored, so a worker that dies at any point leaves the job to be
// delivered again.
type Worker struct {
	cfg WorkerConfig
	log *slog.Logger
}

// NewWorker checks cfg and returns a Worker ready to Run.
func NewWorker(cfg WorkerConfig) (*Worker, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("new worker: %w", err)
	}
	return &Worker{cfg: cfg, log: cfg.Logger.With("worker", cfg.Name)}, nil
}

// Run takes and runs jobs until ctx ends, then stops taking jobs, gives
// running ones ShutdownGrace to finish, cancels the rest and hands them
// back to the queue. It returns when every job goroutine has ended.
func (w *Worker) Run(ctx context.Context) error {
	// Jobs outlive ctx by the grace period, so their context is detached
	// from it and cancelled separately.
	jobCtx, cancelJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelJobs()

	w.log.InfoContext(ctx, "worker started", "concurrency", w.cfg.Concurrency, "types", w.cfg.Registry.Types())
	slots := make(chan struct{}, w.cfg.Concurrency)
	var wg sync.WaitGroup
	for ctx.Err() == nil {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		d, err := w.cfg.Queue.Next(ctx)
		if err != nil {
			<-slots
			if ctx.Err() != nil {
				break
			}
			w.log.WarnContext(ctx, "fetch failed; retrying", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			w.process(jobCtx, d)
		}()
	}

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	grace := time.NewTimer(w.cfg.ShutdownGrace)
	defer grace.Stop()
	select {
	case <-done:
		w.log.Info("worker stopped")
		return nil
	case <-grace.C:
	}
	w.log.Warn("shutdown grace over; cancelling running jobs", "grace", w.cfg.ShutdownGrace)
	cancelJobs()
	<-done
	w.log.Info("worker stopped")
	return nil
}

func (w *Worker) process(ctx context.Context, d Delivery) {
	job, attempt := d.Job(), d.Attempt()
	log := w.log.With("job_id", job.ID, "job_type", job.Type, "user_id", job.UserID, "attempt", attempt)
	// Writes before the handler runs get one bounded context; those after
	// it get another (in finish), since the handler may take any time.
	bctx, cancel := w.storeContext(ctx)
	defer cancel()

	h, ok := w.cfg.Registry.Lookup(job.Type)
	if !ok {
		// Nothing on this worker can run it; record the failure rather
		// than let it bounce between workers forever.
		w.finish(ctx, log, d, w.event(job, attempt, EventFailed, func(e *Event) {
			e.Error = fmt.Sprintf("no handler registered for job type %q", job.Type)
		}))
		return
	}
	if prior, err := w.cfg.Events.Outcome(bctx, job); err != nil {
		log.WarnContext(bctx, "outcome check failed; leaving job for redelivery", "err", err)
		return
	} else if prior != nil {
		// Ran to an outcome before, but the ack was lost: don't run twice.
		log.InfoContext(bctx, "job already has an outcome; acking redelivery", "outcome", prior.Kind)
		if err := d.Ack(bctx); err != nil {
			log.WarnContext(bctx, "ack failed", "err", err)
		}
		return
	}
	if _, err := w.cfg.Events.Append(bctx, w.event(job, attempt, EventStarted, func(e *Event) { e.Worker = w.cfg.Name })); err != nil {
		log.WarnContext(bctx, "could not record start; leaving job for redelivery", "err", err)
		return
	}

	start := w.cfg.Now()
	stopExtend := w.keepLeased(ctx, log, d)
	res, ref, err := w.run(ctx, log, h, job)
	stopExtend()

	if err != nil && ctx.Err() != nil {
		log.WarnContext(ctx, "job cancelled by shutdown; handing it back", "err", err)
		rctx, cancel := w.storeContext(ctx)
		defer cancel()
		if rerr := d.Release(rctx); rerr != nil {
			log.WarnContext(rctx, "release failed; the broker will redeliver after its timeout", "err", rerr)
		}
		return
	}
	var outcome Event
	if err != nil {
		log.WarnContext(ctx, "job failed", "err", err, "duration", w.cfg.Now().Sub(start))
		outcome = w.event(job, attempt, EventFailed, func(e *Event) { e.Error = err.Error() })
	} else {
		log.InfoContext(ctx, "job succeeded", "duration", w.cfg.Now().Sub(start), "summary", res.Summary)
		outcome = w.event(job, attempt, EventSucceeded, func(e *Event) { e.Result = ref; e.Summary = res.Summary })
	}
	w.finish(ctx, log, d, outcome)
}

// storeContext bounds event writes and acks. It is detached from ctx's
// cancellation so that a job finishing during shutdown is still recorded.
func (w *Worker) storeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), w.cfg.StoreTimeout)
}

// finish stores the outcome, then acks: in that order, so that a crash
// between the two repeats the job rather than losing its outcome.
func (w *Worker) finish(ctx context.Context, log *slog.Logger, d Delivery, outcome Event) {
	ctx, cancel := w.storeContext(ctx)
	defer cancel()
	if _, err := w.cfg.Events.Append(ctx, outcome); err != nil {
		log.ErrorContext(ctx, "could not record outcome; leaving job for redelivery", "outcome", outcome.Kind, "err", err)
		return
	}
	if err := d.Ack(ctx); err != nil {
		log.WarnContext(ctx, "ack failed; the redelivery will find the outcome and be dropped", "err", err)
	}
}

func (w *Worker) event(job Job, attempt int, kind EventKind, fill func(*Event)) Event {
	e := Event{
		ID:      eventID(job.ID, attempt, kind),
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

// keepLeased renews the delivery's lease until the returned func is called.
func (w *Worker) keepLeased(ctx context.Context, log *slog.Logger, d Delivery) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
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
				if err := d.Extend(ctx); err != nil && ctx.Err() == nil {
					log.WarnContext(ctx, "lease renewal failed", "err", err)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// run calls the handler, turning a panic into an error so that one bad job
// fails on its own instead of taking the worker down.
func (w *Worker) run(ctx context.Context, log *slog.Logger, h HandlerFunc, job Job) (res Result, ref *ResultRef, err error) {
	out := &output{ctx: ctx, store: w.cfg.Results, object: job.ID}
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
	}()
	res, err = h(ctx, job, out)
	return res, nil, err
}

// output streams a handler's result file into the ResultStore through a
// pipe, so that a file of any size passes through a fixed-size buffer.
type output struct {
	ctx    context.Context
	store  ResultStore
	object string

	pw   *io.PipeWriter
	done chan putResult
}

type putResult struct {
	ref ResultRef
	err error
}

func (o *output) Create(name, contentType string) (io.Writer, error) {
	if o.pw != nil {
		return nil, errors.New("create result: already created")
	}
	pr, pw := io.Pipe()
	o.pw, o.done = pw, make(chan putResult, 1)
	go func() {
		ref, err := o.store.Put(o.ctx, o.object, name, contentType, pr)
		// Unblock a handler still writing if the store gave up.
		pr.CloseWithError(fmt.Errorf("result store: %w", errOrClosed(err)))
		o.done <- putResult{ref, err}
	}()
	return pw, nil
}

// finish ends the file: stored if the handler succeeded, discarded if not.
func (o *output) finish(handlerErr error) (*ResultRef, error) {
	if o.pw == nil {
		return nil, nil
	}
	if handlerErr != nil {
		o.pw.CloseWithError(handlerErr)
		<-o.done
		return nil, nil
	}
	o.pw.Close()
	r := <-o.done
	if r.err != nil {
		return nil, r.err
	}
	return &r.ref, nil
}

func errOrClosed(err error) error {
	if err == nil {
		return io.ErrClosedPipe
	}
	return err
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
