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
	"sync"
	"time"

	"github.com/otjhelper/otj/modules/tasks/internal/driver"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// Config configures a Worker. Zero fields take the defaults below.
type Config struct {
	Queue    driver.Queue // required by Run; RunInline does without
	Events   Events       // required
	Results  Results      // required
	Registry Handlers     // required
	// Capabilities are the transport's that carries Queue's items.
	Capabilities driver.Capabilities
	// JobContext, when set, is applied to the context of every job the
	// worker hands to a handler: the Client puts itself there.
	JobContext func(context.Context) context.Context

	// Concurrency is how many jobs run at once. Default 4.
	Concurrency int
	// ExtendEvery is how often a running job's lease is renewed and its
	// state checked for a cancel. It must be well under the broker's
	// visibility timeout, and bounds how long a cancel takes to reach a
	// running job. Default 1s.
	ExtendEvery time.Duration
	// Lease is the broker's lease on a delivered job: a worker that stops
	// renewing it loses the job after this long. A redelivery with no
	// start on record that comes sooner than about a lease after the job
	// was due follows a put-off delivery, not a lost one, and runs
	// without writing its start first. Default 5 × ExtendEvery.
	Lease time.Duration
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
	// LeaveDeletes leaves the deleting of an ended job's losing attempts'
	// result files to the projection's side (tasks.Config.PruneOnProjection),
	// for a worker whose broker role may not delete them. A file the
	// worker stored for an attempt that was taken over is still deleted
	// here as well as it can be: hidden at once, its space freed by the
	// projection's sweep or when the store expires it.
	LeaveDeletes bool
	// Succeeded finds a user's earlier results; required with ResultKeep.
	Succeeded Succeeded
	// StoreFullMessage is the sentence a job's owner sees when its result
	// could not be stored because the result store is full. The app
	// says how long results are kept and which setting bounds the store.
	StoreFullMessage string
	// Paused, when set, says whether an operator paused a job type: its
	// items are put off (PauseRecheck) before anything is read or
	// written, so that none runs and none fails while it is paused. It
	// also says when the type was last resumed: an item that fell due
	// before then and comes back with nothing on record was put off,
	// not lost, and runs at once.
	Paused func(jobType string) (paused bool, resumed time.Time)
	// PauseRecheck is how long a paused type's item is put off before
	// it is looked at again. Default 5s.
	PauseRecheck time.Duration
	// Name identifies this worker in events and logs. Default host:pid.
	Name string
	// Observer, when set, is told of every attempt this worker starts
	// and how it ended, for metrics.
	Observer Observer
	Logger   *slog.Logger
	Now      func() time.Time
}

// Events is what a worker needs of the job event log (driver.Log).
type Events interface {
	Append(ctx context.Context, e tasktype.Event, after uint64) (uint64, error)
	Last(ctx context.Context, userID int64, jobID string) (tasktype.Event, error)
	History(ctx context.Context, userID int64, jobID string) ([]tasktype.Event, error)
}

// Results is what a worker needs of the result store (driver.Log).
type Results interface {
	Put(ctx context.Context, object, name, contentType string, r io.Reader) (tasktype.ResultRef, error)
	Delete(ctx context.Context, object string) error
}

// Succeeded finds a user's stored results in the log (driver.Log).
type Succeeded interface {
	Succeeded(ctx context.Context, userID int64, jobType string, since time.Time) ([]tasktype.Event, error)
}

// Observer is told of the attempts a worker runs, as they start and end.
// The worker calls it on every job, so it must be quick and never block.
type Observer interface {
	// AttemptStarted: an attempt of a job of jobType has started,
	// waited after its work item fell due (enqueued, retry time reached,
	// retried by hand).
	AttemptStarted(jobType string, waited time.Duration)
	// AttemptEnded: a started attempt is over, its handler having run
	// for ran. outcome is the event recorded for it: succeeded,
	// retrying or failed (tasktype.OutcomeRejected for a failure the
	// handler marked tasktype.Rejected); cancelled when a cancel stopped it; released
	// when shutdown handed it back; "" when it was taken over or its
	// outcome could not be stored. Called once for every AttemptStarted.
	AttemptEnded(jobType string, outcome tasktype.EventKind, ran time.Duration)
}

// noObserver is the Observer of a worker given none.
type noObserver struct{}

func (noObserver) AttemptStarted(string, time.Duration)                   {}
func (noObserver) AttemptEnded(string, tasktype.EventKind, time.Duration) {}

func (c *Config) setDefaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.ExtendEvery <= 0 {
		c.ExtendEvery = time.Second
	}
	if c.PauseRecheck <= 0 {
		c.PauseRecheck = 5 * time.Second
	}
	if c.Lease <= 0 {
		c.Lease = 5 * c.ExtendEvery
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
		c.Name = tasktype.ProcessName()
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
	if c.Observer == nil {
		c.Observer = noObserver{}
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

// Running returns the ids of the jobs this worker is handling now, from
// their claim to their outcome, for its heartbeat.
func (w *Worker) Running() []string {
	ids := []string{}
	w.running.Range(func(k, _ any) bool {
		ids = append(ids, k.(attemptKey).job)
		return true
	})
	return ids
}

// Name, Concurrency and Lease are the worker's, defaults filled in.
func (w *Worker) Name() string         { return w.cfg.Name }
func (w *Worker) Concurrency() int     { return w.cfg.Concurrency }
func (w *Worker) Lease() time.Duration { return w.cfg.Lease }
