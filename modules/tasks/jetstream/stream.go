package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// Names of what the broker creates on the server.
const (
	StreamName    = "TASKS"
	WorkConsumer  = "workers"
	ResultsBucket = "task_results"
	// MaxPending bounds the work items handed out and not yet acked,
	// including retries waiting for their time. While that many are out,
	// new jobs wait.
	MaxPending = 20000
)

// Config configures a Broker. Zero fields take the defaults below.
type Config struct {
	Conn *nats.Conn // required
	// Admin, when set, is a connection with the rights Conn need not
	// have: to make and change the stream and the results bucket (Open),
	// and to purge a user's events (EraseUser) or a finished job's
	// (PurgeJob). Everything else goes
	// through Conn, so that the everyday connection can be one that
	// cannot empty or reconfigure the log (README, NATS permissions).
	// Nil uses Conn for both.
	Admin *nats.Conn
	// AckWait is the visibility timeout: a job whose worker has neither
	// finished nor renewed it within AckWait goes to another worker. It
	// is a setting of the shared consumer: Queue makes the consumer with
	// it, and refuses to open a queue on a consumer that has another.
	// Default 30s.
	AckWait time.Duration
	// ResetAckWait lets Queue change the deployed consumer's AckWait to
	// AckWait instead of refusing, for every worker at once.
	ResetAckWait bool
	// Duplicates is the window in which an enqueue with the same key
	// returns the first job. Default 2m.
	Duplicates time.Duration
	// Replicas is how many copies of the stream and the results bucket
	// the server keeps, 1 to MaxReplicas: 3 on a three-node cluster, so
	// that losing any one node loses nothing. The consumers follow their
	// stream's. An existing stream or bucket with others is changed to
	// them (a *ReplicasError when the server refuses). Zero keeps an
	// existing stream's and bucket's, and makes missing ones with 1: for
	// operator commands and tests, run without the app's settings.
	Replicas int
	// RequestTimeout bounds each request to the server (an event write, a
	// read, a consumer or stream call, each step of a result upload),
	// whatever the caller's context allows: nats.go does not fail a
	// request in flight when the connection drops, so one that the server
	// took with it when it died waits for this deadline, or for the
	// caller's, which for a job is its whole attempt. Default 5s.
	RequestTimeout time.Duration
	// Results bounds the results bucket: how long a result is kept and
	// how large the bucket may grow. Nil leaves an existing bucket's
	// bounds as they are, and creates a missing one without bounds: what
	// operator commands and tests want, so that a command run without
	// the app's settings cannot change them.
	Results *ResultBounds
	// NoPurge says the connection may not purge the results bucket (a
	// worker's role: a purge takes any filter, so whoever may purge one
	// object's chunks may purge every user's results). Delete then
	// marks the object deleted, so that it is gone for every reader, and
	// leaves its chunks for the bucket's MaxAge (RESULT_TTL) to remove.
	NoPurge bool
	// JoinOnly opens the stream and the results bucket as they are, and
	// makes neither: a missing one is ErrNotDeployed, for the caller to
	// wait on. Workers set it, as they may lack the right to make them
	// (README, NATS permissions): the web side makes them at its start,
	// whichever process starts first.
	JoinOnly bool
	// TaskRetention is how long a finished task is kept (TASK_RETENTION):
	// Open records it in the stream's metadata (RetentionMetadata) when
	// none is, and refuses one that differs from the recorded one
	// (*RetentionMismatchError) unless ResetTaskRetention is set, so that
	// processes that disagree do not prune by different bounds. Zero
	// leaves the recorded one as it is: operator commands, workers and
	// tests.
	TaskRetention      time.Duration
	ResetTaskRetention bool
	Logger             *slog.Logger
	Now                func() time.Time
}

// ErrNotDeployed is Open's error, with Config.JoinOnly, for a stream or
// results bucket that no process has made yet.
var ErrNotDeployed = errors.New("not made yet: app web makes it at its first start")

// ResultBounds are the results bucket's limits, kept by the server
// itself, so that no process of the app has to sweep the bucket.
type ResultBounds struct {
	// TTL is how long a result is kept after it was stored (the bucket
	// stream's MaxAge); the server removes it then. Zero keeps results
	// until they are deleted; else at least 100ms, nats-server's floor.
	TTL time.Duration
	// MaxBytes bounds the bucket; a result that would take it past the
	// bound is refused (tasktype.ErrResultStoreFull), and nothing stored is
	// dropped to make room. Zero is no bound.
	MaxBytes int64
}

func (c *Config) setDefaults() {
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.Duplicates <= 0 {
		c.Duplicates = 2 * time.Minute
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Open checks that the server can serve the broker (MinServerVersion,
// JetStream on: a *ServerError otherwise), makes sure the stream and the
// results bucket exist with this version's settings, and returns a Broker
// using them. Every process calls it at start; the calls are idempotent.
// The worker consumer is set up by Queue, so that only workers decide its
// settings.
func Open(ctx context.Context, cfg Config) (*Broker, error) {
	cfg.setDefaults()
	if cfg.Conn == nil {
		return nil, errors.New("open jetstream broker: Conn is required")
	}
	if cfg.Replicas < 0 || cfg.Replicas > MaxReplicas {
		return nil, fmt.Errorf("open jetstream broker: %d replicas: want 1 to %d", cfg.Replicas, MaxReplicas)
	}
	// A call given a context without a deadline gets RequestTimeout,
	// like every other request to the server.
	js, err := natsjs.New(cfg.Conn, natsjs.WithDefaultTimeout(cfg.RequestTimeout))
	if err != nil {
		return nil, fmt.Errorf("open jetstream broker: %w", err)
	}
	admin := js
	if cfg.Admin != nil {
		if admin, err = natsjs.New(cfg.Admin, natsjs.WithDefaultTimeout(cfg.RequestTimeout)); err != nil {
			return nil, fmt.Errorf("open jetstream broker: %w", err)
		}
	}
	b := &Broker{cfg: cfg, js: js, admin: admin, sawPull: new(atomic.Int64)}
	rctx, cancel := b.request(ctx)
	err = checkServer(rctx, cfg.Conn, js)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("open jetstream broker: %w", err)
	}
	if b.adminStream, err = b.openStream(ctx); err != nil {
		return nil, fmt.Errorf("open jetstream broker: stream %s: %w", StreamName, err)
	}
	results, err := openResults(ctx, admin, cfg)
	if err != nil {
		return nil, fmt.Errorf("open jetstream broker: bucket %s: %w", ResultsBucket, err)
	}
	if b.workers, err = openBucket(ctx, admin, cfg, workersBucket(cfg)); err != nil {
		return nil, fmt.Errorf("open jetstream broker: bucket %s: %w", WorkersBucket, err)
	}
	if b.pauses, err = openBucket(ctx, admin, cfg, pausesBucket(cfg)); err != nil {
		return nil, fmt.Errorf("open jetstream broker: bucket %s: %w", PausesBucket, err)
	}
	b.stream = b.adminStream
	if cfg.Admin != nil {
		// The everyday reads and writes go through Conn: handles
		// through it, now that the stream and bucket are as they should be.
		rctx, cancel := context.WithTimeout(ctx, 2*cfg.RequestTimeout)
		defer cancel()
		if b.stream, err = js.Stream(rctx, StreamName); err != nil {
			return nil, fmt.Errorf("open jetstream broker: stream %s: %w", StreamName, classify(err))
		}
		if results, err = js.ObjectStore(rctx, ResultsBucket); err != nil {
			return nil, fmt.Errorf("open jetstream broker: bucket %s: %w", ResultsBucket, classify(err))
		}
		if b.workers, err = js.KeyValue(rctx, WorkersBucket); err != nil {
			return nil, fmt.Errorf("open jetstream broker: bucket %s: %w", WorkersBucket, classify(err))
		}
		if b.pauses, err = js.KeyValue(rctx, PausesBucket); err != nil {
			return nil, fmt.Errorf("open jetstream broker: bucket %s: %w", PausesBucket, classify(err))
		}
	}
	b.results = results
	return b, nil
}

// MaxReplicas is the most replicas JetStream keeps of a stream.
const MaxReplicas = 5

// openStream creates the stream, or brings an existing one to this
// version's settings and the configured replicas.
//
// It looks the stream up first, and creates or updates it only when it is
// missing or its settings differ: a process allowed only to read the
// stream's info (a worker on a server with per-role permissions; see the
// README's "NATS permissions") then opens a stream that is already as this
// version wants it, and an update on every process start would race,
// inside nats-server 2.15, with consumers being made at the same moment
// (seen by the race detector).
func (b *Broker) openStream(ctx context.Context) (natsjs.Stream, error) {
	scfg := natsjs.StreamConfig{
		Name:        StreamName,
		Description: "OTJ Helper job events; the enqueued events are the work queue",
		Subjects:    []string{SubjectPrefix + ".>"},
		Retention:   natsjs.LimitsPolicy,
		Storage:     natsjs.FileStorage,
		Replicas:    max(b.cfg.Replicas, 1),
		Duplicates:  b.cfg.Duplicates,
		AllowDirect: true,
	}
	rctx, cancel := b.request(ctx)
	stream, err := b.admin.Stream(rctx, StreamName)
	cancel()
	if errors.Is(err, natsjs.ErrStreamNotFound) && b.cfg.JoinOnly {
		return nil, ErrNotDeployed
	}
	if errors.Is(err, natsjs.ErrStreamNotFound) {
		create := scfg
		if _, err := b.retentionMetadata(nil, &create); err != nil {
			return nil, err
		}
		rctx, cancel := b.request(ctx)
		stream, err = b.admin.CreateStream(rctx, create)
		cancel()
		if !errors.Is(err, natsjs.ErrStreamNameAlreadyInUse) {
			return stream, classifyStream(err, scfg.Replicas)
		}
		// Another process made it a moment ago, perhaps otherwise.
		rctx, cancel = b.request(ctx)
		stream, err = b.admin.Stream(rctx, StreamName)
		cancel()
	}
	if err != nil {
		return nil, classify(err)
	}
	deployed := stream.CachedInfo().Config.Replicas
	if b.cfg.Replicas == 0 {
		scfg.Replicas = deployed
	}
	// An update keeps the metadata the stream has: the retention in
	// force among it, and the server's own.
	recordRetention, err := b.retentionMetadata(stream.CachedInfo().Config.Metadata, &scfg)
	if err != nil {
		return nil, err
	}
	if sameStream(stream.CachedInfo().Config, scfg) && !recordRetention {
		return stream, nil
	}
	if recordRetention {
		b.cfg.Logger.InfoContext(ctx, "recording the task retention on the stream", "stream", StreamName, "retention", b.cfg.TaskRetention)
	}
	if scfg.Replicas != deployed {
		b.cfg.Logger.WarnContext(ctx, "changing the stream's replicas", "stream", StreamName, "from", deployed, "to", scfg.Replicas)
	}
	rctx, cancel = b.request(ctx)
	defer cancel()
	stream, err = b.admin.UpdateStream(rctx, scfg)
	if err != nil && scfg.Replicas != deployed {
		return nil, &ReplicasError{Deployed: deployed, Wanted: scfg.Replicas, Cause: err}
	}
	return stream, classifyStream(err, scfg.Replicas)
}

// classifyStream turns a single server's refusal of replicas into a
// ReplicasError, and passes other errors through classify.
func classifyStream(err error, replicas int) error {
	if err == nil {
		return nil
	}
	var apiErr *natsjs.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeReplicasNotSupported {
		return &ReplicasError{Wanted: replicas, Cause: err}
	}
	return classify(err)
}

// errCodeReplicasNotSupported is a single server's answer to a stream
// asking for more than one replica (10074).
const errCodeReplicasNotSupported natsjs.ErrorCode = 10074

// ErrReplicas is what a ReplicasError is.
var ErrReplicas = errors.New("the stream's replicas cannot be changed")

// ReplicasError says the server refused the replicas Config.Replicas asks
// for: a single server (not a cluster) offers only one, and a cluster
// with fewer nodes, or without room for more copies, refuses a change.
type ReplicasError struct {
	Deployed int // the stream's replicas now; 0 when it could not be made
	Wanted   int
	Cause    error
}

func (e *ReplicasError) Error() string {
	if e.Deployed == 0 {
		return fmt.Sprintf("%d replicas: the server refused them (%v); a single nats-server keeps 1, a cluster as many as it has nodes", e.Wanted, e.Cause)
	}
	return fmt.Sprintf("stream %s has %d replicas and the server refused to change them to %d (%v); change them with: nats stream edit %s --replicas %d",
		StreamName, e.Deployed, e.Wanted, e.Cause, StreamName, e.Wanted)
}

// Is makes errors.Is(err, ErrReplicas) hold.
func (e *ReplicasError) Is(target error) bool { return target == ErrReplicas }

func (e *ReplicasError) Unwrap() error { return e.Cause }

// sameStream says whether the deployed stream has every setting Open
// gives it; the server fills in the rest.
func sameStream(have, want natsjs.StreamConfig) bool {
	return have.Description == want.Description && slices.Equal(have.Subjects, want.Subjects) &&
		have.Retention == want.Retention && have.Storage == want.Storage && have.Replicas == want.Replicas &&
		have.Duplicates == want.Duplicates && have.AllowDirect == want.AllowDirect
}

// openResults opens the results bucket, creating it if it is missing. With
// bounds given, a bucket whose TTL or size bound differs is updated to
// them, and with replicas given, one whose replicas differ; what is not
// given stays as the bucket has it. As with the stream, an update happens
// only when something differs (CreateObjectStore succeeds on an identical
// bucket).
func openResults(ctx context.Context, js natsjs.JetStream, cfg Config) (natsjs.ObjectStore, error) {
	ocfg := natsjs.ObjectStoreConfig{
		Bucket:      ResultsBucket,
		Description: "OTJ Helper task result files, one per job attempt",
		Storage:     natsjs.FileStorage,
		Replicas:    max(cfg.Replicas, 1),
	}
	// Making a bucket is several requests (its stream, then a look-up).
	rctx, cancel := context.WithTimeout(ctx, 2*cfg.RequestTimeout)
	defer cancel()
	results, err := js.ObjectStore(rctx, ResultsBucket)
	if errors.Is(err, natsjs.ErrBucketNotFound) && cfg.JoinOnly {
		return nil, ErrNotDeployed
	}
	if err != nil && !errors.Is(err, natsjs.ErrBucketNotFound) {
		return nil, err
	}
	if err == nil {
		if cfg.Results == nil && cfg.Replicas == 0 {
			return results, nil
		}
		status, err := results.Status(rctx)
		if err != nil {
			return nil, fmt.Errorf("status: %w", err)
		}
		bs, ok := status.(*natsjs.ObjectBucketStatus)
		if !ok {
			return nil, fmt.Errorf("status: unexpected %T", status)
		}
		info := bs.StreamInfo().Config
		if cfg.Replicas == 0 {
			ocfg.Replicas = info.Replicas
		}
		if cfg.Results == nil {
			ocfg.TTL, ocfg.MaxBytes = info.MaxAge, info.MaxBytes
		}
		if info.Replicas != ocfg.Replicas {
			cfg.Logger.WarnContext(ctx, "changing the results bucket's replicas", "bucket", ResultsBucket, "from", info.Replicas, "to", ocfg.Replicas)
		}
	}
	if cfg.Results != nil {
		ocfg.TTL, ocfg.MaxBytes = cfg.Results.TTL, cfg.Results.MaxBytes
	}
	results, err = js.CreateObjectStore(rctx, ocfg)
	if errors.Is(err, natsjs.ErrBucketExists) {
		// Every process brings the bounds it was configured with, so
		// processes that disagree rewrite them at each start: the log
		// says so when the server took the bucket as a different one.
		cfg.Logger.WarnContext(ctx, "changing the results bucket's bounds to this process's", "bucket", ResultsBucket,
			"ttl", ocfg.TTL, "max_bytes", ocfg.MaxBytes, "replicas", ocfg.Replicas)
		rctx, cancel := context.WithTimeout(ctx, 2*cfg.RequestTimeout)
		defer cancel()
		results, err = js.UpdateObjectStore(rctx, ocfg)
	}
	if storeFull(err) {
		// A bounded bucket reserves its bound of the server's storage:
		// more than the server has is refused at once.
		err = fmt.Errorf("%w: the server cannot reserve %d bytes for it: %w", tasktype.ErrResultStoreFull, ocfg.MaxBytes, err)
	}
	return results, err
}

// request bounds one request to the server by RequestTimeout, or less if
// ctx ends sooner. Every request the broker makes goes through it.
func (b *Broker) request(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.cfg.RequestTimeout)
}

// classify marks errors that mean "could not reach the server" as
// tasktype.ErrUnavailable, keeping the cause.
func classify(err error) error {
	var apiErr *natsjs.APIError
	if errors.As(err, &apiErr) && apiErr.Code != http.StatusServiceUnavailable {
		return err
	}
	// A 503 is a cluster between leaders ("JetStream system temporarily
	// unavailable"): an outage to wait out, like no answer at all. (A
	// server without JetStream answers 503 too; Open tells that apart
	// first.)
	return fmt.Errorf("%w: %w", tasktype.ErrUnavailable, err)
}

// Ping checks that the server answers JetStream requests.
func (b *Broker) Ping(ctx context.Context) error {
	if s := b.cfg.Conn.Status(); s != nats.CONNECTED {
		return fmt.Errorf("nats connection %s", s)
	}
	ctx, cancel := b.request(ctx)
	defer cancel()
	if _, err := b.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	return nil
}
