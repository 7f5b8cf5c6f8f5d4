package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/internal/driver"
	"github.com/otjhelper/otj/modules/tasks/internal/worker"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/redisbroker"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

func TestMain(m *testing.M) {
	testsupport.VerifyNoLeaks(m)
}

// env is a Redis broker over a real Redis (keys under the test's own
// prefix) with its event log on an embedded JetStream server.
type env struct {
	rdb    *redis.Client
	prefix string
	events *jetstream.Broker
	broker *redisbroker.Broker
}

func newEnv(t testing.TB, cfg redisbroker.Config) *env {
	t.Helper()
	rdb, prefix := testsupport.Redis(t)
	srv := testsupport.NATS(t)
	e := &env{rdb: rdb, prefix: prefix, events: jetstreamtest.Broker(t, testsupport.Connect(t, srv, "events"))}
	e.broker = e.open(t, cfg, e.events)
	return e
}

// open opens a broker on e's Redis keys with its events through log, as
// another process of the same deployment would.
func (e *env) open(t testing.TB, cfg redisbroker.Config, log driver.Log) *redisbroker.Broker {
	t.Helper()
	cfg.Client, cfg.Events, cfg.Prefix = e.rdb, log, e.prefix
	if cfg.Logger == nil {
		cfg.Logger = testsupport.Logger(t)
	}
	if cfg.Poll == 0 {
		cfg.Poll = 100 * time.Millisecond
	}
	b, err := redisbroker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *env) streamLen(t *testing.T) int64 {
	t.Helper()
	n, err := e.rdb.XLen(testsupport.Context(t), e.prefix+":work").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	return n
}

// makeGroup makes the consumer group, as the first worker of a long
// running deployment did, so that no worker of the test rebuilds the
// queue (while a rebuild runs, markers are kept until they expire).
func (e *env) makeGroup(t testing.TB) {
	t.Helper()
	if err := e.rdb.XGroupCreateMkStream(testsupport.Context(t), e.prefix+":work", redisbroker.Group, "0").Err(); err != nil {
		t.Fatal(err)
	}
}

// runWorker runs a worker of reg's job types on a queue of e's broker,
// as a worker process of the deployment, until the test ends.
func (e *env) runWorker(t *testing.T, reg *tasks.Registry, lease time.Duration) {
	t.Helper()
	q, err := e.broker.Queue(testsupport.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.Config{Queue: q, Capabilities: e.broker.Capabilities(), Events: e.events, Results: e.events, Registry: reg,
		ExtendEvery: lease / 5, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	testsupport.Go(t, func(ctx context.Context) { w.Run(ctx) })
}

// markers lists the sent markers in Redis.
func (e *env) markers(t testing.TB) []string {
	t.Helper()
	keys, err := e.rdb.Keys(testsupport.Context(t), e.prefix+":sent:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func next(t *testing.T, q driver.Queue, within time.Duration) driver.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(testsupport.Context(t), within)
	defer cancel()
	d, err := q.Next(ctx)
	if err != nil {
		t.Fatalf("next within %s: %v", within, err)
	}
	return d
}

func TestAckedItemsLeaveTheStream(t *testing.T) {
	e := newEnv(t, redisbroker.Config{})
	ctx := testsupport.Context(t)
	job, err := e.broker.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 3, Payload: []byte(`{"a":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	if n := e.streamLen(t); n != 1 {
		t.Fatalf("stream holds %d items after one enqueue, want 1", n)
	}
	q, _ := e.broker.Queue(ctx)
	d := next(t, q, 5*time.Second)
	if it := d.Item(); it.JobID != job.ID || it.Seq != job.EventSeq || string(it.Payload) != `{"a":1}` || it.Kind != tasktype.EventEnqueued {
		t.Fatalf("delivered %+v, want the enqueued event of %+v", it, job)
	}
	if err := d.Extend(ctx); err != nil {
		t.Fatalf("extend: %v", err)
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatalf("ack: %v", err)
	}
	if n := e.streamLen(t); n != 0 {
		t.Fatalf("stream holds %d items after the ack, want 0", n)
	}
	if err := d.Ack(ctx); !errors.Is(err, redisbroker.ErrNotHeld) {
		t.Fatalf("second ack: %v, want ErrNotHeld", err)
	}
}

func TestRelaySendsEachItemOnce(t *testing.T) {
	e := newEnv(t, redisbroker.Config{})
	ctx := testsupport.Context(t)
	// Jobs stored in the log without Redis (as by a crash between the two
	// stores) reach Redis through the relay; the one Enqueue already sent
	// is not sent twice.
	var want []string
	for range 3 {
		ev, _, err := e.events.EnqueueEvent(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 1})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, ev.JobID)
	}
	sent, err := e.broker.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 1})
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, sent.ID)
	testsupport.Go(t, func(ctx context.Context) { e.broker.Relay(ctx) })
	testsupport.Eventually(t, 10*time.Second, "relay did not send the items", func() bool { return e.streamLen(t) >= 4 })
	q, _ := e.broker.Queue(ctx)
	got := map[string]int{}
	for range 4 {
		d := next(t, q, 5*time.Second)
		got[d.Item().JobID]++
		d.Ack(ctx)
	}
	time.Sleep(300 * time.Millisecond) // room for a wrong second copy to arrive
	for _, id := range want {
		if got[id] != 1 {
			t.Fatalf("job %s delivered %d times, want once: %v", id, got[id], got)
		}
	}
	if n := e.streamLen(t); n != 0 {
		t.Fatalf("stream holds %d more items", n)
	}
}

// The enqueuer's marker lasts only until the relay sees the item: Redis
// keeps nothing per job once both sends of its item are done. The relay
// of the enqueuer's own process knows the item went in and has the
// marker removed in a batch; a relay elsewhere finds the marker.
func TestSentMarkersLastUntilTheRelayComes(t *testing.T) {
	for _, tt := range []struct {
		name  string
		relay func(e *env, t *testing.T) *redisbroker.Broker
	}{
		{"relay in the enqueuing process", func(e *env, t *testing.T) *redisbroker.Broker { return e.broker }},
		{"relay in another process", func(e *env, t *testing.T) *redisbroker.Broker {
			return e.open(t, redisbroker.Config{}, e.events)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, redisbroker.Config{})
			ctx := testsupport.Context(t)
			for range 20 {
				if _, err := e.broker.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 1}); err != nil {
					t.Fatal(err)
				}
			}
			// Enqueues after the first do not wait for their sends while
			// Redis answers: the markers come a moment later.
			testsupport.Eventually(t, 10*time.Second, "not 20 markers after 20 enqueues with no relay running", func() bool { return len(e.markers(t)) == 20 })
			relay := tt.relay(e, t)
			testsupport.Go(t, func(ctx context.Context) { relay.Relay(ctx) })
			testsupport.Eventually(t, 10*time.Second, "markers left after the relay saw every item", func() bool { return len(e.markers(t)) == 0 })
			if n := e.streamLen(t); n != 20 {
				t.Fatalf("stream holds %d items, want each of the 20 jobs once", n)
			}
		})
	}
}

// An enqueuer that stored its job and crashed before sending it leaves
// the item to the relay, which sends it and marks it for an enqueuer that
// may still come: the mark expires unless one does, and one that comes
// adds nothing and removes the mark.
func TestRelayFirstMarksTheItemForItsEnqueuer(t *testing.T) {
	e := newEnv(t, redisbroker.Config{})
	ctx := testsupport.Context(t)
	item, _, err := e.events.EnqueueEvent(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 1})
	if err != nil {
		t.Fatal(err)
	}
	testsupport.Go(t, func(ctx context.Context) { e.broker.Relay(ctx) })
	testsupport.Eventually(t, 10*time.Second, "relay did not send the item", func() bool { return e.streamLen(t) == 1 })
	marks := e.markers(t)
	if len(marks) != 1 {
		t.Fatalf("markers %v after the relay sent the item, want one", marks)
	}
	if ttl, err := e.rdb.TTL(ctx, marks[0]).Result(); err != nil || ttl <= 0 || ttl > redisbroker.MarkerTTL {
		t.Fatalf("marker lasts %s (err %v), want at most %s", ttl, err, redisbroker.MarkerTTL)
	}
	// The enqueuer, late.
	if res, err := e.broker.Handoff(ctx, redisbroker.SenderEnqueuer, item); err != nil || res != "sent before" {
		t.Fatalf("late enqueuer: %q, %v; want sent before", res, err)
	}
	if n := e.streamLen(t); n != 1 {
		t.Fatalf("stream holds %d items after the late enqueuer, want 1", n)
	}
	if marks := e.markers(t); len(marks) != 0 {
		t.Fatalf("markers %v left once both sends are done", marks)
	}
}

// The handoff protocol: of the senders of a new job's item, whichever
// comes first adds it and leaves a marker for the others, and the marker
// goes once no other sender can come.
func TestHandoffMarkers(t *testing.T) {
	e := newEnv(t, redisbroker.Config{MaxLength: 1000})
	ctx := testsupport.Context(t)
	const none = ""
	for _, tt := range []struct {
		before, sender, want, after string
		rebuilding                  bool // a rebuild runs: markers stay
	}{
		{none, redisbroker.SenderEnqueuer, "added", "e", false},
		{"r", redisbroker.SenderEnqueuer, "sent before", none, false},
		{"s", redisbroker.SenderEnqueuer, "sent before", "s", false},
		{none, redisbroker.SenderRelayFirst, "added", "r", false},
		{"e", redisbroker.SenderRelayFirst, "sent before", none, false},
		{"r", redisbroker.SenderRelayFirst, "sent before", "r", false},
		{"f", redisbroker.SenderRelayFirst, "added", none, false},
		{"s", redisbroker.SenderRelayFirst, "sent before", "s", false},
		{none, redisbroker.SenderRelay, "added", none, false},
		{"e", redisbroker.SenderRelay, "sent before", none, false},
		{"r", redisbroker.SenderRelay, "sent before", "r", false},
		{"f", redisbroker.SenderRelay, "added", none, false},
		{"s", redisbroker.SenderRelay, "sent before", none, false},
		{none, redisbroker.SenderRebuild, "added", "s", false},
		{"e", redisbroker.SenderRebuild, "sent before", "e", false},
		{"f", redisbroker.SenderRebuild, "added", "s", false},
		{none, redisbroker.SenderRebuildAlone, "added", none, false},
		{"r", redisbroker.SenderRebuildAlone, "sent before", "r", false},
		{"f", redisbroker.SenderRebuildAlone, "added", "s", false},
		{"e", redisbroker.SenderRelayFirst, "sent before", "e", true},
		{"r", redisbroker.SenderEnqueuer, "sent before", "r", true},
		{"s", redisbroker.SenderRelay, "sent before", "s", true},
		{"f", redisbroker.SenderRelay, "added", "s", true},
	} {
		item, _, err := e.events.EnqueueEvent(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 1})
		if err != nil {
			t.Fatal(err)
		}
		marker := e.prefix + ":sent:" + item.JobID + ":" + strconv.FormatUint(item.Seq, 10)
		if tt.before != none {
			e.rdb.Set(ctx, marker, tt.before, time.Minute)
		}
		if tt.rebuilding {
			e.rdb.Set(ctx, e.prefix+":rebuilding", "test", time.Minute)
		} else {
			e.rdb.Del(ctx, e.prefix+":rebuilding")
		}
		length := e.streamLen(t)
		got, err := e.broker.Handoff(ctx, tt.sender, item)
		if err != nil {
			t.Fatal(err)
		}
		after, _ := e.rdb.Get(ctx, marker).Result()
		if added := e.streamLen(t) - length; got != tt.want || after != tt.after || added != map[bool]int64{true: 1}[tt.want == "added"] {
			t.Errorf("marker %q, sender %q, rebuilding %t: %s (%d added), marker %q after; want %s, marker %q",
				tt.before, tt.sender, tt.rebuilding, got, added, after, tt.want, tt.after)
		}
	}
}

// An enqueuer that finds the stream full leaves its item to the relay,
// and marks it so.
func TestHandoffToAFullStream(t *testing.T) {
	e := newEnv(t, redisbroker.Config{MaxLength: 1})
	ctx := testsupport.Context(t)
	var items []tasktype.Event
	for range 2 {
		item, _, err := e.events.EnqueueEvent(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 1})
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, item)
	}
	for i, want := range []string{"added", "full"} {
		if got, err := e.broker.Handoff(ctx, redisbroker.SenderEnqueuer, items[i]); err != nil || got != want {
			t.Fatalf("item %d: %q, %v; want %s", i, got, err, want)
		}
	}
	marker := e.prefix + ":sent:" + items[1].JobID + ":" + strconv.FormatUint(items[1].Seq, 10)
	if v, _ := e.rdb.Get(ctx, marker).Result(); v != "f" {
		t.Fatalf("marker of the item left to the relay: %q, want f", v)
	}
	if got, err := e.broker.Handoff(ctx, redisbroker.SenderRelayFirst, items[1]); err != nil || got != "full" {
		t.Fatalf("relay while the stream is full: %q, %v; want full", got, err)
	}
}

func TestDelayedItemComesBackWhenDue(t *testing.T) {
	e := newEnv(t, redisbroker.Config{})
	ctx := testsupport.Context(t)
	if _, err := e.broker.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 1}); err != nil {
		t.Fatal(err)
	}
	q, _ := e.broker.Queue(ctx)
	d := next(t, q, 5*time.Second)
	start := time.Now()
	if err := d.Delay(ctx, 400*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	again := next(t, q, 5*time.Second)
	if waited := time.Since(start); waited < 400*time.Millisecond {
		t.Fatalf("delayed item back after %s, before its 400ms", waited)
	}
	if again.Item().JobID != d.Item().JobID {
		t.Fatalf("got %s back, want %s", again.Item().JobID, d.Item().JobID)
	}
	if err := d.Extend(ctx); !errors.Is(err, redisbroker.ErrNotHeld) {
		t.Fatalf("extend of the delayed delivery: %v, want ErrNotHeld", err)
	}
}

func TestLostEntryIsClaimedAndTheOldHolderCannotTouchIt(t *testing.T) {
	e := newEnv(t, redisbroker.Config{Lease: 300 * time.Millisecond})
	ctx := testsupport.Context(t)
	if _, err := e.broker.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 1}); err != nil {
		t.Fatal(err)
	}
	dead, _ := e.broker.Queue(ctx)
	lost := next(t, dead, 5*time.Second)
	alive, _ := e.broker.Queue(ctx)
	claimed := next(t, alive, 5*time.Second)
	if claimed.Item().JobID != lost.Item().JobID {
		t.Fatal("claimed a different job")
	}
	for name, op := range map[string]func(context.Context) error{"extend": lost.Extend, "ack": lost.Ack, "release": lost.Release} {
		if err := op(ctx); !errors.Is(err, redisbroker.ErrNotHeld) {
			t.Fatalf("%s by the old holder: %v, want ErrNotHeld", name, err)
		}
	}
	if err := claimed.Ack(ctx); err != nil {
		t.Fatalf("ack by the new holder: %v", err)
	}
}

func TestStreamIsBounded(t *testing.T) {
	e := newEnv(t, redisbroker.Config{MaxLength: 2})
	ctx := testsupport.Context(t)
	e.makeGroup(t)
	for range 3 {
		if _, err := e.broker.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 1}); err != nil {
			t.Fatalf("enqueue with a full stream must still accept the job: %v", err)
		}
	}
	// The enqueues after the first did not wait for their sends.
	testsupport.Eventually(t, 10*time.Second, "stream not at its bound 2", func() bool { return e.streamLen(t) == 2 })
	time.Sleep(100 * time.Millisecond) // room for a wrong third item to arrive
	if n := e.streamLen(t); n != 2 {
		t.Fatalf("stream holds %d items, want its bound 2", n)
	}
	// The third waits in the log; the relay sends it once there is room.
	testsupport.Go(t, func(ctx context.Context) { e.broker.Relay(ctx) })
	q, _ := e.broker.Queue(ctx)
	seen := map[string]bool{}
	for range 3 {
		d := next(t, q, 10*time.Second)
		seen[d.Item().JobID] = true
		d.Ack(ctx)
	}
	if len(seen) != 3 {
		t.Fatalf("got %d distinct jobs, want 3", len(seen))
	}
	// The enqueuer that found the stream full marked its item so; the
	// relay removed the mark when it sent the item.
	testsupport.Eventually(t, 10*time.Second, "markers left after every item was sent", func() bool { return len(e.markers(t)) == 0 })
}

func TestEnqueueWithRedisDownRunsInline(t *testing.T) {
	srv := testsupport.NATS(t)
	events := jetstreamtest.Broker(t, testsupport.Connect(t, srv, "events"))
	rdb := deadRedis(t)
	var ran []tasktype.Event
	b, err := redisbroker.New(redisbroker.Config{Client: rdb, Events: events, Logger: testsupport.Logger(t),
		RunInline: func(ctx context.Context, item tasktype.Event) { ran = append(ran, item) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testsupport.Context(t)
	start := time.Now()
	job, err := b.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 2})
	if err != nil {
		t.Fatalf("enqueue with redis down: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("enqueue took %s to give up on redis", took)
	}
	if len(ran) != 1 || ran[0].JobID != job.ID || ran[0].Seq != job.EventSeq {
		t.Fatalf("ran inline %+v, want the job's item", ran)
	}
	if err := b.Ping(ctx); err == nil {
		t.Fatal("ping succeeded with nothing listening")
	}
}

// While Redis answers, Enqueue does not wait for its send. When Redis
// stops answering, the job whose send was on its way is still accepted
// and waits in the log for the relay, rather than run in the request;
// the next enqueue, finding Redis failing, waits for its send again and
// runs the job inline when it fails.
func TestEnqueueWaitsForRedisAgainOnceItFails(t *testing.T) {
	e := newEnv(t, redisbroker.Config{})
	ctx := testsupport.Context(t)
	opts, err := redis.ParseURL(testsupport.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	link := &cuttable{}
	opts.Dialer, opts.MaxRetries = link.dial, -1
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	var mu sync.Mutex
	var ran []string
	// The clock stands still, so that only a failed send, never the
	// time passing, can end Redis's good standing.
	now := time.Now()
	b, err := redisbroker.New(redisbroker.Config{Client: rdb, Events: e.events, Prefix: e.prefix, Logger: testsupport.Logger(t),
		Now:       func() time.Time { return now },
		RunInline: func(ctx context.Context, item tasktype.Event) { mu.Lock(); ran = append(ran, item.JobID); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	enqueue := func() tasktype.Job {
		t.Helper()
		job, err := b.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 1})
		if err != nil {
			t.Fatal(err)
		}
		return job
	}

	enqueue() // nothing known of Redis yet: waits for its send
	if n := e.streamLen(t); n != 1 {
		t.Fatalf("stream holds %d items once the first enqueue returned, want 1: it must wait for its send", n)
	}
	if !b.Answering() {
		t.Fatal("redis took a send, yet the broker does not take it to be answering")
	}
	enqueue() // sent without waiting
	testsupport.Eventually(t, 10*time.Second, "the second job's item did not reach redis", func() bool { return e.streamLen(t) == 2 })

	link.cut()
	lost := enqueue() // still taken to answer: sent without waiting, and the send fails
	testsupport.Eventually(t, 10*time.Second, "a failed send left the broker taking redis to answer", func() bool { return !b.Answering() })
	inline := enqueue()
	mu.Lock()
	defer mu.Unlock()
	if len(ran) != 1 || ran[0] != inline.ID {
		t.Fatalf("ran inline %v, want only the job enqueued once redis was known to fail, %s", ran, inline.ID)
	}
	last, err := e.events.Last(ctx, lost.UserID, lost.ID)
	if err != nil || last.Kind != tasktype.EventEnqueued {
		t.Fatalf("the job whose send failed is at %+v, %v; want it waiting in the log for the relay", last, err)
	}
	if n := e.streamLen(t); n != 2 {
		t.Fatalf("stream holds %d items, want the 2 sent before redis went", n)
	}
}

// cuttable dials Redis until cut, which closes every connection it made
// and fails every dial after: Redis gone, as far as its client can tell.
type cuttable struct {
	mu    sync.Mutex
	down  bool
	conns []net.Conn
}

func (c *cuttable) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return nil, errors.New("redis cut off")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err == nil {
		c.conns = append(c.conns, conn)
	}
	return conn, err
}

func (c *cuttable) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = true
	for _, conn := range c.conns {
		conn.Close()
	}
}

// deadRedis is a client for a loopback port nothing listens on.
func deadRedis(t *testing.T) *redis.Client {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1}) // fail at once
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// A job run in a request while Redis was down must not run again when
// Redis is back: the relay, handed its item again, finds the job moved on.
func TestRelayDropsItemsWhoseJobMovedOn(t *testing.T) {
	e := newEnv(t, redisbroker.Config{})
	ctx := testsupport.Context(t)
	down, err := redisbroker.New(redisbroker.Config{Client: deadRedis(t), Events: e.events, Logger: testsupport.Logger(t),
		RunInline: func(ctx context.Context, item tasktype.Event) {
			// What the inline run records: started, then succeeded.
			s := tasktype.Event{ID: "s" + item.JobID, Kind: tasktype.EventStarted, JobID: item.JobID, JobType: item.JobType, UserID: item.UserID, Time: time.Now().UTC(), Attempt: 1}
			seq, err := e.events.Append(ctx, s, item.Seq)
			if err != nil {
				t.Error(err)
				return
			}
			s.ID, s.Kind = "d"+item.JobID, tasktype.EventSucceeded
			if _, err := e.events.Append(ctx, s, seq); err != nil {
				t.Error(err)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	done, err := down.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 1})
	if err != nil {
		t.Fatal(err)
	}
	// The relay of the process without Redis fails on the item, which
	// goes back to the log's consumer.
	rctx, stop := context.WithCancel(ctx)
	relayDone := make(chan struct{})
	go func() { defer close(relayDone); down.Relay(rctx) }()
	time.Sleep(300 * time.Millisecond)
	stop()
	<-relayDone

	// A job enqueued later, still waiting, must get through.
	waiting, _, err := e.events.EnqueueEvent(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 1})
	if err != nil {
		t.Fatal(err)
	}
	testsupport.Go(t, func(ctx context.Context) { e.broker.Relay(ctx) })
	q, _ := e.broker.Queue(ctx)
	d := next(t, q, 20*time.Second) // the first worker rebuilds the queue (see recheckAfter)
	if d.Item().JobID != waiting.JobID {
		t.Fatalf("got job %s, want only the waiting job %s (the done one is %s)", d.Item().JobID, waiting.JobID, done.ID)
	}
	d.Ack(ctx)
	time.Sleep(2 * time.Second) // the done job's item comes back within a second
	if n := e.streamLen(t); n != 0 {
		t.Fatalf("the done job's item reached Redis: stream holds %d", n)
	}
}

func TestStoppedWorkersConsumersAreRemoved(t *testing.T) {
	e := newEnv(t, redisbroker.Config{Poll: 20 * time.Millisecond, ForgetAfter: 200 * time.Millisecond})
	ctx := testsupport.Context(t)
	consumers := func() []string {
		cs, err := e.rdb.XInfoConsumers(ctx, e.prefix+":work", redisbroker.Group).Result()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range cs {
			names = append(names, c.Name)
		}
		return names
	}
	wait := func(q driver.Queue, d time.Duration) {
		wctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		if _, err := q.Next(wctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("next on an empty queue: %v", err)
		}
	}
	// Redis adds a consumer to the group when it first gets an entry.
	if _, err := e.broker.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 1}); err != nil {
		t.Fatal(err)
	}
	stopped, _ := e.broker.Queue(ctx)
	if err := next(t, stopped, 5*time.Second).Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(consumers()); n != 1 {
		t.Fatalf("%d consumers after one worker took a job, want 1", n)
	}
	live, _ := e.broker.Queue(ctx)
	wait(live, time.Second) // outlives the stopped one's 200ms
	if names := consumers(); len(names) != 0 {
		t.Fatalf("consumers %v left after they stopped for longer than ForgetAfter", names)
	}
}

// Redis restarted without persistence (here: the test's keys deleted)
// loses the queue; the event log still knows every job. The worker that
// makes the consumer group anew rebuilds the queue from the log: waiting
// jobs run, a job whose worker went with the data runs again, and a
// finished job is left alone.
func TestQueueLostWithRedisIsRebuiltFromTheLog(t *testing.T) {
	const lease = 500 * time.Millisecond
	e := newEnv(t, redisbroker.Config{Lease: lease})
	ctx := testsupport.Context(t)
	// The relay runs throughout, as in the app: it has passed on every
	// item before the loss, so only the rebuild can bring them back.
	testsupport.Go(t, func(ctx context.Context) { e.broker.Relay(ctx) })
	enqueue := func() tasktype.Job {
		job, err := e.broker.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 5})
		if err != nil {
			t.Fatal(err)
		}
		return job
	}
	step := func(job tasktype.Job, kind tasktype.EventKind, after uint64) uint64 {
		seq, err := e.events.Append(ctx, tasktype.Event{ID: string(kind) + job.ID, Kind: kind, JobID: job.ID, JobType: job.Type,
			UserID: job.UserID, Time: time.Now().UTC(), Attempt: 1, Worker: "gone:1"}, after)
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	running, done, waiting := enqueue(), enqueue(), enqueue()
	// Running: taken by a worker that recorded its start and went with
	// Redis's data. Done: finished before the loss.
	dead, _ := e.broker.Queue(ctx)
	for range 2 {
		d := next(t, dead, 5*time.Second)
		switch d.Item().JobID {
		case running.ID:
			step(running, tasktype.EventStarted, running.EventSeq)
		case done.ID:
			step(done, tasktype.EventSucceeded, step(done, tasktype.EventStarted, done.EventSeq))
			d.Ack(ctx)
		default:
			t.Fatalf("took %s first; the stream delivers in order", d.Item().JobID)
		}
	}
	doneLast, _ := e.events.Last(ctx, done.UserID, done.ID)

	// Redis loses everything.
	iter := e.rdb.Scan(ctx, 0, e.prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		e.rdb.Del(ctx, iter.Val())
	}

	reg := tasks.NewRegistry()
	ran := make(chan string, 10)
	reg.Register("full_report", func(_ context.Context, job tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
		ran <- job.ID
		return tasktype.Result{}, nil
	}, tasktype.Policy{})
	e.runWorker(t, reg, lease)

	for _, job := range []tasktype.Job{waiting, running} {
		testsupport.Eventually(t, 10*time.Second, "job "+job.ID+" did not finish after the loss", func() bool {
			last, err := e.events.Last(ctx, job.UserID, job.ID)
			return err == nil && last.Kind == tasktype.EventSucceeded
		})
	}
	h, err := e.events.History(ctx, running.UserID, running.ID)
	h = tasktype.WithStarts(h)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []tasktype.EventKind
	for _, ev := range h {
		kinds = append(kinds, ev.Kind)
	}
	if fmt.Sprint(kinds) != "[enqueued started retrying started succeeded]" || !strings.Contains(h[2].Error, "gone:1 stopped responding") {
		t.Fatalf("running job's history %v (%q): want its lost attempt recorded, then attempt 2", kinds, h[2].Error)
	}
	time.Sleep(3 * lease) // the finished job's items had their chance to come back
	if last, _ := e.events.Last(ctx, done.UserID, done.ID); last.Seq != doneLast.Seq {
		t.Fatalf("finished job changed after the loss: %+v", last)
	}
	close(ran)
	count := map[string]int{}
	for id := range ran {
		count[id]++
	}
	if count[waiting.ID] != 1 || count[running.ID] != 1 || count[done.ID] != 0 {
		t.Fatalf("runs %v: want the waiting and running jobs once each, the finished one never", count)
	}
}

// A rebuild sends back only what Redis does not hold: here the consumer
// group is lost (XGROUP DESTROY by mistake) but the stream, and the jobs
// in it, are not. The worker that makes the group anew rebuilds the
// queue, and each job is still delivered once.
func TestRebuildLeavesHeldItemsAlone(t *testing.T) {
	e := newEnv(t, redisbroker.Config{})
	ctx := testsupport.Context(t)
	testsupport.Go(t, func(ctx context.Context) { e.broker.Relay(ctx) })
	const n = 5
	for range n {
		if _, err := e.broker.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 1}); err != nil {
			t.Fatal(err)
		}
	}
	stream := e.prefix + ":work"
	if err := e.rdb.XGroupCreate(ctx, stream, redisbroker.Group, "0").Err(); err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, 10*time.Second, "markers left after the relay saw every item", func() bool { return len(e.markers(t)) == 0 })
	if err := e.rdb.XGroupDestroy(ctx, stream, redisbroker.Group).Err(); err != nil {
		t.Fatal(err)
	}
	q, _ := e.broker.Queue(ctx)
	got := map[string]int{}
	for range n {
		d := next(t, q, 5*time.Second)
		got[d.Item().JobID]++
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != n {
		t.Fatalf("after the rebuild: deliveries %v, want each of the %d waiting jobs once", got, n)
	}
	if left := e.streamLen(t); left != 0 {
		t.Fatalf("stream holds %d more items: the rebuild sent back jobs Redis held", left)
	}
}

// A request that ran a job while Redis was down, and died mid-run,
// leaves an attempt nobody will finish and no item in Redis. Once Redis
// is back, the relay sends a suspect copy due OrphanAfter after the
// attempt's newest event; the worker that gets it counts the attempt as
// lost, and the job runs again.
func TestJobOrphanedInARequestRunsAgain(t *testing.T) {
	const orphanAfter = 500 * time.Millisecond
	e := newEnv(t, redisbroker.Config{OrphanAfter: orphanAfter, Lease: time.Second})
	ctx := testsupport.Context(t)
	down, err := redisbroker.New(redisbroker.Config{Client: deadRedis(t), Events: e.events, Logger: testsupport.Logger(t),
		RunInline: func(ctx context.Context, item tasktype.Event) {
			// The request records the start, then its process dies.
			s := tasktype.Event{ID: "s" + item.JobID, Kind: tasktype.EventStarted, JobID: item.JobID, JobType: item.JobType,
				UserID: item.UserID, Time: time.Now().UTC(), Attempt: 1, Worker: "web-request@gone:1"}
			if _, err := e.events.Append(ctx, s, item.Seq); err != nil {
				t.Error(err)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	job, err := down.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 1})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	relayDone := make(chan struct{})
	go func() { defer close(relayDone); down.Relay(rctx) }()
	time.Sleep(300 * time.Millisecond) // its relay fails on the item, which goes back
	stop()
	<-relayDone

	// Redis is back: the live process's relay and a worker.
	testsupport.Go(t, func(ctx context.Context) { e.broker.Relay(ctx) })
	reg := tasks.NewRegistry()
	var runs atomic.Int32
	reg.Register("full_report", func(context.Context, tasktype.Job, tasktype.Output) (tasktype.Result, error) {
		runs.Add(1)
		return tasktype.Result{}, nil
	}, tasktype.Policy{BackoffMin: 100 * time.Millisecond})
	q, _ := e.broker.Queue(ctx)
	w, err := worker.New(worker.Config{Queue: q, Capabilities: e.broker.Capabilities(), Events: e.events, Results: e.events, Registry: reg, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	testsupport.Go(t, func(ctx context.Context) { w.Run(ctx) })

	testsupport.Eventually(t, 15*time.Second, "orphaned job did not run again", func() bool {
		last, err := e.events.Last(ctx, job.UserID, job.ID)
		return err == nil && last.Kind == tasktype.EventSucceeded
	})
	h, err := e.events.History(ctx, job.UserID, job.ID)
	h = tasktype.WithStarts(h)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []tasktype.EventKind
	for _, ev := range h {
		kinds = append(kinds, ev.Kind)
	}
	if fmt.Sprint(kinds) != "[enqueued started retrying started succeeded]" || !strings.Contains(h[2].Error, "web-request@gone:1 stopped responding") {
		t.Fatalf("history %v (%q): want the orphaned attempt counted as lost, then attempt 2", kinds, h[2].Error)
	}
	if lost := h[2].Time.Sub(h[1].Time); lost < orphanAfter {
		t.Errorf("attempt judged lost %s after it started, before OrphanAfter %s", lost, orphanAfter)
	}
	if runs.Load() != 1 {
		t.Errorf("handler ran %d times on workers, want 1", runs.Load())
	}
}
