package jetstream

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// PausesBucket is the key-value bucket of the job types paused by an
// operator, one key a type. It is kept on disk: a pause outlasts every
// restart until it is resumed.
const PausesBucket = "task_pauses"

// pausesBucket is the pauses bucket's settings: on disk, so that a
// pause outlasts every restart until it is resumed.
func pausesBucket(cfg Config) natsjs.KeyValueConfig {
	return natsjs.KeyValueConfig{
		Bucket:      PausesBucket,
		Description: "OTJ Helper job types paused by an operator",
		History:     1,
		Storage:     natsjs.FileStorage,
		Replicas:    max(cfg.Replicas, 1),
	}
}

// Pause stores p: p.Type's jobs wait from now on, on every worker.
func (b *Broker) Pause(ctx context.Context, p tasktype.Pause) error {
	data, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("pause %s: %w", p.Type, err)
	}
	rctx, cancel := b.request(ctx)
	defer cancel()
	if _, err := b.pauses.Put(rctx, p.Type, data); err != nil {
		return fmt.Errorf("pause %s: %w", p.Type, classify(err))
	}
	return nil
}

// Resume removes jobType's pause; one not paused is not an error.
func (b *Broker) Resume(ctx context.Context, jobType string) error {
	rctx, cancel := b.request(ctx)
	defer cancel()
	if err := b.pauses.Delete(rctx, jobType); err != nil && !errors.Is(err, natsjs.ErrKeyNotFound) {
		return fmt.Errorf("resume %s: %w", jobType, classify(err))
	}
	return nil
}

// Pauses returns the paused job types, by type.
func (b *Broker) Pauses(ctx context.Context) ([]tasktype.Pause, error) {
	var out []tasktype.Pause
	err := b.WatchPauses(ctx, func(ps []tasktype.Pause) error {
		for _, p := range ps {
			if p.Resumed.IsZero() {
				out = append(out, p)
			}
		}
		return errStopWatch
	})
	if errors.Is(err, errStopWatch) {
		return out, nil
	}
	return nil, err
}

var errStopWatch = errors.New("stop watching")

// WatchPauses calls fn with every job type paused or resumed, by type
// (a resumed one has Resumed set): once when they have all been read,
// and again after each pause or resume, until ctx ends or fn fails.
// Only the first read is bounded by the request timeout.
func (b *Broker) WatchPauses(ctx context.Context, fn func([]tasktype.Pause) error) error {
	// The watch lasts as long as ctx: only its first read is bounded.
	w, err := b.pauses.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch paused job types: %w", classify(err))
	}
	defer func() { _ = w.Stop() }()
	paused := map[string]tasktype.Pause{}
	loaded := false
	timer, stop := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer stop()
	for {
		wait := ctx
		if !loaded {
			wait = timer
		}
		select {
		case <-wait.Done():
			return fmt.Errorf("watch paused job types: %w", classify(wait.Err()))
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch paused job types: the watch ended")
			}
			if e != nil {
				switch e.Operation() {
				case natsjs.KeyValuePut:
					var p tasktype.Pause
					if err := json.Unmarshal(e.Value(), &p); err != nil {
						b.cfg.Logger.WarnContext(ctx, "unreadable pause; taking the type as paused", "key", e.Key(), "err", err)
						p = tasktype.Pause{Type: e.Key()}
					}
					p.Type = e.Key()
					paused[e.Key()] = p
				default: // resumed: the bucket keeps the delete, and when
					paused[e.Key()] = tasktype.Pause{Type: e.Key(), Resumed: e.Created()}
				}
				if !loaded {
					continue
				}
			}
			loaded = true
			ps := make([]tasktype.Pause, 0, len(paused))
			for _, p := range paused {
				ps = append(ps, p)
			}
			slices.SortFunc(ps, func(a, b tasktype.Pause) int { return cmp.Compare(a.Type, b.Type) })
			if err := fn(ps); err != nil {
				return err
			}
		}
	}
}
