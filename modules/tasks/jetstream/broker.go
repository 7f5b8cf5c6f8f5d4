// Package jetstream carries OTJ Helper's jobs, job events and result files
// on NATS JetStream.
//
// One limits-retention stream, TASKS, holds every job event under
// tasks.<type>.<user>.<job>.<kind>. The enqueued events are also the work
// items: workers share the durable pull consumer "workers", filtered to
// tasks.*.*.*.enqueued, so storing the enqueued event is the whole of an
// enqueue and nothing can be half-enqueued. Because the stream keeps every
// event, it is also the log from which task_result is projected (and can
// be rebuilt). Result files go to the Object Store bucket "task_results",
// keyed by job id.
package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/otjhelper/otj/modules/tasks"
)

// Names of what the broker creates on the server.
const (
	StreamName    = "TASKS"
	WorkConsumer  = "workers"
	ResultsBucket = "task_results"
	// WorkSubject selects the work items among the events.
	WorkSubject = tasks.SubjectPrefix + ".*.*.*." + string(tasks.EventEnqueued)
)

// Config configures a Broker. Zero fields take the defaults below.
type Config struct {
	Conn *nats.Conn // required
	// AckWait is the visibility timeout: a job whose worker has neither
	// finished nor renewed it within AckWait goes to another worker.
	// Default 30s.
	AckWait time.Duration
	// Duplicates is the window in which an enqueue with the same key
	// returns the first job. Default 2m.
	Duplicates time.Duration
	// Replicas of the stream and bucket; 3 on a cluster. Default 1.
	Replicas int
	// PublishTimeout bounds one event write, whatever the caller's
	// context allows: a publish sent just as the server went away gets no
	// answer, and should fail rather than hang. Default 5s.
	PublishTimeout time.Duration
	Logger         *slog.Logger
	Now            func() time.Time
}

func (c *Config) setDefaults() {
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.Duplicates <= 0 {
		c.Duplicates = 2 * time.Minute
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Broker implements the tasks ports on JetStream: tasks.Enqueuer,
// tasks.EventLog, tasks.EventStream and tasks.ResultStore, and hands out
// tasks.Queue values for workers.
type Broker struct {
	cfg     Config
	js      natsjs.JetStream
	stream  natsjs.Stream
	results natsjs.ObjectStore
}

// Open makes sure the stream, the worker consumer and the results bucket
// exist with this version's settings, and returns a Broker using them.
// Every process calls it at start; the calls are idempotent.
func Open(ctx context.Context, cfg Config) (*Broker, error) {
	cfg.setDefaults()
	if cfg.Conn == nil {
		return nil, errors.New("open jetstream broker: Conn is required")
	}
	js, err := natsjs.New(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("open jetstream broker: %w", err)
	}
	stream, err := js.CreateOrUpdateStream(ctx, natsjs.StreamConfig{
		Name:        StreamName,
		Description: "OTJ Helper job events; the enqueued events are the work queue",
		Subjects:    []string{tasks.SubjectPrefix + ".>"},
		Retention:   natsjs.LimitsPolicy,
		Storage:     natsjs.FileStorage,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.Duplicates,
		AllowDirect: true,
	})
	if err != nil {
		return nil, fmt.Errorf("open jetstream broker: stream %s: %w", StreamName, err)
	}
	_, err = js.CreateOrUpdateConsumer(ctx, StreamName, natsjs.ConsumerConfig{
		Durable:       WorkConsumer,
		Description:   "workers share this consumer; each enqueued job goes to one of them",
		FilterSubject: WorkSubject,
		DeliverPolicy: natsjs.DeliverAllPolicy,
		AckPolicy:     natsjs.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: 1000,
	})
	if err != nil {
		return nil, fmt.Errorf("open jetstream broker: consumer %s: %w", WorkConsumer, err)
	}
	results, err := js.CreateOrUpdateObjectStore(ctx, natsjs.ObjectStoreConfig{
		Bucket:      ResultsBucket,
		Description: "OTJ Helper task result files, keyed by job id",
		Storage:     natsjs.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("open jetstream broker: bucket %s: %w", ResultsBucket, err)
	}
	return &Broker{cfg: cfg, js: js, stream: stream, results: results}, nil
}

// Enqueue stores the job's enqueued event, which is also its work item.
// With a key, a repeat within the dedupe window returns the first job.
func (b *Broker) Enqueue(ctx context.Context, r tasks.EnqueueRequest) (tasks.Job, error) {
	if err := r.Validate(); err != nil {
		return tasks.Job{}, fmt.Errorf("enqueue %s: %w", r.Type, err)
	}
	id := nuid.Next()
	ev := tasks.Event{
		ID:      id + ".enqueued",
		Kind:    tasks.EventEnqueued,
		JobID:   id,
		JobType: r.Type,
		UserID:  r.UserID,
		Time:    b.cfg.Now().UTC(),
		Payload: r.Payload,
	}
	msgID := ev.ID
	if r.Key != "" {
		msgID = "enqueue." + r.Type + "." + strconv.FormatInt(r.UserID, 10) + "." + r.Key
	}
	ack, err := b.publish(ctx, &ev, msgID)
	if err != nil {
		return tasks.Job{}, fmt.Errorf("enqueue %s: %w", r.Type, err)
	}
	if ack.Duplicate {
		first, err := b.eventAt(ctx, ack.Sequence)
		if err != nil {
			return tasks.Job{}, fmt.Errorf("enqueue %s: read first job of key: %w", r.Type, err)
		}
		return first.Job(), nil
	}
	ev.Seq = ack.Sequence
	return ev.Job(), nil
}

// Append stores an event. A repeat of an event ID within the dedupe
// window is dropped by the server and returns the first sequence.
func (b *Broker) Append(ctx context.Context, e tasks.Event) (uint64, error) {
	ack, err := b.publish(ctx, &e, e.ID)
	if err != nil {
		return 0, fmt.Errorf("append %s event of job %s: %w", e.Kind, e.JobID, err)
	}
	return ack.Sequence, nil
}

func (b *Broker) publish(ctx context.Context, e *tasks.Event, msgID string) (*natsjs.PubAck, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()
	ack, err := b.js.Publish(ctx, e.Subject(), data, natsjs.WithMsgID(msgID), natsjs.WithExpectStream(StreamName))
	if err != nil {
		return nil, classify(err)
	}
	return ack, nil
}

// classify marks errors that mean "could not reach the server" as
// tasks.ErrUnavailable, keeping the cause.
func classify(err error) error {
	var apiErr *natsjs.APIError
	if errors.As(err, &apiErr) {
		return err
	}
	return fmt.Errorf("%w: %w", tasks.ErrUnavailable, err)
}

// Outcome returns the job's succeeded or failed event, if stored. It is a
// direct get of the last message on each of two literal subjects.
func (b *Broker) Outcome(ctx context.Context, j tasks.Job) (*tasks.Event, error) {
	for _, kind := range []tasks.EventKind{tasks.EventSucceeded, tasks.EventFailed} {
		raw, err := b.stream.GetLastMsgForSubject(ctx, tasks.Subject(j.Type, j.UserID, j.ID, kind))
		if errors.Is(err, natsjs.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("outcome of job %s: %w", j.ID, classify(err))
		}
		e, err := decode(raw.Data, raw.Sequence)
		if err != nil {
			return nil, fmt.Errorf("outcome of job %s: %w", j.ID, err)
		}
		return &e, nil
	}
	return nil, nil
}

func (b *Broker) eventAt(ctx context.Context, seq uint64) (tasks.Event, error) {
	raw, err := b.stream.GetMsg(ctx, seq)
	if err != nil {
		return tasks.Event{}, classify(err)
	}
	return decode(raw.Data, raw.Sequence)
}

func decode(data []byte, seq uint64) (tasks.Event, error) {
	var e tasks.Event
	if err := json.Unmarshal(data, &e); err != nil {
		return tasks.Event{}, fmt.Errorf("decode event %d: %w", seq, err)
	}
	e.Seq = seq
	return e, nil
}

// Follow implements tasks.EventStream with an ordered consumer: an
// ephemeral, flow-controlled consumer that the client recreates from the
// last sequence it saw if messages go missing or the server restarts.
func (b *Broker) Follow(ctx context.Context, from uint64, fn func(tasks.Event) error) error {
	cfg := natsjs.OrderedConsumerConfig{DeliverPolicy: natsjs.DeliverAllPolicy}
	if from > 0 {
		cfg.DeliverPolicy = natsjs.DeliverByStartSequencePolicy
		cfg.OptStartSeq = from + 1
	}
	cons, err := b.js.OrderedConsumer(ctx, StreamName, cfg)
	if err != nil {
		return fmt.Errorf("follow events: %w", classify(err))
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("follow events: %w", err)
	}
	defer it.Stop()
	for {
		msg, err := it.Next(natsjs.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("follow events: %w", err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("follow events: %w", err)
		}
		e, err := decode(msg.Data(), md.Sequence.Stream)
		if err != nil {
			// Not an event this code can read; skipping it keeps the
			// projection alive, and the log says which one.
			b.cfg.Logger.ErrorContext(ctx, "skipping undecodable event", "seq", md.Sequence.Stream, "subject", msg.Subject(), "err", err)
			continue
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// LastSeq is the sequence of the newest event in the stream.
func (b *Broker) LastSeq(ctx context.Context) (uint64, error) {
	info, err := b.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream info: %w", classify(err))
	}
	return info.State.LastSeq, nil
}

// Put streams a result file into the results bucket.
func (b *Broker) Put(ctx context.Context, object, name, contentType string, r io.Reader) (tasks.ResultRef, error) {
	info, err := b.results.Put(ctx, natsjs.ObjectMeta{
		Name:        object,
		Description: name,
		Headers:     nats.Header{"Content-Type": []string{contentType}},
	}, r)
	if err != nil {
		return tasks.ResultRef{}, fmt.Errorf("put result %s: %w", object, err)
	}
	return tasks.ResultRef{Object: object, Name: name, ContentType: contentType, Size: info.Size, Digest: info.Digest}, nil
}

// Open streams a stored result file.
func (b *Broker) Open(ctx context.Context, object string) (io.ReadCloser, error) {
	r, err := b.results.Get(ctx, object)
	if err != nil {
		return nil, fmt.Errorf("open result %s: %w", object, err)
	}
	return r, nil
}

// Ping checks that the server answers JetStream requests.
func (b *Broker) Ping(ctx context.Context) error {
	if s := b.cfg.Conn.Status(); s != nats.CONNECTED {
		return fmt.Errorf("nats connection %s", s)
	}
	if _, err := b.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	return nil
}
