package app

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/otjhelper/otj/modules/digest"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/web"
	"github.com/otjhelper/otj/platform/database"
	"github.com/otjhelper/otj/platform/natsserver"
	"github.com/otjhelper/otj/platform/session"
	"github.com/otjhelper/otj/platform/settings"
)

// config is the app's configuration, read from the environment once, here.
type config struct {
	Host        string // HOST
	Port        int    // PORT
	DataDir     string // OTJ_DATA_DIR
	DatabaseURL string // DATABASE_URL: PostgreSQL; unset, SQLite in the data dir
	NATSURL     string // NATS_URL
	// NATSReplicas is how many copies of the stream, its consumers and
	// the results bucket the NATS cluster keeps (NATS_REPLICAS, 1 to 5):
	// 3 on a three-node cluster. The embedded server keeps 1.
	NATSReplicas      int
	NATSListen        string // NATS_LISTEN
	DevAutoLoginEmail string // DEV_AUTO_LOGIN_EMAIL
	SecretKey         []byte // SECRET_KEY
	SecretKeyRandom   bool   // SECRET_KEY was unset and one was made up
	WorkerConcurrency int    // WORKER_CONCURRENCY
	// NATSSync says when the embedded NATS server fsyncs its store
	// (NATS_SYNC): "interval" (nats-server's default, every 2 minutes),
	// "always" (every write, before it is acknowledged), or a duration
	// for the interval. An acknowledged enqueue survives the process
	// being killed either way; only what was fsynced survives a power
	// loss or kernel crash. With NATS_URL set it does not apply: the
	// external server's own configuration (jetstream.sync_interval)
	// decides.
	NATSSync natsserver.Sync
	// WorkerShutdownGrace is how long running jobs may finish after a
	// stop signal before they are handed back (WORKER_SHUTDOWN_GRACE).
	WorkerShutdownGrace time.Duration
	// JobLease is how long a job may go without a heartbeat from its
	// worker before another worker takes it over (JOB_LEASE).
	JobLease time.Duration
	// JobLeaseReset lets a worker change the lease of every worker: the
	// deployed consumer's, which a worker with another JOB_LEASE is
	// otherwise refused (JOB_LEASE_RESET).
	JobLeaseReset bool
	// Broker carries the jobs: "jetstream" or "redis" (TASKS_BROKER).
	// Events stay on JetStream either way.
	Broker string
	// RedisURL is the Redis server of the redis broker (REDIS_URL).
	RedisURL string
	// RedisTLSCA is the authority a rediss:// server's certificate is
	// checked against (REDIS_TLS_CA); unset, the system's.
	RedisTLSCA string
	// RedisKeyPrefix starts the broker's keys, so that deployments can
	// share one Redis (REDIS_KEY_PREFIX).
	RedisKeyPrefix string
	// RedisTimeout is how long an enqueue waits for Redis before running
	// the job in the request instead (REDIS_TIMEOUT).
	RedisTimeout time.Duration
	// BaseURL is where users reach the app (BASE_URL), such as
	// https://otj.example.org behind a TLS proxy: its scheme and host are
	// the app's origin, and https turns on Secure cookies and HSTS. Nil:
	// plain HTTP at whatever host a request names.
	BaseURL *url.URL
	// ResultTTL is how long a job's result file is kept (RESULT_TTL);
	// the results bucket expires it then by itself.
	ResultTTL time.Duration
	// TaskRetention is how long a finished task (succeeded, failed,
	// cancelled) is kept: its events, its task_result row and its result
	// files then go together (TASK_RETENTION). The value in force is
	// recorded on the TASKS stream; a web process with another one is
	// refused unless TaskRetentionReset (TASK_RETENTION_RESET) says to
	// change it for all.
	TaskRetention      time.Duration
	TaskRetentionReset bool
	// ResultKeep is how many results of each job type a user keeps; a
	// newer one deletes the oldest (RESULT_KEEP). 0 keeps every result
	// until it expires.
	ResultKeep int
	// ReportMinDuration is the least time a full report takes
	// (REPORT_MIN_DURATION, default 0: as fast as it can): for a demo,
	// so that its task shows running, with its progress.
	ReportMinDuration time.Duration
	// ResultMaxBytes bounds the results bucket (RESULT_MAX_BYTES).
	ResultMaxBytes int64
	// ImportMaxBytes bounds a CSV uploaded for import (IMPORT_MAX_BYTES).
	// The file is held in memory and in one database row while it waits
	// for its job, hence the upper bound.
	ImportMaxBytes int64
	// NATSToken, or NATSUser with NATSPassword, is what the embedded
	// server requires and what every connection presents (NATS_TOKEN,
	// NATS_USER, NATS_PASSWORD). With none of them set, the embedded
	// server makes up a token and keeps it in the data dir, where
	// processes on the same machine read it.
	NATSToken    string
	NATSUser     string
	NATSPassword string
	// NATSCreds is a credentials file, a user JWT and its NKey seed, for
	// an external server in operator mode (NATS_CREDS); NATSNKey is a
	// file with a user's NKey seed, for an external server that lists
	// NKey users (NATS_NKEY). The embedded server takes neither.
	NATSCreds string
	NATSNKey  string
	// NATSMaintUser and NATSMaintPassword are, with NATS_URL, the
	// maintenance credential of app web (NATS_MAINT_USER,
	// NATS_MAINT_PASSWORD): a connection of its own, used only to make and
	// update the streams and buckets at start and to purge an erased
	// account's events, or a finished task's past TASK_RETENTION, so that
	// the everyday credential needs neither
	// right. Unset, the everyday connection does both. The embedded
	// server has a maintenance role of its own.
	NATSMaintUser     string
	NATSMaintPassword string
	// NATSTLS is the certificate and key this process presents on NATS
	// (NATS_TLS_CERT, NATS_TLS_KEY): without NATS_URL, the embedded
	// server's listener certificate, so that workers connect with TLS;
	// with NATS_URL, a client certificate for an external server that
	// requires one (mutual TLS). A process is one or the other, never
	// both, so one pair of settings serves.
	NATSTLS natsserver.TLSFiles
	// NATSTLSCA is the authority a client checks the server's TLS
	// certificate against (NATS_TLS_CA); unset, the system's.
	NATSTLSCA string
	// NATSListenInsecure accepts a NATS_LISTEN beyond loopback without
	// TLS (NATS_LISTEN_INSECURE).
	NATSListenInsecure bool
	// MetricsListen is where GET /metrics is served (METRICS_LISTEN),
	// such as 127.0.0.1:9090; "" serves no metrics.
	MetricsListen string
	// WorkersStallAfter is how long jobs may wait with no worker asking
	// for work before /healthz reports the workers degraded
	// (WORKERS_STALL_AFTER).
	WorkersStallAfter time.Duration
	LogLevel          slog.Level
	// OIDC is sign-in with an OpenID Connect provider (OIDC_ISSUER,
	// OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_REDIRECT_URL, all four or
	// none, and ALLOWED_EMAILS); nil without them.
	OIDC *web.OIDCConfig
	// Operators may use the operator console under /admin/
	// (ADMIN_EMAILS); empty, nobody may and it answers 404.
	Operators web.Allowlist
	// SessionTTL is how long a sign-in lasts (SESSION_TTL).
	SessionTTL time.Duration
	// TrustProxyHeaders believes a proxy's X-Forwarded-Proto about
	// HTTPS, for Secure cookies (TRUST_PROXY_HEADERS).
	TrustProxyHeaders bool
	// SMTPURL is the mail server digests go through (SMTP_URL); "" writes
	// them into <OTJ_DATA_DIR>/outbox instead.
	SMTPURL string
	// MailFrom is the digests' sender (MAIL_FROM).
	MailFrom string
	// DigestSchedule is when the weekly digests go out (DIGEST_SCHEDULE);
	// nil: off.
	DigestSchedule *digest.Schedule
}

// The brokers TASKS_BROKER names.
const (
	brokerJetStream = "jetstream"
	brokerRedis     = "redis"
)

// Defaults, documented in the README's configuration table.
const (
	defaultHost       = "127.0.0.1"
	defaultPort       = 8080
	defaultDataDir    = "./data"
	defaultNATSListen = "127.0.0.1:4250"
	defaultWorkers    = 4
	defaultGrace      = 20 * time.Second
	defaultLease      = 5 * time.Second
	defaultRedisURL   = "redis://localhost:6379/0"
	defaultRedisWait  = 500 * time.Millisecond
	defaultResultTTL  = 30 * 24 * time.Hour
	defaultResultKeep = 5
	// Peers prune after days to weeks (River 7d, asynq's Retention); a
	// quarter keeps a task's history for as long as anyone asks after it.
	defaultTaskRetention = 90 * 24 * time.Hour
	// minTaskRetention lets tests and benchmarks age tasks out in seconds.
	minTaskRetention = 10 * time.Second
	// A gibibyte holds thousands of typical reports (about 0.3 MB per
	// thousand activities) and still three of a million activities
	// (279 MB): room for RESULT_KEEP of each for a few hundred users,
	// while a bounded bucket reserves its whole bound of the server's
	// JetStream storage up front, so a larger default would make small
	// machines fail to start.
	defaultResultMaxBytes = 1 << 30
	// The braces make the prefix the keys' hash tag, so that they share a
	// slot on a Redis Cluster, as the broker's scripts need.
	defaultRedisPrefix = "{otj:tasks}"
)

// loadConfig reads and checks the settings. Its error names the setting.
func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		Host:              settings.String(getenv, "HOST", defaultHost),
		DataDir:           settings.String(getenv, "OTJ_DATA_DIR", defaultDataDir),
		NATSURL:           strings.TrimSpace(getenv("NATS_URL")),
		DatabaseURL:       strings.TrimSpace(getenv(database.URLSetting)),
		NATSListen:        settings.String(getenv, "NATS_LISTEN", defaultNATSListen),
		DevAutoLoginEmail: strings.TrimSpace(getenv("DEV_AUTO_LOGIN_EMAIL")),
		Broker:            strings.ToLower(settings.String(getenv, "TASKS_BROKER", brokerJetStream)),
		RedisURL:          settings.String(getenv, "REDIS_URL", defaultRedisURL),
		RedisKeyPrefix:    settings.String(getenv, "REDIS_KEY_PREFIX", defaultRedisPrefix),
	}
	for _, read := range []func(*config, func(string) string) error{
		processSettings, resultSettings, brokerSettings, placeSettings, natsSettings,
		webSettings, signinSettings, mailSettings, logSetting,
	} {
		if err := read(&c, getenv); err != nil {
			return c, err
		}
	}
	return c, nil
}

// processSettings are the web port and the worker's and broker's
// sizes and times.
func processSettings(c *config, getenv func(string) string) error {
	var err error
	if c.Port, err = settings.Int(getenv, "PORT", defaultPort, 0, 65535); err != nil {
		return err
	}
	if c.WorkerConcurrency, err = settings.Int(getenv, "WORKER_CONCURRENCY", defaultWorkers, 1, 1000); err != nil {
		return err
	}
	if c.WorkerShutdownGrace, err = settings.Duration(getenv, "WORKER_SHUTDOWN_GRACE", defaultGrace, 0, time.Hour); err != nil {
		return err
	}
	if c.JobLease, err = settings.Duration(getenv, "JOB_LEASE", defaultLease, time.Second, 10*time.Minute); err != nil {
		return err
	}
	if c.JobLeaseReset, err = settings.Bool(getenv, "JOB_LEASE_RESET"); err != nil {
		return err
	}
	if c.RedisTimeout, err = settings.Duration(getenv, "REDIS_TIMEOUT", defaultRedisWait, 10*time.Millisecond, time.Minute); err != nil {
		return err
	}
	if c.NATSSync, err = syncSetting(getenv, "NATS_SYNC"); err != nil {
		return err
	}
	if c.NATSReplicas, err = settings.Int(getenv, "NATS_REPLICAS", 1, 1, jetstream.MaxReplicas); err != nil {
		return err
	}
	return nil
}

// resultSettings bound the results, reports and imports.
func resultSettings(c *config, getenv func(string) string) error {
	var err error
	if c.ResultTTL, err = settings.Days(getenv, "RESULT_TTL", defaultResultTTL, time.Hour, 3650*24*time.Hour); err != nil {
		return err
	}
	if c.TaskRetention, err = settings.Days(getenv, "TASK_RETENTION", defaultTaskRetention, minTaskRetention, 3650*24*time.Hour); err != nil {
		return err
	}
	if c.TaskRetentionReset, err = settings.Bool(getenv, "TASK_RETENTION_RESET"); err != nil {
		return err
	}
	if c.ResultKeep, err = settings.Int(getenv, "RESULT_KEEP", defaultResultKeep, 0, 1000); err != nil {
		return err
	}
	if c.ReportMinDuration, err = settings.Duration(getenv, "REPORT_MIN_DURATION", 0, 0, 10*time.Minute); err != nil {
		return err
	}
	if c.ResultMaxBytes, err = settings.Bytes(getenv, "RESULT_MAX_BYTES", defaultResultMaxBytes, 1<<20, 1<<50); err != nil {
		return err
	}
	if c.ImportMaxBytes, err = settings.Bytes(getenv, "IMPORT_MAX_BYTES", web.DefaultImportMaxBytes, 1<<10, 256<<20); err != nil {
		return err
	}
	return nil
}

// brokerSettings are TASKS_BROKER and, with Redis, its settings.
func brokerSettings(c *config, getenv func(string) string) error {
	if c.Broker != brokerJetStream && c.Broker != brokerRedis {
		return fmt.Errorf("TASKS_BROKER %q: want %s or %s", c.Broker, brokerJetStream, brokerRedis)
	}
	if c.Broker == brokerRedis {
		if _, perr := redis.ParseURL(c.RedisURL); perr != nil {
			// The URL may hold a password: name the setting, not the value.
			return fmt.Errorf("REDIS_URL: want redis://[:password@]host:port/db: %v", perr)
		}
		if err := redisTLSSetting(c, getenv); err != nil {
			return err
		}
		if strings.ContainsAny(c.RedisKeyPrefix, " *?[]") {
			return fmt.Errorf("REDIS_KEY_PREFIX %q: no spaces or glob characters", c.RedisKeyPrefix)
		}
	}
	return nil
}

// placeSettings are where the process binds and finds its data: HOST,
// OTJ_DATA_DIR, DATABASE_URL and NATS_URL.
func placeSettings(c *config, getenv func(string) string) error {
	var err error
	if ip := net.ParseIP(c.Host); ip == nil && c.Host != "localhost" {
		return fmt.Errorf("HOST %q: want an IP address such as 127.0.0.1 or 0.0.0.0", c.Host)
	}
	if c.DataDir, err = filepath.Abs(c.DataDir); err != nil {
		return fmt.Errorf("OTJ_DATA_DIR: %w", err)
	}
	if c.DatabaseURL != "" {
		if _, perr := database.ParsePostgresURL(c.DatabaseURL); perr != nil {
			return perr // one line naming DATABASE_URL, password redacted
		}
	}
	if c.NATSURL != "" {
		for _, one := range strings.Split(c.NATSURL, ",") {
			u, perr := url.Parse(strings.TrimSpace(one))
			if perr != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "tls") {
				return fmt.Errorf("NATS_URL %q: want nats://host:port (comma-separated for a cluster)", c.NATSURL)
			}
		}
	}
	if c.NATSURL == "" && c.NATSReplicas > 1 {
		return fmt.Errorf("NATS_REPLICAS %d: the embedded NATS server is a single server and keeps 1 copy; set NATS_URL to a NATS cluster, or NATS_REPLICAS=1", c.NATSReplicas)
	}
	return nil
}

// webSettings are the web's sign-in key, its address and its health.
func webSettings(c *config, getenv func(string) string) error {
	var err error
	if e := c.DevAutoLoginEmail; e != "" && (!strings.Contains(e, "@") || strings.ContainsAny(e, " \t<>")) {
		return fmt.Errorf("DEV_AUTO_LOGIN_EMAIL %q: not an email address", e)
	}
	if k := getenv("SECRET_KEY"); k != "" {
		if len(k) < session.MinKeyLen {
			return fmt.Errorf("SECRET_KEY: must be at least %d bytes, got %d (try: openssl rand -hex 32)", session.MinKeyLen, len(k))
		}
		c.SecretKey = []byte(k)
	} else {
		c.SecretKey, c.SecretKeyRandom = []byte(rand.Text()+rand.Text()), true
	}
	if c.BaseURL, err = baseURLSetting(getenv, "BASE_URL"); err != nil {
		return err
	}
	if c.MetricsListen, err = metricsSetting(getenv); err != nil {
		return err
	}
	if c.WorkersStallAfter, err = settings.Duration(getenv, "WORKERS_STALL_AFTER", defaultWorkersStallAfter, time.Second, 24*time.Hour); err != nil {
		return err
	}
	return nil
}

// logSetting is LOG_LEVEL.
func logSetting(c *config, getenv func(string) string) error {
	if lvl := getenv("LOG_LEVEL"); lvl != "" {
		if err := c.LogLevel.UnmarshalText([]byte(lvl)); err != nil {
			return fmt.Errorf("LOG_LEVEL %q: want debug, info, warn or error", lvl)
		}
	}
	return nil
}

// natsSettings reads the NATS listener, credential and TLS settings.
func natsSettings(c *config, getenv func(string) string) error {
	host, p, err := net.SplitHostPort(c.NATSListen)
	if err != nil {
		return fmt.Errorf("NATS_LISTEN %q: want host:port, e.g. %s", c.NATSListen, defaultNATSListen)
	} else if n, aerr := strconv.Atoi(p); aerr != nil || n < 0 || n > 65535 {
		return fmt.Errorf("NATS_LISTEN %q: port must be 0-65535 (0 picks a free one)", c.NATSListen)
	}
	if err := natsCredentialSettings(c, getenv); err != nil {
		return err
	}
	c.NATSTLS = natsserver.TLSFiles{Cert: strings.TrimSpace(getenv("NATS_TLS_CERT")), Key: strings.TrimSpace(getenv("NATS_TLS_KEY"))}
	if c.NATSTLS.Enabled() {
		if c.NATSTLS.Cert == "" || c.NATSTLS.Key == "" {
			return errors.New("NATS_TLS_CERT and NATS_TLS_KEY: set both or neither")
		}
		if _, err := tls.LoadX509KeyPair(c.NATSTLS.Cert, c.NATSTLS.Key); err != nil {
			return fmt.Errorf("NATS_TLS_CERT and NATS_TLS_KEY: want PEM files of a certificate and its key: %v", err)
		}
	}
	if c.NATSTLSCA = strings.TrimSpace(getenv("NATS_TLS_CA")); c.NATSTLSCA != "" {
		pem, err := os.ReadFile(c.NATSTLSCA)
		if err != nil {
			return fmt.Errorf("NATS_TLS_CA: %v", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return fmt.Errorf("NATS_TLS_CA %s: no PEM certificate in it", c.NATSTLSCA)
		}
	}
	if v := strings.TrimSpace(getenv("NATS_LISTEN_INSECURE")); v != "" {
		if c.NATSListenInsecure, err = strconv.ParseBool(v); err != nil {
			return fmt.Errorf("NATS_LISTEN_INSECURE %q: want true or false", v)
		}
	}
	// NATS_LISTEN is used only when the app embeds the server.
	if c.NATSURL == "" && !natsserver.IsLoopback(host) && !c.NATSTLS.Enabled() && !c.NATSListenInsecure {
		return fmt.Errorf("NATS_LISTEN %q is beyond loopback: workers' traffic and the token would cross the network in plain text; set NATS_TLS_CERT and NATS_TLS_KEY, or NATS_LISTEN_INSECURE=true to accept that", c.NATSListen)
	}
	return nil
}

// natsCredentialSettings reads the NATS credentials: a token, a user and
// password, a credentials file or an NKey seed file, at most one kind.
// The files are read now, so that a missing or malformed one stops the
// process at start, named, not at its first connection.
func natsCredentialSettings(c *config, getenv func(string) string) error {
	// Credentials are secrets: errors name the settings, never the values.
	c.NATSToken = strings.TrimSpace(getenv("NATS_TOKEN"))
	c.NATSUser = strings.TrimSpace(getenv("NATS_USER"))
	c.NATSPassword = getenv("NATS_PASSWORD")
	c.NATSCreds = strings.TrimSpace(getenv("NATS_CREDS"))
	c.NATSNKey = strings.TrimSpace(getenv("NATS_NKEY"))
	var kinds []string
	for _, k := range []struct{ name, value string }{
		{"NATS_TOKEN", c.NATSToken}, {"NATS_USER", c.NATSUser + c.NATSPassword}, {"NATS_CREDS", c.NATSCreds}, {"NATS_NKEY", c.NATSNKey},
	} {
		if k.value != "" {
			kinds = append(kinds, k.name)
		}
	}
	if len(kinds) > 1 {
		return fmt.Errorf("%s: set one kind of NATS credentials, not several", strings.Join(kinds, " and "))
	}
	switch {
	case c.NATSToken != "" && len(c.NATSToken) < natsserver.MinTokenLen:
		return fmt.Errorf("NATS_TOKEN: must be at least %d bytes, got %d (try: openssl rand -hex 32)", natsserver.MinTokenLen, len(c.NATSToken))
	case (c.NATSUser == "") != (c.NATSPassword == ""):
		return errors.New("NATS_USER and NATS_PASSWORD: set both or neither")
	case c.NATSUser != "" && c.NATSURL == "" && len(c.NATSPassword) < natsserver.MinTokenLen:
		// The embedded server's password is ours to require; an
		// external server has its own rules.
		return fmt.Errorf("NATS_PASSWORD: must be at least %d bytes for the embedded server, got %d (try: openssl rand -hex 32)", natsserver.MinTokenLen, len(c.NATSPassword))
	case (c.NATSCreds != "" || c.NATSNKey != "") && c.NATSURL == "":
		return fmt.Errorf("%s: only for a NATS server at NATS_URL; the embedded server takes NATS_TOKEN, or NATS_USER and NATS_PASSWORD", kinds[0])
	}
	c.NATSMaintUser = strings.TrimSpace(getenv("NATS_MAINT_USER"))
	c.NATSMaintPassword = getenv("NATS_MAINT_PASSWORD")
	switch {
	case (c.NATSMaintUser == "") != (c.NATSMaintPassword == ""):
		return errors.New("NATS_MAINT_USER and NATS_MAINT_PASSWORD: set both or neither")
	case c.NATSMaintUser != "" && c.NATSURL == "":
		return errors.New("NATS_MAINT_USER: only for a NATS server at NATS_URL; the embedded server makes its own maintenance credential")
	}
	if c.NATSCreds != "" {
		b, err := os.ReadFile(c.NATSCreds)
		if err != nil {
			return fmt.Errorf("NATS_CREDS: %v", err)
		}
		if _, err := jwt.ParseDecoratedJWT(b); err != nil {
			return fmt.Errorf("NATS_CREDS %s: want a credentials file with a user JWT and its seed (nsc generate creds): %v", c.NATSCreds, err)
		}
		if _, err := jwt.ParseDecoratedUserNKey(b); err != nil {
			return fmt.Errorf("NATS_CREDS %s: want a credentials file with a user JWT and its seed (nsc generate creds): %v", c.NATSCreds, err)
		}
	}
	if c.NATSNKey != "" {
		if _, err := nats.NkeyOptionFromSeed(c.NATSNKey); err != nil {
			return fmt.Errorf("NATS_NKEY %s: want a file with a user's NKey seed (SU...): %v", c.NATSNKey, err)
		}
	}
	return nil
}

// redisTLSSetting reads REDIS_TLS_CA, which only a rediss:// REDIS_URL
// uses: given with a plain redis:// one, the connection would not be
// encrypted though the operator meant it to be.
func redisTLSSetting(c *config, getenv func(string) string) error {
	if c.RedisTLSCA = strings.TrimSpace(getenv("REDIS_TLS_CA")); c.RedisTLSCA == "" {
		return nil
	}
	if !strings.HasPrefix(c.RedisURL, "rediss://") {
		return errors.New("REDIS_TLS_CA: only with a rediss:// REDIS_URL (TLS); REDIS_URL is not one")
	}
	if _, err := certPool(c.RedisTLSCA); err != nil {
		return fmt.Errorf("REDIS_TLS_CA: %w", err)
	}
	return nil
}

// certPool reads a PEM file of CA certificates.
func certPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", path)
	}
	return pool, nil
}

// The bounds of a NATS_SYNC interval: below 100ms the store would do
// little but fsync, and above an hour "interval" would rarely mean much.
const (
	minSyncInterval = 100 * time.Millisecond
	maxSyncInterval = time.Hour
)

// syncSetting reads NATS_SYNC: "interval" or unset (nats-server's own
// default), "always", or a Go duration for the interval.
func syncSetting(getenv func(string) string, name string) (natsserver.Sync, error) {
	v := strings.TrimSpace(getenv(name))
	switch strings.ToLower(v) {
	case "", "interval":
		return natsserver.Sync{}, nil
	case "always":
		return natsserver.Sync{Always: true}, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < minSyncInterval || d > maxSyncInterval {
		return natsserver.Sync{}, fmt.Errorf("%s %q: want interval, always, or a duration from %s to %s such as 30s", name, v, minSyncInterval, maxSyncInterval)
	}
	return natsserver.Sync{Interval: d}, nil
}

// baseURLSetting reads BASE_URL: http or https, a host, and no path,
// query or credentials, since it names an origin, not a page.
func baseURLSetting(getenv func(string) string, name string) (*url.URL, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return nil, nil
	}
	u, err := url.Parse(v)
	if err == nil && u.User != nil {
		return nil, fmt.Errorf("%s: no user or password in it; want http:// or https:// and a host, such as https://otj.example.org", name)
	}
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, fmt.Errorf("%s %q: want http:// or https:// and a host, with no path, such as https://otj.example.org", name, v)
	}
	return &url.URL{Scheme: u.Scheme, Host: strings.ToLower(u.Host)}, nil
}

// The bounds of SESSION_TTL: shorter than a few minutes would sign people
// out while they work; a year is the longest a browser should be trusted.
const (
	minSessionTTL = 5 * time.Minute
	maxSessionTTL = 365 * 24 * time.Hour
)

// oidcSettings are the OIDC settings, all four or none.
var oidcSettings = []string{"OIDC_ISSUER", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET", "OIDC_REDIRECT_URL"}

// signinSettings reads the sign-in settings: the OIDC provider, who may
// sign in, how long a session lasts, and whether a proxy's word on HTTPS
// counts.
func signinSettings(c *config, getenv func(string) string) error {
	var err error
	if c.SessionTTL, err = settings.Days(getenv, "SESSION_TTL", web.DefaultSessionTTL, minSessionTTL, maxSessionTTL); err != nil {
		return err
	}
	if c.TrustProxyHeaders, err = settings.Bool(getenv, "TRUST_PROXY_HEADERS"); err != nil {
		return err
	}
	allowed, err := web.ParseAllowlist(getenv("ALLOWED_EMAILS"))
	if err != nil {
		return fmt.Errorf("ALLOWED_EMAILS: %v; want addresses and @domain entries, comma-separated", err)
	}
	// The same list as ALLOWED_EMAILS's, read by the same parser.
	if c.Operators, err = web.ParseAllowlist(getenv("ADMIN_EMAILS")); err != nil {
		return fmt.Errorf("ADMIN_EMAILS: %v; want addresses and @domain entries, comma-separated", err)
	}
	vals := make([]string, len(oidcSettings))
	var set, unset []string
	for i, name := range oidcSettings {
		// The secret is never shown: errors name settings, not values.
		if vals[i] = strings.TrimSpace(getenv(name)); vals[i] != "" {
			set = append(set, name)
		} else {
			unset = append(unset, name)
		}
	}
	if len(set) == 0 {
		if !allowed.Empty() {
			return errors.New("ALLOWED_EMAILS: only with OIDC sign-in; set OIDC_ISSUER, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET and OIDC_REDIRECT_URL")
		}
		return nil
	}
	if len(unset) > 0 {
		return fmt.Errorf("%s: not set; OIDC sign-in needs all of %s, or none", strings.Join(unset, " and "), strings.Join(oidcSettings, ", "))
	}
	issuer, err := url.Parse(vals[0])
	if err != nil || issuer.Host == "" || !(issuer.Scheme == "https" || issuer.Scheme == "http" && natsserver.IsLoopback(issuer.Hostname())) {
		return fmt.Errorf("OIDC_ISSUER %q: want the provider's https:// URL, such as https://accounts.google.com", vals[0])
	}
	redirect, err := url.Parse(vals[3])
	if err != nil || (redirect.Scheme != "http" && redirect.Scheme != "https") || redirect.Host == "" ||
		redirect.Path == "" || redirect.Path == "/" || redirect.RawQuery != "" || redirect.Fragment != "" {
		return fmt.Errorf("OIDC_REDIRECT_URL %q: want the app's callback, such as https://otj.example.org/auth/callback", vals[3])
	}
	if b := c.BaseURL; b != nil && (redirect.Scheme != b.Scheme || !strings.EqualFold(redirect.Host, b.Host)) {
		// The sign-in cookie set at BASE_URL would not reach the callback.
		return fmt.Errorf("OIDC_REDIRECT_URL %q: must be on BASE_URL's scheme and host, %s", vals[3], b)
	}
	c.OIDC = &web.OIDCConfig{Issuer: vals[0], ClientID: vals[1], ClientSecret: vals[2], RedirectURL: vals[3], Allowed: allowed}
	return nil
}

// DefaultLease is JOB_LEASE's default: the broker's lease on a delivered
// job, which tests' own brokers take as the app's do.
const DefaultLease = defaultLease
