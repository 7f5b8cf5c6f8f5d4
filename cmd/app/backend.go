package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/modules/tasks"

	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/redisbroker"
	"github.com/otjhelper/otj/platform/database"
	"github.com/otjhelper/otj/platform/natsconn"
	"github.com/otjhelper/otj/platform/natsserver"
)

// backend is what every process that touches tasks stands on: the data
// dir's database, a NATS connection (to NATS_URL, or to a server embedded
// on the data dir's own store) and the JetStream broker over it.
type backend struct {
	DB       *bun.DB
	NC       *nats.Conn
	Broker   *jetstream.Broker
	Embedded *natsserver.Server // nil when NATS_URL is set
	// Redis carries the jobs when TASKS_BROKER=redis; nil otherwise.
	Redis *redisbroker.Broker

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
	// RESULT_MAX_BYTES, updating a bucket whose bounds differ. The app's
	// processes set it; operator commands and benchmarks leave the bucket
	// as the app made it, so that a command run without the app's
	// settings cannot change them.
	ApplyResultBounds bool
	// RunInline runs a job in the enqueuing request when the Redis
	// broker cannot be reached (the web side sets it).
	RunInline func(ctx context.Context, item tasks.Event)
}

// openBackend opens the database (migrated, with the reference data),
// starts an embedded NATS server on <data dir>/nats unless NATS_URL is
// set, connects, and opens the broker. On error everything opened so far
// is closed again. Its errors name the setting to look at; an embedded
// store held by another process wraps natsserver.ErrStoreInUse.
func openBackend(ctx context.Context, cfg Config, log *slog.Logger, o backendOptions) (_ *backend, err error) {
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("OTJ_DATA_DIR %s: %w", cfg.DataDir, err)
	}
	b := &backend{log: log}
	defer func() {
		if err != nil {
			b.Close(ctx)
		}
	}()

	if b.DB, err = openDatabase(ctx, filepath.Join(cfg.DataDir, database.FileName), true); err != nil {
		return nil, err
	}

	connOpts := natsconn.Options{URL: cfg.NATSURL, Name: o.Name, Logger: log}
	if cfg.NATSURL == "" {
		b.Embedded, err = natsserver.Start(natsserver.Config{StoreDir: filepath.Join(cfg.DataDir, "nats"), Listen: o.Listen, Sync: cfg.NATSSync, Logger: log})
		if err != nil {
			if o.Listen != "" && !errors.Is(err, natsserver.ErrStoreInUse) {
				return nil, fmt.Errorf("NATS_LISTEN %s: %w", o.Listen, err)
			}
			return nil, fmt.Errorf("OTJ_DATA_DIR %s: %w", cfg.DataDir, err)
		}
		connOpts.URL, connOpts.Server = "", b.Embedded.Server()
	}
	if b.NC, err = natsconn.Connect(connOpts); err != nil {
		return nil, fmt.Errorf("NATS_URL %s: %w", cfg.NATSURL, err)
	}
	// JOB_LEASE reaches the shared consumer only through a worker's
	// Queue; other processes leave it as the workers set it.
	jcfg := jetstream.Config{Conn: b.NC, AckWait: cfg.JobLease, ResetAckWait: cfg.JobLeaseReset, Logger: log}
	if o.ApplyResultBounds {
		jcfg.Results = &jetstream.ResultBounds{TTL: cfg.ResultTTL, MaxBytes: cfg.ResultMaxBytes}
	}
	if b.Broker, err = jetstream.Open(ctx, jcfg); err != nil {
		if errors.Is(err, tasks.ErrResultStoreFull) {
			return nil, fmt.Errorf("RESULT_MAX_BYTES %d: more than the NATS server's JetStream storage can reserve; lower it: %w", cfg.ResultMaxBytes, err)
		}
		return nil, err
	}
	if cfg.Broker == brokerRedis {
		opts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		// Deadlines from contexts reach the socket, so that REDIS_TIMEOUT
		// holds even against a Redis that accepts and never answers.
		opts.ContextTimeoutEnabled = true
		b.rdb = redis.NewClient(opts)
		// Redis is not contacted here: the app starts while it is down.
		b.Redis, err = redisbroker.New(redisbroker.Config{
			Client: b.rdb, Events: b.Broker, Prefix: cfg.RedisKeyPrefix, Lease: cfg.JobLease, SendTimeout: cfg.RedisTimeout,
			RunInline: o.RunInline, Logger: log,
		})
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Enqueuer is the port the web side enqueues through: the broker that
// carries the jobs.
func (b *backend) Enqueuer() tasks.Enqueuer {
	if b.Redis != nil {
		return b.Redis
	}
	return b.Broker
}

// Queue opens a worker's queue on the broker that carries the jobs.
func (b *backend) Queue(ctx context.Context) (tasks.Queue, error) {
	if b.Redis != nil {
		return b.Redis.Queue(ctx)
	}
	q, err := b.Broker.Queue(ctx)
	var mismatch *jetstream.LeaseMismatchError
	if errors.As(err, &mismatch) {
		return nil, fmt.Errorf("JOB_LEASE %s: the deployed %s consumer uses %s; set JOB_LEASE=%s, or JOB_LEASE_RESET=true on one worker to change it for all",
			mismatch.Wanted, jetstream.WorkConsumer, mismatch.Deployed, mismatch.Deployed)
	}
	return q, err
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
