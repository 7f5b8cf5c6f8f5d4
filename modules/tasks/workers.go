package tasks

import (
	"context"
	"os"
	"time"

	"github.com/otjhelper/otj/modules/tasks/internal/clock"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// Workers lists the worker processes heard from within their lease,
// each as its own latest heartbeat describes it: what an operator's
// workers page shows. A worker that was killed drops out once its lease
// has passed, when its jobs go to other workers.
func (c *Client) Workers(ctx context.Context) ([]tasktype.WorkerInfo, error) {
	return c.cfg.Log.Workers(ctx)
}

// beatsPerLease is how many heartbeats a worker writes in a lease: a
// reader leaves out a worker silent for a lease, so a late one or two do
// not hide a live worker.
const beatsPerLease = 3

// maxBeatEvery bounds the time between heartbeats, so that the jobs a
// worker is running show within seconds whatever the lease.
const maxBeatEvery = 2 * time.Second

// beat writes the worker's heartbeat at once, then beatsPerLease times a
// lease, until ctx ends. A failed write is logged once until one works
// again: the workers list is for people, and the jobs' own leases are
// kept apart from it.
func (w *Worker) beat(ctx context.Context) {
	host, _ := os.Hostname()
	now := w.c.now()
	info := tasktype.WorkerInfo{Name: w.w.Name(), Host: host, Version: w.c.cfg.Worker.Version, StartedAt: now.UTC(),
		Concurrency: w.w.Concurrency(), Lease: w.w.Lease()}
	every := min(max(info.Lease/beatsPerLease, 100*time.Millisecond), maxBeatEvery)
	failing := false
	for {
		info.Running, info.LastHeartbeat = w.w.Running(), w.c.now().UTC()
		err := w.c.cfg.Log.Beat(ctx, info)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			w.c.log.WarnContext(ctx, "could not write this worker's heartbeat; operators may not see it among the workers", "err", err)
		case err == nil && failing:
			w.c.log.InfoContext(ctx, "writing this worker's heartbeat again")
		}
		failing = err != nil
		if clock.Sleep(ctx, every); ctx.Err() != nil {
			return
		}
	}
}
