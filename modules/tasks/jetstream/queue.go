package jetstream

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/tasks/internal/driver"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/natsconn"
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

// pullWait bounds one pull request, so that a stopping worker notices
// within that time.
const pullWait = 5 * time.Second

// Capabilities implements driver.Transport. The work consumer tracks a
// work item by its stream sequence, so every delivery of it shares one
// lease, renewed by the heartbeats of whichever delivery is being worked
// on (ItemLease). NumDelivered is not to be trusted after a server
// restart: the server writes its consumer's deliveries to disk at most
// ten times a second, so a server killed just after handing out an item
// hands it out again, counted as a first delivery.
func (b *Broker) Capabilities() driver.Capabilities {
	return driver.Capabilities{BatchEnqueue: true, BatchQueue: true, ItemLease: true, DelayedRedelivery: true}
}

// SetRunInline implements driver.Transport. An enqueue on JetStream is
// the storing of the work item, so there is never a job stored and not
// sent on to run elsewhere.
func (b *Broker) SetRunInline(func(ctx context.Context, item tasktype.Event)) {}

// Queue sets up the shared worker consumer and returns a driver.Queue on
// it. Every worker calls it at start. The consumer's AckWait is the
// lease of every worker of the deployment, so it is set once: a fresh
// deployment's first worker makes the consumer with its AckWait, and a
// later worker whose AckWait differs gets a *LeaseMismatchError rather
// than change it under the others, unless its Config.ResetAckWait says
// to. The queue's Lease method reports the AckWait in force.
//
// The queue pulls only as many jobs as the worker has free slots:
// prefetched jobs would wait in the client while their visibility
// timeout ran (nats.go #1929), and no other worker could take them.
//
// The consumer is made on the stream Open found, whose leader a cluster
// still forming may not have elected yet: Queue waits that out, as a
// worker waits for a server not yet up, until ctx ends.
func (b *Broker) Queue(ctx context.Context) (driver.Queue, error) {
	var q driver.Queue
	err := natsconn.WaitJetStream(ctx, b.cfg.Logger, "the consumer "+WorkConsumer, func(ctx context.Context) (err error) {
		q, err = b.openQueue(ctx)
		return err
	}, func(err error) bool { return errors.Is(err, tasktype.ErrUnavailable) })
	return q, err
}

// openQueue is one try of Queue.
func (b *Broker) openQueue(ctx context.Context) (driver.Queue, error) {
	ccfg := natsjs.ConsumerConfig{
		Durable:        WorkConsumer,
		Description:    "workers share this consumer; each work item goes to one of them",
		FilterSubjects: WorkSubjects,
		DeliverPolicy:  natsjs.DeliverAllPolicy,
		AckPolicy:      natsjs.AckExplicitPolicy,
		AckWait:        b.cfg.AckWait,
		MaxDeliver:     -1,
		// Retries waiting for their time stay pending on the consumer
		// (NakWithDelay), so the bound is well above any worker pool.
		MaxAckPending: MaxPending,
	}
	// Two rounds at most: a fresh deployment's workers may race to make
	// the consumer, and the loser compares with what the winner made.
	for round := 0; ; round++ {
		rctx, cancel := b.request(ctx)
		cons, err := b.js.Consumer(rctx, StreamName, WorkConsumer)
		cancel()
		switch {
		case errors.Is(err, natsjs.ErrConsumerNotFound):
			rctx, cancel := b.request(ctx)
			cons, err = b.js.CreateConsumer(rctx, StreamName, ccfg)
			cancel()
			if errors.Is(err, natsjs.ErrConsumerExists) && round == 0 {
				continue
			}
		case err != nil:
			// reported below
		case cons.CachedInfo().Config.AckWait != b.cfg.AckWait && !b.cfg.ResetAckWait:
			return nil, &LeaseMismatchError{Deployed: cons.CachedInfo().Config.AckWait, Wanted: b.cfg.AckWait}
		default:
			// Same lease, or asked to change it: bring the rest of the
			// consumer's settings to this version's too.
			if deployed := cons.CachedInfo().Config.AckWait; deployed != b.cfg.AckWait {
				b.cfg.Logger.WarnContext(ctx, "changing the lease of every worker", "consumer", WorkConsumer, "from", deployed, "to", b.cfg.AckWait)
			}
			rctx, cancel := b.request(ctx)
			cons, err = b.js.CreateOrUpdateConsumer(rctx, StreamName, ccfg)
			cancel()
		}
		if err != nil {
			return nil, fmt.Errorf("worker queue: consumer %s: %w", WorkConsumer, classify(err))
		}
		q := &queue{b: b, cons: cons, lease: cons.CachedInfo().Config.AckWait}
		q.backlog.Store(true) // a worker starting may find jobs waiting
		return q, nil
	}
}

// ErrLeaseMismatch is what a LeaseMismatchError is.
var ErrLeaseMismatch = errors.New("lease differs from the deployed workers consumer's")

// LeaseMismatchError says a worker's AckWait disagrees with the one the
// deployed workers consumer has, which Queue refused to change.
type LeaseMismatchError struct {
	Deployed time.Duration // the consumer's AckWait, in force for every worker
	Wanted   time.Duration // this broker's Config.AckWait
}

func (e *LeaseMismatchError) Error() string {
	return fmt.Sprintf("lease %s: the deployed %s consumer uses %s", e.Wanted, WorkConsumer, e.Deployed)
}

// Is makes errors.Is(err, ErrLeaseMismatch) hold.
func (e *LeaseMismatchError) Is(target error) bool { return target == ErrLeaseMismatch }

type queue struct {
	b     *Broker
	cons  natsjs.Consumer
	lease time.Duration // the consumer's AckWait when the queue was opened
	// backlog says the last job pulled had others waiting behind it: the
	// next pull takes what waits without waiting, and otherwise goes
	// straight to waiting for one, saving a pull that would come back
	// empty.
	backlog atomic.Bool
}

// Lease is the consumer's AckWait as the server reported it when the
// queue was opened: the lease a worker on this queue must renew within.
func (q *queue) Lease() time.Duration { return q.lease }

// Workers renew their jobs by the deployed consumer's lease.
var _ driver.Queue = (*queue)(nil)

func (q *queue) Next(ctx context.Context) (driver.Delivery, error) {
	ds, err := q.NextBatch(ctx, 1)
	if err != nil {
		return nil, err
	}
	return ds[0], nil
}

// NextBatch implements driver.Queue. When jobs are waiting it takes
// up to n of them without waiting; when none are, it waits for one. So a
// busy queue fills every free slot in one round trip, and a quiet one
// hands a new job over the moment it arrives.
func (q *queue) NextBatch(ctx context.Context, n int) ([]driver.Delivery, error) {
	n = min(max(n, 1), maxBatch)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if q.backlog.Load() {
			batch, err := q.cons.FetchNoWait(n)
			if err != nil {
				return nil, q.fetchError(ctx, err)
			}
			ds, err := q.collect(ctx, batch)
			if err != nil || len(ds) > 0 {
				return ds, err
			}
			q.backlog.Store(false)
		}
		pctx, cancel := context.WithTimeout(ctx, pullWait)
		batch, err := q.cons.Fetch(1, natsjs.FetchContext(pctx))
		var ds []driver.Delivery
		if err == nil {
			ds, err = q.collect(pctx, batch)
		}
		cancel()
		if err != nil {
			if err := q.fetchError(ctx, err); err != nil {
				return nil, err
			}
			continue // nothing to do yet
		}
		if len(ds) > 0 {
			return ds, nil
		}
	}
}

// maxBatch bounds one pull, whatever the worker's free slots.
const maxBatch = 256

// collect reads a pull's messages as deliveries; an error that only
// means the pull ended early with what it had is not reported.
func (q *queue) collect(ctx context.Context, batch natsjs.MessageBatch) ([]driver.Delivery, error) {
	var ds []driver.Delivery
	for msg := range batch.Messages() {
		md, err := msg.Metadata()
		if err != nil {
			q.b.cfg.Logger.ErrorContext(ctx, "dropping work item without metadata", "subject", msg.Subject(), "err", err)
			_ = msg.Term()
			continue
		}
		e, err := decode(msg.Data(), md.Sequence.Stream)
		if err != nil {
			// Never runnable; terminate it so it does not come back.
			q.b.cfg.Logger.ErrorContext(ctx, "dropping undecodable work item", "seq", md.Sequence.Stream, "err", err)
			_ = msg.TermWithReason("undecodable")
			continue
		}
		if forged, why := q.b.forged(ctx, msg.Subject(), e); forged {
			q.b.cfg.Logger.ErrorContext(ctx, "dropping a work item no job of the log asked for", "seq", md.Sequence.Stream,
				"subject", msg.Subject(), "job_id", e.JobID, "why", why)
			_ = msg.TermWithReason(why)
			continue
		}
		ds = append(ds, &delivery{msg: msg, item: e, redelivered: md.NumDelivered > 1})
		q.backlog.Store(md.NumPending > 0)
	}
	if err := batch.Error(); err != nil && len(ds) == 0 {
		return nil, err
	}
	return ds, nil
}

// forged reports whether a work item is one no job asked for: stored on
// another subject than its own event's, or a retrying event of a job
// with no enqueued event. A worker's NATS role may write retrying events
// (they record its failed attempts) but not enqueued ones, so this keeps
// a worker credential from creating a job that way. A look-up that fails
// leaves the item to be run (its job's state is read again before it is).
// Every way work leaves the log goes through it: the queue's, and the
// feed the Redis broker's relay takes its items from.
func (b *Broker) forged(ctx context.Context, subject string, e tasktype.Event) (bool, string) {
	if subject != EventSubject(&e) {
		return true, "subject is not the event's"
	}
	if e.Kind != tasktype.EventRetrying {
		return false, ""
	}
	rctx, cancel := b.request(ctx)
	defer cancel()
	_, err := b.stream.GetLastMsgForSubject(rctx, Subject(e.JobType, e.UserID, e.JobID, tasktype.EventEnqueued))
	if errors.Is(err, natsjs.ErrMsgNotFound) {
		return true, "retrying a job that was never enqueued"
	}
	return false, ""
}

// fetchError turns a failed pull into the error NextBatch returns: nil
// for a pull that only found nothing, the caller's own error if its
// context ended, and otherwise the cause.
func (q *queue) fetchError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// nats.go refuses a deadline that has passed before the context's
	// own timer has ended it: still the caller's.
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, natsjs.ErrNoMessages) || errors.Is(err, nats.ErrTimeout) {
		return nil
	}
	return fmt.Errorf("pull job: %w", classify(err))
}

type delivery struct {
	msg         natsjs.Msg
	item        tasktype.Event
	redelivered bool
}

func (d *delivery) Item() tasktype.Event { return d.item }

func (d *delivery) Redelivered() bool { return d.redelivered }

func (d *delivery) Extend(ctx context.Context) error {
	if err := d.msg.InProgress(); err != nil {
		return fmt.Errorf("extend job %s: %w", d.item.JobID, err)
	}
	return nil
}

// Ack does not wait for the server to confirm: the worker acks only
// after the job's outcome is stored, so an ack lost on the way (the
// connection dropped) costs only a redelivery that finds the job moved on
// and is dropped. Waiting would add a round trip to every job.
func (d *delivery) Ack(ctx context.Context) error {
	if err := d.msg.Ack(); err != nil {
		return fmt.Errorf("ack job %s: %w", d.item.JobID, err)
	}
	return nil
}

// Delay asks the server to deliver the item again after wait. The server
// does not keep the delay across its own restart; the worker then finds
// the retry early and delays it again.
func (d *delivery) Delay(ctx context.Context, wait time.Duration) error {
	if err := d.msg.NakWithDelay(wait); err != nil {
		return fmt.Errorf("delay job %s: %w", d.item.JobID, err)
	}
	return nil
}

func (d *delivery) Release(ctx context.Context) error {
	if err := d.msg.Nak(); err != nil {
		return fmt.Errorf("release job %s: %w", d.item.JobID, err)
	}
	return nil
}
