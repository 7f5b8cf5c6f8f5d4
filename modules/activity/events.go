package activity

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/platform/natsconn"
)

// EventKind is what happened to an activity.
type EventKind string

// The kinds of change to the log that are published.
const (
	EventCreated EventKind = "created"
	EventEdited  EventKind = "edited"
	EventDeleted EventKind = "deleted"
)

// Event is one change to the log as published on JetStream, so that other
// modules react to the log through subjects rather than its tables.
type Event struct {
	UserID     int64     `json:"user_id"`
	ActivityID int64     `json:"activity_id"`
	Kind       EventKind `json:"kind"`
	Time       time.Time `json:"time"`
}

// Stream is the JetStream stream of the log's events; StreamSubjects are
// the subjects it holds. The web process creates it (EnsureStream).
const (
	Stream         = "ACTIVITY"
	StreamSubjects = "activity.>"
)

// Subject is where an event of kind about the user's activity is
// published: activity.<user>.<activity>.<kind>, so a reader can take one
// user's changes (activity.7.>) or one kind (activity.*.*.deleted).
func Subject(userID, activityID int64, kind EventKind) string {
	return fmt.Sprintf("activity.%d.%d.%s", userID, activityID, kind)
}

// addEvent writes the event of a change to the outbox, in the change's
// own transaction: the event is stored exactly when the change is.
func addEvent(ctx context.Context, tx bun.Tx, userID, activityID int64, kind EventKind) error {
	payload, err := json.Marshal(Event{UserID: userID, ActivityID: activityID, Kind: kind, Time: time.Now().UTC()})
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO activity_outbox (msg_id, subject, payload) VALUES (?, ?, ?)`,
		"activity-"+rand.Text(), Subject(userID, activityID, kind), string(payload)); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// StreamConfig says how EnsureStream makes the stream.
type StreamConfig struct {
	// Replicas is how many copies the server keeps (NATS_REPLICAS, as
	// for TASKS); 0 means 1.
	Replicas int
	// Duplicates is the window in which a re-sent event is stored once.
	// Default 10 minutes: far longer than a relay takes to retry.
	Duplicates time.Duration
	// MaxAge drops events older than this; 0 keeps them.
	MaxAge time.Duration
	// Logger says what EnsureStream waits for; nil logs nothing.
	Logger *slog.Logger
}

// EnsureStream creates or updates the ACTIVITY stream. On a cluster that
// cannot make it yet (still electing leaders, a node not yet up) it waits,
// as the app's other streams do, until ctx ends.
func EnsureStream(ctx context.Context, js jetstream.JetStream, c StreamConfig) error {
	if c.Duplicates <= 0 {
		c.Duplicates = 10 * time.Minute
	}
	scfg := jetstream.StreamConfig{
		Name:        Stream,
		Description: "Changes to the activity log: created, edited, deleted",
		Subjects:    []string{StreamSubjects},
		Storage:     jetstream.FileStorage,
		Replicas:    max(c.Replicas, 1),
		Duplicates:  c.Duplicates,
		MaxAge:      c.MaxAge,
	}
	err := natsconn.WaitJetStream(ctx, c.Logger, "the cluster to make the stream "+Stream, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := js.CreateOrUpdateStream(ctx, scfg)
		return err
	}, nil)
	if err != nil {
		return fmt.Errorf("ensure stream %s: %w", Stream, err)
	}
	return nil
}

// Relay publishes the outbox's events to JetStream, oldest first, and
// deletes each once the stream has acknowledged it. Every event carries
// its row's msg_id as Nats-Msg-Id, so one sent twice (a relay stopped
// between the ack and the delete, or two web processes relaying at once)
// is stored once.
type Relay struct {
	db       *bun.DB
	js       jetstream.JetStream
	log      *slog.Logger
	interval time.Duration
	timeout  time.Duration
}

// RelayConfig configures a Relay.
type RelayConfig struct {
	DB *bun.DB             // required
	JS jetstream.JetStream // required
	// Interval is how often the outbox is read when it was empty.
	// Default 500ms.
	Interval time.Duration
	// Timeout bounds each database and broker call. Default 5s.
	Timeout time.Duration
	Logger  *slog.Logger
}

// NewRelay returns a Relay; Run starts it.
func NewRelay(c RelayConfig) (*Relay, error) {
	if c.DB == nil || c.JS == nil {
		return nil, errors.New("activity relay: DB and JS are required")
	}
	if c.Interval <= 0 {
		c.Interval = 500 * time.Millisecond
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return &Relay{db: c.DB, js: c.JS, log: c.Logger, interval: c.Interval, timeout: c.Timeout}, nil
}

// relayBatch is how many events one pass reads.
const relayBatch = 100

// Run relays until ctx ends, then returns nil. A failed pass (the broker
// or database away) is logged and tried again at the next tick: the
// events wait in the outbox meanwhile.
func (r *Relay) Run(ctx context.Context) error {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	failing := false
	for {
		n, err := r.pass(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && !failing:
			r.log.WarnContext(ctx, "activity events: relay failed; retrying", "err", err)
			failing = true
		case err == nil && failing:
			r.log.InfoContext(ctx, "activity events: relay recovered")
			failing = false
		}
		if err == nil && n == relayBatch {
			continue // more waiting
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

type outboxRow struct {
	id             int64
	msgID, subject string
	payload        string
}

// pass relays up to relayBatch events and returns how many.
func (r *Relay) pass(ctx context.Context) (int, error) {
	rows, err := r.read(ctx)
	if err != nil {
		return 0, err
	}
	for i, row := range rows {
		if err := r.publish(ctx, row); err != nil {
			return i, err
		}
		dctx, cancel := context.WithTimeout(ctx, r.timeout)
		_, err := r.db.ExecContext(dctx, `DELETE FROM activity_outbox WHERE id = ?`, row.id)
		cancel()
		if err != nil {
			return i, fmt.Errorf("outbox: delete %d: %w", row.id, err)
		}
	}
	return len(rows), nil
}

func (r *Relay) read(ctx context.Context) ([]outboxRow, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	rs, err := r.db.QueryContext(ctx, `SELECT id, msg_id, subject, payload FROM activity_outbox ORDER BY id LIMIT ?`, relayBatch)
	if err != nil {
		return nil, fmt.Errorf("outbox: read: %w", err)
	}
	defer rs.Close()
	var out []outboxRow
	for rs.Next() {
		var o outboxRow
		if err := rs.Scan(&o.id, &o.msgID, &o.subject, &o.payload); err != nil {
			return nil, fmt.Errorf("outbox: read: %w", err)
		}
		out = append(out, o)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("outbox: read: %w", err)
	}
	return out, nil
}

func (r *Relay) publish(ctx context.Context, o outboxRow) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	msg := &nats.Msg{Subject: o.subject, Data: []byte(o.payload), Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, o.msgID)
	if _, err := r.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(Stream)); err != nil {
		return fmt.Errorf("publish %s: %w", o.subject, err)
	}
	return nil
}

// purgeTimeout bounds purging one user's events from the stream.
const purgeTimeout = 10 * time.Second

// EventPurger erases users' change events from the ACTIVITY stream (UK
// GDPR erasure): the subjects name the user, so one purge by subject
// filter removes all of theirs and no one else's.
type EventPurger struct {
	JS jetstream.JetStream
}

// PurgeUserEvents purges every event of the user's log from the stream.
// A stream not made yet holds nothing to purge.
func (p EventPurger) PurgeUserEvents(ctx context.Context, userID int64) error {
	ctx, cancel := context.WithTimeout(ctx, purgeTimeout)
	defer cancel()
	s, err := p.JS.Stream(ctx, Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("purge activity events of user %d: %w", userID, err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(UserSubjects(userID))); err != nil {
		return fmt.Errorf("purge activity events of user %d: %w", userID, err)
	}
	return nil
}

// UserSubjects selects every change event of one user's log.
func UserSubjects(userID int64) string {
	return fmt.Sprintf("activity.%d.>", userID)
}

// LastChange is when the user's log last changed, as its newest event on
// the ACTIVITY stream says, read by the user's subject filter; zero when
// the stream holds no change of theirs. A result built from the log
// (analytics) compares it with when it was built.
func LastChange(ctx context.Context, js jetstream.JetStream, userID int64) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, purgeTimeout)
	defer cancel()
	s, err := js.Stream(ctx, Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("last change of user %d: %w", userID, err)
	}
	m, err := s.GetLastMsgForSubject(ctx, UserSubjects(userID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("last change of user %d: %w", userID, err)
	}
	var e Event
	if err := json.Unmarshal(m.Data, &e); err != nil || e.Time.IsZero() {
		return m.Time, nil // the stream's own time: when it was relayed
	}
	return e.Time, nil
}
