package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/otjhelper/otj/internal/app/cli"
	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/reports"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// benchReportUsage is app bench report's help; the flags follow it.
const benchReportUsage = `usage: app bench report [flags]

Times the full CSV report (the full_report job) through the real path, for
logs of several sizes. Each run is a process of its own (this program, run
again), so that its peak memory is that of one size only. It makes a
temporary data dir (removed after; set TMPDIR to measure another disk),
migrates the database, fills a demo user with that many activities (not
timed), starts an embedded NATS server, enqueues the report and runs it in
a worker: the handler reads the log and streams the CSV into the JetStream
object store. The time is from the enqueue to the job's succeeded event
stored; the run then checks that the summary names every activity and that
the stored file is not empty.

Peak RSS is the run's high-water mark from just before the enqueue to the
end (on Linux; the fill's own peak is not counted), the embedded NATS
server included. Each time is the median of --runs runs, shown with its
min-max spread; the peak RSS is the highest of the runs.

Then the same run downloads the report as Excel (.xlsx), as the web does:
the stored CSV read back from the object store and converted to a
workbook (reports.CSVToXLSX), written to nowhere. Its time and peak RSS
are measured alike, the high-water mark started afresh before it.

flags:
`

// benchReportOptions are app bench report's flags.
type benchReportOptions struct {
	sizes      []int
	runs       int
	json       bool
	cpuProfile string
	// child runs one size, once, and prints its figures as JSON: how the
	// parent runs each measurement in a process of its own. Not in the
	// help.
	child bool
}

// runBenchReport runs app bench report: args are the flags after
// "bench report".
func runBenchReport(ctx context.Context, args []string, load func() (Env, error), stdout, stderr io.Writer) error {
	o, err := parseBenchReportFlags(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if o.child {
		return benchReportChild(ctx, o, load, stdout)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench report: %w", err)
	}
	env, err := load()
	if err != nil {
		return err
	}
	rep := ReportResult{Runs: o.runs, Settings: newBenchMachine(), Database: env.Database}
	fmt.Fprintf(stderr, "bench report: %d runs per size on %s; %s\n", o.runs, rep.database(), rep.Settings.describe())
	for _, n := range o.sizes {
		var runs []ReportRun
		for i := range o.runs {
			r, err := benchReportOnce(ctx, exe, n, i, o, stderr)
			if err != nil {
				return fmt.Errorf("bench report: %d activities, run %d: %w", n, i+1, err)
			}
			fmt.Fprintf(stderr, "  %9d activities, run %d: %.3f s, peak RSS %.1f MB (fill %.1f s, CSV %.1f MB); xlsx %.3f s, peak RSS %.1f MB, %.1f MB\n",
				n, i+1, r.Seconds, kibToMB(r.PeakRSSKiB), r.FillSeconds, float64(r.Bytes)/(1<<20),
				r.XLSXSeconds, kibToMB(r.XLSXPeakRSSKiB), float64(r.XLSXBytes)/(1<<20))
			runs = append(runs, r)
		}
		rep.Sizes = append(rep.Sizes, summarizeReportRuns(n, runs))
	}
	if o.json {
		return cli.WriteJSON(stdout, rep)
	}
	return printBenchReportTable(stdout, rep)
}

// benchReportFlags is app bench report's flag set, read into o but for
// --activities, whose text it returns.
func benchReportFlags(o *benchReportOptions) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("bench report", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	sizes := fs.String("activities", "10000,100000,1000000", "the log sizes to measure, `N,N,...`, each on its own")
	fs.IntVar(&o.runs, "runs", 3, "runs per size; the time is their median")
	fs.BoolVar(&o.json, "json", false, "print one JSON object instead of a table")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write each run's CPU profile of the report to `PREFIX`-<activities>-<run>.pprof")
	fs.BoolVar(&o.child, "child", false, "")
	return fs, sizes
}

// parseBenchReportFlags reads app bench report's flags. Its errors are one
// line naming the flag; -h prints the help to stdout and returns
// flag.ErrHelp.
func parseBenchReportFlags(args []string, stdout io.Writer) (benchReportOptions, error) {
	o := benchReportOptions{}
	fs, sizes := benchReportFlags(&o)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, benchReportUsage)
		printFlags(stdout, fs, func(name string) bool { return name == "child" })
		return o, err
	}
	if err != nil {
		return o, fmt.Errorf("bench report: %w", err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("bench report: unexpected argument %q", fs.Arg(0))
	}
	for s := range strings.SplitSeq(*sizes, ",") {
		n, err := strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(s), "_", ""))
		if err != nil || n < 0 {
			return o, fmt.Errorf("bench report: --activities %q: want a comma-separated list of counts, such as 10000,100000", *sizes)
		}
		o.sizes = append(o.sizes, n)
	}
	switch {
	case o.runs < 1:
		return o, fmt.Errorf("bench report: --runs %d: want 1 or more", o.runs)
	case o.child && len(o.sizes) != 1:
		return o, errors.New("bench report: --child runs one size")
	}
	return o, nil
}

// ReportRun is one run's figures, as the child prints them.
type ReportRun struct {
	Activities  int     `json:"activities"`
	Seconds     float64 `json:"seconds"` // enqueue to succeeded
	FillSeconds float64 `json:"fill_seconds"`
	Bytes       uint64  `json:"bytes"` // the stored CSV
	Summary     string  `json:"summary"`
	// XLSXSeconds is the conversion of the stored CSV to a workbook,
	// XLSXBytes the workbook's size, XLSXPeakRSSKiB the high-water mark
	// from its start (0 where it cannot be reset).
	XLSXSeconds    float64 `json:"xlsx_seconds"`
	XLSXBytes      int64   `json:"xlsx_bytes"`
	XLSXPeakRSSKiB int64   `json:"xlsx_peak_rss_kib"`
	// PeakRSSKiB is the child's high-water mark from the enqueue on, or
	// the whole child's where it cannot be reset (see resetPeakRSS).
	PeakRSSKiB int64 `json:"peak_rss_kib"`
	// ProcessPeakRSSKiB is the whole child's, fill included, as the
	// kernel reports it to the parent.
	ProcessPeakRSSKiB int64 `json:"process_peak_rss_kib,omitempty"`
}

// benchReportOnce runs one size once in a child process and returns what
// it measured.
func benchReportOnce(ctx context.Context, exe string, n, run int, o benchReportOptions, stderr io.Writer) (ReportRun, error) {
	args := []string{"bench", "report", "--child", "--activities", strconv.Itoa(n)}
	if o.cpuProfile != "" {
		args = append(args, "--cpuprofile", fmt.Sprintf("%s-%d-%d.pprof", o.cpuProfile, n, run+1))
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, stderr
	// Stopped like app itself: the child removes its data dir on the way out.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Run(); err != nil {
		return ReportRun{}, fmt.Errorf("child process: %w", err)
	}
	var r ReportRun
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return r, fmt.Errorf("child process printed %q: %w", out.String(), err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.ProcessPeakRSSKiB = maxrssKiB(ru)
	}
	if r.PeakRSSKiB == 0 {
		r.PeakRSSKiB = r.ProcessPeakRSSKiB
	}
	return r, nil
}

// benchReportChild is one run in the child process: fill, then the
// report, timed; it prints a ReportRun.
func benchReportChild(ctx context.Context, o benchReportOptions, load func() (Env, error), stdout io.Writer) (err error) {
	n := o.sizes[0]
	env, err := load()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "otj-bench-report-")
	if err != nil {
		return fmt.Errorf("temp data dir: %w", err)
	}
	defer os.RemoveAll(dir)
	// The real path as app all has it: the embedded server, JetStream.
	be, err := env.Open(ctx, OpenOptions{Name: "otj-bench-report", DataDir: dir, Broker: brokerJetStream, Embedded: true})
	if err != nil {
		return err
	}
	defer be.Close(ctx)

	r := ReportRun{Activities: n}
	fillStart := time.Now()
	u, err := activity.Fill(ctx, be.DB, activity.DemoOptions{Email: "bench@example.org", Activities: n, Seed: 1})
	if err != nil {
		return err
	}
	r.FillSeconds = time.Since(fillStart).Seconds()
	reg, err := env.Registry(be.DB)
	if err != nil {
		return err
	}
	w, err := be.NewClient(tasks.Config{
		Registry: reg, Logger: env.Logger,
		Worker: tasks.WorkerConfig{InlineName: "bench-report@" + tasktype.ProcessName(), Lease: env.JobLease},
	})
	if err != nil {
		return err
	}

	// What the fill used is not the report's: hand back what the runtime
	// can, then start the high-water mark afresh.
	runtime.GC()
	debug.FreeOSMemory()
	canReset := resetPeakRSS() == nil
	stopProfile := func() {}
	if o.cpuProfile != "" {
		if stopProfile, err = startCPUProfile(o.cpuProfile); err != nil {
			return err
		}
		defer stopProfile() // on an early return; a second call does nothing
	}

	start := time.Now()
	job, err := w.Enqueue(ctx, tasktype.EnqueueRequest{Type: reports.FullReport, UserID: u.ID})
	if err != nil {
		return err
	}
	// On JetStream the enqueued event is the job's work item, and no
	// worker is there to take it first.
	item, err := w.Last(ctx, u.ID, job.ID)
	if err != nil {
		return err
	}
	// The attempt runs here, as a worker runs it: started event, handler,
	// result file into the object store, succeeded event.
	w.RunInline(ctx, item)
	r.Seconds = time.Since(start).Seconds()
	stopProfile()
	if canReset {
		r.PeakRSSKiB = peakRSSKiB()
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	last, err := w.Last(ctx, u.ID, item.JobID)
	if err != nil {
		return err
	}
	if err := checkReportOutcome(last, n); err != nil {
		return err
	}
	r.Bytes, r.Summary = last.Result.Size, last.Summary
	if err := benchXLSX(ctx, w, last.Result.Object, n, canReset, &r); err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(r)
}

// benchXLSX times the report's download as a workbook, as the web makes
// it: the stored CSV converted as it is read from the object store.
func benchXLSX(ctx context.Context, w *tasks.Client, object string, n int, canReset bool, r *ReportRun) error {
	runtime.GC()
	debug.FreeOSMemory()
	if canReset {
		canReset = resetPeakRSS() == nil
	}
	start := time.Now()
	res, err := w.Open(ctx, object)
	if err != nil {
		return fmt.Errorf("open the stored report: %w", err)
	}
	defer res.Close()
	var out countingWriter
	rows, err := reports.CSVToXLSX(ctx, res, &out)
	if err != nil {
		return err
	}
	r.XLSXSeconds, r.XLSXBytes = time.Since(start).Seconds(), int64(out)
	if canReset {
		r.XLSXPeakRSSKiB = peakRSSKiB()
	}
	if rows != n {
		return fmt.Errorf("the workbook has %d activities, want %d", rows, n)
	}
	return nil
}

// countingWriter counts what is written to it, and keeps none of it.
type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

// checkReportOutcome checks that the job succeeded with a file, and that
// its summary counts n activities ("1,000,000 activities").
func checkReportOutcome(last tasktype.Event, n int) error {
	if last.Kind != tasktype.EventSucceeded {
		return fmt.Errorf("report ended %s: %s", last.Kind, last.Error)
	}
	if last.Result == nil || last.Result.Size == 0 {
		return errors.New("report succeeded without a file")
	}
	count, _, _ := strings.Cut(last.Summary, " ")
	if got, err := strconv.Atoi(strings.ReplaceAll(count, ",", "")); err != nil || got != n {
		return fmt.Errorf("report summary %q, want %d activities", last.Summary, n)
	}
	// Every row has at least its date, hours and labels.
	if minSize := uint64(n) * 20; last.Result.Size < minSize {
		return fmt.Errorf("report file of %d bytes for %d activities", last.Result.Size, n)
	}
	return nil
}

// startCPUProfile profiles this process into path until stop.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	var once sync.Once
	return func() { once.Do(func() { pprof.StopCPUProfile(); f.Close() }) }, nil
}

// resetPeakRSS makes the kernel's high-water mark of this process's
// resident set its current size (Linux 4.0 and later), so that
// peakRSSKiB then measures from now.
func resetPeakRSS() error {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSSKiB is this process's resident high-water mark (VmHWM), or 0 if
// it cannot be read.
func peakRSSKiB() int64 { return procStatusKiB("self", "VmHWM") }

// maxrssKiB is a rusage's peak resident set in KiB (bytes on macOS).
func maxrssKiB(ru *syscall.Rusage) int64 {
	if runtime.GOOS == "darwin" {
		return int64(ru.Maxrss) / 1024
	}
	return int64(ru.Maxrss)
}

func kibToMB(kib int64) float64 { return float64(kib) / 1024 }

// ReportResult is app bench report's result.
type ReportResult struct {
	Sizes    []ReportSize `json:"sizes"`
	Runs     int          `json:"runs"`
	Settings Machine      `json:"settings"`
	// Database is the dialect the log was read from: "sqlite" or
	// "postgres" (DATABASE_URL).
	Database string `json:"database,omitempty"`
}

// database names the dialect for the printed report.
func (r ReportResult) database() string {
	if r.Database == "" {
		return "sqlite"
	}
	return r.Database
}

// ReportSize is one size's figures over its runs.
type ReportSize struct {
	Activities int `json:"activities"`
	Seconds    struct {
		Median float64 `json:"median"`
		Min    float64 `json:"min"`
		Max    float64 `json:"max"`
	} `json:"seconds"`
	// RowsPerS is Activities over the median time.
	RowsPerS float64 `json:"rows_per_s"`
	// PeakRSSMB is the highest of the runs' report-phase peaks;
	// ProcessPeakRSSMB the highest whole-process peak, fill included.
	PeakRSSMB        float64 `json:"peak_rss_mb"`
	ProcessPeakRSSMB float64 `json:"process_peak_rss_mb"`
	CSVMB            float64 `json:"csv_mb"`
	// XLSXSeconds is the median of the runs' conversions to a workbook,
	// XLSXPeakRSSMB their highest peak, XLSXMB the workbook's size.
	XLSXSeconds   float64     `json:"xlsx_seconds"`
	XLSXPeakRSSMB float64     `json:"xlsx_peak_rss_mb"`
	XLSXMB        float64     `json:"xlsx_mb"`
	Runs          []ReportRun `json:"runs"`
}

func summarizeReportRuns(n int, runs []ReportRun) ReportSize {
	s := ReportSize{Activities: n, Runs: runs}
	secs := make([]float64, len(runs))
	xsecs := make([]float64, len(runs))
	for i, r := range runs {
		secs[i], xsecs[i] = r.Seconds, r.XLSXSeconds
		s.XLSXPeakRSSMB = max(s.XLSXPeakRSSMB, kibToMB(r.XLSXPeakRSSKiB))
		s.XLSXMB = float64(r.XLSXBytes) / (1 << 20)
		s.PeakRSSMB = max(s.PeakRSSMB, kibToMB(r.PeakRSSKiB))
		s.ProcessPeakRSSMB = max(s.ProcessPeakRSSMB, kibToMB(r.ProcessPeakRSSKiB))
		s.CSVMB = float64(r.Bytes) / (1 << 20)
	}
	slices.Sort(secs)
	slices.Sort(xsecs)
	s.XLSXSeconds = median(xsecs)
	s.Seconds.Median, s.Seconds.Min, s.Seconds.Max = median(secs), secs[0], secs[len(secs)-1]
	if s.Seconds.Median > 0 {
		s.RowsPerS = float64(n) / s.Seconds.Median
	}
	return s
}

// printBenchReportTable prints one line per size.
func printBenchReportTable(w io.Writer, rep ReportResult) error {
	fmt.Fprintf(w, "app bench report: %d runs per size on %s; %s\n\n", rep.Runs, rep.database(), rep.Settings.describe())
	line := "%12s  %9s  %9s  %9s  %10s  %12s  %8s  %7s  %12s  %8s\n"
	fmt.Fprintf(w, line, "activities", "median s", "min s", "max s", "rows/s", "peak RSS MB", "CSV MB", "xlsx s", "xlsx RSS MB", "xlsx MB")
	for _, s := range rep.Sizes {
		fmt.Fprintf(w, line, strconv.Itoa(s.Activities),
			fmt.Sprintf("%.3f", s.Seconds.Median), fmt.Sprintf("%.3f", s.Seconds.Min), fmt.Sprintf("%.3f", s.Seconds.Max),
			fmt.Sprintf("%.0f", s.RowsPerS), fmt.Sprintf("%.1f", s.PeakRSSMB), fmt.Sprintf("%.1f", s.CSVMB),
			fmt.Sprintf("%.3f", s.XLSXSeconds), fmt.Sprintf("%.1f", s.XLSXPeakRSSMB), fmt.Sprintf("%.1f", s.XLSXMB))
	}
	_, err := fmt.Fprintln(w, "\ntime: enqueue to the succeeded event stored; peak RSS: the highest run's, from the enqueue on,\nthe embedded NATS server included. xlsx: the stored CSV converted to a workbook, as its\ndownload makes it (median time; peak RSS from the conversion's start).")
	return err
}

// printFlags prints fs's flags as the help of a bench command lists them,
// leaving out the hidden ones (the flags a parent passes its children).
func printFlags(w io.Writer, fs *flag.FlagSet, hidden func(name string) bool) {
	fs.VisitAll(func(f *flag.Flag) {
		if hidden(f.Name) {
			return
		}
		name, use := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		line += "\n    \t" + use
		if f.DefValue != "" && f.DefValue != "false" {
			line += " (default " + f.DefValue + ")"
		}
		fmt.Fprintln(w, line)
	})
}
