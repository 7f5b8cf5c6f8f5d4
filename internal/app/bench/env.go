package bench

import (
	"context"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/modules/tasks"
)

// The brokers --broker takes: TASKS_BROKER's values.
const (
	brokerJetStream = "jetstream"
	brokerRedis     = "redis"
)

// Env is what the app gives the bench: the settings it measures under and
// how to open the app's backend on a data dir of the bench's own. The
// bench wires nothing itself, so that what it measures is what the app
// runs.
type Env struct {
	// Broker is TASKS_BROKER; --broker overrides it.
	Broker string
	// External is whether NATS_URL is set; NATSSync is the embedded
	// server's NATS_SYNC, shown in the settings.
	External bool
	NATSSync string
	// Database is the dialect the app's database speaks: "sqlite", or
	// "postgres" with DATABASE_URL.
	Database string
	// JobLease is JOB_LEASE: a running job's lease is renewed every fifth.
	JobLease time.Duration
	// Logger takes the backend's warnings.
	Logger *slog.Logger
	// Open opens the backend as the app opens it, with o's changes.
	Open func(ctx context.Context, o OpenOptions) (*Backend, error)
	// Registry is the app's job types over db: bench report runs the
	// report handler through it.
	Registry func(db *bun.DB) (*tasks.Registry, error)
	// Observer, when set, makes the Observer of each run's clients: the
	// app's job metrics, so that their cost per job is measured too.
	Observer func() tasks.Observer
}

// OpenOptions are what a run changes in the app's settings.
type OpenOptions struct {
	// Name names the NATS connection.
	Name string
	// DataDir is the run's fresh data dir (OTJ_DATA_DIR).
	DataDir string
	// Broker is the broker that carries the jobs (TASKS_BROKER).
	Broker string
	// RedisKeyPrefix is the run's own REDIS_KEY_PREFIX, with Broker redis.
	RedisKeyPrefix string
	// Embedded starts the embedded server whatever NATS_URL says.
	Embedded bool
	// Listen is where the embedded server listens for other processes
	// (NATS_LISTEN, as app web has it); "" serves only this process.
	Listen string
	// NATSURL, when set, joins that server instead of NATS_URL's, as a
	// worker joins app web's (bench million's worker processes).
	NATSURL string
	// JoinOnly opens the stream as the web side made it, as app worker
	// does, rather than making or changing it.
	JoinOnly bool
}

// Backend is a run's task system, reached through task clients only:
// the bench names no driver.
type Backend struct {
	DB *bun.DB
	// NewClient returns a task client over the run's drivers, with cfg's
	// other settings: NewClient fills in DB, Log and Transport.
	NewClient func(cfg tasks.Config) (*tasks.Client, error)
	// Redis is the Redis the jobs go through, Ping its broker's check
	// that it answers and Relay its broker's relay, with the Redis
	// broker; nil otherwise.
	Redis *redis.Client
	Ping  func(ctx context.Context) error
	Relay func(ctx context.Context) error
	// ClientURL is where the embedded server listens for other
	// processes, with OpenOptions.Listen; "" otherwise.
	ClientURL string
	// Close closes everything Open opened.
	Close func(ctx context.Context)
}
