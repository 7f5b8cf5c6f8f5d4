package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/otjhelper/otj/internal/app/cli"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/service"
)

// benchMillionUsage is app bench million's help; the flags follow it.
const benchMillionUsage = `usage: app bench million [flags]

Queues --jobs no-op jobs (bench_noop) with no worker running, then starts
--workers worker processes and times them draining the queue: what a
backlog of a million jobs costs, in time, memory and disk. The web side
and each worker are processes of their own (this program, run again), as
app web and app worker are, so that each one's peak memory is its own.

On a fresh temporary data dir (removed after; set TMPDIR to measure
another disk), the web process opens the backend as app web does, with an
embedded NATS server listening on a free port of 127.0.0.1 and the
projection running, and enqueues the jobs in calls of --batch. Once every
one is stored and shown pending, the workers (which have joined that
server as app worker joins app web's, and opened their queue) are told to
start, together; the drain is timed from then to the last succeeded event
stored, and the projection's catch-up from then to task_result showing
every job completed. The broker is always JetStream on the embedded server
(NATS_URL must be unset); DATABASE_URL, if set, is used by every process.

Reported: the enqueue rate; the drain rate; the peak RSS (VmHWM) of the
web process, embedded NATS server included, and of the largest worker;
the data dir's size after the drain (file sizes, and blocks allocated);
and the workers consumer's state, sampled every second through the
JetStream API during the drain. The run fails if the consumer is created
again (a reset) or if neither the projection nor the consumer's ack floor
moves for a minute (a stall, such as one at MaxAckPending).

flags:
`

// millionSample is how often the web process samples the consumer, and
// millionTimeline how often a sample is kept for the report.
const (
	millionSample   = time.Second
	millionTimeline = 10 * time.Second
)

// millionOptions are app bench million's flags.
type millionOptions struct {
	jobs        int
	workers     int
	concurrency int
	batch       int
	json        bool
	// child, dir and natsURL are for the processes the run starts, and
	// not in the help: child is "web" or "worker", dir the data dir they
	// share, natsURL the web process's listener, which workers join.
	child   string
	dir     string
	natsURL string
}

// millionHidden are the flags the help leaves out.
var millionHidden = map[string]bool{"child": true, "dir": true, "nats-url": true}

// millionFlags is app bench million's flag set, read into o.
func millionFlags(o *millionOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("bench million", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.IntVar(&o.jobs, "jobs", 1000000, "jobs queued before the workers start")
	fs.IntVar(&o.workers, "workers", 4, "worker processes")
	fs.IntVar(&o.concurrency, "concurrency", 10, "jobs each worker runs at once")
	fs.IntVar(&o.batch, "batch", 1000, "jobs per EnqueueBatch call")
	fs.BoolVar(&o.json, "json", false, "print one JSON object instead of a table")
	fs.StringVar(&o.child, "child", "", "")
	fs.StringVar(&o.dir, "dir", "", "")
	fs.StringVar(&o.natsURL, "nats-url", "", "")
	return fs
}

// parseMillionFlags reads app bench million's flags. Its errors are one
// line naming the flag; -h prints the help to stdout and returns
// flag.ErrHelp.
func parseMillionFlags(args []string, stdout io.Writer) (millionOptions, error) {
	var o millionOptions
	fs := millionFlags(&o)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, benchMillionUsage)
		printFlags(stdout, fs, func(name string) bool { return millionHidden[name] })
		return o, err
	}
	if err != nil {
		return o, fmt.Errorf("bench million: %w", err)
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("bench million: unexpected argument %q", fs.Arg(0))
	case o.jobs < 1:
		return o, fmt.Errorf("bench million: --jobs %d: want 1 or more", o.jobs)
	case o.workers < 1 || o.workers > 64:
		return o, fmt.Errorf("bench million: --workers %d: want 1 to 64", o.workers)
	case o.concurrency < 1 || o.concurrency > 1000:
		return o, fmt.Errorf("bench million: --concurrency %d: want 1 to 1000", o.concurrency)
	case o.batch < 1:
		return o, fmt.Errorf("bench million: --batch %d: want 1 or more", o.batch)
	case o.child != "" && o.child != "web" && o.child != "worker":
		return o, fmt.Errorf("bench million: --child %q: want web or worker", o.child)
	case o.child != "" && o.dir == "":
		return o, errors.New("bench million: --child needs --dir")
	case o.child == "worker" && o.natsURL == "":
		return o, errors.New("bench million: --child worker needs --nats-url")
	}
	return o, nil
}

// millionMsg is one line a child prints to the parent, as JSON: Event
// says which, and which fields are set.
type millionMsg struct {
	// Event is "listening" (web: NATSURL set), "enqueued" (web: the
	// enqueue's figures), "ready" (worker: its queue is open), "done"
	// (web: Web set) or "stopped" (worker: Worker set).
	Event   string       `json:"event"`
	NATSURL string       `json:"nats_url,omitempty"`
	Enqueue *millionEnq  `json:"enqueue,omitempty"`
	Web     *millionWeb  `json:"web,omitempty"`
	Worker  *millionWork `json:"worker,omitempty"`
}

// millionEnq is the web process's enqueue.
type millionEnq struct {
	// Seconds is the enqueue calls' time; QueuedSeconds from their start
	// to every job shown pending and waiting in the consumer.
	Seconds       float64 `json:"seconds"`
	QueuedSeconds float64 `json:"queued_seconds"`
}

// millionWeb is what the web process saw of the drain.
type millionWeb struct {
	// LastShownUnixNano is when the projection committed the last job's
	// success.
	LastShownUnixNano int64           `json:"last_shown_unix_nano"`
	Consumer          ConsumerReport  `json:"consumer"`
	Timeline          []MillionSample `json:"timeline"`
}

// millionWork is what one worker process did.
type millionWork struct {
	Succeeded int `json:"succeeded"`
	// LastStoredUnixNano is when its last succeeded event was stored.
	LastStoredUnixNano int64 `json:"last_stored_unix_nano"`
}

// ConsumerReport is the workers consumer during the drain, from samples
// of its info every second: what shows whether the queue held up.
type ConsumerReport struct {
	// Created is the consumer's creation time, the same at every sample
	// (the run fails otherwise: the consumer was reset).
	Created time.Time `json:"created"`
	// MaxAckPending is its setting; PeakAckPending the most handed out
	// and not yet acked at a sample, and AtMaxAckPending the samples at
	// which that reached the setting (new jobs then wait).
	MaxAckPending   int `json:"max_ack_pending"`
	PeakAckPending  int `json:"peak_num_ack_pending"`
	AtMaxAckPending int `json:"samples_at_max_ack_pending"`
	// PeakPending is the most work items waiting at a sample (about
	// --jobs at the start); PendingAtEnd what waited at the end (0).
	PeakPending  uint64 `json:"peak_num_pending"`
	PendingAtEnd uint64 `json:"num_pending_at_end"`
	// PeakRedelivered is the most items redelivered and not yet acked at
	// a sample: jobs whose lease ran out.
	PeakRedelivered int `json:"peak_num_redelivered"`
	Samples         int `json:"samples"`
	// LongestNoProgressS is the longest time between samples at which
	// neither the projection nor the ack floor had moved.
	LongestNoProgressS float64 `json:"longest_no_progress_s"`
}

// MillionSample is one point of the drain, every ten seconds.
type MillionSample struct {
	// AtS is the time since the workers were told to start.
	AtS float64 `json:"at_s"`
	// Completed is the jobs the projection has shown completed.
	Completed  int    `json:"completed"`
	Pending    uint64 `json:"num_pending"`
	AckPending int    `json:"num_ack_pending"`
	// WebRSSMB is the web process's resident set then.
	WebRSSMB float64 `json:"web_rss_mb"`
}

// MillionResult is app bench million's result.
type MillionResult struct {
	Jobs        int `json:"jobs"`
	Workers     int `json:"workers"`
	Concurrency int `json:"concurrency"`
	Batch       int `json:"batch"`
	// EnqueuePerS is Jobs over the enqueue calls' time, no worker
	// running; QueuedS from their start to all shown pending.
	EnqueuePerS float64 `json:"enqueue_per_s"`
	EnqueueS    float64 `json:"enqueue_s"`
	QueuedS     float64 `json:"queued_s"`
	// DrainS is from the workers told to start to the last succeeded
	// event stored; DrainPerS is Jobs over it.
	DrainS    float64 `json:"drain_s"`
	DrainPerS float64 `json:"drain_per_s"`
	// ProjectionCaughtUpS is from that last event to the projection
	// showing every job completed.
	ProjectionCaughtUpS float64 `json:"projection_caught_up_s"`
	// Succeeded counts the succeeded events the workers stored, each
	// worker's in SucceededPerWorker: Jobs, as each job runs once.
	Succeeded          int   `json:"succeeded"`
	SucceededPerWorker []int `json:"succeeded_per_worker"`
	// WebPeakRSSMB is the web process's VmHWM, the embedded NATS server
	// and the projection included; WorkerPeakRSSMB the largest worker's,
	// each one's in WorkerPeakRSSMBs.
	WebPeakRSSMB     float64   `json:"web_peak_rss_mb"`
	WorkerPeakRSSMB  float64   `json:"worker_peak_rss_mb"`
	WorkerPeakRSSMBs []float64 `json:"worker_peak_rss_mbs"`
	// DataDir is the data dir after the drain, every process stopped.
	DataDir  DirSize         `json:"data_dir"`
	Consumer ConsumerReport  `json:"consumer"`
	Timeline []MillionSample `json:"timeline"`
	// Database is "sqlite" or "postgres" (DATABASE_URL).
	Database string  `json:"database"`
	Settings Machine `json:"settings"`
}

// DirSize is a directory tree's size: its regular files' lengths, and
// the blocks allocated to them as du counts them.
type DirSize struct {
	Files          int   `json:"files"`
	Bytes          int64 `json:"bytes"`
	AllocatedBytes int64 `json:"allocated_bytes"`
}

// runBenchMillion runs app bench million: args are the flags after
// "bench million", stdin the parent's commands when this is a child.
func runBenchMillion(ctx context.Context, args []string, load func() (Env, error), stdin io.Reader, stdout, stderr io.Writer) error {
	o, err := parseMillionFlags(args, stdout)
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
	switch o.child {
	case "web":
		return millionWebChild(ctx, o, env, stdin, stdout)
	case "worker":
		return millionWorkerChild(ctx, o, env, stdin, stdout)
	}
	if env.External {
		return errors.New("bench million: NATS_URL is set: the run embeds a NATS server of its own in its web process; unset NATS_URL")
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench million: %w", err)
	}
	// The children's stderr and the progress lines go to one writer.
	stderr = &lockedWriter{w: stderr}
	rep, err := millionRun(ctx, exe, o, stderr)
	if err != nil {
		return fmt.Errorf("bench million: %w", err)
	}
	rep.Database, rep.Settings = env.Database, newBenchMachine()
	if err := checkMillion(rep); err != nil {
		_ = printMillionTable(stderr, rep) // what was measured, beside the error
		return fmt.Errorf("bench million: %w", err)
	}
	if o.json {
		return cli.WriteJSON(stdout, rep)
	}
	return printMillionTable(stdout, rep)
}

// millionRun is the parent: it starts the web process, lets it enqueue,
// starts the workers, times the drain and measures what it left.
func millionRun(ctx context.Context, exe string, o millionOptions, stderr io.Writer) (rep MillionResult, err error) {
	rep = MillionResult{Jobs: o.jobs, Workers: o.workers, Concurrency: o.concurrency, Batch: o.batch}
	dir, err := os.MkdirTemp("", "otj-bench-million-")
	if err != nil {
		return rep, fmt.Errorf("temp data dir: %w", err)
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(stderr, "bench million: %d jobs, %d workers at concurrency %d, data dir %s\n", o.jobs, o.workers, o.concurrency, dir)

	// Every child reports its end here, once; the buffer never blocks.
	exits := make(chan *benchChild, 1+o.workers)
	web, err := startBenchChild(ctx, "web", exe, []string{"bench", "million", "--child", "web", "--dir", dir,
		"--jobs", strconv.Itoa(o.jobs), "--batch", strconv.Itoa(o.batch)}, stderr, exits)
	if err != nil {
		return rep, err
	}
	defer web.kill()
	m, err := web.next(ctx, "listening", exits)
	if err != nil {
		return rep, err
	}
	natsURL := m.NATSURL
	fmt.Fprintf(stderr, "  web process %d listening on %s; enqueuing\n", web.pid(), natsURL)
	if m, err = web.next(ctx, "enqueued", exits); err != nil {
		return rep, err
	}
	rep.EnqueueS, rep.QueuedS = m.Enqueue.Seconds, m.Enqueue.QueuedSeconds
	rep.EnqueuePerS = float64(o.jobs) / rep.EnqueueS
	fmt.Fprintf(stderr, "  enqueued in %.1f s (%.0f jobs/s), all queued and shown pending after %.1f s\n", rep.EnqueueS, rep.EnqueuePerS, rep.QueuedS)

	workers := make([]*benchChild, o.workers)
	for i := range workers {
		w, err := startBenchChild(ctx, fmt.Sprintf("worker %d", i+1), exe, []string{"bench", "million", "--child", "worker", "--dir", dir,
			"--nats-url", natsURL, "--concurrency", strconv.Itoa(o.concurrency)}, stderr, exits)
		if err != nil {
			return rep, err
		}
		defer w.kill()
		workers[i] = w
	}
	for _, w := range workers {
		if _, err := w.next(ctx, "ready", exits); err != nil {
			return rep, err
		}
	}
	fmt.Fprintf(stderr, "  %d workers ready; draining\n", o.workers)
	start := time.Now()
	for _, c := range append([]*benchChild{web}, workers...) {
		if err := c.send("go"); err != nil {
			return rep, err
		}
	}
	if m, err = web.next(ctx, "done", exits); err != nil {
		return rep, err
	}
	rep.Consumer, rep.Timeline = m.Web.Consumer, m.Web.Timeline
	lastShown := time.Unix(0, m.Web.LastShownUnixNano)

	// The peaks now, while the processes are there to ask.
	rep.WebPeakRSSMB = kibToMB(procPeakRSSKiB(web.pid()))
	for _, w := range workers {
		mb := kibToMB(procPeakRSSKiB(w.pid()))
		rep.WorkerPeakRSSMBs = append(rep.WorkerPeakRSSMBs, mb)
		rep.WorkerPeakRSSMB = max(rep.WorkerPeakRSSMB, mb)
	}
	var lastStored time.Time
	for _, w := range workers {
		m, err := w.finish(ctx, "stopped", exits)
		if err != nil {
			return rep, err
		}
		rep.Succeeded += m.Worker.Succeeded
		rep.SucceededPerWorker = append(rep.SucceededPerWorker, m.Worker.Succeeded)
		if t := time.Unix(0, m.Worker.LastStoredUnixNano); t.After(lastStored) {
			lastStored = t
		}
	}
	if _, err := web.finish(ctx, "", exits); err != nil {
		return rep, err
	}
	rep.DrainS = lastStored.Sub(start).Seconds()
	rep.DrainPerS = float64(o.jobs) / rep.DrainS
	rep.ProjectionCaughtUpS = max(lastShown.Sub(lastStored), 0).Seconds()
	if rep.DataDir, err = dirSize(dir); err != nil {
		return rep, err
	}
	fmt.Fprintf(stderr, "  drained in %.1f s (%.0f jobs/s); projection caught up %.3f s after\n", rep.DrainS, rep.DrainPerS, rep.ProjectionCaughtUpS)
	return rep, nil
}

// checkMillion checks that the run went through: every job ran once, as
// far as the workers' counts tell.
func checkMillion(rep MillionResult) error {
	if rep.Succeeded != rep.Jobs {
		return fmt.Errorf("the workers stored %d succeeded events for %d jobs", rep.Succeeded, rep.Jobs)
	}
	if rep.Consumer.PendingAtEnd != 0 {
		return fmt.Errorf("%d work items still waiting in the consumer after the drain", rep.Consumer.PendingAtEnd)
	}
	return nil
}

// printMillionTable prints the result for people.
func printMillionTable(w io.Writer, rep MillionResult) error {
	c := rep.Consumer
	fmt.Fprintf(w, "app bench million: %d jobs, %d worker processes at concurrency %d, batches of %d, %s; %s\n\n",
		rep.Jobs, rep.Workers, rep.Concurrency, rep.Batch, rep.Database, rep.Settings.describe())
	rows := [][2]string{
		{"enqueue, no worker running", fmt.Sprintf("%.0f jobs/s (%.1f s; all queued and shown pending after %.1f s)", rep.EnqueuePerS, rep.EnqueueS, rep.QueuedS)},
		{"drain, workers started on the full queue", fmt.Sprintf("%.0f jobs/s (%.1f s)", rep.DrainPerS, rep.DrainS)},
		{"projection caught up after the last job", fmt.Sprintf("%.3f s", rep.ProjectionCaughtUpS)},
		{"succeeded, per worker", fmt.Sprintf("%d %v", rep.Succeeded, rep.SucceededPerWorker)},
		{"peak RSS, web process (embedded NATS)", fmt.Sprintf("%.1f MB", rep.WebPeakRSSMB)},
		{"peak RSS, largest worker", fmt.Sprintf("%.1f MB %s", rep.WorkerPeakRSSMB, mbList(rep.WorkerPeakRSSMBs))},
		{"data dir after the drain", fmt.Sprintf("%.1f MB in %d files, %.1f MB allocated", float64(rep.DataDir.Bytes)/(1<<20), rep.DataDir.Files, float64(rep.DataDir.AllocatedBytes)/(1<<20))},
		{"workers consumer", fmt.Sprintf("created %s, unchanged over %d samples", c.Created.UTC().Format(time.RFC3339Nano), c.Samples)},
		{"  ack pending, peak", fmt.Sprintf("%d of MaxAckPending %d (%d samples at it)", c.PeakAckPending, c.MaxAckPending, c.AtMaxAckPending)},
		{"  pending, peak / at end", fmt.Sprintf("%d / %d", c.PeakPending, c.PendingAtEnd)},
		{"  redelivered, peak", strconv.Itoa(c.PeakRedelivered)},
		{"  longest time without progress", fmt.Sprintf("%.0f s", c.LongestNoProgressS)},
	}
	width := 0
	for _, r := range rows {
		width = max(width, len(r[0]))
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%-*s  %s\n", width, r[0], r[1])
	}
	if len(rep.Timeline) > 0 {
		fmt.Fprintf(w, "\n%8s  %10s  %10s  %11s  %10s\n", "at s", "completed", "pending", "ack pending", "web RSS MB")
		for _, s := range rep.Timeline {
			fmt.Fprintf(w, "%8.0f  %10d  %10d  %11d  %10.1f\n", s.AtS, s.Completed, s.Pending, s.AckPending, s.WebRSSMB)
		}
	}
	_, err := fmt.Fprintln(w, "\nThe drain is timed from the workers told to start (their queues open) to the last succeeded\nevent stored; peak RSS is each process's VmHWM.")
	return err
}

// mbList is each worker's peak, for the table.
func mbList(mbs []float64) string {
	parts := make([]string, len(mbs))
	for i, mb := range mbs {
		parts[i] = fmt.Sprintf("%.1f", mb)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// millionWebChild is the web process: the backend as app web opens it,
// a listener for the workers, the projection; it enqueues the jobs, then
// watches the drain until the projection shows them all completed.
func millionWebChild(ctx context.Context, o millionOptions, env Env, stdin io.Reader, stdout io.Writer) (err error) {
	be, err := env.Open(ctx, OpenOptions{Name: "otj-bench-web", DataDir: o.dir, Broker: brokerJetStream, Embedded: true, Listen: "127.0.0.1:0"})
	if err != nil {
		return err
	}
	defer be.Close(ctx)
	if be.ClientURL == "" {
		return errors.New("the embedded NATS server has no listener for the workers")
	}
	client, err := be.NewClient(tasks.Config{Logger: env.Logger})
	if err != nil {
		return err
	}
	rig := &benchRig{}
	proj, err := be.NewClient(tasks.Config{Observe: rig.observe, Logger: env.Logger})
	if err != nil {
		return err
	}
	var g service.Group
	runCtx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		err = errors.Join(err, g.Wait())
	}()
	g.Go("projection", func() error { return proj.RunProjection(runCtx) })
	cmds := readCommands(stdin)
	out := json.NewEncoder(stdout)
	if err := out.Encode(millionMsg{Event: "listening", NATSURL: be.ClientURL}); err != nil {
		return fmt.Errorf("write to the parent: %w", err)
	}

	p := rig.begin(false)
	t0 := time.Now()
	if err := enqueueBatches(client, o.jobs, o.batch)(ctx, p.user); err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	enq := &millionEnq{Seconds: time.Since(t0).Seconds()}
	if err := waitQueued(ctx, client, g.Failed(), p.user, o.jobs); err != nil {
		return err
	}
	enq.QueuedSeconds = time.Since(t0).Seconds()
	if err := out.Encode(millionMsg{Event: "enqueued", Enqueue: enq}); err != nil {
		return fmt.Errorf("write to the parent: %w", err)
	}
	if err := waitCommand(ctx, cmds, "go", g.Failed()); err != nil {
		return err
	}
	web, err := watchDrain(ctx, client, p, o.jobs, g.Failed())
	if err != nil {
		return err
	}
	if err := out.Encode(millionMsg{Event: "done", Web: web}); err != nil {
		return fmt.Errorf("write to the parent: %w", err)
	}
	// Stay up, with the server, until the workers have stopped.
	return waitCommand(ctx, cmds, "", g.Failed())
}

// watchDrain samples the workers consumer every second until the
// projection shows n jobs of p completed, and fails on a reset consumer
// or on a minute without progress: the workers' own figures would not
// say why a drain went slow, or hung.
func watchDrain(ctx context.Context, client *tasks.Client, p *benchPhase, n int, failed <-chan struct{}) (*millionWeb, error) {
	start := time.Now()
	info, err := workQueue(ctx, client)
	if err != nil {
		return nil, err
	}
	web := &millionWeb{Consumer: ConsumerReport{Created: info.Created, MaxAckPending: info.MaxAckPending}}
	c := &web.Consumer
	tick := time.NewTicker(millionSample)
	defer tick.Stop()
	progressed, lastShown, lastFloor, lastDelivered := start, -1, info.Acked, info.Delivered
	var keepAt time.Time
	sample := func(shown int) error {
		info, err := workQueue(ctx, client)
		if err != nil {
			return err
		}
		now := time.Now()
		c.Samples++
		if !info.Created.Equal(c.Created) {
			return fmt.Errorf("the work queue was made again during the drain: created %s, first %s", info.Created, c.Created)
		}
		if info.Delivered < lastDelivered {
			return fmt.Errorf("the work queue's delivered count went back from %d to %d: it was reset", lastDelivered, info.Delivered)
		}
		lastDelivered = info.Delivered
		ackPending := int(info.AckPending)
		c.PeakAckPending = max(c.PeakAckPending, ackPending)
		if c.MaxAckPending > 0 && ackPending >= c.MaxAckPending {
			c.AtMaxAckPending++
		}
		c.PeakPending = max(c.PeakPending, info.Pending)
		c.PendingAtEnd = info.Pending
		c.PeakRedelivered = max(c.PeakRedelivered, int(info.Redelivered))
		if shown != lastShown || info.Acked != lastFloor {
			progressed, lastShown, lastFloor = now, shown, info.Acked
		}
		still := now.Sub(progressed)
		c.LongestNoProgressS = max(c.LongestNoProgressS, still.Seconds())
		if still > benchStall {
			return fmt.Errorf("no progress for %s: %d of %d jobs shown completed, the consumer's ack floor at %d, %d pending, %d ack pending of MaxAckPending %d",
				benchStall, shown, n, info.Acked, info.Pending, info.AckPending, c.MaxAckPending)
		}
		if !now.Before(keepAt) || shown >= n {
			web.Timeline = append(web.Timeline, MillionSample{AtS: now.Sub(start).Seconds(), Completed: shown,
				Pending: info.Pending, AckPending: ackPending, WebRSSMB: kibToMB(procStatusKiB("self", "VmRSS"))})
			keepAt = now.Add(millionTimeline)
		}
		return nil
	}
	if err := sample(0); err != nil {
		return nil, err
	}
	for {
		p.mu.Lock()
		shown, changed := p.nShown, p.changed
		p.mu.Unlock()
		if shown >= n {
			// The last sample: the consumer as the drain left it.
			if err := sample(shown); err != nil {
				return nil, err
			}
			break
		}
		select {
		case <-changed:
		case <-tick.C:
			if err := sample(shown); err != nil {
				return nil, err
			}
		case <-failed:
			return nil, errors.New("the projection stopped")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	// The counts come from the projection's hook; the table is what
	// users see.
	got, err := client.CountMatching(ctx, tasktype.Filter{UserID: p.user, Status: tasktype.StatusCompleted})
	if err != nil {
		return nil, fmt.Errorf("count completed tasks: %w", err)
	}
	if int(got) != n {
		return nil, fmt.Errorf("task_result shows %d of %d jobs completed", got, n)
	}
	p.mu.Lock()
	web.LastShownUnixNano = p.lastShown.UnixNano()
	p.mu.Unlock()
	return web, nil
}

// workQueue is the work queue's state, asked of the server now.
func workQueue(ctx context.Context, client *tasks.Client) (tasktype.QueueStats, error) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := client.QueueStats(rctx)
	if err != nil {
		return st, fmt.Errorf("the work queue: %w", err)
	}
	return st, nil
}

// millionWorkerChild is a worker process: it joins the web process's
// server as app worker does, opens its queue, says it is ready, runs the
// no-op jobs from "go" until the parent closes its stdin, and reports
// what it stored.
func millionWorkerChild(ctx context.Context, o millionOptions, env Env, stdin io.Reader, stdout io.Writer) (err error) {
	be, err := env.Open(ctx, OpenOptions{Name: "otj-bench-worker", DataDir: o.dir, Broker: brokerJetStream, NATSURL: o.natsURL, JoinOnly: true})
	if err != nil {
		return err
	}
	defer be.Close(ctx)
	reg := tasks.NewRegistry()
	if err := reg.Register(benchJobType, noopHandler, tasktype.Policy{}); err != nil {
		return err
	}
	var obs tasks.Observer = tasks.NopObserver{}
	if env.Observer != nil {
		obs = env.Observer()
	}
	var count storedCount
	wc, err := be.NewClient(tasks.Config{
		Registry: reg, Observer: storedObserver{Observer: obs, stored: count.stored},
		Worker: tasks.WorkerConfig{Concurrency: o.concurrency, Lease: env.JobLease},
		// A log line per job would be measured too.
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	// The worker joins before it says it is ready, as app worker does.
	w, err := wc.NewWorker(ctx)
	if err != nil {
		return err
	}
	cmds := readCommands(stdin)
	out := json.NewEncoder(stdout)
	if err := out.Encode(millionMsg{Event: "ready"}); err != nil {
		return fmt.Errorf("write to the parent: %w", err)
	}
	if err := waitCommand(ctx, cmds, "go", nil); err != nil {
		return err
	}
	var g service.Group
	runCtx, cancel := context.WithCancel(ctx)
	g.Go("worker", func() error { return w.Run(runCtx) })
	err = waitCommand(ctx, cmds, "", g.Failed())
	cancel()
	if err := errors.Join(err, g.Wait()); err != nil {
		return err
	}
	return out.Encode(millionMsg{Event: "stopped", Worker: &millionWork{Succeeded: int(count.n.Load()), LastStoredUnixNano: count.last.Load()}})
}

// noopHandler is bench_noop in a worker process: nothing, so that what
// is measured is the task system's own cost.
func noopHandler(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
	return tasktype.Result{}, nil
}

// storedCount counts the successes a worker process stored, and notes
// when it stored the last.
type storedCount struct {
	n    atomic.Int64
	last atomic.Int64 // Unix nanoseconds
}

// stored counts one.
func (c *storedCount) stored() {
	c.n.Add(1)
	now := time.Now().UnixNano()
	// Workers store side by side: keep the latest.
	for old := c.last.Load(); now > old && !c.last.CompareAndSwap(old, now); old = c.last.Load() {
	}
}

// readCommands passes the parent's lines on stdin to the returned
// channel, closed at end of file. The goroutine ends there: the parent
// closes the pipe to stop the child, or the pipe closes as it exits.
func readCommands(stdin io.Reader) <-chan string {
	cmds := make(chan string, 4) // the parent sends one line, then closes
	go func() {
		defer close(cmds)
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			cmds <- strings.TrimSpace(sc.Text())
		}
	}()
	return cmds
}

// waitCommand waits for the parent's command want, or with want "" for
// the end of its stdin: the parent's word to stop. A service failing, ctx
// ending, or anything else from the parent is an error.
func waitCommand(ctx context.Context, cmds <-chan string, want string, failed <-chan struct{}) error {
	select {
	case cmd, ok := <-cmds:
		switch {
		case !ok && want == "":
			return nil
		case !ok:
			return fmt.Errorf("the parent process went away before %q", want)
		case cmd != want:
			return fmt.Errorf("the parent process said %q, want %q", cmd, want)
		}
		return nil
	case <-failed:
		return errors.New("a service stopped")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// benchChild is a child process of bench million and the goroutine that
// reads its stdout, which ends when the process has ended and been
// waited for: kill ends both on every path.
type benchChild struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	cancel context.CancelFunc
	msgs   chan millionMsg // unbuffered: every message comes before the exit
	quit   chan struct{}   // closed by kill: messages after it are dropped
	exited chan struct{}   // closed once the process has been waited for
	err    error           // Wait's, once exited is closed
	// finishing marks an end the parent asked for, which next ignores.
	finishing atomic.Bool
	quitOnce  sync.Once
}

// childStopGrace is how long a child may take to stop after its
// interrupt before it is killed. A variable for the test of a child
// that ignores the interrupt.
var childStopGrace = 30 * time.Second

// startBenchChild starts exe with args and reads its messages; exits
// gets it once it has ended.
func startBenchChild(ctx context.Context, name, exe string, args []string, stderr io.Writer, exits chan<- *benchChild) (*benchChild, error) {
	cctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(cctx, exe, args...)
	cmd.Stderr = stderr
	// Stopped like app itself: it closes its backend on the way out;
	// killed if it has not within WaitDelay.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = childStopGrace
	stdin, err := cmd.StdinPipe()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("the %s process: %w", name, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("the %s process: %w", name, err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("start the %s process: %w", name, err)
	}
	c := &benchChild{name: name, cmd: cmd, stdin: stdin, cancel: cancel,
		msgs: make(chan millionMsg), quit: make(chan struct{}), exited: make(chan struct{})}
	go c.read(stdout, exits)
	return c, nil
}

// read passes the child's JSON lines on until its stdout closes, then
// waits for it: the pipe must be read to its end before Wait.
func (c *benchChild) read(stdout io.Reader, exits chan<- *benchChild) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var m millionMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			m = millionMsg{Event: "unreadable: " + string(sc.Bytes()[:min(len(sc.Bytes()), 200)])}
		}
		select {
		case c.msgs <- m:
		case <-c.quit:
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	c.err = c.cmd.Wait()
	close(c.exited)
	exits <- c // buffered for every child: never blocks
}

// pid is the child's process id.
func (c *benchChild) pid() int { return c.cmd.Process.Pid }

// send writes one command line to the child.
func (c *benchChild) send(cmd string) error {
	if _, err := fmt.Fprintln(c.stdin, cmd); err != nil {
		return fmt.Errorf("tell the %s process %q: %w", c.name, cmd, err)
	}
	return nil
}

// next is the child's next message, which must be want. Another child's
// end that the parent did not ask for is an error, as is this one's.
func (c *benchChild) next(ctx context.Context, want string, exits <-chan *benchChild) (millionMsg, error) {
	for {
		select {
		case m := <-c.msgs:
			if m.Event != want {
				return m, fmt.Errorf("the %s process said %q, want %q", c.name, m.Event, want)
			}
			return m, nil
		case <-c.exited:
			return millionMsg{}, fmt.Errorf("the %s process ended before saying %q: %v", c.name, want, c.exitError())
		case e := <-exits:
			if e.finishing.Load() {
				continue
			}
			return millionMsg{}, fmt.Errorf("the %s process ended: %v", e.name, e.exitError())
		case <-ctx.Done():
			return millionMsg{}, ctx.Err()
		}
	}
}

// finish asks the child to stop (the end of its stdin), reads its last
// message want (none with ""), and waits for it to exit, which must be
// with status 0. Its peak RSS can be asked of the kernel until then.
func (c *benchChild) finish(ctx context.Context, want string, exits <-chan *benchChild) (m millionMsg, err error) {
	c.finishing.Store(true)
	if err := c.stdin.Close(); err != nil {
		return m, fmt.Errorf("stop the %s process: %w", c.name, err)
	}
	if want != "" {
		if m, err = c.next(ctx, want, exits); err != nil {
			return m, err
		}
	}
	select {
	case <-c.exited:
	case <-ctx.Done():
		return m, ctx.Err()
	}
	if c.err != nil {
		return m, fmt.Errorf("the %s process: %w", c.name, c.err)
	}
	return m, nil
}

// kill stops the child if it still runs (an interrupt, then a kill after
// WaitDelay) and waits until it has been waited for. It is for every
// path out; after finish it only returns.
func (c *benchChild) kill() {
	c.quitOnce.Do(func() { close(c.quit) })
	_ = c.stdin.Close()
	c.cancel()
	<-c.exited
}

// exitError is how the child ended, once exited is closed.
func (c *benchChild) exitError() error {
	if c.err == nil {
		return errors.New("exit status 0")
	}
	return c.err
}

// procStatusKiB is a field in KiB ("VmHWM", "VmRSS") of
// /proc/<pid>/status, pid a number or "self"; 0 if it cannot be read
// (not Linux, or the process is gone).
func procStatusKiB(pid, field string) int64 {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kib
		}
	}
	return 0
}

// procPeakRSSKiB is a running process's resident high-water mark.
func procPeakRSSKiB(pid int) int64 { return procStatusKiB(strconv.Itoa(pid), "VmHWM") }

// dirSize sums the regular files under dir.
func dirSize(dir string) (DirSize, error) {
	var s DirSize
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		s.Files++
		s.Bytes += info.Size()
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			s.AllocatedBytes += st.Blocks * 512 // st_blocks counts 512-byte units
		}
		return nil
	})
	if err != nil {
		return s, fmt.Errorf("size of the data dir: %w", err)
	}
	return s, nil
}

// lockedWriter serialises writes from the children's stderr copies and
// the progress lines, so that lines do not interleave (and a buffer in a
// test is not written by two goroutines at once).
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
