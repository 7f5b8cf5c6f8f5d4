package app

import (
	"cmp"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"strings"
	"text/tabwriter"
)

// commandSet is a set of the app's commands, for saying which read a
// setting.
type commandSet uint

// The commands, as sets of one.
const (
	cmdAll commandSet = 1 << iota
	cmdWeb
	cmdWorker
	cmdMigrate
	cmdDemo
	cmdBench
	cmdOperator // app tasks …, app projections rebuild

	// cmdTasks is every command that opens the task system's backend.
	cmdTasks = cmdAll | cmdWeb | cmdWorker | cmdBench | cmdOperator
	// cmdEvery is every command that reads the configuration.
	cmdEvery = cmdTasks | cmdMigrate | cmdDemo
)

// setting is one environment setting: its name, the commands it affects
// and what it is, in a line. loadConfig reads exactly these (a test
// checks it), so help cannot list a setting the app does not read, nor
// miss one it does.
type setting struct {
	name string
	cmds commandSet
	doc  string
}

// envSettings is the one list of the app's settings, in the order help
// shows them; the README's configuration table says more of each.
var envSettings = []setting{
	{"OTJ_DATA_DIR", cmdEvery, "data dir: the database and the embedded NATS store (default ./data)"},
	{"LOG_LEVEL", cmdEvery, "debug, info, warn or error (default info)"},
	{"HOST", cmdAll | cmdWeb, "address the web server listens on (default 127.0.0.1)"},
	{"PORT", cmdAll | cmdWeb, "web server port; 0 picks a free one (default 8080)"},
	{"BASE_URL", cmdAll | cmdWeb | cmdWorker, "where users reach the app, e.g. https://otj.example.org (turns on Secure cookies; digests link to it)"},
	{"SECRET_KEY", cmdAll | cmdWeb, "session signing key, 32+ bytes; required unless DEV_AUTO_LOGIN_EMAIL is set"},
	{"DEV_AUTO_LOGIN_EMAIL", cmdAll | cmdWeb | cmdDemo, "development only: sign every request in as this user"},
	{"OIDC_ISSUER", cmdAll | cmdWeb, "OpenID Connect provider for sign-in, e.g. https://accounts.google.com"},
	{"OIDC_CLIENT_ID", cmdAll | cmdWeb, "the app's client id at the OIDC provider"},
	{"OIDC_CLIENT_SECRET", cmdAll | cmdWeb, "the app's client secret at the OIDC provider"},
	{"OIDC_REDIRECT_URL", cmdAll | cmdWeb, "the sign-in callback, e.g. https://otj.example.org/auth/callback"},
	{"ALLOWED_EMAILS", cmdAll | cmdWeb, "who may sign in: addresses and @domain entries, comma-separated (default: any verified email)"},
	{"ADMIN_EMAILS", cmdAll | cmdWeb, "who may use the operator console at /admin/: addresses and @domain entries, comma-separated (default: nobody)"},
	{"SESSION_TTL", cmdAll | cmdWeb, "how long a sign-in lasts, e.g. 7d or 12h (default 7d)"},
	{"TRUST_PROXY_HEADERS", cmdAll | cmdWeb, "true: a TLS proxy's X-Forwarded-Proto https makes cookies Secure"},
	{"DATABASE_URL", cmdEvery, "a PostgreSQL database, postgres://user:pass@host:5432/db (default: SQLite in the data dir)"},
	{"NATS_URL", cmdTasks, "external NATS server(s), nats:// or tls://, comma-separated (default: embedded)"},
	{"NATS_LISTEN", cmdWeb | cmdOperator, "where app web's embedded NATS server takes workers (default 127.0.0.1:4250)"},
	{"NATS_LISTEN_INSECURE", cmdWeb, "true: let NATS_LISTEN go beyond loopback without TLS"},
	{"NATS_REPLICAS", cmdAll | cmdWeb, "copies of the stream, its consumers and the results bucket on a NATS cluster, 1-5 (default 1)"},
	{"NATS_SYNC", cmdAll | cmdWeb | cmdBench | cmdOperator, "embedded server's fsync: interval, always or a duration"},
	{"NATS_TOKEN", cmdTasks, "NATS token (default: the role's, made up by the embedded server, kept in the data dir)"},
	{"NATS_USER", cmdTasks, "NATS user, with NATS_PASSWORD"},
	{"NATS_PASSWORD", cmdTasks, "NATS password, with NATS_USER"},
	{"NATS_MAINT_USER", cmdAll | cmdWeb | cmdOperator, "with NATS_URL: the NATS user that makes the streams and purges an erased account's events"},
	{"NATS_MAINT_PASSWORD", cmdAll | cmdWeb | cmdOperator, "the password of NATS_MAINT_USER"},
	{"NATS_CREDS", cmdTasks, "NATS credentials file (user JWT and seed), for NATS_URL in operator mode"},
	{"NATS_NKEY", cmdTasks, "NATS NKey seed file, for NATS_URL"},
	{"NATS_TLS_CA", cmdTasks, "CA file the NATS server's certificate is checked against (default: the system's)"},
	{"NATS_TLS_CERT", cmdTasks, "embedded: the NATS listener's certificate; with NATS_URL: a client certificate"},
	{"NATS_TLS_KEY", cmdTasks, "the key of NATS_TLS_CERT"},
	{"TASKS_BROKER", cmdTasks, "what carries the jobs: jetstream or redis (default jetstream)"},
	{"REDIS_URL", cmdTasks, "redis://[:password@]host:port/db, or rediss:// for TLS (default redis://localhost:6379/0)"},
	{"REDIS_TLS_CA", cmdTasks, "CA file a rediss:// server's certificate is checked against (default: the system's)"},
	{"REDIS_KEY_PREFIX", cmdTasks, "start of the Redis broker's keys (default {otj:tasks})"},
	{"REDIS_TIMEOUT", cmdAll | cmdWeb | cmdBench, "how long an enqueue waits for Redis before running the job in the request (default 500ms)"},
	{"WORKER_CONCURRENCY", cmdAll | cmdWorker, "jobs a worker runs at once (default 4)"},
	{"WORKER_SHUTDOWN_GRACE", cmdAll | cmdWorker, "how long running jobs may finish after a stop signal (default 20s)"},
	{"JOB_LEASE", cmdTasks, "how long a job may go without a heartbeat before another worker takes it (default 5s)"},
	{"JOB_LEASE_RESET", cmdAll | cmdWorker, "true: change the deployed consumer's lease to JOB_LEASE for all workers"},
	{"RESULT_TTL", cmdAll | cmdWeb | cmdWorker, "how long a result file is kept, e.g. 30d (default 30d)"},
	{"TASK_RETENTION", cmdAll | cmdWeb, "how long a finished task, its history and its result are kept, from 10s, e.g. 30d (default 90d)"},
	{"TASK_RETENTION_RESET", cmdAll | cmdWeb, "true: change the TASK_RETENTION recorded on the TASKS stream for all web processes"},
	{"RESULT_KEEP", cmdAll | cmdWeb | cmdWorker, "results of each job type a user keeps; 0 keeps all (default 5)"},
	{"REPORT_MIN_DURATION", cmdAll | cmdWorker, "least time a full report takes, e.g. 20s, to watch its progress in a demo; at most 10m (default 0)"},
	{"RESULT_MAX_BYTES", cmdAll | cmdWeb, "bound of the results bucket, e.g. 1GiB (default 1GiB)"},
	{"IMPORT_MAX_BYTES", cmdAll | cmdWeb, "largest CSV a user may upload for import, e.g. 10MiB; at most 256MiB (default 10MiB)"},
	{"METRICS_LISTEN", cmdAll | cmdWeb | cmdWorker, "host:port to serve Prometheus metrics on at /metrics (default off)"},
	{"WORKERS_STALL_AFTER", cmdAll | cmdWeb, "how long jobs may wait with no worker asking for work before /healthz says so (default 30s)"},
	{"SMTP_URL", cmdAll | cmdWorker, "mail server for digests, smtp://user:pass@host:587 (STARTTLS when offered) or smtps:// (default: .eml files in <OTJ_DATA_DIR>/outbox)"},
	{"MAIL_FROM", cmdAll | cmdWorker, "sender of the digests, e.g. OTJ Helper <otj@example.org> (default OTJ Helper <otj-helper@localhost>)"},
	{"DIGEST_SCHEDULE", cmdAll | cmdWeb, "when weekly digests go out, a day and a time in Europe/London, or off (default mon 07:00)"},
}

// command is one of the app's commands, for help.
type command struct {
	name     string
	synopsis string // after "app "
	summary  string
	cmds     commandSet // whose settings it reads
}

var commands = []command{
	{"all", "all", "Runs the web server, a worker and the projection in one process, with an embedded NATS server (or the one at NATS_URL).", cmdAll},
	{"web", "web", "Runs the web server and the projection; embeds a NATS server that workers join at NATS_LISTEN, unless NATS_URL is set. Waits for NATS_URL's server if it is not up yet.", cmdWeb},
	{"worker", "worker", "Runs jobs from the NATS server at NATS_URL (or from Redis with TASKS_BROKER=redis). Waits for the server if it is not up yet.", cmdWorker},
	{"migrate", "migrate", "Applies the database migrations and reference data, and exits.", cmdMigrate},
	{"demo", "demo --email EMAIL [--activities N] [--spec S] [--seed N]", "Creates or refills a user with a realistic activity log.", cmdDemo},
	{"bench", "bench [flags] | bench report [flags] | bench million [flags]", "Measures throughput, latency and memory with no-op jobs (see README.md, Performance); bench million, a million queued jobs drained by worker processes.", cmdBench},
	{"tasks", "tasks list|show|retry|cancel ...", "Operator commands on every user's tasks (see README.md, Operating tasks).", cmdOperator},
	{"projections", "projections rebuild", "Recreates the task_result table from the event stream.", cmdOperator},
	{"analytics", "analytics --all [--batch N]", "Queues batch analytics for every user, one job each, N per broker call (default 500).", cmdOperator},
	{"version", "version", "Prints the build's version and commit.", 0},
	{"help", "help [command]", "Prints the commands, or one command's use, flags and settings.", 0},
	{"completion", "completion bash|zsh", "Prints a shell completion script for app's commands and flags: source <(app completion bash) in ~/.bashrc, or app completion zsh > \"${fpath[1]}/_app\".", 0},
}

// findCommand is the command named name, or false.
func findCommand(name string) (command, bool) {
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == name })
	if i < 0 {
		return command{}, false
	}
	return commands[i], true
}

// settingNames are the names of every setting, for checks and tests.
func settingNames() []string {
	names := make([]string, len(envSettings))
	for i, s := range envSettings {
		names[i] = s.name
	}
	return names
}

// helpFlagSet is the flag set app cmd rest... --help asks about: the
// subcommand's when rest names one ("tasks list"), else the command's;
// nil when it takes no flags.
func helpFlagSet(cmd string, rest []string) (string, *flag.FlagSet) {
	sets := flagSets()
	if len(rest) > 0 && !isHelpFlag(rest[0]) {
		if fs, ok := sets[cmd+" "+rest[0]]; ok {
			return cmd + " " + rest[0], fs
		}
	}
	return cmd, sets[cmd]
}

// printCommandHelp prints c's use, the flags of fs (the flag set of path,
// c or one of its subcommands) when not nil, and the settings c reads.
func printCommandHelp(w io.Writer, c command, path string, fs *flag.FlagSet) {
	synopsis := c.synopsis
	if path != "" && path != c.name {
		synopsis = path + " [flags]"
		if strings.HasSuffix(path, " show") || strings.HasSuffix(path, " retry") || strings.HasSuffix(path, " cancel") {
			synopsis = path + " ID [flags]"
		}
	}
	fmt.Fprintf(w, "usage: app %s\n\n%s\n", synopsis, c.summary)
	if fs != nil {
		if shown := shownFlags(fs); len(shown) > 0 {
			fmt.Fprint(w, "\nflags:\n")
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			for _, f := range shown {
				name, usage := flag.UnquoteUsage(f)
				arg := "--" + f.Name
				if name != "" {
					arg += " " + name
				}
				if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
					usage += " (default " + f.DefValue + ")"
				}
				fmt.Fprintf(tw, "  %s\t%s\n", arg, usage)
			}
			tw.Flush()
		}
	}
	if c.cmds == 0 {
		return
	}
	fmt.Fprint(w, "\nsettings (environment variables; README.md, Configuration, says more):\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range envSettings {
		if s.cmds&c.cmds != 0 {
			fmt.Fprintf(tw, "  %s\t%s\n", s.name, s.doc)
		}
	}
	tw.Flush()
}

// isHelpFlag says whether arg asks for help.
func isHelpFlag(arg string) bool { return arg == "-h" || arg == "--help" || arg == "-help" }

// wantsHelp says whether any of args asks for help.
func wantsHelp(args []string) bool { return slices.ContainsFunc(args, isHelpFlag) }

// Version is the release's version: cmd/app's main.Version, set at
// build time with
//
//	go build -ldflags "-X main.Version=v1.2.3" ./cmd/app
//
// and passed in Options.Version. Unset, app version reports the module version and VCS stamp the Go
// toolchain recorded in the binary.
var Version string

// printVersion prints the build's version, commit, commit time and
// whether the work tree had uncommitted changes, from Version and the
// build information; what the build did not record is left out.
func printVersion(w io.Writer, info *debug.BuildInfo, ok bool) {
	version := Version
	vcs := map[string]string{}
	if ok {
		if version == "" {
			version = info.Main.Version
		}
		for _, s := range info.Settings {
			vcs[s.Key] = s.Value
		}
	}
	if version == "" {
		version = "(devel)"
	}
	fmt.Fprintf(w, "app %s\n", version)
	if rev := vcs["vcs.revision"]; rev != "" {
		line := "commit " + rev
		if t := vcs["vcs.time"]; t != "" {
			line += " (" + t + ")"
		}
		if vcs["vcs.modified"] == "true" {
			line += ", with uncommitted changes"
		}
		fmt.Fprintln(w, line)
	} else {
		fmt.Fprintln(w, "commit unknown (built without VCS information)")
	}
	if ok {
		fmt.Fprintln(w, strings.TrimSpace("built with "+info.GoVersion))
	}
}

// SettingNames are the names of every setting the app reads from the
// environment, for tests that pass a process only those.
func SettingNames() []string { return settingNames() }

// buildVersion is the build's version in one short string, as a worker's
// heartbeat tells operators: Version (or the module's), and the commit's
// first 12 characters, marked "+dirty" when built with uncommitted
// changes.
func buildVersion() string {
	version := Version
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return cmp.Or(version, "(devel)")
	}
	version = cmp.Or(version, info.Main.Version, "(devel)")
	var rev, dirty string
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value[:min(len(s.Value), 12)]
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "+dirty"
		}
	}
	if rev == "" {
		return version
	}
	return version + " " + rev + dirty
}
