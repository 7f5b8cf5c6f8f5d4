package tasks

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/otjhelper/otj/modules/tasks/internal/driver"
	"github.com/otjhelper/otj/modules/tasks/internal/worker"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// pruneTimeout bounds one user's prune: a read of their succeeded events
// of one type and a delete per older result.
const pruneTimeout = 30 * time.Second

// pruneKey is whose results of which type to prune.
type pruneKey struct {
	user    int64
	jobType string
}

// pruner deletes what workers may not (Config.PruneOnProjection) once
// the projection applies a job's end: the result files of the job's
// attempts that did not win, and a user's older results beyond
// Retention.Keep after a newer success of theirs. Ends are noted without
// blocking the projection, and the same user and type noted again before
// their prune ran are pruned once.
type pruner struct {
	log    driver.Log
	keep   int
	ttl    time.Duration
	logger *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	pending map[pruneKey]struct{}
	sweeps  []tasktype.Event // ended jobs whose other attempts' files go
	wake    chan struct{}
}

func newPruner(log driver.Log, r tasktype.Retention, logger *slog.Logger, now func() time.Time) *pruner {
	return &pruner{log: log, keep: r.Keep, ttl: r.TTL, logger: logger, now: now, pending: map[pruneKey]struct{}{}, wake: make(chan struct{}, 1)}
}

// maxSweeps bounds the ends waiting for their sweep: past it (a backlog
// of failures the store cannot keep up with) an end is not swept, and
// its losing attempts' files, if any, last until the store expires them.
const maxSweeps = 10000

// note is the projection's observer: a job's end asks for the files of
// its attempts that did not win to go, and a success with a result for
// its user's older ones of the type.
func (p *pruner) note(e tasktype.Event) {
	sweep := tasktype.LosingAttempts(e) > 0
	prune := p.keep > 0 && e.Kind == tasktype.EventSucceeded && e.Result != nil
	if !sweep && !prune {
		return
	}
	p.mu.Lock()
	if sweep && len(p.sweeps) < maxSweeps {
		p.sweeps = append(p.sweeps, e)
	}
	if prune {
		p.pending[pruneKey{e.UserID, e.JobType}] = struct{}{}
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// sweep deletes the result files of the ended job's attempts that did
// not win: an attempt may have stored its file and then lost its outcome
// (its worker died, or was taken for dead), and only the winner's file
// is named by an event. A missing file, the usual case, costs one
// request.
func (p *pruner) sweep(ctx context.Context, end tasktype.Event) {
	ctx, cancel := context.WithTimeout(ctx, pruneTimeout)
	defer cancel()
	for n := 1; n <= tasktype.LosingAttempts(end); n++ {
		object := tasktype.ResultObjectName(end.JobID, n)
		if end.Result != nil && end.Result.Object == object {
			continue
		}
		if err := p.log.Delete(ctx, object); err != nil {
			p.logger.WarnContext(ctx, "could not delete the result of an attempt that did not win", "job_id", end.JobID, "object", object, "err", err)
		}
	}
}

// run prunes what is noted until ctx ends.
func (p *pruner) run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
		}
		p.mu.Lock()
		keys, sweeps := p.pending, p.sweeps
		p.pending, p.sweeps = map[pruneKey]struct{}{}, nil
		p.mu.Unlock()
		for _, end := range sweeps {
			if ctx.Err() != nil {
				return nil
			}
			p.sweep(ctx, end)
		}
		for k := range keys {
			if ctx.Err() != nil {
				return nil
			}
			p.prune(ctx, k)
		}
	}
}

// prune deletes the results of the user's older jobs of the type beyond
// the newest keep, within the results' TTL: worker.PruneOlder, the one
// implementation, which workers run themselves without
// PruneOnProjection.
func (p *pruner) prune(ctx context.Context, k pruneKey) {
	ctx, cancel := context.WithTimeout(ctx, pruneTimeout)
	defer cancel()
	var since time.Time
	if p.ttl > 0 {
		since = p.now().Add(-p.ttl)
	}
	worker.PruneOlder(ctx, p.logger.With("user", k.user, "job_type", k.jobType), p.log, p.log, k.user, k.jobType, p.keep, since)
}
