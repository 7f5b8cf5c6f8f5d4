package account

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// ErasedSubject is the core NATS subject an erasure is announced on, once
// the user's rows are gone: every process that keeps a copy of a user's
// data outside the shared stores (a worker's digest outbox, on its own
// disk) listens and removes its copies.
const ErasedSubject = "account.erased"

// Erasure is the payload of an announcement: the erased user's id, the
// only thing of theirs it carries.
type Erasure struct {
	UserID int64 `json:"user_id"`
}

// announceTimeout bounds publishing an announcement and the flush that
// confirms the server has it.
const announceTimeout = 5 * time.Second

// Announce publishes the erasure of userID on nc, and waits until the
// server has it. Core NATS, not a stream: a process that was not listening
// catches up with a sweep (HonourErasures), so nothing of the user need be
// kept to replay.
func Announce(ctx context.Context, nc *nats.Conn, userID int64) error {
	data, err := json.Marshal(Erasure{UserID: userID})
	if err != nil {
		return fmt.Errorf("announce erasure of user %d: %w", userID, err)
	}
	if err := nc.Publish(ErasedSubject, data); err != nil {
		return fmt.Errorf("announce erasure of user %d: %w", userID, err)
	}
	ctx, cancel := context.WithTimeout(ctx, announceTimeout)
	defer cancel()
	if err := nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("announce erasure of user %d: %w", userID, err)
	}
	return nil
}

// AnnounceFunc adapts a function to the Eraser's Announcer.
type AnnounceFunc func(ctx context.Context, userID int64) error

// AnnounceErased calls f.
func (f AnnounceFunc) AnnounceErased(ctx context.Context, userID int64) error { return f(ctx, userID) }

// Copies is what a process keeps of users on its own disk (the digest
// outbox): it removes one user's copies, or those of every user gone
// from the database.
type Copies interface {
	// EraseUser removes every copy of the user, and says how many.
	EraseUser(ctx context.Context, userID int64) (int, error)
	// Sweep removes the copies of every user for whom exists says false.
	Sweep(ctx context.Context, exists func(ctx context.Context, userID int64) (bool, error)) (int, error)
}

// HonourConfig is what HonourErasures needs. NC, Copies and Exists are
// required.
type HonourConfig struct {
	NC     *nats.Conn
	Copies Copies
	// Exists reports whether the user is still in the shared database.
	Exists func(ctx context.Context, userID int64) (bool, error)
	// SweepEvery is how often the copies are swept anyway, for an
	// announcement missed while the connection was down; 0: 10 minutes.
	SweepEvery time.Duration
	Logger     *slog.Logger
}

// honourTimeout bounds the removal of one user's copies, or one sweep.
const honourTimeout = time.Minute

// HonourErasures runs until ctx ends: it removes a user's copies from
// cfg.Copies as soon as their erasure is announced, and sweeps the copies
// of every user no longer in the database at start (an erasure while this
// process was down) and every SweepEvery (one announced while its
// connection was). It subscribes before the first sweep, so that no
// erasure falls between the two.
func HonourErasures(ctx context.Context, cfg HonourConfig) error {
	if cfg.NC == nil || cfg.Copies == nil || cfg.Exists == nil {
		return fmt.Errorf("honour erasures: NC, Copies and Exists are required")
	}
	if cfg.SweepEvery <= 0 {
		cfg.SweepEvery = 10 * time.Minute
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ch := make(chan *nats.Msg, 64)
	sub, err := cfg.NC.ChanSubscribe(ErasedSubject, ch)
	if err != nil {
		return fmt.Errorf("honour erasures: subscribe %s: %w", ErasedSubject, err)
	}
	// Unsubscribing fails only on a connection already closing, which
	// drops the subscription anyway.
	defer func() { _ = sub.Unsubscribe() }()
	sweep := func() {
		sctx, cancel := context.WithTimeout(ctx, honourTimeout)
		defer cancel()
		n, err := cfg.Copies.Sweep(sctx, cfg.Exists)
		if err != nil {
			// Not fatal: the next sweep or announcement tries again.
			log.WarnContext(ctx, "erasure sweep failed; trying again later", "err", err, "removed", n, "in", cfg.SweepEvery)
		} else if n > 0 {
			log.InfoContext(ctx, "erasure sweep: removed copies of erased users", "removed", n)
		}
	}
	sweep()
	tick := time.NewTicker(cfg.SweepEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			sweep()
		case m := <-ch:
			var e Erasure
			if err := json.Unmarshal(m.Data, &e); err != nil || e.UserID <= 0 {
				log.WarnContext(ctx, "erasure announcement not understood", "data", strconv.Quote(string(m.Data)))
				continue
			}
			ectx, cancel := context.WithTimeout(ctx, honourTimeout)
			n, err := cfg.Copies.EraseUser(ectx, e.UserID)
			cancel()
			if err != nil {
				log.WarnContext(ctx, "erasure: could not remove a user's copies; the next sweep tries again", "user_id", e.UserID, "err", err)
				continue
			}
			log.InfoContext(ctx, "erasure: removed the user's copies", "user_id", e.UserID, "removed", n)
		}
	}
}
