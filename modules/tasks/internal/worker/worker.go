// Package worker is the task system's worker engine: it takes work items
// from a queue, runs their handlers, renews their leases, and records
// every state change as an event in the log.
package worker

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
	"sync/atomic"
	"time"

	"github.com/nats-io/nuid"
	"github.com/otjhelper/otj/modules/tasks/internal/clock"
	"github.com/otjhelper/otj/modules/tasks/taskdriver"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// Config configures a Worker. Zero fields take the defaults below.
type Config struct {
	Queue    taskdriver.Queue       // required by Run; RunInline does without
	Events   taskdriver.EventLog    // required
	Results  taskdriver.ResultStore // required
	Registry Handlers               // required

	// Concurrency is how many jobs run at once. Default 4.
	Concurrency int
	// ExtendEvery is how often a running job's lease is renewed and its
	// state checked for a cancel. It must be well under the broker's
	// visibility timeout, and bounds how long a cancel takes to reach a
	// running job. Default 1s.
	ExtendEvery time.Duration
	// ShutdownGrace is how long running jobs may take to finish once the
	// worker is told to stop; jobs still running then are cancelled and
	// handed back to the queue. Default 20s.
	ShutdownGrace time.Duration
	// StoreTimeout bounds each event write and ack around a job. They
	// run even while the worker shuts down. Default 10s.
	StoreTimeout time.Duration
	// OutcomeRetry is how long a finished job keeps trying to record its
	// outcome while the broker cannot be reached, so that a short outage
	// does not throw away finished work. Default 1m.
	OutcomeRetry time.Duration
	// ResultKeep is how many results of each job type a user keeps:
	// once a job's result and outcome are stored, the results of the
	// user's older jobs of that type beyond the newest ResultKeep are
	// deleted, so that a user who makes many reports does not fill the
	// store. 0 keeps every result until the store expires it.
	ResultKeep int
	// ResultTTL is how long the store keeps results (it expires them by
	// itself): pruning looks back no further, as older results are gone.
	// 0 looks back to the start of the log.
	ResultTTL time.Duration
	// Succeeded finds a user's earlier results; required with ResultKeep.
	Succeeded taskdriver.SucceededLog
	// StoreFullMessage is the sentence a job's owner sees when its result
	// could not be stored because the result store is full. The app
	// says how long results are kept and which setting bounds the store.
	StoreFullMessage string
	// Name identifies this worker in events and logs. Default host:pid.
	Name   string
	Logger *slog.Logger
	Now    func() time.Time
}

func (c *Config) setDefaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.ExtendEvery <= 0 {
		c.ExtendEvery = time.Second
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 20 * time.Second
	}
	if c.StoreTimeout <= 0 {
		c.StoreTimeout = 10 * time.Second
	}
	if c.OutcomeRetry <= 0 {
		c.OutcomeRetry = time.Minute
	}
	if c.Name == "" {
		c.Name = ProcessName()
	}
	if c.StoreFullMessage == "" {
		c.StoreFullMessage = "There is no room to store this result right now. Please try again later; if it keeps happening, ask the operator to make room."
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

func (c *Config) validate() error {
	var errs []error
	if c.Events == nil {
		errs = append(errs, errors.New("config: Events is required"))
	}
	if c.Results == nil {
		errs = append(errs, errors.New("config: Results is required"))
	}
	if c.Registry == nil {
		errs = append(errs, errors.New("config: Registry is required"))
	}
	if c.ResultKeep > 0 && c.Succeeded == nil {
		errs = append(errs, errors.New("config: Succeeded is required with ResultKeep"))
	}
	return errors.Join(errs...)
}

// Handlers finds a job type's handler and policy: the root package's
// Registry, which modules fill with their job types.
type Handlers interface {
	// Lookup returns the handler for jobType and its policy, defaults
	// filled.
	Lookup(jobType string) (tasktype.HandlerFunc, tasktype.Policy, bool)
	// Types lists the registered job types, sorted.
	Types() []string
}

// ProcessName is this process as workers name it in events and logs:
// host:pid, which an operator can find and a test can predict.
func ProcessName() string {
	host, _ := os.Hostname()
	return host + ":" + strconv.Itoa(os.Getpid())
}

// Worker takes jobs from a Queue and runs their handlers, recording every
// state change as an event. A job is acked only after its outcome event is
// stored, so a worker that dies at any point leaves the job to be
// delivered again.
type Worker struct {
	cfg Config
	log *slog.Logger
	// running holds the attempts this worker is running, by job id and
	// attempt, so that a redelivery of one of them is not taken for the
	// loss of this worker.
	running sync.Map
}

type attemptKey struct {
	job     string
	attempt int
}

// NewWorker checks cfg and returns a Worker ready to Run.
func New(cfg Config) (*Worker, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("new worker: %w", err)
	}
	return &Worker{cfg: cfg, log: cfg.Logger.With("worker", cfg.Name)}, nil
}

// Run takes and runs jobs until ctx ends, then stops taking jobs, gives
// running ones ShutdownGrace to finish, cancels the rest and hands them
// back to the queue. It returns when every job has ended, or, if a
// handler ignores its cancelled context, 2×StoreTimeout after the cancel.
func (w *Worker) Run(ctx context.Context) error {
	if w.cfg.Queue == nil {
		return errors.New("run worker: config: Queue is required")
	}
	// Jobs outlive ctx by the grace period, so their context is detached
	// from it and cancelled separately.
	jobCtx, cancelJobs := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelJobs(nil)

	w.log.InfoContext(ctx, "worker started", "concurrency", w.cfg.Concurrency, "types", w.cfg.Registry.Types())
	slots := make(chan struct{}, w.cfg.Concurrency)
	recording := make(chan struct{}, w.cfg.Concurrency)
	var wg sync.WaitGroup
	var running atomic.Int32
	start := func(d taskdriver.Delivery) {
		wg.Add(1)
		running.Add(1)
		go func() {
			defer wg.Done()
			defer running.Add(-1)
			free := sync.OnceFunc(func() { <-slots })
			defer free()
			w.process(jobCtx, d, func() {
				// The handler is done: its slot goes to the next job
				// while this one's outcome is stored, and at most
				// Concurrency outcomes are stored at once.
				recording <- struct{}{}
				free()
			}, func() { <-recording })
		}()
	}
	// A queue that hands out batches is pulled by a few fetchers at once,
	// so that slots freed during one pull's round trip are filled by the
	// next pull rather than after it.
	fetchers := 1
	if _, ok := w.cfg.Queue.(taskdriver.BatchQueue); ok {
		fetchers = min(max(w.cfg.Concurrency/2, 1), maxFetchers)
	}
	var outage fetchOutage
	var fetching sync.WaitGroup
	for range fetchers {
		fetching.Go(func() { w.fetch(ctx, slots, &outage, start) })
	}
	fetching.Wait()

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
	w.log.Warn("shutdown grace over; cancelling running jobs", "grace", w.cfg.ShutdownGrace, "running", running.Load())
	cancelJobs(errShutdown)
	// Cancelled jobs hand themselves back within a store step or two. A
	// handler that ignores its context cannot be stopped from here: stop
	// waiting for it, so that the process can exit; without heartbeats its
	// job goes to another worker once its lease runs out.
	hard := time.NewTimer(2 * w.cfg.StoreTimeout)
	defer hard.Stop()
	select {
	case <-done:
		w.log.Info("worker stopped")
	case <-hard.C:
		w.log.Error("worker stopped with jobs still running: their handlers ignore cancellation; the jobs will go to another worker when their lease runs out",
			"running", running.Load())
	}
	return nil
}

// maxFetchers bounds the pulls a worker keeps in flight.
const maxFetchers = 4

// fetch takes jobs from the queue into free slots and starts them, until
// ctx ends.
func (w *Worker) fetch(ctx context.Context, slots chan struct{}, outage *fetchOutage, start func(taskdriver.Delivery)) {
	for ctx.Err() == nil {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		free := 1 + takeFree(slots)
		ds, err := w.next(ctx, free)
		for range free - len(ds) {
			<-slots
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			outage.failed(ctx, w.log, err)
			clock.Sleep(ctx, time.Second)
			continue
		}
		outage.over(ctx, w.log)
		for _, d := range ds {
			start(d)
		}
	}
}

// fetchOutage logs an outage when it starts and when it ends, not once a
// second per fetcher while it lasts.
type fetchOutage struct {
	mu      sync.Mutex
	failing int // fetches failed in a row
}

func (o *fetchOutage) failed(ctx context.Context, log *slog.Logger, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failing == 0 {
		log.WarnContext(ctx, "cannot fetch jobs; retrying every second", "err", err)
	} else {
		log.DebugContext(ctx, "fetch failed", "err", err)
	}
	o.failing++
}

func (o *fetchOutage) over(ctx context.Context, log *slog.Logger) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failing > 0 {
		log.InfoContext(ctx, "fetching jobs again", "failed_fetches", o.failing)
		o.failing = 0
	}
}

// takeFree takes every slot that is free right now and returns how many.
func takeFree(slots chan struct{}) int {
	n := 0
	for {
		select {
		case slots <- struct{}{}:
			n++
		default:
			return n
		}
	}
}

// next takes up to n jobs from the queue: in one round trip if the queue
// can hand out several.
func (w *Worker) next(ctx context.Context, n int) ([]taskdriver.Delivery, error) {
	if bq, ok := w.cfg.Queue.(taskdriver.BatchQueue); ok && n > 1 {
		return bq.NextBatch(ctx, n)
	}
	d, err := w.cfg.Queue.Next(ctx)
	if err != nil {
		return nil, err
	}
	return []taskdriver.Delivery{d}, nil
}

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
func (w *Worker) process(ctx context.Context, d taskdriver.Delivery, handedOff, recorded func()) {
	item := d.Item()
	job := item.Job()
	log := w.log.With("job_id", job.ID, "job_type", job.Type, "user_id", job.UserID, "attempt", job.Attempt)
	h, policy, registered := w.cfg.Registry.Lookup(job.Type)
	maxAttempts := item.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = item.Attempt + policy.MaxAttempts
		if !registered {
			maxAttempts = job.Attempt
		}
	}

	started, ok := w.claim(ctx, log, d, item, maxAttempts, registered, policy)
	if !ok {
		return
	}
	key := attemptKey{job.ID, job.Attempt}
	w.running.Store(key, struct{}{})
	defer w.running.Delete(key)
	done := false
	defer func() {
		if !done {
			handedOff() // the handler panicked past run's recover
		}
		recorded()
	}()

	// The attempt's context ends on shutdown (after the grace period), on
	// cancel or takeover (seen by watch), or at the policy's timeout.
	runCtx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	runCtx, stopTimer := context.WithTimeoutCause(runCtx, policy.Timeout, errTimedOut)
	defer stopTimer()
	start := w.cfg.Now()
	out := &output{ctx: runCtx, store: w.cfg.Results, object: tasktype.ResultObjectName(job.ID, job.Attempt)}
	stopWatch := w.watch(runCtx, log, d, started, out, stopRun)
	res, ref, err := w.run(runCtx, log, h, job, out)
	// From here on, the job's newest event is the last one this worker
	// wrote: its start or its latest progress.
	mine := stopWatch()
	cause := context.Cause(runCtx)
	took := w.cfg.Now().Sub(start)
	handedOff()
	done = true

	switch {
	case errors.Is(cause, errCancelled):
		log.InfoContext(ctx, "job cancelled while running", "duration", took)
		w.discard(ctx, log, ref)
		w.ack(ctx, log, d)
		return
	case errors.Is(cause, errLeaseLost):
		// Whoever took the job over decided its fate; this attempt's
		// result, if any, is not the one on record.
		log.WarnContext(ctx, "job was taken over while running; dropping this attempt's result", "duration", took)
		w.discard(ctx, log, ref)
		return
	case err != nil && errors.Is(cause, errShutdown):
		log.WarnContext(ctx, "job interrupted by shutdown; handing it back", "err", err)
		rel := w.event(job, tasktype.EventReleased, job.Attempt, func(e *tasktype.Event) { e.Worker = w.cfg.Name })
		if w.record(ctx, log, d, rel, mine, false) {
			w.release(ctx, log, d)
		}
		return
	}

	var outcome tasktype.Event
	switch {
	case err == nil:
		log.InfoContext(ctx, "job succeeded", "duration", took, "summary", res.Summary)
		outcome = w.event(job, tasktype.EventSucceeded, job.Attempt, func(e *tasktype.Event) { e.Result = ref; e.Summary = res.Summary })
	default:
		if errors.Is(cause, errTimedOut) {
			err = tasktype.UserMessage(fmt.Errorf("timed out after %s: %w", policy.Timeout, err),
				"It took longer than it is allowed to, and was stopped.")
		}
		outcome = w.failure(job, job.Attempt, maxAttempts, policy, err)
		log.WarnContext(ctx, "job attempt failed", "err", err, "duration", took, "outcome", outcome.Kind, "retry_at", outcome.RetryAt)
	}
	if !w.record(ctx, log, d, outcome, mine, true) {
		w.discard(ctx, log, ref)
		return
	}
	if outcome.Kind == tasktype.EventSucceeded && ref != nil {
		w.prune(ctx, log, job)
	}
}

// prune deletes the results of the user's older jobs of job's type
// beyond the newest ResultKeep, found from the log's succeeded events
// within ResultTTL (older results have expired). It runs after the job's
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
	events, err := w.cfg.Succeeded.Succeeded(ctx, job.UserID, job.Type, since)
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
	if len(objects) <= w.cfg.ResultKeep {
		return
	}
	old := objects[:len(objects)-w.cfg.ResultKeep]
	deleted := 0
	for _, object := range old {
		if err := w.cfg.Results.Delete(ctx, object); err != nil {
			log.WarnContext(ctx, "could not delete an older result", "object", object, "err", err)
			continue
		}
		deleted++
	}
	log.DebugContext(ctx, "deleted older results", "kept", w.cfg.ResultKeep, "deleted", deleted)
}

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
func (w *Worker) record(ctx context.Context, log *slog.Logger, d taskdriver.Delivery, e tasktype.Event, after uint64, ack bool) bool {
	err := w.appendOutcome(ctx, log, d, e, after)
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

// appendOutcome appends e, trying again for up to OutcomeRetry while the
// broker is unreachable and renewing the lease between tries: the work is
// done, and a redelivery would do it all again.
func (w *Worker) appendOutcome(ctx context.Context, log *slog.Logger, d taskdriver.Delivery, e tasktype.Event, after uint64) error {
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
		if err := d.Extend(actx); err != nil {
			log.DebugContext(actx, "lease renewal failed", "err", err)
		}
		cancel()
	}
}

func (w *Worker) ack(ctx context.Context, log *slog.Logger, d taskdriver.Delivery) {
	ctx, cancel := w.storeContext(ctx)
	defer cancel()
	if err := d.Ack(ctx); err != nil {
		log.WarnContext(ctx, "ack failed; the redelivery will be found stale and dropped", "err", err)
	}
}

func (w *Worker) release(ctx context.Context, log *slog.Logger, d taskdriver.Delivery) {
	ctx, cancel := w.storeContext(ctx)
	defer cancel()
	if err := d.Release(ctx); err != nil {
		log.WarnContext(ctx, "release failed; the broker will redeliver after its timeout", "err", err)
	}
}

// discard deletes a result file that will not be on record.
func (w *Worker) discard(ctx context.Context, log *slog.Logger, ref *tasktype.ResultRef) {
	if ref == nil {
		return
	}
	ctx, cancel := w.storeContext(ctx)
	defer cancel()
	if err := w.cfg.Results.Delete(ctx, ref.Object); err != nil {
		log.WarnContext(ctx, "could not delete unused result", "object", ref.Object, "err", err)
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

// watch renews the delivery's lease every ExtendEvery, and records the
// handler's latest progress report, if it made a new one, as a progress
// event. It also makes sure the job is still this attempt's: if it was
// cancelled, or another worker took it over, it ends the attempt's
// context. The returned func stops it and returns the sequence of the
// job's newest event written by this worker.
func (w *Worker) watch(ctx context.Context, log *slog.Logger, d taskdriver.Delivery, started tasktype.Event, out *output, stopRun context.CancelCauseFunc) (stop func() uint64) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	mine := started.Seq // written only by the goroutine until done
	go func() {
		defer close(done)
		t := time.NewTicker(w.cfg.ExtendEvery)
		defer t.Stop()
		reported := 0 // version of the progress last recorded
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := d.Extend(ctx); err != nil && ctx.Err() == nil {
				log.WarnContext(ctx, "lease renewal failed", "err", err)
			}
			if p, v := out.progress(); v != reported {
				e := w.event(started.Job(), tasktype.EventProgress, started.Attempt, func(e *tasktype.Event) {
					e.Percent, e.Message, e.Worker = p.percent, p.message, w.cfg.Name
				})
				seq, err := w.cfg.Events.Append(ctx, e, mine)
				if err == nil {
					mine, reported = seq, v
					continue // the job is still ours: the append proved it
				}
				if !errors.Is(err, tasktype.ErrConflict) && ctx.Err() == nil {
					log.WarnContext(ctx, "could not record progress", "err", err)
				}
			}
			last, err := w.cfg.Events.Last(ctx, started.UserID, started.JobID)
			if err != nil {
				if ctx.Err() == nil {
					log.WarnContext(ctx, "could not check job state", "err", err)
				}
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
	res, err = h(ctx, job, out)
	return res, nil, err
}

// output streams a handler's result file into the ResultStore through a
// pipe, so that a file of any size passes through a fixed-size buffer.
type output struct {
	ctx    context.Context
	store  taskdriver.ResultStore
	object string

	pw   *io.PipeWriter
	done chan putResult

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
func (o *output) finish(handlerErr error) (*tasktype.ResultRef, error) {
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
