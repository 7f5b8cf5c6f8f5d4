// Package app is OTJ Helper's composition root: it reads the
// configuration, opens the database and the broker, registers the job
// types and starts the web UI, the workers and the task projection,
// together (app all) or as separate processes (app web, app worker), and
// runs the operator commands. cmd/app's main only calls Main; the test
// binaries of internal/app/apptest call it too, to run the app as a real
// process with their own job types.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/otjhelper/otj/modules/tasks"
)

const usage = `usage: app <command> [flags]

commands:
  all       web server, worker and projection with an embedded NATS server
  web       web server and projection (embeds NATS unless NATS_URL is set)
  worker    runs jobs from the NATS server at NATS_URL
            (or from Redis at REDIS_URL with TASKS_BROKER=redis)
  migrate   applies database migrations and reference data
  demo      creates a user with a realistic activity log
            (app demo --email you@example.org --activities 1000)
  bench     measures throughput, latency and memory with no-op jobs
            (app bench -h for its flags)

operator commands (every user's tasks; see README.md, Operating tasks):
  tasks list [--state S] [--user EMAIL_OR_ID] [--type T] [--limit N] [--json]
  tasks show ID [--json]      a task and its event history
  tasks retry ID              runs a failed or cancelled task again
  tasks cancel ID             cancels a pending, retrying or running task
  projections rebuild         recreates task_result from the event stream
  analytics --all [--batch N] queues batch analytics for every user, one job each

  version   prints the build's version and commit
  help      app help COMMAND (or app COMMAND --help) lists its flags and settings
  completion bash|zsh
            prints a shell completion script: source <(app completion bash)

Configuration comes from the environment; see README.md.
`

// Options are what a build adds to the program. The release build adds
// its version only; a test binary, which runs the program as a real
// process too, passes its own job types.
type Options struct {
	// ExtraJobs, when set, registers more job types on every worker
	// beside this build's: the tests' jobs that sleep, fail or block on
	// cue in real worker processes.
	ExtraJobs func(*tasks.Registry) error
	// Version, when set, is the release's version (see Version).
	Version string
}

// Main is the program with its options: it runs on the process's
// arguments, environment and output until a signal, and returns the exit
// status.
func Main(opts Options) int {
	if opts.Version != "" {
		Version = opts.Version
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The Redis broker logs what fails, once, where it is handled; the
	// client's own pool messages would repeat it on every redial.
	redis.SetLogger(quietRedis{})
	err := Run(ctx, opts, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, "app:", err)
	return exitStatus(err)
}

// exitStatus is the status the program exits with after err: 2 for a
// command line it could not make sense of (as the shell's own tools
// do), 1 for anything else that went wrong.
func exitStatus(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// usageError is a command line the program cannot make sense of: no
// command, or one it does not know.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

// Run is the whole program, with its inputs passed in so tests can
// drive it.
func Run(ctx context.Context, opts Options, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		// A mistake, not a request for help: the usage goes where errors go.
		fmt.Fprint(stderr, usage)
		return usageError{"no command given; app help lists them"}
	}
	if isHelpFlag(args[0]) {
		fmt.Fprint(stdout, usage)
		return nil
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "help":
		return runHelp(rest, stdout)
	case "version":
		info, ok := debug.ReadBuildInfo()
		printVersion(stdout, info, ok)
		return nil
	case "completion":
		if wantsHelp(rest) {
			return runHelp([]string{cmd}, stdout)
		}
		return runCompletion(rest, stdout)
	}
	help := wantsHelp(rest)
	if c, ok := findCommand(cmd); ok && help {
		path, fs := helpFlagSet(cmd, rest)
		printCommandHelp(stdout, c, path, fs)
		if fs != nil && cmd != "bench" {
			return nil // its flags are in the help; bench prints its own
		}
	}
	var err error
	switch cmd {
	case "demo":
		err = runDemo(ctx, rest, getenv, stdout, stderr)
	case "bench":
		err = runBench(ctx, rest, getenv, stdout, stderr)
	case "tasks":
		err = runTasks(ctx, rest, getenv, stdout, stderr)
	case "analytics":
		err = runAnalytics(ctx, rest, getenv, stdout, stderr)
	case "projections":
		if help && isHelpFlag(rest[0]) {
			return nil // its only subcommand is in the help above
		}
		err = runProjections(ctx, rest, getenv, stdout, stderr)
	default:
		if help {
			if _, ok := findCommand(cmd); ok {
				return nil
			}
		}
		return runService(ctx, opts, cmd, rest, getenv, stdout, stderr)
	}
	if help && errors.Is(err, flag.ErrHelp) {
		// The command has printed its flags after the help above.
		return nil
	}
	return err
}

// runHelp is app help [command].
func runHelp(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return nil
	}
	c, ok := findCommand(args[0])
	if !ok {
		return fmt.Errorf("help: unknown command %q; app help lists them", args[0])
	}
	printCommandHelp(stdout, c, "", nil)
	return nil
}

// runService runs the commands that take no arguments and read the
// configuration: all, web, worker, migrate.
func runService(ctx context.Context, opts Options, cmd string, rest []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(rest) > 0 {
		return fmt.Errorf("%s takes no arguments (got %q); settings come from the environment", cmd, rest)
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	switch cmd {
	case "all":
		return runServices(ctx, cfg, log, stdout, modeAll, opts)
	case "web":
		return runServices(ctx, cfg, log, stdout, modeWeb, opts)
	case "worker":
		return runServices(ctx, cfg, log, stdout, modeWorker, opts)
	case "migrate":
		return runMigrate(ctx, cfg, stdout)
	}
	return usageError{fmt.Sprintf("unknown command %q; app help lists them", cmd)}
}
