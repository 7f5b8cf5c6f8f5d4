package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/modules/tasks/internal/control"
	"github.com/otjhelper/otj/modules/tasks/internal/driver"
	"github.com/otjhelper/otj/modules/tasks/internal/projection"
	"github.com/otjhelper/otj/modules/tasks/internal/worker"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// Config configures a Client. Every Client has the same shape: a
// database, the log and a transport; what a process then does with it
// (serve pages, run workers, run the projection) is a matter of which
// methods it calls.
type Config struct {
	// DB holds task_result and projection_offset. Required.
	DB *bun.DB
	// Log is the event log, its stream and the result store: the
	// JetStream driver (jetstream.Broker). Required.
	Log driver.Log
	// Transport carries new jobs to workers: the JetStream driver, or
	// the Redis one (redisbroker.Broker). Required.
	Transport driver.Transport
	// Registry holds the job types this process runs: RunWorker,
	// RunInline and RunInRequest run them, and Kinds lists them. Default
	// an empty one.
	Registry *Registry
	// Retention is how long results are kept and how many of each job
	// type a user keeps (RESULT_TTL, RESULT_KEEP): workers delete a
	// user's older results beyond Keep once a newer one is stored, or,
	// with PruneOnProjection, the projection does.
	Retention tasktype.Retention
	// PruneOnProjection moves that deleting from the workers to
	// RunProjection, which deletes a user's older results after it
	// applies a newer success of theirs, and the result files of a job's
	// attempts that did not win once it applies the job's end: for
	// workers whose broker role may not delete from the results bucket
	// (a purge there takes any filter, so the right to purge one file is
	// the right to purge all).
	PruneOnProjection bool
	// TaskRetention is how long a finished task is kept (TASK_RETENTION):
	// RunProjection then removes its events, result files and row
	// (PruneFinished), which needs a Log that may purge. Zero keeps
	// every task. It is measured by Worker.Now, the Client's clock.
	TaskRetention time.Duration
	// Worker says how this process runs jobs.
	Worker WorkerConfig
	// RunInRequest runs a job in the enqueuing call when the Transport
	// stored it but could not send its work item on (the Redis driver,
	// while Redis is down), instead of leaving it in the log until the
	// driver can. Only with a Transport that offers it
	// (Capabilities.InRequestFallback).
	RunInRequest bool
	// Observe, when set, is called with each event this process's
	// projection applies, in stream order, once the transaction holding
	// it has committed: what readers of task_result can see from then
	// on. It is for measurements (app bench) and must be quick.
	Observe func(tasktype.Event)
	// ProjectFrom, when set, makes this Client's projection skip the
	// events up to that sequence, whatever position it has stored: for
	// measurements against a server holding other runs' events.
	ProjectFrom uint64
	// Observer, when set, is told what this process does with jobs: the
	// enqueues, cancels and retries through this Client, and every
	// attempt its workers (RunWorker, RunInline) start and end. It is
	// for metrics (taskmetrics) and must be quick.
	Observer Observer
	Logger   *slog.Logger
}

// WorkerConfig says how a process runs jobs, on RunWorker's worker and
// for RunInline. Zero fields take the defaults.
type WorkerConfig struct {
	// Concurrency is how many jobs RunWorker runs at once. Default 4.
	Concurrency int
	// Lease is the lease this process was configured with (JOB_LEASE):
	// how long a running job may go without a heartbeat before another
	// worker takes it over. A queue that knows the lease in force
	// (on JetStream, the deployed consumer's) overrides it. Running jobs renew it five times a lease, so that a
	// slow heartbeat or two does not lose it.
	Lease time.Duration
	// ExtendEvery, when set, is how often a running job's lease is
	// renewed and its state checked for a cancel, in place of a fifth of
	// Lease. With neither set, 1s.
	ExtendEvery time.Duration
	// ShutdownGrace is how long running jobs may take to finish once
	// RunWorker's context ends; the rest are handed back. Default 20s.
	ShutdownGrace time.Duration
	// StoreFullMessage is the sentence a job's owner sees when its result
	// could not be stored because the result store is full.
	StoreFullMessage string
	// Name identifies RunWorker's worker in events and logs. Default
	// host:pid.
	Name string
	// Version is the build the worker runs, as its heartbeat tells
	// operators (Client.Workers).
	Version string
	// InlineName identifies the runner of RunInline and RunInRequest.
	// Default web-request@host:pid.
	InlineName string
	// StoreTimeout and OutcomeRetry bound the event writes around a job
	// and how long a finished job keeps trying to record its outcome
	// while the driver cannot be reached. Defaults 10s and 1m.
	StoreTimeout, OutcomeRetry time.Duration
	// Now is the worker's clock. Default time.Now.
	Now func() time.Time
}

// Client is the one door to the task system: enqueuing, cancelling and
// retrying jobs, reading tasks and their histories and results, and
// running the worker and the task_result projection. It is safe for
// concurrent use.
type Client struct {
	*Reader
	cfg     Config
	log     *slog.Logger
	proj    *projection.Projection
	caps    driver.Capabilities
	control *control.Control
	inline  *worker.Worker // runs RunInline's and RunInRequest's jobs
	pruner  *pruner        // nil unless PruneOnProjection
}

// NewClient checks cfg and returns a Client. With RunInRequest, it gives
// the Transport the runner of jobs it could not send on.
func NewClient(cfg Config) (*Client, error) {
	switch {
	case cfg.DB == nil:
		return nil, errors.New("new task client: DB is required")
	case cfg.Log == nil:
		return nil, errors.New("new task client: Log is required")
	case cfg.Transport == nil:
		return nil, errors.New("new task client: Transport is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Observer == nil {
		cfg.Observer = NopObserver{}
	}
	if cfg.Registry == nil {
		cfg.Registry = NewRegistry()
	}
	if cfg.Worker.InlineName == "" {
		cfg.Worker.InlineName = "web-request@" + tasktype.ProcessName()
	}
	c := &Client{
		cfg:     cfg,
		caps:    cfg.Transport.Capabilities(),
		log:     cfg.Logger,
		Reader:  NewReader(cfg.DB),
		proj:    projection.New(cfg.DB, cfg.Log, cfg.Logger),
		control: control.New(cfg.Log),
	}
	c.proj.From(cfg.ProjectFrom)
	if cfg.PruneOnProjection {
		c.pruner = newPruner(cfg.Log, cfg.Retention, cfg.Logger, c.now)
	}
	switch observe := cfg.Observe; {
	case c.pruner != nil && observe != nil:
		c.proj.Observe(func(e tasktype.Event) { observe(e); c.pruner.note(e) })
	case c.pruner != nil:
		c.proj.Observe(c.pruner.note)
	case observe != nil:
		c.proj.Observe(observe)
	}
	// The runner of jobs run where they are enqueued: no queue, no
	// concurrency of its own.
	inline, err := c.newWorker(nil, cfg.Worker.InlineName, nil)
	if err != nil {
		return nil, err
	}
	c.inline = inline
	if cfg.RunInRequest {
		if !c.caps.InRequestFallback {
			return nil, fmt.Errorf("new task client: RunInRequest: the transport %T cannot run jobs in the request", cfg.Transport)
		}
		cfg.Transport.SetRunInline(c.RunInline)
	}
	return c, nil
}

// newWorker is a worker over the Client's drivers and registry.
func (c *Client) newWorker(q driver.Queue, name string, paused func(jobType string) (bool, time.Time)) (*worker.Worker, error) {
	w := c.cfg.Worker
	lease := w.Lease
	if q != nil && q.Lease() > 0 {
		lease = q.Lease()
	}
	if every := w.ExtendEvery; every == 0 && lease > 0 {
		w.ExtendEvery = lease / 5
		if q != nil {
			c.log.Info("job lease in force", "lease", lease, "renew_every", w.ExtendEvery)
		}
	}
	keep := c.cfg.Retention.Keep
	if c.cfg.PruneOnProjection {
		keep = 0 // the projection prunes, and sweeps
	}
	return worker.New(worker.Config{
		Queue: q, Capabilities: c.caps, Events: c.cfg.Log, Results: c.cfg.Log, Registry: c.cfg.Registry,
		Concurrency: w.Concurrency, ExtendEvery: w.ExtendEvery, Lease: lease, ShutdownGrace: w.ShutdownGrace,
		StoreTimeout: w.StoreTimeout, OutcomeRetry: w.OutcomeRetry,
		ResultKeep: keep, ResultTTL: c.cfg.Retention.TTL, Succeeded: c.cfg.Log, LeaveDeletes: c.cfg.PruneOnProjection,
		StoreFullMessage: w.StoreFullMessage, Name: name, Logger: c.log, Now: w.Now, Paused: paused,
		Observer: c.cfg.Observer,
		// Handlers reach the task system through the client running them.
		JobContext: c.withClient,
	})
}

// clientKey keys the Client on the contexts of the jobs it runs.
type clientKey struct{}

// withClient is ctx carrying c, for ClientFromContext.
func (c *Client) withClient(ctx context.Context) context.Context {
	return context.WithValue(ctx, clientKey{}, c)
}

// ClientFromContext is the Client whose worker runs the job whose
// context ctx is (RunWorker, RunInline or RunInRequest); false outside a
// job. A handler that reads the task system, such as the account
// export, finds its client here: the client is made with the registry
// the handler is registered in, so it cannot be handed over at
// registration.
func ClientFromContext(ctx context.Context) (*Client, bool) {
	c, ok := ctx.Value(clientKey{}).(*Client)
	return c, ok
}

// Kinds are the kinds of work the Client's registry describes, in the
// order they were described (Registry.Describe); none without a
// registry.
func (c *Client) Kinds() []tasktype.Kind {
	if c.cfg.Registry == nil {
		return nil
	}
	return c.cfg.Registry.Kinds()
}

// Enqueue asks for a job to be run. On success the job is stored and will
// run; on error nothing was stored. Errors match tasktype.ErrUnavailable,
// ErrInvalidJob or ErrPayloadTooLarge.
func (c *Client) Enqueue(ctx context.Context, r tasktype.EnqueueRequest) (tasktype.Job, error) {
	job, err := c.cfg.Transport.Enqueue(ctx, r)
	if err == nil {
		c.cfg.Observer.Enqueued(job.Type, 1)
	}
	return job, err
}

// EnqueueBatch enqueues every request and returns their jobs in order,
// in one call to the driver if it takes batches. On error it returns the
// jobs stored so far, in order of their requests; the rest may or may
// not be stored.
func (c *Client) EnqueueBatch(ctx context.Context, rs []tasktype.EnqueueRequest) ([]tasktype.Job, error) {
	jobs, err := c.cfg.Transport.EnqueueBatch(ctx, rs)
	c.observeEnqueued(jobs)
	return jobs, err
}

// observeEnqueued tells the Observer of stored jobs, one call per run
// of jobs of one type, as a batch is usually all of one type.
func (c *Client) observeEnqueued(jobs []tasktype.Job) {
	for i := 0; i < len(jobs); {
		j := i + 1
		for j < len(jobs) && jobs[j].Type == jobs[i].Type {
			j++
		}
		c.cfg.Observer.Enqueued(jobs[i].Type, j-i)
		i = j
	}
}

// Cancel cancels a pending, retrying or running job: a queued job never
// starts, and a running job's context is cancelled within a lease check.
// userID 0 means any owner (operators); otherwise another user's job is
// tasktype.ErrNotFound. by is tasktype.ByUser or ByOperator. It returns
// the cancelled event; a job in another state is tasktype.ErrWrongState.
func (c *Client) Cancel(ctx context.Context, userID int64, jobID, by string) (tasktype.Event, error) {
	e, err := c.control.Cancel(ctx, userID, jobID, by)
	if err == nil {
		c.cfg.Observer.Cancelled(e.JobType)
	}
	return e, err
}

// Retry runs a failed or cancelled job again, with its type's full
// allowance of attempts, keeping its history; userID and by as for
// Cancel. It returns the retried event, the new work item.
func (c *Client) Retry(ctx context.Context, userID int64, jobID, by string) (tasktype.Event, error) {
	e, err := c.control.Retry(ctx, userID, jobID, by)
	if err == nil {
		c.cfg.Observer.Retried(e.JobType)
	}
	return e, err
}

// CancelByOperator is Cancel of any user's job by an operator of the
// console, whose name (email address) the cancelled event carries.
func (c *Client) CancelByOperator(ctx context.Context, jobID, operator string) (tasktype.Event, error) {
	e, err := c.control.CancelByOperator(ctx, jobID, operator)
	if err == nil {
		c.cfg.Observer.Cancelled(e.JobType)
	}
	return e, err
}

// RetryByOperator is Retry of any user's job by an operator of the
// console, whose name the retried event carries.
func (c *Client) RetryByOperator(ctx context.Context, jobID, operator string) (tasktype.Event, error) {
	e, err := c.control.RetryByOperator(ctx, jobID, operator)
	if err == nil {
		c.cfg.Observer.Retried(e.JobType)
	}
	return e, err
}

// RecordResultRead records in the job's history that an operator is
// reading the result of another user's completed job
// (tasktype.EventResultRead), before it is served. The event changes no
// state. A job that is not completed is tasktype.ErrWrongState.
func (c *Client) RecordResultRead(ctx context.Context, jobID, operator string) (tasktype.Event, error) {
	return c.control.ResultRead(ctx, jobID, operator)
}

// History returns all the job's events in stream order, with the start
// of every attempt whose outcome carries it (tasktype.WithStarts), or
// tasktype.ErrNotFound. A userID of 0 matches the job whoever owns it.
func (c *Client) History(ctx context.Context, userID int64, jobID string) ([]tasktype.Event, error) {
	events, err := c.cfg.Log.History(ctx, userID, jobID)
	if err != nil {
		return nil, err
	}
	return tasktype.WithStarts(events), nil
}

// Last returns the job's newest event, or tasktype.ErrNotFound. A userID
// of 0 matches the job whoever owns it.
func (c *Client) Last(ctx context.Context, userID int64, jobID string) (tasktype.Event, error) {
	return c.cfg.Log.Last(ctx, userID, jobID)
}

// Open streams a stored result, with the size and digest the store
// recorded. A result that is not there is tasktype.ErrResultMissing.
func (c *Client) Open(ctx context.Context, object string) (*tasktype.StoredResult, error) {
	return c.cfg.Log.Open(ctx, object)
}

// Follow calls fn with the stored events after sequence from, in order,
// in batches, until ctx ends or fn returns an error, following new
// events as they come. fn must not keep the slice.
func (c *Client) Follow(ctx context.Context, from uint64, fn func([]tasktype.Event) error) error {
	return c.cfg.Log.Follow(ctx, from, fn)
}

// FollowUser calls fn with each of the user's events stored after
// sequence after, in order, until ctx ends or fn fails: what a live
// page follows. The log picks the user's events out by subject, never
// by a filter over everyone's events here.
func (c *Client) FollowUser(ctx context.Context, userID int64, after uint64, fn func(tasktype.Event) error) error {
	return c.cfg.Log.FollowUser(ctx, userID, after, fn)
}

// WaitOutcome blocks until job jobID of userID (0: whoever owns it) has
// ended, succeeded, failed or cancelled, and returns the event that ended
// it; or until ctx ends. It reads the log, not task_result, so it needs
// no projection running.
func (c *Client) WaitOutcome(ctx context.Context, userID int64, jobID string) (tasktype.Event, error) {
	last, err := c.Last(ctx, userID, jobID)
	if err != nil {
		return tasktype.Event{}, err
	}
	if !tasktype.StatusAfter(last.Kind).Active() {
		return last, nil
	}
	errEnded := errors.New("job ended")
	var outcome tasktype.Event
	err = c.cfg.Log.Follow(ctx, last.Seq, func(events []tasktype.Event) error {
		for _, e := range events {
			if e.JobID == jobID && (userID == 0 || e.UserID == userID) && !tasktype.StatusAfter(e.Kind).Active() {
				outcome = e
				return errEnded
			}
		}
		return nil
	})
	if errors.Is(err, errEnded) {
		return outcome, nil
	}
	return tasktype.Event{}, fmt.Errorf("wait for the outcome of task %s: %w", jobID, err)
}

// LastSeq is the stream sequence of the newest stored event.
func (c *Client) LastSeq(ctx context.Context) (uint64, error) {
	return c.cfg.Log.LastSeq(ctx)
}

// WaitFor blocks until this Client's projection (RunProjection, CatchUp)
// has applied the event at seq, or a later one, or ctx ends: a page after
// an enqueue then shows the task.
func (c *Client) WaitFor(ctx context.Context, seq uint64) error {
	return c.proj.WaitFor(ctx, seq)
}

// RunProjection keeps task_result in step with the event stream until
// ctx ends, starting again from the stored position after any error.
// Any number of processes may run it against one database.
//
// With a TaskRetention it also prunes finished tasks past it
// (PruneFinished), at start, for what aged out while no process ran, and
// then every tenth of the retention.
func (c *Client) RunProjection(ctx context.Context) error {
	ctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	if c.pruner != nil {
		wg.Go(func() { _ = c.pruner.run(ctx) })
	}
	if c.cfg.TaskRetention > 0 {
		wg.Go(func() { c.runRetention(ctx) })
	}
	return c.proj.Run(ctx)
}

// CatchUp applies every event stored when it is called to task_result,
// then returns: what an operator reads is then current even when no
// process runs the projection.
func (c *Client) CatchUp(ctx context.Context) error {
	if err := c.proj.CatchUp(ctx); err != nil {
		return fmt.Errorf("bring %s up to date: %w", ProjectionName, err)
	}
	return nil
}

// RebuildStats says what a Rebuild did.
type RebuildStats struct {
	// Events is how many events the replay read from the stream.
	Events int64
	// Seq is the stream sequence task_result has applied up to after it.
	Seq uint64
	// Rows is how many tasks task_result holds after it.
	Rows int64
	// Took is how long the whole rebuild took.
	Took time.Duration
}

// Rebuild recreates task_result from the event stream: it empties the
// table and its stored position, then replays every stored event into
// it. A projection running elsewhere on this database sees its stored
// position go back and replays alongside; each event is still applied
// once.
func (c *Client) Rebuild(ctx context.Context) (RebuildStats, error) {
	start := time.Now()
	if err := c.proj.Rebuild(ctx); err != nil {
		return RebuildStats{}, err
	}
	var st RebuildStats
	var err error
	if st.Events, err = c.proj.CatchUpCount(ctx); err != nil {
		return st, err
	}
	if st.Seq, err = c.proj.Offset(ctx); err != nil {
		return st, err
	}
	if st.Rows, err = c.store.Count(ctx); err != nil {
		return st, err
	}
	st.Took = time.Since(start)
	return st, nil
}

// StatusBefore returns the state job e.JobID was in just before its
// event e: for a cancel or retry, the state it changed from.
func (c *Client) StatusBefore(ctx context.Context, e tasktype.Event) (tasktype.Status, error) {
	h, err := c.History(ctx, 0, e.JobID)
	if err != nil {
		return "", err
	}
	for i := len(h) - 1; i > 0; i-- {
		if h[i].Seq == e.Seq {
			return tasktype.StatusAfter(h[i-1].Kind), nil
		}
	}
	return "", fmt.Errorf("event %d not in the history of job %s", e.Seq, e.JobID)
}

// Worker runs jobs from a queue of the Client's Transport (NewWorker).
type Worker struct {
	w      *worker.Worker
	c      *Client
	paused pauseSet
}

// NewWorker opens a queue on the Transport for a worker of this
// process: from then on the worker counts as joined, and on JetStream
// its lease must agree with the deployment's (jetstream.LeaseMismatchError).
// It runs nothing until Run.
func (c *Client) NewWorker(ctx context.Context) (*Worker, error) {
	q, err := c.cfg.Transport.Queue(ctx)
	if err != nil {
		return nil, fmt.Errorf("open worker queue: %w", err)
	}
	wk := &Worker{c: c}
	if wk.w, err = c.newWorker(q, c.cfg.Worker.Name, wk.paused.state); err != nil {
		return nil, err
	}
	return wk, nil
}

// Run takes jobs and runs them until ctx ends, then stops taking jobs,
// gives running ones ShutdownGrace to finish, cancels the rest and
// hands them back. It takes no job before it knows which job types are
// paused (Client.Pause), and follows pauses and resumes as they come.
// Meanwhile it keeps the worker's heartbeat in the log (Client.Workers),
// and removes it once the last job is done.
func (w *Worker) Run(ctx context.Context) error {
	beating, stop := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	loaded := make(chan struct{})
	wg.Go(func() { w.followPauses(beating, loaded) })
	select {
	case <-loaded:
	case <-ctx.Done():
		return nil
	}
	wg.Go(func() { w.beat(beating) })
	err := w.w.Run(ctx)
	stop()
	wg.Wait()
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.c.storeTimeout())
	defer cancel()
	if lerr := w.c.cfg.Log.Leave(lctx, w.w.Name()); lerr != nil {
		w.c.log.WarnContext(ctx, "could not remove this worker's heartbeat; it drops out of the workers list a lease from now", "err", lerr)
	}
	return err
}

// RunWorker is NewWorker, then Run.
func (c *Client) RunWorker(ctx context.Context) error {
	w, err := c.NewWorker(ctx)
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

// RunInline runs the work item's attempt in the caller's goroutine, with
// the same events, checks and outcomes as a worker: what RunInRequest
// does for a job whose item could not be sent on. It returns when the
// attempt's outcome is recorded; ctx ending does not cut it short (its
// policy's timeout still applies).
func (c *Client) RunInline(ctx context.Context, item tasktype.Event) {
	c.inline.RunInline(ctx, item)
}

// ProjectionName is the task_result projection's name in
// projection_offset, as operators see it.
const ProjectionName = projection.Name

// Replay runs one job's history, oldest first, through the projection's
// state machine, and returns the task the projection makes of it and the
// events it took, in order: an event it skips changed nothing, so a page
// showing the job's life leaves it out.
func Replay(history []tasktype.Event) (tasktype.Task, []tasktype.Event) {
	return projection.Replay(history)
}
