// Package bench is app bench and app bench report: it measures the task
// system on this machine, through the tasks.Client and the drivers'
// public ports only, on a backend the app opens for it (Env). It lives
// under cmd/app because it is the app's tool: it runs the app's wiring
// and, for the report, the app's job types, which no module may import.
package bench

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nuid"
	"github.com/redis/go-redis/v9"

	"github.com/otjhelper/otj/internal/app/cli"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/service"
)

// benchUsage is app bench's help; the flags follow it.
const benchUsage = `usage: app bench [flags]
       app bench report [flags]    times the full report at several log sizes

Measures the background-task system on this machine with no-op jobs of the
type bench_noop. Each run starts on a fresh temporary data dir (the SQLite
database and, without NATS_URL, an embedded NATS server with file storage),
removed at the end; set TMPDIR to measure another disk. Phases, one after
the other:

  one at a time  --jobs jobs enqueued from one goroutine while a worker runs
                 them at --concurrency: enqueue jobs/s, end-to-end jobs/s
                 (first enqueue to the last succeeded event stored), and how
                 long after that the projection (task_result) shows them all,
                 and the CPU time the process used per job
  batches        the same through the broker's batch enqueue, --batch jobs a
                 call (skipped with --batch 0 or a broker without one)
  latency        --rate jobs/s for --duration: enqueue to handler start, and
                 enqueue to completed in task_result, p50/p95/p99
  peak RSS       of the whole process, embedded NATS server included
  drain          --jobs jobs enqueued (in calls of --batch where the broker
                 has batches) with no worker running; once all are stored,
                 a worker at --concurrency starts: jobs/s from its start to
                 the last succeeded event stored (how asynq and River are
                 quoted), the projection's catch-up after, and CPU per job.
                 Last, after the peak RSS; --drain=false skips it

Each figure is the median of --runs runs, shown with its min-max spread;
--json prints one object for machines.

With NATS_URL set, the events go to that server's TASKS stream, and stay
there, and the benchmark's worker joins the stream's shared "workers"
consumer: use a server no app uses, or its workers will take the benchmark's
jobs (and the benchmark theirs). With --broker redis the jobs go through the
Redis at REDIS_URL, under a key prefix of each run's own, deleted after.

flags:
`

// benchJobType is the job the benchmark runs: it does nothing, so what is
// measured is the task system's own cost.
const benchJobType = "bench_noop"

// benchStall is how long a phase may go without one more job done before
// the benchmark gives up on it: something is wrong, not slow.
const benchStall = time.Minute

// benchOptions are app bench's flags.
type benchOptions struct {
	broker      string
	jobs        int
	concurrency int
	batch       int
	rate        int
	duration    time.Duration
	runs        int
	json        bool
	cpuProfile  string
	// drain runs the drain phase: enqueue with no worker, then drain.
	drain bool
}

// Run runs app bench: args are the flags after "bench", or "report" and
// its own. load is called once the flags are good: a flag's error comes
// before a setting's.
func Run(ctx context.Context, args []string, load func() (Env, error), stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "report" {
		return runBenchReport(ctx, args[1:], load, stdout, stderr)
	}
	if len(args) > 0 && args[0] == "million" {
		return runBenchMillion(ctx, args[1:], load, os.Stdin, stdout, stderr)
	}
	o, err := parseBenchFlags(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	env, err := load()
	if err != nil {
		return err
	}
	if o.broker == "" {
		o.broker = env.Broker
	}

	settings := newBenchSettings(o, env)
	fmt.Fprintf(stderr, "bench: %s\n", settings.describe())
	if o.cpuProfile != "" {
		stop, err := startCPUProfile(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("bench: --cpuprofile: %w", err)
		}
		defer stop()
	}
	runs := make([]benchFigures, 0, o.runs)
	for i := range o.runs {
		fmt.Fprintf(stderr, "run %d of %d\n", i+1, o.runs)
		// Each run starts without the garbage of the one before.
		runtime.GC()
		f, err := benchOnce(ctx, o, env, stderr)
		if err != nil {
			return fmt.Errorf("bench: run %d: %w", i+1, err)
		}
		runs = append(runs, f)
	}
	rep := summarize(runs)
	rep.Settings = settings
	if o.json {
		return cli.WriteJSON(stdout, rep)
	}
	return printBenchTable(stdout, rep)
}

// benchFlags is app bench's flag set, read into o.
func benchFlags(o *benchOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	// Errors come back as one line; the help is printed only when asked.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	// "" takes TASKS_BROKER, which LoadConfig checks and names if wrong.
	fs.StringVar(&o.broker, "broker", "", "the broker that carries the jobs: jetstream or redis (default $TASKS_BROKER, else jetstream)")
	fs.IntVar(&o.jobs, "jobs", 20000, "jobs in each throughput phase")
	fs.IntVar(&o.concurrency, "concurrency", 10, "jobs the worker runs at once")
	fs.IntVar(&o.batch, "batch", 1000, "jobs per call in the batch phase; 0 skips it")
	fs.IntVar(&o.rate, "rate", 200, "jobs enqueued per second in the latency phase")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long the latency phase enqueues")
	fs.IntVar(&o.runs, "runs", 3, "runs; each figure is their median")
	fs.BoolVar(&o.json, "json", false, "print one JSON object instead of a table")
	fs.BoolVar(&o.drain, "drain", true, "run the drain phase (--drain=false skips it)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of all the runs to this file (go tool pprof reads it)")
	return fs
}

// FlagSets are the bench commands' flag sets, by the command's words
// after "app ", made as the commands make them, for shell completion. A
// flag with no usage is internal (a child process's), not offered.
func FlagSets() map[string]*flag.FlagSet {
	var (
		b benchOptions
		r benchReportOptions
		m millionOptions
	)
	rf, _ := benchReportFlags(&r)
	return map[string]*flag.FlagSet{"bench": benchFlags(&b), "bench report": rf, "bench million": millionFlags(&m)}
}

// parseBenchFlags reads app bench's flags. Its errors are one line naming
// the flag; -h prints the help to stdout and returns flag.ErrHelp.
func parseBenchFlags(args []string, stdout io.Writer) (benchOptions, error) {
	var o benchOptions
	fs := benchFlags(&o)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, benchUsage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
		}
		return o, fmt.Errorf("bench: %w", err)
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	case o.broker != "" && o.broker != brokerJetStream && o.broker != brokerRedis:
		return o, fmt.Errorf("bench: --broker %q: want %s or %s", o.broker, brokerJetStream, brokerRedis)
	case o.jobs < 1:
		return o, fmt.Errorf("bench: --jobs %d: want 1 or more", o.jobs)
	case o.concurrency < 1 || o.concurrency > 1000:
		return o, fmt.Errorf("bench: --concurrency %d: want 1 to 1000", o.concurrency)
	case o.batch < 0:
		return o, fmt.Errorf("bench: --batch %d: want 0 (no batch phase) or more", o.batch)
	case o.rate < 1:
		return o, fmt.Errorf("bench: --rate %d: want 1 or more jobs a second", o.rate)
	case o.duration < time.Second/time.Duration(o.rate):
		return o, fmt.Errorf("bench: --duration %s: too short for one job at --rate %d", o.duration, o.rate)
	case o.runs < 1:
		return o, fmt.Errorf("bench: --runs %d: want 1 or more", o.runs)
	}
	return o, nil
}

// throughput is what a throughput phase measures.
type throughput struct {
	EnqueuePerS  float64 `json:"enqueue_per_s"`
	EndToEndPerS float64 `json:"end_to_end_per_s"`
	// ProjectionCaughtUpS is from the last succeeded event stored to the
	// projection showing every job of the phase completed.
	ProjectionCaughtUpS float64 `json:"projection_caught_up_s"`
	// CPUPerJobUS is the CPU time (user and system) this process used
	// in the phase, per job, in microseconds: the embedded NATS server's
	// included, Redis's not. It holds still on a busy machine, where
	// rates do not.
	CPUPerJobUS float64 `json:"cpu_us_per_job"`
}

// percentiles of a latency, in milliseconds.
type percentiles struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
}

// benchFigures are one run's figures, or their medians, minima or maxima.
type benchFigures struct {
	throughput                   // one at a time
	Batch            *throughput `json:"batch,omitempty"` // nil: no batch phase
	LatencyRatePerS  float64     `json:"latency_rate_per_s"`
	StartLatencyMS   percentiles `json:"start_latency_ms"`
	VisibleLatencyMS percentiles `json:"visible_latency_ms"`
	PeakRSSMB        float64     `json:"peak_rss_mb"`
	// Drain is the drain phase's; nil with --drain=false. It runs last,
	// after the peak RSS is taken, so that the figures above are what
	// they were before it existed.
	Drain *drainFigures `json:"drain,omitempty"`
}

// drainFigures are what the drain phase measures: peers' way of quoting
// throughput (jobs queued first, then workers started and timed), beside
// the end-to-end figures where enqueue and workers overlap.
type drainFigures struct {
	// EnqueuePerS is the enqueue rate with no worker running.
	EnqueuePerS float64 `json:"enqueue_per_s"`
	// DrainPerS is the jobs over the time from the worker's start to
	// the last succeeded event stored.
	DrainPerS float64 `json:"drain_per_s"`
	// ProjectionCaughtUpS is from that last event stored to the
	// projection showing every job completed.
	ProjectionCaughtUpS float64 `json:"projection_caught_up_s"`
	// CPUPerJobUS is this process's CPU time from the worker's start to
	// the projection caught up, per job, in microseconds.
	CPUPerJobUS float64 `json:"cpu_us_per_job"`
	// EnqueueBatch is the jobs per EnqueueBatch call; 0 when they were
	// enqueued one at a time (--batch 0, or a broker without batches).
	EnqueueBatch int `json:"enqueue_batch"`
}

// benchReport is app bench's result: the medians at the top level.
type benchReport struct {
	benchFigures
	Runs   []benchFigures `json:"runs"`
	Spread struct {
		Min benchFigures `json:"min"`
		Max benchFigures `json:"max"`
	} `json:"spread"`
	Settings benchSettings `json:"settings"`
}

// benchSettings say what was measured, and on what, so that figures
// from different machines can be compared.
type benchSettings struct {
	Broker string `json:"broker"`
	NATS   string `json:"nats"` // "embedded", or "NATS_URL"
	// NATSSync is the embedded server's NATS_SYNC; "" with NATS_URL.
	NATSSync    string `json:"nats_sync,omitempty"`
	Jobs        int    `json:"jobs"`
	Concurrency int    `json:"concurrency"`
	Batch       int    `json:"batch"`
	Rate        int    `json:"rate"`
	Duration    string `json:"duration"`
	Runs        int    `json:"runs"`
	// Drain says whether the drain phase ran (--drain).
	Drain bool `json:"drain"`
	Machine
}

// Machine says what a benchmark's figures were measured on.
type Machine struct {
	GOMAXPROCS int    `json:"gomaxprocs"`
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	CPUCount   int    `json:"cpu_count"`
	CPUModel   string `json:"cpu_model,omitempty"`
}

func newBenchMachine() Machine {
	return Machine{
		GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		CPUCount: runtime.NumCPU(), CPUModel: cpuModel(),
	}
}

// describe is the machine in a few words, for progress lines and tables.
func (m Machine) describe() string {
	cpu := fmt.Sprintf("%d CPUs", m.CPUCount)
	if m.CPUModel != "" {
		cpu += " (" + m.CPUModel + ")"
	}
	return fmt.Sprintf("%s, GOMAXPROCS %d, %s", m.GoVersion, m.GOMAXPROCS, cpu)
}

// newBenchSettings records o and the machine.
func newBenchSettings(o benchOptions, env Env) benchSettings {
	s := benchSettings{
		Broker: o.broker, NATS: "embedded", Jobs: o.jobs, Concurrency: o.concurrency, Batch: o.batch,
		Rate: o.rate, Duration: o.duration.String(), Runs: o.runs, Drain: o.drain,
		Machine: newBenchMachine(),
	}
	if env.External {
		s.NATS = "NATS_URL" // not the URL itself: it may hold a password
	} else {
		s.NATSSync = env.NATSSync
	}
	return s
}

// describe is the settings in one line, for the progress and the table.
func (s benchSettings) describe() string {
	batch := "no batch phase"
	if s.Batch > 0 {
		batch = fmt.Sprintf("batches of %d", s.Batch)
	}
	nats := s.NATS
	if s.NATSSync != "" {
		nats += " (NATS_SYNC " + s.NATSSync + ")"
	}
	drain := "drain phase"
	if !s.Drain {
		drain = "no " + drain
	}
	return fmt.Sprintf("%d runs on %s, NATS %s: %d jobs at concurrency %d, %s, %d jobs/s for %s, %s; %s",
		s.Runs, s.Broker, nats, s.Jobs, s.Concurrency, batch, s.Rate, s.Duration, drain, s.Machine.describe())
}

// benchOnce is one run: its own data dir, backend, worker and projection,
// and the phases one after the other.
func benchOnce(ctx context.Context, o benchOptions, env Env, stderr io.Writer) (f benchFigures, err error) {
	dir, err := os.MkdirTemp("", "otj-bench-")
	if err != nil {
		return f, fmt.Errorf("temp data dir: %w", err)
	}
	defer os.RemoveAll(dir)
	open := OpenOptions{Name: "otj-bench", DataDir: dir, Broker: o.broker}
	if o.broker == brokerRedis {
		open.RedisKeyPrefix = "{otj:bench:" + nuid.Next() + "}"
	}
	be, err := env.Open(ctx, open)
	if err != nil {
		return f, err
	}
	defer be.Close(ctx)
	if be.Redis != nil {
		// Without Redis the jobs would wait in the event log for good.
		if err := be.Ping(ctx); err != nil {
			return f, fmt.Errorf("REDIS_URL: %w", err)
		}
		defer func() { err = errors.Join(err, deleteRedisKeys(ctx, be.Redis, open.RedisKeyPrefix)) }()
	}

	rig := &benchRig{}
	svc, err := startBenchServices(ctx, o, env, be, rig, false)
	if err != nil {
		return f, err
	}
	defer func() { err = errors.Join(err, svc.stop()) }()

	tag := fmt.Sprintf("  %-13s", "one at a time")
	if f.throughput, err = rig.throughputPhase(ctx, svc, o.jobs, enqueueEach(svc.client, o.jobs)); err != nil {
		return f, fmt.Errorf("one at a time: %w", err)
	}
	fmt.Fprintf(stderr, "%s enqueue %.0f jobs/s, end to end %.0f jobs/s, projection caught up %.3f s after, %.0f µs CPU a job\n",
		tag, f.EnqueuePerS, f.EndToEndPerS, f.ProjectionCaughtUpS, f.CPUPerJobUS)

	tag = fmt.Sprintf("  %-13s", "batches")
	if o.batch == 0 {
		fmt.Fprintf(stderr, "%s skipped (--batch 0)\n", tag)
	} else {
		t, err := rig.throughputPhase(ctx, svc, o.jobs, enqueueBatches(svc.client, o.jobs, o.batch))
		if err != nil {
			return f, fmt.Errorf("batches: %w", err)
		}
		f.Batch = &t
		fmt.Fprintf(stderr, "%s enqueue %.0f jobs/s, end to end %.0f jobs/s, projection caught up %.3f s after, %.0f µs CPU a job\n",
			tag, t.EnqueuePerS, t.EndToEndPerS, t.ProjectionCaughtUpS, t.CPUPerJobUS)
	}

	tag = fmt.Sprintf("  %-13s", "latency")
	if err := rig.latencyPhase(ctx, svc, svc.client, o.rate, o.duration, &f); err != nil {
		return f, fmt.Errorf("latency: %w", err)
	}
	fmt.Fprintf(stderr, "%s %.0f jobs/s; start p50/p95/p99 %.2f/%.2f/%.2f ms, visible %.2f/%.2f/%.2f ms\n",
		tag, f.LatencyRatePerS, f.StartLatencyMS.P50, f.StartLatencyMS.P95, f.StartLatencyMS.P99,
		f.VisibleLatencyMS.P50, f.VisibleLatencyMS.P95, f.VisibleLatencyMS.P99)

	if f.PeakRSSMB, err = peakRSSMB(); err != nil {
		return f, err
	}

	if !o.drain {
		return f, nil
	}
	tag = fmt.Sprintf("  %-13s", "drain")
	// The drain needs the queue filled with no worker taking from it.
	if err := svc.stop(); err != nil {
		return f, err
	}
	if f.Drain, err = rig.drainPhase(ctx, o, env, be); err != nil {
		return f, fmt.Errorf("drain: %w", err)
	}
	fmt.Fprintf(stderr, "%s enqueue %.0f jobs/s with no worker, drain %.0f jobs/s, projection caught up %.3f s after, %.0f µs CPU a job\n",
		tag, f.Drain.EnqueuePerS, f.Drain.DrainPerS, f.Drain.ProjectionCaughtUpS, f.Drain.CPUPerJobUS)
	return f, nil
}

// benchServices are a run's worker, projection and, with the Redis
// broker, relay, running until stop.
type benchServices struct {
	g      service.Group
	cancel context.CancelFunc
	// client enqueues the jobs and counts them in task_result.
	client *tasks.Client
	// runWorker starts the worker, if it has not started yet.
	runWorker func()

	stopOnce sync.Once
	stopErr  error
}

// startBenchServices starts what a run measures: a worker whose event log
// and a projection whose applied events report to rig. With noWorker the
// worker waits for runWorker: the drain phase enqueues with none running.
func startBenchServices(ctx context.Context, o benchOptions, env Env, be *Backend, rig *benchRig, noWorker bool) (*benchServices, error) {
	reg := tasks.NewRegistry()
	if err := reg.Register(benchJobType, rig.handle, tasktype.Policy{}); err != nil {
		return nil, err
	}
	var obs tasks.Observer = tasks.NopObserver{}
	if env.Observer != nil {
		obs = env.Observer()
	}
	wc, err := be.NewClient(tasks.Config{
		Registry: reg, Observer: storedObserver{Observer: obs, stored: rig.stored},
		Worker: tasks.WorkerConfig{Concurrency: o.concurrency, Lease: env.JobLease},
		// A log line per job would be measured too.
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, err
	}
	// The worker joins now, before anything is enqueued, as a running
	// worker would have: the drain phase times the draining only.
	w, err := wc.NewWorker(ctx)
	if err != nil {
		return nil, err
	}
	client, err := be.NewClient(tasks.Config{Observer: obs, Logger: env.Logger})
	if err != nil {
		return nil, err
	}
	// A fresh database would otherwise replay every event an external
	// server holds before it reached this run's.
	from, err := client.LastSeq(ctx)
	if err != nil {
		return nil, err
	}
	proj, err := be.NewClient(tasks.Config{ProjectFrom: from, Observe: rig.observe, Logger: env.Logger})
	if err != nil {
		return nil, err
	}

	runCtx, cancel := context.WithCancel(ctx)
	s := &benchServices{cancel: cancel, client: client}
	s.runWorker = sync.OnceFunc(func() { s.g.Go("worker", func() error { return w.Run(runCtx) }) })
	if !noWorker {
		s.runWorker()
	}
	s.g.Go("projection", func() error { return proj.RunProjection(runCtx) })
	if be.Relay != nil {
		// As in every process on the Redis broker: it carries retries,
		// and its cost is part of the broker's.
		s.g.Go("redis-relay", func() error { return be.Relay(runCtx) })
	}
	return s, nil
}

// completed counts a user's tasks that task_result shows completed.
func (s *benchServices) completed(ctx context.Context, userID int64) (int, error) {
	n, err := s.client.CountMatching(ctx, tasktype.Filter{UserID: userID, Status: tasktype.StatusCompleted})
	if err != nil {
		return 0, fmt.Errorf("count completed tasks: %w", err)
	}
	return int(n), nil
}

// stop stops the services and waits for them. A second call returns the
// first's error again, so that a phase may stop its services early and
// its deferred stop still runs on every path.
func (s *benchServices) stop() error {
	s.stopOnce.Do(func() {
		s.cancel()
		s.stopErr = s.g.Wait()
	})
	return s.stopErr
}

// benchRig is what a run's handler, event log and projection report to:
// the phase under way, which they tell from the others by its user.
type benchRig struct {
	current atomic.Pointer[benchPhase]
}

// begin starts a phase under a user id of its own, so that leftovers of
// an earlier run on an external server are not counted.
func (r *benchRig) begin(latency bool) *benchPhase {
	p := &benchPhase{user: rand.Int64N(1<<52) + 1, latency: latency, changed: make(chan struct{})}
	if latency {
		p.enqueuedAt = make(map[string]time.Time)
	}
	r.current.Store(p)
	return p
}

// phaseOf is the phase a job of userID belongs to, or nil.
func (r *benchRig) phaseOf(userID int64) *benchPhase {
	if p := r.current.Load(); p != nil && p.user == userID {
		return p
	}
	return nil
}

// handle is the bench_noop handler: it only notes when it started.
func (r *benchRig) handle(_ context.Context, job tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
	now := time.Now()
	if p := r.phaseOf(job.UserID); p != nil {
		p.started(job, now)
	}
	return tasktype.Result{}, nil
}

// observe is told of each event the projection has committed.
func (r *benchRig) observe(e tasktype.Event) {
	if e.Kind != tasktype.EventSucceeded {
		return
	}
	now := time.Now()
	if p := r.phaseOf(e.UserID); p != nil {
		p.shown(e.JobID, now)
	}
}

// stored tells the current phase, if any, that a worker stored the
// success of one of its jobs.
func (r *benchRig) stored() {
	if p := r.current.Load(); p != nil {
		p.stored(time.Now())
	}
}

// storedObserver is a worker's Observer that also reports each stored
// success: the Observer hears of an attempt's end once its outcome is on
// record.
type storedObserver struct {
	tasks.Observer
	stored func()
}

// AttemptEnded passes the end on, and reports a stored success.
func (o storedObserver) AttemptEnded(jobType string, outcome tasktype.EventKind, ran time.Duration) {
	o.Observer.AttemptEnded(jobType, outcome, ran)
	if outcome == tasktype.EventSucceeded {
		o.stored()
	}
}

// benchPhase counts one phase's jobs as they succeed and show.
type benchPhase struct {
	user    int64
	latency bool // keep per-job latencies

	mu         sync.Mutex
	changed    chan struct{} // closed and replaced on every count
	nStored    int
	nShown     int
	lastStored time.Time
	lastShown  time.Time
	// enqueuedAt holds each job's enqueue time from its handler's start
	// (always before its success is stored) until it shows completed.
	enqueuedAt map[string]time.Time
	startMS    []float64
	visibleMS  []float64
}

// started notes that job's handler started at now: in the latency phase,
// its start latency, and its enqueue time for its visible latency.
func (p *benchPhase) started(job tasktype.Job, now time.Time) {
	if !p.latency {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, again := p.enqueuedAt[job.ID]; again {
		return // a redelivery: the first start is the latency
	}
	p.enqueuedAt[job.ID] = job.EnqueuedAt
	p.startMS = append(p.startMS, ms(now.Sub(job.EnqueuedAt)))
}

// stored counts a succeeded event stored at now.
func (p *benchPhase) stored(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nStored++
	p.lastStored = now
	p.notify()
}

// shown counts a job the projection showed completed at now.
func (p *benchPhase) shown(jobID string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nShown++
	p.lastShown = now
	if at, ok := p.enqueuedAt[jobID]; ok {
		p.visibleMS = append(p.visibleMS, ms(now.Sub(at)))
	}
	p.notify()
}

// notify wakes wait; p.mu is held.
func (p *benchPhase) notify() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// wait returns once n jobs of the phase are stored as succeeded and shown
// completed by the projection, and checks task_result agrees.
func (p *benchPhase) wait(ctx context.Context, svc *benchServices, n int) error {
	stall := time.NewTimer(benchStall)
	defer stall.Stop()
	for {
		p.mu.Lock()
		stored, shown, changed := p.nStored, p.nShown, p.changed
		p.mu.Unlock()
		if stored >= n && shown >= n {
			break
		}
		select {
		case <-changed:
			stall.Reset(benchStall)
		case <-svc.g.Failed():
			return errors.New("a service stopped")
		case <-ctx.Done():
			return ctx.Err()
		case <-stall.C:
			return fmt.Errorf("no progress for %s: %d of %d jobs stored as succeeded, %d shown completed", benchStall, stored, n, shown)
		}
	}
	// The counts come from hooks; the table is what users see.
	got, err := svc.completed(ctx, p.user)
	if err != nil {
		return err
	}
	if got != n {
		return fmt.Errorf("task_result shows %d of %d jobs completed", got, n)
	}
	return nil
}

// throughputPhase enqueues n jobs with enqueue while the worker runs them
// and measures how fast they go through.
func (r *benchRig) throughputPhase(ctx context.Context, svc *benchServices, n int, enqueue func(ctx context.Context, user int64) error) (throughput, error) {
	p := r.begin(false)
	t0, cpu0 := time.Now(), processCPU()
	if err := enqueue(ctx, p.user); err != nil {
		return throughput{}, err
	}
	enqueued := time.Since(t0)
	if err := p.wait(ctx, svc, n); err != nil {
		return throughput{}, err
	}
	cpu := processCPU() - cpu0
	p.mu.Lock()
	defer p.mu.Unlock()
	return throughput{
		EnqueuePerS:  float64(n) / enqueued.Seconds(),
		EndToEndPerS: float64(n) / p.lastStored.Sub(t0).Seconds(),
		// The projection may commit the last success before the worker
		// hears it stored: it was caught up at once.
		ProjectionCaughtUpS: max(p.lastShown.Sub(p.lastStored), 0).Seconds(),
		CPUPerJobUS:         float64(cpu.Microseconds()) / float64(n),
	}, nil
}

// enqueueEach enqueues n jobs one at a time.
func enqueueEach(enq *tasks.Client, n int) func(ctx context.Context, user int64) error {
	return func(ctx context.Context, user int64) error {
		req := tasktype.EnqueueRequest{Type: benchJobType, UserID: user}
		for range n {
			if _, err := enq.Enqueue(ctx, req); err != nil {
				return err
			}
		}
		return nil
	}
}

// enqueueBatches enqueues n jobs in calls of up to size.
func enqueueBatches(enq *tasks.Client, n, size int) func(ctx context.Context, user int64) error {
	return func(ctx context.Context, user int64) error {
		reqs := slices.Repeat([]tasktype.EnqueueRequest{{Type: benchJobType, UserID: user}}, min(size, n))
		for done := 0; done < n; done += size {
			if _, err := enq.EnqueueBatch(ctx, reqs[:min(size, n-done)]); err != nil {
				return err
			}
		}
		return nil
	}
}

// drainPhase enqueues o.jobs jobs while no worker runs (in batches where
// the broker has them and --batch is not 0), waits until every one is
// stored, queued and shown pending, then starts a worker at
// o.concurrency and times it draining them. It runs services of its own,
// with the projection running throughout, as a web process would.
func (r *benchRig) drainPhase(ctx context.Context, o benchOptions, env Env, be *Backend) (_ *drainFigures, err error) {
	svc, err := startBenchServices(ctx, o, env, be, r, true)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, svc.stop()) }()
	n, d := o.jobs, &drainFigures{}
	enqueue := enqueueEach(svc.client, n)
	if o.batch > 0 {
		enqueue, d.EnqueueBatch = enqueueBatches(svc.client, n, o.batch), o.batch
	}
	p := r.begin(false)
	t0 := time.Now()
	if err := enqueue(ctx, p.user); err != nil {
		return nil, err
	}
	enqueued := time.Since(t0)
	if err := waitQueued(ctx, svc.client, svc.g.Failed(), p.user, n); err != nil {
		return nil, err
	}

	start, cpu0 := time.Now(), processCPU()
	svc.runWorker()
	if err := p.wait(ctx, svc, n); err != nil {
		return nil, err
	}
	cpu := processCPU() - cpu0
	p.mu.Lock()
	defer p.mu.Unlock()
	d.EnqueuePerS = float64(n) / enqueued.Seconds()
	d.DrainPerS = float64(n) / p.lastStored.Sub(start).Seconds()
	d.ProjectionCaughtUpS = max(p.lastShown.Sub(p.lastStored), 0).Seconds()
	d.CPUPerJobUS = float64(cpu.Microseconds()) / float64(n)
	return d, nil
}

// queuedPoll is how often waitQueued looks; it is outside the timed part.
const queuedPoll = 10 * time.Millisecond

// waitQueued returns once the projection shows n jobs of user pending and
// the broker reports at least n work items waiting, none of them still
// in its relay's backlog (Redis): everything an enqueue leads to is done
// before the worker starts, so that the drain times the draining only.
func waitQueued(ctx context.Context, client *tasks.Client, failed <-chan struct{}, user int64, n int) error {
	tick := time.NewTicker(queuedPoll)
	defer tick.Stop()
	var last string
	progressed := time.Now()
	for {
		shown, err := client.CountMatching(ctx, tasktype.Filter{UserID: user, Status: tasktype.StatusPending})
		if err != nil {
			return fmt.Errorf("count pending tasks: %w", err)
		}
		st, err := client.QueueStats(ctx)
		if err != nil {
			return fmt.Errorf("queue stats: %w", err)
		}
		var backlog uint64
		if st.Relay != nil {
			backlog = st.Relay.Backlog
		}
		if int(shown) >= n && st.Pending >= uint64(n) && backlog == 0 {
			return nil
		}
		state := fmt.Sprintf("%d of %d shown pending, %d work items waiting, %d in the relay's backlog", shown, n, st.Pending, backlog)
		if state != last {
			last, progressed = state, time.Now()
		} else if time.Since(progressed) > benchStall {
			return fmt.Errorf("enqueued jobs not all queued after %s without progress: %s", benchStall, state)
		}
		select {
		case <-tick.C:
		case <-failed:
			return errors.New("a service stopped")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// latencyPhase enqueues a job every 1/rate s for d, one at a time, and
// measures each job's start and visible latency.
func (r *benchRig) latencyPhase(ctx context.Context, svc *benchServices, enq *tasks.Client, rate int, d time.Duration, f *benchFigures) error {
	p := r.begin(true)
	req := tasktype.EnqueueRequest{Type: benchJobType, UserID: p.user}
	// A tick missed while an enqueue is slow is dropped, not made up:
	// the rate achieved is reported beside the percentiles.
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	end := time.NewTimer(d)
	defer end.Stop()
	t0, n := time.Now(), 0
loop:
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-end.C:
			break loop
		case <-tick.C:
			if _, err := enq.Enqueue(ctx, req); err != nil {
				return err
			}
			n++
		}
	}
	f.LatencyRatePerS = float64(n) / time.Since(t0).Seconds()
	if err := p.wait(ctx, svc, n); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	f.StartLatencyMS, f.VisibleLatencyMS = percentilesOf(p.startMS), percentilesOf(p.visibleMS)
	return nil
}

// percentilesOf sorts samples and picks by nearest rank.
func percentilesOf(samples []float64) percentiles {
	if len(samples) == 0 {
		return percentiles{}
	}
	slices.Sort(samples)
	at := func(q float64) float64 {
		return samples[max(int(math.Ceil(q*float64(len(samples))))-1, 0)]
	}
	return percentiles{P50: at(0.50), P95: at(0.95), P99: at(0.99)}
}

// ms is d in milliseconds, fractions kept.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// peakRSSMB is the process's peak resident set so far, in MiB: the
// embedded NATS server included, and earlier runs too.
func peakRSSMB() (float64, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("peak rss: %w", err)
	}
	kib := float64(ru.Maxrss)
	if runtime.GOOS == "darwin" {
		kib /= 1024 // bytes there
	}
	return kib / 1024, nil
}

// processCPU is the CPU time, user and system, this process has used so
// far; 0 where the system cannot tell.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuModel is the first CPU's model name from /proc/cpuinfo, or "".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// deleteRedisKeys deletes a run's keys, even after ctx ended: a stopped
// benchmark should leave nothing behind.
func deleteRedisKeys(ctx context.Context, rdb *redis.Client, prefix string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var keys []string
	del := func() error {
		if len(keys) == 0 {
			return nil
		}
		err := rdb.Del(ctx, keys...).Err()
		keys = keys[:0]
		return err
	}
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		if keys = append(keys, iter.Val()); len(keys) == 1000 {
			if err := del(); err != nil {
				return fmt.Errorf("delete redis keys %s*: %w", prefix, err)
			}
		}
	}
	if err := errors.Join(iter.Err(), del()); err != nil {
		return fmt.Errorf("delete redis keys %s*: %w", prefix, err)
	}
	return nil
}

// benchRow is one figure of the table; field finds it in a benchFigures,
// nil where a run has no such phase. The rows also drive summarize.
type benchRow struct {
	label, unit string
	field       func(*benchFigures) *float64
}

// benchRows are the figures, in the table's order.
var benchRows = []benchRow{
	{"enqueue, one at a time", "jobs/s", func(f *benchFigures) *float64 { return &f.EnqueuePerS }},
	{"end to end, one at a time", "jobs/s", func(f *benchFigures) *float64 { return &f.EndToEndPerS }},
	{"projection caught up, one at a time", "s", func(f *benchFigures) *float64 { return &f.ProjectionCaughtUpS }},
	{"CPU per job, one at a time", "µs", func(f *benchFigures) *float64 { return &f.CPUPerJobUS }},
	{"enqueue, batches", "jobs/s", batchField(func(t *throughput) *float64 { return &t.EnqueuePerS })},
	{"end to end, batches", "jobs/s", batchField(func(t *throughput) *float64 { return &t.EndToEndPerS })},
	{"projection caught up, batches", "s", batchField(func(t *throughput) *float64 { return &t.ProjectionCaughtUpS })},
	{"CPU per job, batches", "µs", batchField(func(t *throughput) *float64 { return &t.CPUPerJobUS })},
	{"latency phase rate", "jobs/s", func(f *benchFigures) *float64 { return &f.LatencyRatePerS }},
	{"enqueue to start p50", "ms", func(f *benchFigures) *float64 { return &f.StartLatencyMS.P50 }},
	{"enqueue to start p95", "ms", func(f *benchFigures) *float64 { return &f.StartLatencyMS.P95 }},
	{"enqueue to start p99", "ms", func(f *benchFigures) *float64 { return &f.StartLatencyMS.P99 }},
	{"enqueue to visible p50", "ms", func(f *benchFigures) *float64 { return &f.VisibleLatencyMS.P50 }},
	{"enqueue to visible p95", "ms", func(f *benchFigures) *float64 { return &f.VisibleLatencyMS.P95 }},
	{"enqueue to visible p99", "ms", func(f *benchFigures) *float64 { return &f.VisibleLatencyMS.P99 }},
	{"peak RSS", "MB", func(f *benchFigures) *float64 { return &f.PeakRSSMB }},
	{"enqueue, no worker running (drain)", "jobs/s", drainField(func(d *drainFigures) *float64 { return &d.EnqueuePerS })},
	{"drain, worker started on a full queue", "jobs/s", drainField(func(d *drainFigures) *float64 { return &d.DrainPerS })},
	{"projection caught up, drain", "s", drainField(func(d *drainFigures) *float64 { return &d.ProjectionCaughtUpS })},
	{"CPU per job, drain", "µs", drainField(func(d *drainFigures) *float64 { return &d.CPUPerJobUS })},
}

// drainField finds a figure of the drain phase, if there was one.
func drainField(field func(*drainFigures) *float64) func(*benchFigures) *float64 {
	return func(f *benchFigures) *float64 {
		if f.Drain == nil {
			return nil
		}
		return field(f.Drain)
	}
}

// batchField finds a figure of the batch phase, if there was one.
func batchField(field func(*throughput) *float64) func(*benchFigures) *float64 {
	return func(f *benchFigures) *float64 {
		if f.Batch == nil {
			return nil
		}
		return field(f.Batch)
	}
}

// summarize takes each figure's median, minimum and maximum over runs.
func summarize(runs []benchFigures) benchReport {
	rep := benchReport{Runs: runs}
	med, lo, hi := &rep.benchFigures, &rep.Spread.Min, &rep.Spread.Max
	if runs[0].Batch != nil { // every run has the same phases
		med.Batch, lo.Batch, hi.Batch = &throughput{}, &throughput{}, &throughput{}
	}
	if d := runs[0].Drain; d != nil {
		// The batch size is a setting of the phase, the same in each run.
		med.Drain, lo.Drain, hi.Drain = &drainFigures{EnqueueBatch: d.EnqueueBatch}, &drainFigures{EnqueueBatch: d.EnqueueBatch}, &drainFigures{EnqueueBatch: d.EnqueueBatch}
	}
	for _, row := range benchRows {
		if row.field(med) == nil {
			continue
		}
		vs := make([]float64, len(runs))
		for i := range runs {
			vs[i] = *row.field(&runs[i])
		}
		slices.Sort(vs)
		*row.field(med), *row.field(lo), *row.field(hi) = median(vs), vs[0], vs[len(vs)-1]
	}
	return rep
}

// median of sorted values.
func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// printBenchTable prints each figure's median and spread.
func printBenchTable(w io.Writer, rep benchReport) error {
	fmt.Fprintf(w, "app bench: %s\n\n", rep.Settings.describe())
	width := 0
	for _, row := range benchRows {
		width = max(width, len(row.label))
	}
	line := "%-*s  %10s  %10s  %10s  %s\n"
	fmt.Fprintf(w, line, width, "figure", "median", "min", "max", "unit")
	for _, row := range benchRows {
		m := row.field(&rep.benchFigures)
		if m == nil {
			continue
		}
		lo, hi := row.field(&rep.Spread.Min), row.field(&rep.Spread.Max)
		fmt.Fprintf(w, line, width, row.label, benchNumber(*m, row.unit), benchNumber(*lo, row.unit), benchNumber(*hi, row.unit), row.unit)
	}
	_, err := fmt.Fprintln(w, "\nCPU per job and peak RSS are this process's, the embedded NATS server included\n(not an external NATS server's or Redis's); peak RSS is the whole run's so far,\ntaken before the drain phase. The drain is timed from the worker's start on a queue\nof --jobs jobs enqueued with none running to the last succeeded event stored.")
	return err
}

// benchNumber shows a figure to a precision its unit warrants.
func benchNumber(v float64, unit string) string {
	switch unit {
	case "s":
		return fmt.Sprintf("%.3f", v)
	case "ms":
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.0f", v)
}
