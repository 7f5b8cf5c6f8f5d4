// Package jetstream carries OTJ Helper's jobs, job events and result files
// on NATS JetStream.
//
// One limits-retention stream, TASKS, holds every job event under
// tasks.<type>.<user>.<job>.<kind>. The enqueued, retrying and retried
// events are also the work items: workers share the durable pull consumer
// "workers", filtered to those kinds, so storing the enqueued event is the
// whole of an enqueue and nothing can be half-enqueued, and a retry is one
// write that both records the failure and schedules the next attempt.
// Every later event of a job is stored on condition that the job's last
// event is the one its writer read, so racing workers, web processes and
// operators cannot interleave impossible steps. Because the stream keeps
// every event, it is also the log from which task_result is projected
// (and can be rebuilt). Result files go to the Object Store bucket
// "task_results", one per attempt, named by job id and attempt.
package jetstream

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/otjhelper/otj/modules/tasks/internal/codec"
	"github.com/otjhelper/otj/modules/tasks/taskdriver"
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

// WorkSubjects select the work items among the events: enqueued,
// retrying and retried.
var WorkSubjects = func() []string {
	var s []string
	for _, k := range tasktype.WorkKinds {
		s = append(s, SubjectPrefix+".*.*.*."+string(k))
	}
	return s
}()

// Config configures a Broker. Zero fields take the defaults below.
type Config struct {
	Conn *nats.Conn // required
	// Admin, when set, is a connection with the rights Conn need not
	// have: to make and change the stream and the results bucket (Open),
	// and to purge a user's events (EraseUser). Everything else goes
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
	Logger   *slog.Logger
	Now      func() time.Time
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

// Broker implements the tasks ports on JetStream: taskdriver.Enqueuer,
// taskdriver.EventLog, taskdriver.EventStream and taskdriver.ResultStore, and hands out
// taskdriver.Queue values for workers.
type Broker struct {
	cfg     Config
	js      natsjs.JetStream
	stream  natsjs.Stream
	results natsjs.ObjectStore
	// sawPull is when QueueStats last found a worker's pull request
	// held, in Unix nanoseconds; 0 if it never has.
	sawPull *atomic.Int64
	// admin is js over Config.Admin, and adminStream the stream through
	// it: what makes the stream and purges from it.
	admin       natsjs.JetStream
	adminStream natsjs.Stream
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
		rctx, cancel := b.request(ctx)
		stream, err = b.admin.CreateStream(rctx, scfg)
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
	if sameStream(stream.CachedInfo().Config, scfg) {
		return stream, nil
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

// Enqueue stores the job's enqueued event, which is also its work item.
// With a key, a repeat within the dedupe window returns the first job.
func (b *Broker) Enqueue(ctx context.Context, r tasktype.EnqueueRequest) (tasktype.Job, error) {
	ev, _, err := b.EnqueueEvent(ctx, r)
	if err != nil {
		return tasktype.Job{}, err
	}
	return ev.Job(), nil
}

// EnqueueEvent is Enqueue returning the stored enqueued event, and
// whether the request repeated an earlier one's key (the event is then
// the first request's). Brokers that carry jobs elsewhere record jobs
// with it.
func (b *Broker) EnqueueEvent(ctx context.Context, r tasktype.EnqueueRequest) (tasktype.Event, bool, error) {
	if err := r.Validate(); err != nil {
		return tasktype.Event{}, false, fmt.Errorf("enqueue %s: %w", r.Type, err)
	}
	ev, opts := b.newEnqueued(r)
	ack, err := b.publish(ctx, &ev, opts...)
	if err != nil {
		return tasktype.Event{}, false, fmt.Errorf("enqueue %s: %w", r.Type, err)
	}
	if ack.Duplicate {
		first, err := b.eventAt(ctx, ack.Sequence)
		if err != nil {
			return tasktype.Event{}, false, fmt.Errorf("enqueue %s: read first job of key: %w", r.Type, err)
		}
		return first, true, nil
	}
	ev.Seq = ack.Sequence
	return ev, false, nil
}

// Append stores e if the newest event of its job is still at sequence
// after: the server checks the last sequence on the job's subjects
// (tasks.*.<user>.<job>.*) as it stores the message, so of two racing
// writers exactly one wins.
func (b *Broker) Append(ctx context.Context, e tasktype.Event, after uint64) (uint64, error) {
	ack, err := b.publish(ctx, &e, natsjs.WithExpectLastSequenceForSubject(after, JobFilter(e.UserID, e.JobID)))
	if err != nil {
		var apiErr *natsjs.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == natsjs.JSErrCodeStreamWrongLastSequence {
			err = tasktype.ErrConflict
		}
		return 0, fmt.Errorf("append %s event of job %s: %w", e.Kind, e.JobID, err)
	}
	return ack.Sequence, nil
}

// eventBufs holds the buffers events are encoded into for a publish that
// waits for its ack: the client has copied the bytes by then (an
// asynchronous publish keeps them for its retries, so it gets its own).
var eventBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (b *Broker) publish(ctx context.Context, e *tasktype.Event, opts ...natsjs.PublishOpt) (*natsjs.PubAck, error) {
	buf := eventBufs.Get().(*[]byte)
	*buf = codec.AppendEvent((*buf)[:0], e)
	defer eventBufs.Put(buf)
	ctx, cancel := b.request(ctx)
	defer cancel()
	ack, err := b.js.Publish(ctx, EventSubject(e), *buf, opts...)
	if err != nil {
		return nil, classify(err)
	}
	return ack, nil
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

// Last returns the job's newest event: a direct get of the last message
// on the job's subjects.
func (b *Broker) Last(ctx context.Context, userID int64, jobID string) (tasktype.Event, error) {
	if !tasktype.ValidID(jobID) {
		return tasktype.Event{}, fmt.Errorf("last event of job %q: %w", jobID, tasktype.ErrNotFound)
	}
	rctx, cancel := b.request(ctx)
	defer cancel()
	raw, err := b.stream.GetLastMsgForSubject(rctx, JobFilter(userID, jobID))
	if errors.Is(err, natsjs.ErrMsgNotFound) {
		return tasktype.Event{}, fmt.Errorf("last event of job %s: %w", jobID, tasktype.ErrNotFound)
	}
	if err != nil {
		return tasktype.Event{}, fmt.Errorf("last event of job %s: %w", jobID, classify(err))
	}
	e, err := decode(raw.Data, raw.Sequence)
	if err != nil {
		return tasktype.Event{}, fmt.Errorf("last event of job %s: %w", jobID, err)
	}
	return e, nil
}

// History reads the job's events with a short-lived ordered consumer
// filtered to the job's subjects, up to the newest one.
func (b *Broker) History(ctx context.Context, userID int64, jobID string) ([]tasktype.Event, error) {
	last, err := b.Last(ctx, userID, jobID)
	if err != nil {
		return nil, err
	}
	it, done, err := b.readOnce(ctx, StreamName, natsjs.OrderedConsumerConfig{
		FilterSubjects: []string{JobFilter(userID, jobID)},
		DeliverPolicy:  natsjs.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("history of job %s: %w", jobID, err)
	}
	defer done()
	var events []tasktype.Event
	for {
		// Every event up to last is stored: each one is a request's
		// worth of waiting.
		nctx, cancel := b.request(ctx)
		msg, err := it.Next(natsjs.NextContext(nctx))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("history of job %s: %w", jobID, classify(err))
		}
		md, err := msg.Metadata()
		if err != nil {
			return nil, fmt.Errorf("history of job %s: %w", jobID, err)
		}
		e, err := decode(msg.Data(), md.Sequence.Stream)
		if err != nil {
			return nil, fmt.Errorf("history of job %s: %w", jobID, err)
		}
		events = append(events, e)
		if e.Seq >= last.Seq {
			return events, nil
		}
	}
}

// Succeeded implements taskdriver.SucceededLog: it reads the user's succeeded
// events of one job type stored since the given time, in stream order,
// with a short-lived ordered consumer filtered to
// tasks.<type>.<user>.*.succeeded and starting at that time, so that it
// reads neither other users' events nor the whole log.
func (b *Broker) Succeeded(ctx context.Context, userID int64, jobType string, since time.Time) ([]tasktype.Event, error) {
	filter := SubjectPrefix + "." + jobType + "." + strconv.FormatInt(userID, 10) + ".*." + string(tasktype.EventSucceeded)
	last, err := b.stream.GetLastMsgForSubject(ctx, filter)
	if errors.Is(err, natsjs.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("succeeded events of %s for user %d: %w", jobType, userID, classify(err))
	}
	if last.Time.Before(since) {
		return nil, nil
	}
	cfg := natsjs.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: natsjs.DeliverAllPolicy}
	if !since.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = natsjs.DeliverByStartTimePolicy, &since
	}
	it, done, err := b.readOnce(ctx, StreamName, cfg)
	if err != nil {
		return nil, fmt.Errorf("succeeded events of %s for user %d: %w", jobType, userID, err)
	}
	defer done()
	var events []tasktype.Event
	for {
		msg, err := it.Next(natsjs.NextContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("succeeded events of %s for user %d: %w", jobType, userID, classify(err))
		}
		md, err := msg.Metadata()
		if err != nil {
			return nil, fmt.Errorf("succeeded events of %s for user %d: %w", jobType, userID, err)
		}
		if e, err := decode(msg.Data(), md.Sequence.Stream); err == nil {
			events = append(events, e)
		}
		if md.Sequence.Stream >= last.Sequence {
			return events, nil
		}
	}
}

func (b *Broker) eventAt(ctx context.Context, seq uint64) (tasktype.Event, error) {
	ctx, cancel := b.request(ctx)
	defer cancel()
	raw, err := b.stream.GetMsg(ctx, seq)
	if err != nil {
		return tasktype.Event{}, classify(err)
	}
	return decode(raw.Data, raw.Sequence)
}

func decode(data []byte, seq uint64) (tasktype.Event, error) {
	var e tasktype.Event
	if err := codec.DecodeEvent(data, &e); err != nil {
		return tasktype.Event{}, fmt.Errorf("decode event %d: %w", seq, err)
	}
	e.Seq = seq
	return e, nil
}

// followBatch bounds the events Follow hands over at once: enough that a
// projection catching up commits rarely, few enough that one batch is a
// short transaction.
const followBatch = 512

// followGap is the least time between two batches: followEvery after a
// batch of one event, growing by followGapPerEvent for each event of the
// last batch up to followMaxGap. Under load, each batch is then a few
// milliseconds' events rather than one or two, and more of a job's events
// (started and succeeded, a few hundred microseconds apart) fall in one
// batch, where the projection writes its row once: batches and rows
// written are most of what a projection costs. When events are few, a
// batch follows the last within followEvery, and an event after a quiet
// spell goes at once.
func followGap(last int) time.Duration {
	return min(max(time.Duration(last)*followGapPerEvent, followEvery), followMaxGap)
}

const (
	followEvery       = time.Millisecond
	followGapPerEvent = 100 * time.Microsecond
	followMaxGap      = 5 * time.Millisecond
)

// Follow implements taskdriver.EventStream with an ordered consumer: an
// ephemeral, flow-controlled consumer that the client recreates from the
// last sequence it saw if messages go missing or the server restarts.
//
// One goroutine reads the stream while fn runs, and each batch is what it
// read meanwhile (a group commit): a single event when events are few, so
// none waits for another, and under load all that arrived since the last
// batch, at most one batch every followGap, so a follower that pays per
// call (a projection's transaction) keeps up without tuning.
func (b *Broker) Follow(ctx context.Context, from uint64, fn func([]tasktype.Event) error) error {
	cfg := natsjs.OrderedConsumerConfig{DeliverPolicy: natsjs.DeliverAllPolicy}
	if from > 0 {
		cfg.DeliverPolicy = natsjs.DeliverByStartSequencePolicy
		cfg.OptStartSeq = from + 1
	}
	rctx, cancel := b.request(ctx)
	cons, err := b.js.OrderedConsumer(rctx, StreamName, cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("follow events: %w", classify(err))
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("follow events: %w", classify(err))
	}
	rctx, stop := context.WithCancel(ctx)
	events := make(chan tasktype.Event, followBatch)
	readErr := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		readErr <- b.read(rctx, it, events)
	}()
	defer func() { stop(); it.Stop(); <-done }()

	batch := make([]tasktype.Event, 0, followBatch)
	var last time.Time // when fn was last called
	gap := followEvery // the least time from last to the next call
	pause := time.NewTimer(0)
	defer pause.Stop()
	for {
		select {
		case e := <-events:
			batch = append(batch, e)
			if wait := gap - time.Since(last); wait > 0 {
				pause.Reset(wait)
				select {
				case <-pause.C:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		case err := <-readErr:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("follow events: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	more:
		for len(batch) < followBatch {
			select {
			case e := <-events:
				batch = append(batch, e)
			default:
				break more
			}
		}
		last, gap = time.Now(), followGap(len(batch))
		if err := fn(batch); err != nil {
			return err
		}
		clear(batch) // let go of payloads
		batch = batch[:0]
	}
}

// read passes the stream's events, in order, to out until ctx ends or the
// stream fails.
func (b *Broker) read(ctx context.Context, it natsjs.MessagesContext, out chan<- tasktype.Event) error {
	for {
		msg, err := it.Next(natsjs.NextContext(ctx))
		if err != nil {
			return err
		}
		md, err := msg.Metadata()
		if err != nil {
			return err
		}
		e, err := decode(msg.Data(), md.Sequence.Stream)
		if err != nil {
			// Not an event this code can read. It is passed on with only
			// its sequence, so followers move past it (a projection's
			// position, a catch-up's target) instead of stalling; the log
			// says which one it was.
			b.cfg.Logger.ErrorContext(ctx, "undecodable event", "seq", md.Sequence.Stream, "subject", msg.Subject(), "err", err)
			e = tasktype.Event{Seq: md.Sequence.Stream}
		}
		select {
		case out <- e:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// LastSeq is the sequence of the newest event in the stream.
func (b *Broker) LastSeq(ctx context.Context) (uint64, error) {
	ctx, cancel := b.request(ctx)
	defer cancel()
	info, err := b.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream info: %w", classify(err))
	}
	return info.State.LastSeq, nil
}

// Created implements taskdriver.EventStream: the stream's creation time,
// as the server keeps it (it survives restarts, and a cluster's nodes
// agree on it).
func (b *Broker) Created(ctx context.Context) (time.Time, error) {
	ctx, cancel := b.request(ctx)
	defer cancel()
	info, err := b.stream.Info(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("stream info: %w", classify(err))
	}
	return info.Created, nil
}

// Put streams a result file into the results bucket.
//
// An upload is many requests (a look-up, a publish per chunk and the
// acks for them, a purge if it fails), and nats.go gives none of them a
// deadline of its own when the caller's context has one: a request that a
// dying server took with it would wait for the job's whole attempt. So
// the upload is cancelled once its broker side has gone RequestTimeout
// without progress; the time it waits for the handler to write more does
// not count (see uploadGuard).
func (b *Broker) Put(ctx context.Context, object, name, contentType string, r io.Reader) (tasktype.ResultRef, error) {
	ctx, g := guardUpload(ctx, r, b.cfg.RequestTimeout)
	defer g.stop()
	info, err := b.results.Put(ctx, natsjs.ObjectMeta{
		Name:        object,
		Description: name,
		Headers:     nats.Header{"Content-Type": []string{contentType}},
	}, g)
	if storeFull(err) {
		// The server's wording stays in the chain, for the log and the
		// operator's view.
		return tasktype.ResultRef{}, fmt.Errorf("put result %s: %w: %w", object, tasktype.ErrResultStoreFull, err)
	}
	if err != nil {
		switch {
		case errors.Is(context.Cause(ctx), errUploadStalled):
			err = fmt.Errorf("%w: %w within %s", tasktype.ErrUnavailable, errUploadStalled, b.cfg.RequestTimeout)
		case g.readErr != nil && errors.Is(err, g.readErr), ctx.Err() != nil:
			// The writer failed, or the caller gave up: theirs to say.
		default:
			// The server's refusal, or none at all: a connection that
			// lost its server refuses every publish at once ("outbound
			// buffer limit exceeded": nothing is buffered while
			// disconnected).
			err = classify(err)
		}
		return tasktype.ResultRef{}, fmt.Errorf("put result %s: %w", object, err)
	}
	return tasktype.ResultRef{Object: object, Name: name, ContentType: contentType, Size: info.Size, Digest: info.Digest}, nil
}

var errUploadStalled = errors.New("the server did not answer the upload")

// uploadGuard is the reader an upload reads its file through, and the
// clock of its broker side: the clock runs while the upload is not
// waiting in Read (it is publishing, waiting for acks, or making a
// request), and cancels the upload's context when it reaches within.
// Waiting for the handler's next bytes stops it.
type uploadGuard struct {
	r      io.Reader
	within time.Duration
	timer  *time.Timer
	cancel context.CancelCauseFunc
	// readErr is the file's own error, other than its end: the upload
	// fails with it, and it is no fault of the store's.
	readErr error
}

func guardUpload(ctx context.Context, r io.Reader, within time.Duration) (context.Context, *uploadGuard) {
	ctx, cancel := context.WithCancelCause(ctx)
	g := &uploadGuard{r: r, within: within, cancel: cancel}
	g.timer = time.AfterFunc(within, func() { cancel(errUploadStalled) })
	return ctx, g
}

func (g *uploadGuard) Read(p []byte) (int, error) {
	g.timer.Stop()
	n, err := g.r.Read(p)
	g.timer.Reset(g.within)
	if err != nil && err != io.EOF {
		g.readErr = err
	}
	return n, err
}

func (g *uploadGuard) stop() {
	g.timer.Stop()
	g.cancel(nil)
}

// JetStream's answers that mean there is no room: a stream at its
// MaxBytes ("maximum bytes exceeded", among the store failures of
// 10077), and a server out of the storage JetStream may use (10047).
const (
	errCodeStoreFailed           natsjs.ErrorCode = 10077
	errCodeInsufficientResources natsjs.ErrorCode = 10047
)

// storeFull reports whether err is the server refusing a write for want
// of room.
func storeFull(err error) bool {
	var apiErr *natsjs.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == errCodeInsufficientResources ||
		apiErr.ErrorCode == errCodeStoreFailed && strings.Contains(apiErr.Description, "maximum bytes")
}

// Delete removes a stored result file, if there is one.
func (b *Broker) Delete(ctx context.Context, object string) error {
	ctx, cancel := b.request(ctx)
	defer cancel()
	if b.cfg.NoPurge {
		return b.markDeleted(ctx, object)
	}
	err := b.results.Delete(ctx, object)
	if err != nil && !errors.Is(err, natsjs.ErrObjectNotFound) {
		return fmt.Errorf("delete result %s: %w", object, err)
	}
	return nil
}

// markDeleted is Delete without the purge of the object's chunks: the
// delete marker the bucket's own Delete writes first, a meta message that
// replaces the object's (a roll-up of its subject).
func (b *Broker) markDeleted(ctx context.Context, object string) error {
	info, err := b.results.GetInfo(ctx, object, natsjs.GetObjectInfoShowDeleted())
	if errors.Is(err, natsjs.ErrObjectNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete result %s: %w", object, classify(err))
	}
	if info.Deleted {
		return nil
	}
	info.Deleted, info.Size, info.Chunks, info.Digest, info.ModTime = true, 0, 0, "", time.Time{}
	data, err := json.Marshal(info)
	if err != nil {
		return fmt.Errorf("delete result %s: %w", object, err)
	}
	msg := nats.NewMsg("$O." + ResultsBucket + ".M." + base64.URLEncoding.EncodeToString([]byte(object)))
	msg.Header.Set(natsjs.MsgRollup, natsjs.MsgRollupSubject)
	msg.Data = data
	if _, err := b.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("delete result %s: %w", object, classify(err))
	}
	return nil
}

// Open streams a stored result file, with the size and digest the
// bucket recorded when it was put. One that is not there (expired,
// pruned, never stored) is tasktype.ErrResultMissing.
//
// The look-up is one request, bounded by RequestTimeout. The reading is
// not: it goes at the reader's pace (a download to a slow phone), so it
// is bounded by the file's size instead, at minDownloadRate. nats.go's
// Get would give a context without a deadline its default timeout for
// the whole file, cutting off any download that takes longer.
func (b *Broker) Open(ctx context.Context, object string) (*tasktype.StoredResult, error) {
	rctx, cancel := b.request(ctx)
	info, err := b.results.GetInfo(rctx, object)
	cancel()
	if errors.Is(err, natsjs.ErrObjectNotFound) {
		return nil, fmt.Errorf("open result %s: %w", object, tasktype.ErrResultMissing)
	}
	if err != nil {
		return nil, fmt.Errorf("open result %s: %w", object, classify(err))
	}
	budget := 2*b.cfg.RequestTimeout + time.Duration(info.Size/minDownloadRate+1)*time.Second
	dctx, cancel := context.WithTimeout(ctx, budget)
	r, err := b.openChunks(dctx, info)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open result %s: %w", object, err)
	}
	return &tasktype.StoredResult{ReadCloser: cancelOnClose{r, cancel}, Size: info.Size, Digest: info.Digest}, nil
}

// minDownloadRate, in bytes per second, is the slowest reading of a
// result file that still gets all of it: a 3 MB report has 47 s, a
// 280 MB one 73 minutes.
const minDownloadRate = 64 << 10

// cancelOnClose ends a download's context when its reader is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
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

// batchWindow bounds the enqueues of one EnqueueBatch in flight at once:
// enough to keep the server busy, few enough that a slow server holds
// back the caller instead of a growing backlog of unanswered publishes.
const batchWindow = 256

// EnqueueBatch implements taskdriver.BatchEnqueuer: it sends the requests'
// enqueued events without waiting for each to be stored before the next,
// at most batchWindow at a time, and returns when every one is stored.
// Every request is checked before any is sent, so a bad one changes
// nothing. On a failed publish it sends no more and returns the jobs of
// the requests before the first failure.
func (b *Broker) EnqueueBatch(ctx context.Context, rs []tasktype.EnqueueRequest) ([]tasktype.Job, error) {
	events, _, err := b.EnqueueEventBatch(ctx, rs)
	jobs := make([]tasktype.Job, len(events))
	for i := range events {
		jobs[i] = events[i].Job()
	}
	return jobs, err
}

// EnqueueEventBatch is EnqueueBatch returning the stored enqueued events,
// and for each whether its request repeated an earlier one's key, in this
// batch or before (its event is then the first request's). Brokers that
// carry jobs elsewhere record batches of jobs with it.
func (b *Broker) EnqueueEventBatch(ctx context.Context, rs []tasktype.EnqueueRequest) ([]tasktype.Event, []bool, error) {
	for i, r := range rs {
		if err := r.Validate(); err != nil {
			return nil, nil, fmt.Errorf("enqueue batch: request %d: enqueue %s: %w", i, r.Type, err)
		}
	}
	sentEvents := make([]tasktype.Event, len(rs))
	futures := make([]natsjs.PubAckFuture, len(rs))
	events := make([]tasktype.Event, 0, len(rs))
	repeats := make([]bool, 0, len(rs))
	var firstErr error
	// wait collects the outcome of request i, in order.
	wait := func(i int) {
		if firstErr != nil {
			return
		}
		ev, repeat, err := b.awaitEnqueue(ctx, &sentEvents[i], futures[i])
		if err != nil {
			firstErr = fmt.Errorf("enqueue batch: request %d: enqueue %s: %w", i, rs[i].Type, err)
			return
		}
		events = append(events, ev)
		repeats = append(repeats, repeat)
	}
	sent := 0
	for i, r := range rs {
		if i >= batchWindow {
			wait(i - batchWindow)
		}
		if firstErr != nil {
			break
		}
		var err error
		sentEvents[i], futures[i], err = b.publishEnqueueAsync(r)
		if err != nil {
			firstErr = fmt.Errorf("enqueue batch: request %d: enqueue %s: %w", i, r.Type, err)
			break
		}
		sent = i + 1
	}
	for i := max(sent-batchWindow, 0); i < sent; i++ {
		wait(i)
	}
	return events, repeats, firstErr
}

// newEnqueued builds the enqueued event of r, and the publish options
// that dedupe it if it has a key. A job without one is sent with no
// message id: the server would keep every id for the whole dedupe window
// (at thousands of jobs a second, a map of millions) to guard against a
// resend that nothing makes.
func (b *Broker) newEnqueued(r tasktype.EnqueueRequest) (tasktype.Event, []natsjs.PublishOpt) {
	ev := tasktype.Event{
		ID:      nuid.Next(),
		Kind:    tasktype.EventEnqueued,
		JobID:   nuid.Next(),
		JobType: r.Type,
		UserID:  r.UserID,
		Time:    b.cfg.Now().UTC(),
		Payload: r.Payload,
	}
	if r.Key == "" {
		return ev, nil
	}
	return ev, []natsjs.PublishOpt{natsjs.WithMsgID("enqueue." + r.Type + "." + strconv.FormatInt(r.UserID, 10) + "." + r.Key)}
}

func (b *Broker) publishEnqueueAsync(r tasktype.EnqueueRequest) (tasktype.Event, natsjs.PubAckFuture, error) {
	ev, opts := b.newEnqueued(r)
	data := codec.AppendEvent(make([]byte, 0, 256), &ev)
	f, err := b.js.PublishAsync(EventSubject(&ev), data, opts...)
	if err != nil {
		return tasktype.Event{}, nil, classify(err)
	}
	return ev, f, nil
}

// awaitEnqueue waits, within RequestTimeout, for the server to store an
// enqueued event sent by publishEnqueueAsync, and returns the stored
// event: ev with its sequence, or the first job of a repeated key (and
// true).
func (b *Broker) awaitEnqueue(ctx context.Context, ev *tasktype.Event, f natsjs.PubAckFuture) (tasktype.Event, bool, error) {
	t := time.NewTimer(b.cfg.RequestTimeout)
	defer t.Stop()
	select {
	case ack := <-f.Ok():
		if ack.Duplicate {
			first, err := b.eventAt(ctx, ack.Sequence)
			if err != nil {
				return tasktype.Event{}, false, fmt.Errorf("read first job of key: %w", err)
			}
			return first, true, nil
		}
		ev.Seq = ack.Sequence
		return *ev, false, nil
	case err := <-f.Err():
		return tasktype.Event{}, false, classify(err)
	case <-ctx.Done():
		return tasktype.Event{}, false, ctx.Err()
	case <-t.C:
		return tasktype.Event{}, false, fmt.Errorf("%w: no answer within %s", tasktype.ErrUnavailable, b.cfg.RequestTimeout)
	}
}

// The Broker is a job driver and the task system's log.
var (
	_ taskdriver.Driver        = (*Broker)(nil)
	_ taskdriver.BatchEnqueuer = (*Broker)(nil)
	_ taskdriver.Log           = (*Broker)(nil)
)
