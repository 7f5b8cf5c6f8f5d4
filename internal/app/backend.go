package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	natsroles "github.com/otjhelper/otj/deploy/nats"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/redisbroker"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/natsconn"
	"github.com/otjhelper/otj/platform/natsserver"
	"github.com/otjhelper/otj/platform/service"
)

// backend is what every process that touches tasks stands on: the data
// dir's database, a NATS connection (to NATS_URL, or to a server embedded
// on the data dir's own store) and the JetStream broker over it.
type backend struct {
	DB       *bun.DB
	NC       *nats.Conn
	Broker   *jetstream.Broker
	Embedded *natsserver.Server // nil when NATS_URL is set
	// Maint is the maintenance connection (see maintenance): nil when
	// the process has none, and NC does its work.
	Maint *nats.Conn
	// WorkerToken is the worker role's token of an embedded server, for
	// the join line; "" otherwise.
	WorkerToken string
	// Redis carries the jobs when TASKS_BROKER=redis; nil otherwise.
	Redis *redisbroker.Broker
	// Creds is what the connection presented, and where it came from.
	Creds natsCreds

	lost     chan struct{} // closed when NC closes on its own
	lostErr  error         // NC's last error then
	lostOnce sync.Once

	rdb *redis.Client
	log *slog.Logger
}

// backendOptions says how a process uses the backend.
type backendOptions struct {
	// Name names the NATS connection in the server's connection list,
	// e.g. "otj-web" or "otj-tasks".
	Name string
	// Listen is where an embedded server listens for other processes
	// (app web: NATS_LISTEN); "" serves only this process.
	Listen string
	// ApplyResultBounds gives the results bucket RESULT_TTL and
	// RESULT_MAX_BYTES, updating a bucket whose bounds differ. app web
	// and app all set it; workers, operator commands and benchmarks leave
	// the bucket as the web side made it, so that a command run without
	// the app's settings cannot change them, and so that a worker needs no
	// right to change the bucket's stream (README, NATS permissions).
	ApplyResultBounds bool
	// WaitForDeps waits for a NATS server at NATS_URL, and a PostgreSQL
	// at DATABASE_URL, that does not answer yet, as the app's
	// long-running processes do so that they start in any order;
	// operator commands and benchmarks fail at once instead.
	WaitForDeps bool
	// JoinOnly opens the stream and the results bucket as the web side
	// made them, waiting for them if it has not yet: a worker's, which
	// may have no right to make them (README, NATS permissions).
	JoinOnly bool
}

// openBackend opens the database (migrated, with the reference data),
// starts an embedded NATS server on <data dir>/nats unless NATS_URL is
// set, connects, and opens the broker. On error everything opened so far
// is closed again. Its errors name the setting to look at; an embedded
// store held by another process wraps natsserver.ErrStoreInUse.
func openBackend(ctx context.Context, cfg config, log *slog.Logger, o backendOptions) (_ *backend, err error) {
	// With DATABASE_URL and NATS_URL nothing lives in the data dir, and a
	// worker on a host without one (or with a read-only one) runs.
	if needsDataDir(cfg) {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("OTJ_DATA_DIR %s: %w", cfg.DataDir, err)
		}
	}
	b := &backend{log: log, lost: make(chan struct{})}
	defer func() {
		if err != nil {
			b.Close(ctx)
		}
	}()
	if err := b.openNATS(ctx, cfg, log, o); err != nil {
		return nil, err
	}
	// The database only now: a process the server refuses leaves a
	// mistyped or unrelated data dir as it was.
	var waitDB *slog.Logger
	if o.WaitForDeps {
		waitDB = log
	}
	if b.DB, err = openDatabase(ctx, cfg, true, waitDB); err != nil {
		return nil, err
	}
	if cfg.Broker == brokerRedis {
		// Before the stream, which a worker may wait for: a refused
		// password is a setting to fix, said at once.
		if err := b.dialRedis(ctx, cfg, log); err != nil {
			return nil, err
		}
	}
	if err := b.openJetStream(ctx, cfg, log, o); err != nil {
		return nil, err
	}
	if b.rdb != nil {
		// Redis down is no reason not to start: see checkRedisAuth.
		b.Redis, err = redisbroker.New(redisbroker.Config{
			Client: b.rdb, Events: b.Broker, Prefix: cfg.RedisKeyPrefix, Lease: cfg.JobLease, SendTimeout: cfg.RedisTimeout,
			Logger: log,
		})
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}

// openNATS connects b to NATS with the role's credentials: to the server
// at NATS_URL, or to one it embeds in the data dir; and, unless it only
// joins, makes the maintenance connection too.
func (b *backend) openNATS(ctx context.Context, cfg config, log *slog.Logger, o backendOptions) (err error) {
	role := natsroles.Web
	if o.JoinOnly {
		role = natsroles.Worker
	}
	if b.Creds, err = credentials(cfg, cfg.NATSURL == "", role); err != nil {
		return err
	}
	connOpts := natsconn.Options{URL: cfg.NATSURL, Name: o.Name, Logger: log, CAFile: cfg.NATSTLSCA,
		Token: b.Creds.Token, User: b.Creds.User, Password: b.Creds.Password,
		CredsFile: b.Creds.CredsFile, NKeyFile: b.Creds.NKeyFile,
		Closed: func(err error) { b.lostOnce.Do(func() { b.lostErr = err; close(b.lost) }) }}
	if cfg.NATSURL != "" {
		// With a server elsewhere, NATS_TLS_CERT is this process's
		// client certificate, for a server that asks for one.
		connOpts.CertFile, connOpts.KeyFile = cfg.NATSTLS.Cert, cfg.NATSTLS.Key
	}
	if cfg.NATSURL == "" {
		if err := b.startEmbedded(cfg, log, o); err != nil {
			return err
		}
		// This process's own connections stay in-process, off the
		// listener, whether or not there is one.
		connOpts.URL, connOpts.Server = "", b.Embedded.Server()
	}
	if b.NC, err = connectNATS(ctx, cfg, log, connOpts, b.Creds, o.WaitForDeps); err != nil {
		return err
	}
	if !o.JoinOnly {
		if b.Maint, err = maintenance(ctx, cfg, log, connOpts, b.Embedded, o.WaitForDeps); err != nil {
			return err
		}
	}
	return nil
}

// startEmbedded starts the NATS server b embeds in the data dir, with
// the roles' credentials, listening on o.Listen when set.
func (b *backend) startEmbedded(cfg config, log *slog.Logger, o backendOptions) (err error) {
	if o.Listen != "" && cfg.NATSListenInsecure && !cfg.NATSTLS.Enabled() {
		log.Warn("NATS_LISTEN_INSECURE is set: workers' NATS traffic, the token included, goes in plain text", "listen", o.Listen)
	}
	roles, err := embeddedRoles(cfg, b.Creds)
	if err != nil {
		return err
	}
	b.WorkerToken = roles[1].Token
	b.Embedded, err = natsserver.Start(natsserver.Config{
		StoreDir: filepath.Join(cfg.DataDir, "nats"), Listen: o.Listen, Sync: cfg.NATSSync, Logger: log,
		Auth: natsserver.Auth{Roles: roles}, TLS: cfg.NATSTLS, InsecureListen: cfg.NATSListenInsecure,
	})
	if err != nil {
		if o.Listen != "" && !errors.Is(err, natsserver.ErrStoreInUse) {
			return fmt.Errorf("NATS_LISTEN %s: %w", o.Listen, err)
		}
		return fmt.Errorf("OTJ_DATA_DIR %s: %w", cfg.DataDir, err)
	}
	return nil
}

// dialRedis makes b's Redis client from REDIS_URL and checks that Redis
// takes its password.
func (b *backend) dialRedis(ctx context.Context, cfg config, log *slog.Logger) error {
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	if err := redisTLS(cfg, opts); err != nil {
		return err
	}
	// Deadlines from contexts reach the socket, so that REDIS_TIMEOUT
	// holds even against a Redis that accepts and never answers.
	opts.ContextTimeoutEnabled = true
	b.rdb = redis.NewClient(opts)
	return checkRedisAuth(ctx, cfg, log, b.rdb)
}

// openJetStream opens b's event log on JetStream: a joining worker waits
// for the stream app web makes, others for JetStream itself when told to
// wait.
func (b *backend) openJetStream(ctx context.Context, cfg config, log *slog.Logger, o backendOptions) (err error) {
	// JOB_LEASE reaches the shared consumer only through a worker's
	// Queue; other processes leave it as the workers set it.
	jcfg := jetstream.Config{Conn: b.NC, Admin: b.Maint, AckWait: cfg.JobLease, ResetAckWait: cfg.JobLeaseReset, Logger: log,
		// A worker's role may not purge the results bucket.
		NoPurge: o.JoinOnly}
	if o.ApplyResultBounds {
		// NATS_REPLICAS goes with the bounds: workers and commands leave
		// the stream's replicas as web processes set them.
		jcfg.Results = &jetstream.ResultBounds{TTL: cfg.ResultTTL, MaxBytes: cfg.ResultMaxBytes}
		jcfg.Replicas = cfg.NATSReplicas
		// So does TASK_RETENTION: web processes prune by it, and must
		// agree on it.
		jcfg.TaskRetention, jcfg.ResetTaskRetention = cfg.TaskRetention, cfg.TaskRetentionReset
	}
	jcfg.JoinOnly = o.JoinOnly
	open := func(ctx context.Context) (err error) {
		b.Broker, err = jetstream.Open(ctx, jcfg)
		return err
	}
	switch {
	case o.JoinOnly:
		err = natsconn.WaitJetStream(ctx, log, "the stream "+jetstream.StreamName+" and the bucket "+jetstream.ResultsBucket+", which app web makes at its first start", open,
			func(err error) bool {
				return errors.Is(err, jetstream.ErrNotDeployed) || errors.Is(err, tasktype.ErrUnavailable)
			})
	case o.WaitForDeps:
		// A cluster that has just started answers before it has elected
		// the JetStream leader that streams are made through.
		err = natsconn.WaitJetStream(ctx, log, "JetStream at NATS_URL "+redactURL(cfg.NATSURL), open,
			func(err error) bool { return errors.Is(err, tasktype.ErrUnavailable) })
	default:
		err = open(ctx)
	}
	if err != nil {
		return jetStreamError(cfg, err)
	}
	if o.ApplyResultBounds {
		// Open refuses a TASK_RETENTION other than the stream's: this one
		// is in force for every web process.
		log.InfoContext(ctx, "task retention in force", "retention", durationSetting(cfg.TaskRetention), "stream", jetstream.StreamName)
	}
	return nil
}

// jetStreamError names the setting behind an error opening the event
// log, where one is to blame.
func jetStreamError(cfg config, err error) error {
	var serverErr *jetstream.ServerError
	var replicasErr *jetstream.ReplicasError
	var retentionErr *jetstream.RetentionMismatchError
	switch {
	case errors.As(err, &serverErr):
		return fmt.Errorf("NATS_URL %s: %w", redactURL(cfg.NATSURL), serverErr)
	case errors.As(err, &replicasErr):
		return fmt.Errorf("NATS_REPLICAS %d: %w", cfg.NATSReplicas, replicasErr)
	case errors.As(err, &retentionErr):
		deployed := durationSetting(retentionErr.Deployed)
		return fmt.Errorf("TASK_RETENTION %s: the deployed stream %s keeps finished tasks for %s; set TASK_RETENTION=%s, or TASK_RETENTION_RESET=true on one web process to change it for all",
			durationSetting(retentionErr.Wanted), jetstream.StreamName, deployed, deployed)
	case errors.Is(err, tasktype.ErrResultStoreFull):
		return fmt.Errorf("RESULT_MAX_BYTES %d: more than the NATS server's JetStream storage can reserve; lower it: %w", cfg.ResultMaxBytes, err)
	}
	return err
}

// durationSetting writes d as a lifetime setting takes it: whole days
// as 30d, else a Go duration.
func durationSetting(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= day && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	return d.String()
}

// connectNATS connects as o says. With wait, an external server
// (NATS_URL) that cannot be reached yet is waited for, so that processes start in any
// order; one that refuses the credentials or the certificate, or an
// address that is wrong, stops the process at once, with the error
// naming the setting to look at. The embedded server is in-process and
// never waited for.
func connectNATS(ctx context.Context, cfg config, log *slog.Logger, o natsconn.Options, creds natsCreds, wait bool) (*nats.Conn, error) {
	var nc *nats.Conn
	try := func(context.Context) error {
		var err error
		nc, err = natsconn.Connect(o)
		return connectError(cfg, creds, err)
	}
	if o.Server != nil || !wait {
		err := try(ctx)
		return nc, err
	}
	what := "the NATS server at NATS_URL " + redactURL(cfg.NATSURL)
	if err := service.WaitFor(ctx, log, what, try, func(err error) bool { return !errors.Is(err, errNATSUnreachable) }); err != nil {
		return nil, err
	}
	return nc, nil
}

// errNATSUnreachable marks a connection error worth waiting out: nothing
// answered at NATS_URL, or the connection broke before the server had
// said anything.
var errNATSUnreachable = errors.New("no NATS server answers there yet")

// connectError is the error for a failed connection, naming the setting
// to look at: errNATSUnreachable wrapped when the server may yet come.
func connectError(cfg config, creds natsCreds, err error) error {
	var unknownCA x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	var hostname x509.HostnameError
	at := redactURL(cfg.NATSURL)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, nats.ErrAuthorization):
		return creds.refused(cfg)
	case cfg.NATSTLSCA != "" && (errors.As(err, &unknownCA) || errors.As(err, &verify)) && !errors.As(err, &hostname):
		return fmt.Errorf("NATS_TLS_CA %s: the NATS server at %s presented a certificate this authority did not sign", cfg.NATSTLSCA, at)
	case errors.As(err, &unknownCA):
		return fmt.Errorf("NATS_URL %s: the server's certificate is signed by an unknown authority; set NATS_TLS_CA to its CA file: %v", at, err)
	case errors.Is(err, nats.ErrNoServers), errors.Is(err, nats.ErrTimeout), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("NATS_URL %s: %w: %v", at, errNATSUnreachable, err)
	}
	return fmt.Errorf("NATS_URL %s: %w", at, err)
}

// redisTLS gives a rediss:// client REDIS_TLS_CA as its authority;
// redis.ParseURL has set up TLS with the server's name, and the system's
// authorities.
func redisTLS(cfg config, opts *redis.Options) error {
	if cfg.RedisTLSCA == "" || opts.TLSConfig == nil {
		return nil
	}
	pool, err := certPool(cfg.RedisTLSCA)
	if err != nil {
		return fmt.Errorf("REDIS_TLS_CA: %w", err)
	}
	opts.TLSConfig.RootCAs = pool
	return nil
}

// checkRedisAuth asks Redis once, within REDIS_TIMEOUT or
// redisStartCheck, whichever is longer, whether it takes
// REDIS_URL's password and certificate. A Redis that is down or slow does
// not stop the process: web requests then run their jobs themselves, and
// workers wait, as before. One that refuses the password, or whose
// certificate REDIS_TLS_CA did not sign, does: that is a setting to fix,
// not an outage to ride out, and the jobs would otherwise all run in the
// web requests with nobody told why.
func checkRedisAuth(ctx context.Context, cfg config, log *slog.Logger, rdb *redis.Client) error {
	// A start can afford longer than an enqueue (REDIS_TIMEOUT): a TLS
	// handshake on a busy machine takes a while, and the answer decides
	// whether a refusal is caught now or only in the log later.
	pctx, cancel := context.WithTimeout(ctx, max(cfg.RedisTimeout, redisStartCheck))
	defer cancel()
	err := rdb.Ping(pctx).Err()
	var unknownCA x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	switch {
	case err == nil:
		return nil
	case redis.IsAuthError(err):
		return fmt.Errorf("REDIS_URL: Redis at %s refused the password in REDIS_URL (%v)", redactURL(cfg.RedisURL), redisAuthReason(err))
	case errors.As(err, &unknownCA), errors.As(err, &verify):
		if cfg.RedisTLSCA != "" {
			return fmt.Errorf("REDIS_TLS_CA %s: Redis at %s presented a certificate this authority did not sign", cfg.RedisTLSCA, redactURL(cfg.RedisURL))
		}
		return fmt.Errorf("REDIS_URL %s: Redis's certificate is signed by an unknown authority; set REDIS_TLS_CA to its CA file", redactURL(cfg.RedisURL))
	}
	log.Warn("redis does not answer yet; starting anyway", "redis", redactURL(cfg.RedisURL), "err", err)
	return nil
}

// redisStartCheck is the least time checkRedisAuth gives Redis.
const redisStartCheck = 3 * time.Second

// redisAuthReason is the first word of Redis's refusal (WRONGPASS,
// NOAUTH), which says whether a password was missing or wrong.
func redisAuthReason(err error) string {
	reason, _, _ := strings.Cut(err.Error(), " ")
	return reason
}

// needsDataDir reports whether the process keeps anything in the data
// dir: the SQLite database, or the embedded NATS server's store.
func needsDataDir(cfg config) bool { return cfg.DatabaseURL == "" || cfg.NATSURL == "" }

// Lost waits until the NATS connection closes on its own, for good,
// which happens when the server refused this process's credentials on
// reconnecting, and returns why; or returns nil when ctx ends first.
func (b *backend) Lost(ctx context.Context, cfg config) error {
	select {
	case <-ctx.Done():
		return nil
	case <-b.lost:
	}
	if errors.Is(b.lostErr, nats.ErrAuthorization) {
		return b.Creds.refused(cfg)
	}
	return fmt.Errorf("NATS_URL %s: the connection closed: %v", redactURL(cfg.NATSURL), b.lostErr)
}

// natsCreds is what a process presents to the NATS server, and which
// setting or file it came from, for the error when it is refused.
type natsCreds struct {
	natsserver.Auth
	// CredsFile and NKeyFile are NATS_CREDS and NATS_NKEY.
	CredsFile string
	NKeyFile  string
	// From is "NATS_TOKEN", "NATS_USER", "NATS_CREDS", "NATS_NKEY", the
	// path of the token file in the data dir, or "" when there are none.
	From string
}

// roleTokenFiles name the files in a data dir that keep the tokens an
// embedded server made up for each role of deploy/nats/roles.conf, for
// its next start and for the processes on the same machine that connect
// to it: a worker reads the worker's, an operator command the web's. Only
// app web and app all read the maintenance role's.
var roleTokenFiles = map[string]string{
	natsroles.Web: "nats-web-token", natsroles.Worker: "nats-worker-token", natsroles.Maint: "nats-maint-token",
}

// credentials are the settings' NATS credentials. Without any, embed
// (the process runs the server) makes up the role's token, or reads the
// one made before, in the data dir; otherwise the role's token is read
// from the data dir when a server on this machine made one there.
func credentials(cfg config, embed bool, role string) (natsCreds, error) {
	switch {
	case cfg.NATSToken != "":
		return natsCreds{Auth: natsserver.Auth{Token: cfg.NATSToken}, From: "NATS_TOKEN"}, nil
	case cfg.NATSUser != "":
		return natsCreds{Auth: natsserver.Auth{User: cfg.NATSUser, Password: cfg.NATSPassword}, From: "NATS_USER"}, nil
	case cfg.NATSCreds != "":
		return natsCreds{CredsFile: cfg.NATSCreds, From: "NATS_CREDS"}, nil
	case cfg.NATSNKey != "":
		return natsCreds{NKeyFile: cfg.NATSNKey, From: "NATS_NKEY"}, nil
	}
	path := filepath.Join(cfg.DataDir, roleTokenFiles[role])
	var token string
	var err error
	if embed {
		token, _, err = natsserver.LoadOrCreateToken(path)
	} else if token, err = natsserver.ReadToken(path); errors.Is(err, fs.ErrNotExist) {
		return natsCreds{}, nil
	}
	if err != nil {
		return natsCreds{}, fmt.Errorf("NATS_TOKEN is not set, and the data dir's token: %w", err)
	}
	return natsCreds{Auth: natsserver.Auth{Token: token}, From: path}, nil
}

// embeddedRoles are the roles an embedded server admits, in
// natsroles.Roles' order, with the permissions of deploy/nats/roles.conf:
// the web role by web, what this process presents (NATS_TOKEN, or
// NATS_USER and NATS_PASSWORD, or the data dir's web token), and the
// worker and maintenance roles by tokens made up and kept in the data
// dir. None of them has every right.
func embeddedRoles(cfg config, web natsCreds) ([]natsserver.Role, error) {
	tokens := map[string]string{}
	for _, role := range []string{natsroles.Worker, natsroles.Maint} {
		t, _, err := natsserver.LoadOrCreateToken(filepath.Join(cfg.DataDir, roleTokenFiles[role]))
		if err != nil {
			return nil, fmt.Errorf("OTJ_DATA_DIR %s: %w", cfg.DataDir, err)
		}
		tokens[role] = t
	}
	tokens[natsroles.Web] = web.Token + web.Password
	users, err := natsroles.Users(tokens)
	if err != nil {
		return nil, err
	}
	roles := make([]natsserver.Role, len(users))
	for i, u := range users {
		roles[i] = natsserver.Role{Name: u.Username, Token: tokens[u.Username], Permissions: u.Permissions}
	}
	roles[0].Token, roles[0].User, roles[0].Password = web.Token, web.User, web.Password
	return roles, nil
}

// maintenance opens the maintenance connection of a process that makes
// or changes the streams, or erases accounts: the embedded server's
// maintenance role, in-process, or NATS_MAINT_USER at NATS_URL. It is nil
// with NATS_URL and no NATS_MAINT_USER: the everyday connection then does
// that work, as a server whose web user has the rights (an older
// configuration) needs.
func maintenance(ctx context.Context, cfg config, log *slog.Logger, o natsconn.Options, embedded *natsserver.Server, wait bool) (*nats.Conn, error) {
	o.Name += "-maint"
	o.Closed = nil
	o.Token, o.User, o.Password, o.CredsFile, o.NKeyFile = "", "", "", "", ""
	creds := natsCreds{From: "NATS_MAINT_USER"}
	switch {
	case embedded != nil:
		t, err := natsserver.ReadToken(filepath.Join(cfg.DataDir, roleTokenFiles[natsroles.Maint]))
		if err != nil {
			return nil, fmt.Errorf("OTJ_DATA_DIR %s: %w", cfg.DataDir, err)
		}
		o.Token = t
	case cfg.NATSMaintUser != "":
		o.User, o.Password = cfg.NATSMaintUser, cfg.NATSMaintPassword
	default:
		return nil, nil
	}
	return connectNATS(ctx, cfg, log, o, creds, wait)
}

// refused is the one-line error for a server that refused c, naming the
// setting to look at.
func (c natsCreds) refused(cfg config) error {
	at := redactURL(cfg.NATSURL)
	switch c.From {
	case "":
		return fmt.Errorf("NATS_TOKEN: the NATS server at %s requires credentials: set NATS_TOKEN to the token app web prints (and keeps in its data dir's %s), or NATS_USER and NATS_PASSWORD", at, roleTokenFiles[natsroles.Worker])
	case "NATS_TOKEN":
		return fmt.Errorf("NATS_TOKEN: the NATS server at %s refused the token; use the one app web prints", at)
	case "NATS_USER":
		return fmt.Errorf("NATS_USER: the NATS server at %s refused NATS_USER and NATS_PASSWORD", at)
	case "NATS_MAINT_USER":
		return fmt.Errorf("NATS_MAINT_USER: the NATS server at %s refused NATS_MAINT_USER and NATS_MAINT_PASSWORD", at)
	case "NATS_CREDS":
		return fmt.Errorf("NATS_CREDS: the NATS server at %s refused the credentials in %s", at, cfg.NATSCreds)
	case "NATS_NKEY":
		return fmt.Errorf("NATS_NKEY: the NATS server at %s refused the NKey seeded in %s", at, cfg.NATSNKey)
	}
	return fmt.Errorf("NATS_TOKEN: the NATS server at %s refused the token in %s, which is not its own; set NATS_TOKEN to the token app web prints", at, c.From)
}

// redactURL hides any password in a NATS_URL, for errors.
func redactURL(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// client is a task client over the backend, with tc's other settings:
// the log is the JetStream broker, and the transport the broker that
// carries the jobs.
func (b *backend) client(tc tasks.Config) (*tasks.Client, error) {
	tc.DB, tc.Log, tc.Transport = b.DB, b.Broker, b.Broker
	if b.Redis != nil {
		tc.Transport = b.Redis
	}
	return tasks.NewClient(tc)
}

// newWorker opens a worker of client on the broker that carries the
// jobs, saying which setting to change if the deployment's lease differs.
func newWorker(ctx context.Context, client *tasks.Client) (*tasks.Worker, error) {
	w, err := client.NewWorker(ctx)
	var mismatch *jetstream.LeaseMismatchError
	if errors.As(err, &mismatch) {
		return nil, fmt.Errorf("JOB_LEASE %s: the deployed %s consumer uses %s; set JOB_LEASE=%s, or JOB_LEASE_RESET=true on one worker to change it for all",
			mismatch.Wanted, jetstream.WorkConsumer, mismatch.Deployed, mismatch.Deployed)
	}
	return w, err
}

// Close drains the NATS connection, then stops an embedded server and
// closes the database: the reverse of opening, so that nothing this
// process published is lost with the server. The drain is bounded by
// shutdownTimeout and runs even when ctx has ended (a stop signal is the
// usual reason to close). Safe to call twice.
func (b *backend) Close(ctx context.Context) {
	if b.rdb != nil {
		if err := b.rdb.Close(); err != nil {
			b.log.Warn("close redis client", "err", err)
		}
		b.rdb, b.Redis = nil, nil
	}
	if b.Maint != nil {
		b.Maint.Close() // used only at start, for erasures and retention's purges: nothing to drain
		b.Maint = nil
	}
	if b.NC != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		if err := natsconn.Drain(dctx, b.NC); err != nil {
			b.log.Warn("nats drain", "err", err)
		}
		cancel()
		b.NC = nil
	}
	if b.Embedded != nil {
		b.Embedded.Shutdown()
		b.Embedded = nil
	}
	if b.DB != nil {
		if err := b.DB.Close(); err != nil {
			b.log.Warn("close database", "err", err)
		}
		b.DB = nil
	}
}

// RoleTokenFiles are the files in the data dir where an embedded NATS
// server keeps the token it made up for each role (natsroles.Web,
// Worker, Maint), by role: for tests that present a role's token as an
// operator would, reading it from there.
func RoleTokenFiles() map[string]string { return maps.Clone(roleTokenFiles) }
