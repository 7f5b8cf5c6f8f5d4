package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/modules/account"
	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/analytics"
	"github.com/otjhelper/otj/modules/digest"
	"github.com/otjhelper/otj/modules/reports"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/modules/web"
	"github.com/otjhelper/otj/platform/database"
	"github.com/otjhelper/otj/platform/natsserver"
	"github.com/otjhelper/otj/platform/service"
	"github.com/otjhelper/otj/platform/session"
)

type mode int

const (
	modeAll mode = iota
	modeWeb
	modeWorker
)

func (m mode) String() string { return [...]string{"all", "web", "worker"}[m] }

func (m mode) web() bool    { return m == modeAll || m == modeWeb }
func (m mode) worker() bool { return m == modeAll || m == modeWorker }

// shutdownTimeout bounds each step of stopping after the worker's own
// grace period: HTTP drain, NATS drain.
const shutdownTimeout = 10 * time.Second

// runServices starts what the mode needs, runs until ctx ends or a
// service fails, then stops everything in order.
func runServices(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer, m mode, opts Options) (err error) {
	log = log.With("mode", m.String())
	if m == modeWorker && cfg.NATSURL == "" {
		return errors.New("NATS_URL is not set: app worker joins a NATS server, such as the one app web embeds (NATS_URL=nats://" + cfg.NATSListen + ")")
	}
	// Take the web port first, so a port clash fails before anything starts.
	var ln net.Listener
	if m.web() {
		if err := checkSecretKey(cfg); err != nil {
			return err
		}
		if ln, err = listenWeb(cfg); err != nil {
			return err
		}
		defer ln.Close()
	}
	mx, err := listenMetrics(cfg, m)
	if err != nil {
		return err
	}
	defer mx.close()

	listen := ""
	if m == modeWeb {
		listen = cfg.NATSListen // workers in other processes join here
	}
	be, err := openBackend(ctx, cfg, log, backendOptions{Name: "otj-" + m.String(), Listen: listen, ApplyResultBounds: m.web(), WaitForDeps: true, JoinOnly: m == modeWorker})
	if err != nil {
		if ctx.Err() != nil {
			// Stopped while waiting for a dependency: a clean stop.
			log.Info("stopped before starting", "reason", err)
			return nil
		}
		return err
	}
	defer be.Close(ctx)

	var g service.Group
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := startServices(runCtx, &g, cfg, log, stdout, m, opts, be, mx, ln); err != nil {
		return err
	}
	log.Info("started", "data_dir", cfg.DataDir, "database", databaseTarget(cfg), "nats", natsTarget(cfg, be.Embedded), "broker", cfg.Broker)

	// Run until a signal, or until any service stops on its own.
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case <-g.Failed():
	}
	cancel()
	return g.Wait()
}

// listenWeb takes the web port, saying which setting to change when it
// is taken.
func listenWeb(cfg config) (net.Listener, error) {
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("PORT %d: %s is already in use; set PORT to a free port", cfg.Port, addr)
		}
		return nil, fmt.Errorf("PORT %d / HOST %s: %w", cfg.Port, cfg.Host, err)
	}
	return ln, nil
}

// startServices starts in g, on ctx, the services of the mode's roles:
// the relays every process runs, the worker's, and the web's.
func startServices(ctx context.Context, g *service.Group, cfg config, log *slog.Logger, stdout io.Writer, m mode, opts Options, be *backend, mx *appMetrics, ln net.Listener) error {
	startRelays(ctx, g, cfg, log, be)
	client, err := newClient(ctx, cfg, log, be, m, opts, mx.observer())
	if err != nil {
		return err
	}
	if err := mx.start(ctx, g, client, m, log, stdout); err != nil {
		return err
	}
	if m.worker() {
		w, err := newWorker(ctx, client)
		if err != nil {
			return err
		}
		g.Go("worker", func() error { return w.Run(ctx) })
	}
	if cfg.SMTPURL == "" {
		// Digests land in this process's outbox, on its own disk: an
		// erasure must reach them here.
		g.Go("outbox-erasures", func() error { return honourErasures(ctx, cfg, be, log) })
	}
	if !m.web() {
		return nil
	}
	if cfg.DigestSchedule != nil {
		// Every web process runs one; the KV lease lets one fan out a
		// period. Workers run none: fanning out is enqueueing, which a
		// worker's NATS role may not do.
		g.Go("digest-schedule", func() error { return runDigestSchedule(ctx, cfg, be, client, log) })
	}
	g.Go("projection", func() error { return client.RunProjection(ctx) })
	return startWeb(ctx, g, cfg, log, stdout, be, client, mx, ln)
}

// startRelays starts what every process runs first, whatever its role:
// the watch on its NATS connection and the Redis relay.
func startRelays(ctx context.Context, g *service.Group, cfg config, log *slog.Logger, be *backend) {
	// A connection nats.go has given up on does not come back.
	g.Go("nats", func() error { return be.Lost(ctx, cfg) })
	if be.Redis != nil {
		// Every process passes the work items it and others store in the
		// event log on to Redis: retries from workers, retries by hand.
		g.Go("redis-relay", func() error { return be.Redis.Relay(ctx) })
	}
}

// startWeb starts the web server on ln and says where it is.
func startWeb(ctx context.Context, g *service.Group, cfg config, log *slog.Logger, stdout io.Writer, be *backend, client *tasks.Client, mx *appMetrics, ln net.Listener) error {
	exposed := webWarnings(cfg, log)
	srv, err := newWebServer(ctx, g, cfg, log, be, client, mx)
	if err != nil {
		return err
	}
	g.Go("http", func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go("http-shutdown", func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	url := "http://" + ln.Addr().String() + "/tasks/"
	fmt.Fprintf(stdout, "OTJ Helper is running at %s\n", url)
	if exposed != "" {
		fmt.Fprintf(stdout, "WARNING: %s\n", exposed)
	}
	if be.Embedded != nil && be.Embedded.ClientURL() != "" {
		fmt.Fprintf(stdout, "Workers can join with: %s app worker\n", joinSettings(cfg, be.Embedded, be.WorkerToken))
	}
	return nil
}

// webWarnings logs the web's risky settings, and returns the warning
// for a development sign-in others can reach, "" if none.
func webWarnings(cfg config, log *slog.Logger) string {
	if cfg.DevAutoLoginEmail != "" {
		log.Warn("development sign-in is on: every request is signed in as DEV_AUTO_LOGIN_EMAIL; never set it where others can reach the app",
			"email", cfg.DevAutoLoginEmail, "host", cfg.Host)
	}
	exposed := devLoginExposed(cfg)
	if exposed != "" {
		log.Warn(exposed, "email", cfg.DevAutoLoginEmail, "host", cfg.Host)
	}
	if cfg.SecretKeyRandom {
		log.Warn("SECRET_KEY is not set; using a random key, so sessions end when the process stops")
	}
	return exposed
}

// newWebServer is the web UI on the process's task client, activity
// store and event streams.
func newWebServer(ctx context.Context, g *service.Group, cfg config, log *slog.Logger, be *backend, client *tasks.Client, mx *appMetrics) (*http.Server, error) {
	https := cfg.BaseURL != nil && cfg.BaseURL.Scheme == "https"
	signer, err := session.NewSigner(cfg.SecretKey, session.Secure(https))
	if err != nil {
		return nil, fmt.Errorf("SECRET_KEY: %w", err)
	}
	db := be.DB
	store := activity.NewStore(db)
	_, purgeJS, err := startActivityEvents(ctx, g, cfg, be, log)
	if err != nil {
		return nil, err
	}
	var admin *web.AdminConfig
	if !cfg.Operators.Empty() {
		admin = &web.AdminConfig{Operators: cfg.Operators, Tasks: client, Users: store}
	}
	return web.NewServer(web.Config{
		Admin: admin,
		Tasks: client, Enqueuer: client, Results: client, Users: store, Activities: store,
		Control: client, History: client, Events: client,
		Sessions: signer, Projection: client, DevAutoLoginEmail: cfg.DevAutoLoginEmail, Logger: log,
		OIDC: cfg.OIDC, SessionTTL: cfg.SessionTTL, TrustProxyHeaders: cfg.TrustProxyHeaders, Settings: store,
		BaseURL: cfg.BaseURL,
		Health:  webHealth(cfg, be, client), Retention: tasktype.Retention{TTL: cfg.ResultTTL, Keep: cfg.ResultKeep},
		Middleware: mx.middleware(),
		// The web knows no job type: each module describes its kind
		// with the registry.
		Kinds: client.Kinds(),
		Import: &web.ActivityImport{Type: reports.ActivityImport, Uploads: store, Payload: reports.ImportPayload,
			MaxBytes: cfg.ImportMaxBytes},
		// The account page: the export is a job type, the erase
		// reaches the task system and the activity log.
		Account: &account.Eraser{Tasks: client, Rows: store, Events: activity.EventPurger{JS: purgeJS}, Logger: log,
			Announcer: account.AnnounceFunc(func(ctx context.Context, userID int64) error { return account.Announce(ctx, be.NC, userID) })},
		ExportType: account.ExportType,
	})
}

// webHealth are the checks /healthz runs.
func webHealth(cfg config, be *backend, client *tasks.Client) []web.HealthCheck {
	health := []web.HealthCheck{
		{Name: "database", Check: func(ctx context.Context) error { return be.DB.PingContext(ctx) }},
		{Name: "nats", Check: be.Broker.Ping},
		workersHealth(client, cfg.WorkersStallAfter),
	}
	if be.Redis != nil {
		// Without Redis, jobs run in the request: slower, still working.
		health = append(health, web.HealthCheck{Name: "redis", Check: redisHealth(cfg, be), Degraded: true})
	}
	return health
}

// joinSettings are the settings a worker needs to join the embedded
// server: its URL and the worker role's token, which the server made up
// and admits with a worker's rights only (deploy/nats/roles.conf). The
// token or password this process itself presents is never shown.
func joinSettings(cfg config, embedded *natsserver.Server, workerToken string) string {
	line := "NATS_URL=" + embedded.ClientURL() + " NATS_TOKEN=" + workerToken
	if cfg.NATSTLSCA != "" {
		line += " NATS_TLS_CA=" + cfg.NATSTLSCA
	}
	return line + brokerJoinSettings(cfg)
}

// brokerJoinSettings are the settings a worker needs beside NATS's to
// take the same jobs: the database it reads (DATABASE_URL, when it is
// not this data dir's SQLite), the broker, and with Redis its URL, CA and
// key prefix. A URL holding credentials is referred to as a shell
// variable, as NATS credentials are: stdout often ends up in a log.
func brokerJoinSettings(cfg config) string {
	line := ""
	if cfg.DatabaseURL != "" {
		line += urlJoinSetting("DATABASE_URL", cfg.DatabaseURL)
	}
	if cfg.Broker != brokerRedis {
		return line
	}
	line += " TASKS_BROKER=" + brokerRedis + urlJoinSetting("REDIS_URL", cfg.RedisURL)
	if cfg.RedisTLSCA != "" {
		line += " REDIS_TLS_CA=" + cfg.RedisTLSCA
	}
	if cfg.RedisKeyPrefix != defaultRedisPrefix {
		line += " REDIS_KEY_PREFIX=" + shellQuote(cfg.RedisKeyPrefix)
	}
	return line
}

// urlJoinSetting is " NAME=url" for the join line, or ` NAME="$NAME"`
// when url holds a user or password.
func urlJoinSetting(name, raw string) string {
	if u, err := url.Parse(raw); err != nil || u.User != nil || u.Query().Has("password") {
		return " " + name + `="$` + name + `"`
	}
	return " " + name + "=" + shellQuote(raw)
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t'\"$`\\{}*?[]()<>|&;#~!") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// redisHealth is the health check of the Redis broker. A password that
// Redis refuses after the start (changed on the server) is said in so
// many words, naming REDIS_URL, as the reason the jobs run in the
// requests.
func redisHealth(cfg config, be *backend) func(context.Context) error {
	return func(ctx context.Context) error {
		err := be.Redis.Ping(ctx)
		if redis.IsAuthError(err) {
			return fmt.Errorf("REDIS_URL: Redis at %s refuses the password (%s): %w", redactURL(cfg.RedisURL), redisAuthReason(err), err)
		}
		return err
	}
}

func natsTarget(cfg config, embedded *natsserver.Server) string {
	if embedded == nil {
		return redactURL(cfg.NATSURL)
	}
	if u := embedded.ClientURL(); u != "" {
		return "embedded, listening on " + u
	}
	return "embedded, in-process only"
}

// newRegistry registers every job type this build runs, each with its
// kind. Analytics pages ask logChanged whether the log has moved past
// them.
func newRegistry(db *bun.DB, cfg config, logChanged analytics.LogChanged) (*tasks.Registry, error) {
	reg := tasks.NewRegistry()
	if err := reports.RegisterWith(reg, activity.NewStore(db), reports.Options{MinDuration: cfg.ReportMinDuration}); err != nil {
		return nil, err
	}
	if err := analytics.RegisterWith(reg, activity.NewStore(db), analytics.Options{LogChanged: logChanged}); err != nil {
		return nil, err
	}
	if err := reports.RegisterImport(reg, activity.NewStore(db)); err != nil {
		return nil, err
	}
	sender, err := digestSender(cfg)
	if err != nil {
		return nil, err
	}
	if err := digest.Register(reg, digest.Config{Source: activity.NewStore(db), DB: db, Sender: sender, From: cfg.MailFrom, BaseURL: baseURL(cfg)}); err != nil {
		return nil, err
	}
	if err := account.Register(reg, activity.NewStore(db)); err != nil {
		return nil, err
	}
	return reg, nil
}

// baseURL is BASE_URL as text, "" when unset.
func baseURL(cfg config) string {
	if cfg.BaseURL == nil {
		return ""
	}
	return cfg.BaseURL.String()
}

// newClient is the process's door to the task system. A worker takes
// jobs from the broker that carries them; with the Redis broker, a web
// request runs its job itself when Redis cannot be reached.
func newClient(ctx context.Context, cfg config, log *slog.Logger, be *backend, m mode, opts Options, obs tasks.Observer) (*tasks.Client, error) {
	// The activity log's stream, read through this process's
	// connection, as the web's relay writes it (startActivityEvents).
	activityJS, err := jetstream.New(be.NC)
	if err != nil {
		return nil, fmt.Errorf("activity events: %w", err)
	}
	reg, err := newRegistry(be.DB, cfg, func(ctx context.Context, userID int64) (time.Time, error) {
		return activity.LastChange(ctx, activityJS, userID)
	})
	if err != nil {
		return nil, err
	}
	if opts.ExtraJobs != nil {
		if err := opts.ExtraJobs(reg); err != nil {
			return nil, err
		}
	}
	tc := tasks.Config{
		Registry: reg, Logger: log,
		Retention: tasktype.Retention{TTL: cfg.ResultTTL, Keep: cfg.ResultKeep},
		// A worker's NATS role may not purge the results bucket: the web
		// side's projection deletes the older results.
		PruneOnProjection: true,
		Worker:            tasks.WorkerConfig{Lease: cfg.JobLease, StoreFullMessage: storeFullMessage(cfg), Version: buildVersion()},
		RunInRequest:      m.web() && cfg.Broker == brokerRedis,
		Observer:          obs,
	}
	if m.worker() {
		tc.Worker.Concurrency, tc.Worker.ShutdownGrace = cfg.WorkerConcurrency, cfg.WorkerShutdownGrace
	}
	if m.web() {
		// The web side prunes finished tasks past TASK_RETENTION, each
		// web process alike: its maintenance connection may purge the
		// log, which a worker's may not.
		tc.TaskRetention = cfg.TaskRetention
	}
	client, err := be.client(tc)
	if err != nil {
		return nil, err
	}
	return client, nil
}

// storeFullMessage is what a user is shown when their result could not
// be stored because the results bucket is full: what will make room,
// and the setting an operator can raise.
func storeFullMessage(cfg config) string {
	return fmt.Sprintf("There is no room to store this report right now; older reports expire after %s, or ask the operator to raise RESULT_MAX_BYTES.",
		lifetime(cfg.ResultTTL))
}

// lifetime says a RESULT_TTL in words: whole days as days.
func lifetime(d time.Duration) string {
	day := 24 * time.Hour
	switch {
	case d == day:
		return "a day"
	case d%day == 0:
		return fmt.Sprintf("%d days", d/day)
	case d == time.Hour:
		return "an hour"
	case d%time.Hour == 0:
		return fmt.Sprintf("%d hours", d/time.Hour)
	}
	return d.String()
}

// databaseTarget says which database the process uses, for the log.
func databaseTarget(cfg config) string {
	if cfg.DatabaseURL != "" {
		return database.RedactURL(cfg.DatabaseURL)
	}
	return filepath.Join(cfg.DataDir, database.FileName)
}

// openDatabase opens the app's database, PostgreSQL at DATABASE_URL or
// else SQLite in the data dir, and brings it up to date.
//
// With wait (a log to say so), a PostgreSQL server that does not answer
// yet is waited for, as connectNATS waits for NATS, so that processes
// start in any order; one that refuses the credentials or has no such
// database stops the process at once.
func openDatabase(ctx context.Context, cfg config, migrate bool, wait *slog.Logger) (*bun.DB, error) {
	path := filepath.Join(cfg.DataDir, database.FileName)
	var (
		db  *bun.DB
		err error
	)
	if cfg.DatabaseURL != "" {
		// Its errors name DATABASE_URL already.
		try := func(ctx context.Context) (err error) {
			db, err = database.OpenPostgres(ctx, cfg.DatabaseURL)
			return err
		}
		if wait == nil {
			err = try(ctx)
		} else {
			err = service.WaitFor(ctx, wait, "the database at DATABASE_URL "+database.RedactURL(cfg.DatabaseURL), try,
				func(err error) bool { return !errors.Is(err, database.ErrUnreachable) })
		}
	} else if db, err = database.Open(ctx, path); err != nil {
		err = fmt.Errorf("OTJ_DATA_DIR: %w", err)
	}
	if err != nil {
		return nil, err
	}
	if migrate {
		if _, err := database.Migrate(ctx, db, path); err != nil {
			db.Close()
			return nil, err
		}
		if err := activity.NewStore(db).SeedReference(ctx); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

// checkSecretKey refuses to serve the web without a SECRET_KEY: sessions
// signed with a made-up key end at every restart and differ between web
// processes. Only local development (DEV_AUTO_LOGIN_EMAIL) may go
// without. loadConfig has already refused a short one.
func checkSecretKey(cfg config) error {
	if cfg.SecretKeyRandom && cfg.DevAutoLoginEmail == "" {
		return fmt.Errorf("SECRET_KEY: not set; the web signs sessions with it: set at least %d bytes (try: openssl rand -hex 32), or DEV_AUTO_LOGIN_EMAIL for local development", session.MinKeyLen)
	}
	return nil
}

// devLoginExposed is the warning for DEV_AUTO_LOGIN_EMAIL on a HOST that
// others can reach, where anyone who opens the app is that user; "" when
// it does not apply.
func devLoginExposed(cfg config) string {
	if cfg.DevAutoLoginEmail == "" || natsserver.IsLoopback(cfg.Host) {
		return ""
	}
	return "DEV_AUTO_LOGIN_EMAIL is set and HOST " + cfg.Host + " is beyond loopback: anyone who can reach this address is signed in as " +
		cfg.DevAutoLoginEmail + "; unset DEV_AUTO_LOGIN_EMAIL, or set HOST=127.0.0.1"
}
