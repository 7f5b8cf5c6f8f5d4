package worker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/otjhelper/otj/modules/tasks/internal/clock"
	"github.com/otjhelper/otj/modules/tasks/internal/driver"
)

// Run takes and runs jobs until ctx ends, then stops taking jobs, gives
// running ones ShutdownGrace to finish, cancels the rest and hands them
// back to the queue. It returns when every job has ended, or, if a
// handler ignores its cancelled context, 2×StoreTimeout after the cancel.
func (w *Worker) Run(ctx context.Context) error {
	if w.cfg.Queue == nil {
		return errors.New("run worker: config: Queue is required")
	}
	// Jobs outlive ctx by the grace period, so their context is detached
	// from it and cancelled separately.
	jobCtx, cancelJobs := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelJobs(nil)

	w.log.InfoContext(ctx, "worker started", "concurrency", w.cfg.Concurrency, "types", w.cfg.Registry.Types())
	slots := make(chan struct{}, w.cfg.Concurrency)
	recording := make(chan struct{}, w.cfg.Concurrency)
	var wg sync.WaitGroup
	var running atomic.Int32
	start := func(d driver.Delivery) {
		wg.Add(1)
		running.Add(1)
		go func() {
			defer wg.Done()
			defer running.Add(-1)
			free := sync.OnceFunc(func() { <-slots })
			defer free()
			w.process(jobCtx, d, func() {
				// The handler is done: its slot goes to the next job
				// while this one's outcome is stored, and at most
				// Concurrency outcomes are stored at once.
				recording <- struct{}{}
				free()
			}, func() { <-recording })
		}()
	}
	// A queue that hands out batches is pulled by a few fetchers at once,
	// so that slots freed during one pull's round trip are filled by the
	// next pull rather than after it.
	fetchers := 1
	if w.cfg.Capabilities.BatchQueue {
		fetchers = min(max(w.cfg.Concurrency/2, 1), maxFetchers)
	}
	var outage fetchOutage
	var fetching sync.WaitGroup
	for range fetchers {
		fetching.Go(func() { w.fetch(ctx, slots, &outage, start) })
	}
	fetching.Wait()

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	grace := time.NewTimer(w.cfg.ShutdownGrace)
	defer grace.Stop()
	select {
	case <-done:
		w.log.Info("worker stopped")
		return nil
	case <-grace.C:
	}
	w.log.Warn("shutdown grace over; cancelling running jobs", "grace", w.cfg.ShutdownGrace, "running", running.Load())
	cancelJobs(errShutdown)
	// Cancelled jobs hand themselves back within a store step or two. A
	// handler that ignores its context cannot be stopped from here: stop
	// waiting for it, so that the process can exit; without heartbeats its
	// job goes to another worker once its lease runs out.
	hard := time.NewTimer(2 * w.cfg.StoreTimeout)
	defer hard.Stop()
	select {
	case <-done:
		w.log.Info("worker stopped")
	case <-hard.C:
		w.log.Error("worker stopped with jobs still running: their handlers ignore cancellation; the jobs will go to another worker when their lease runs out",
			"running", running.Load())
	}
	return nil
}

// maxFetchers bounds the pulls a worker keeps in flight.
const maxFetchers = 4

// fetch takes jobs from the queue into free slots and starts them, until
// ctx ends.
func (w *Worker) fetch(ctx context.Context, slots chan struct{}, outage *fetchOutage, start func(driver.Delivery)) {
	for ctx.Err() == nil {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		free := 1 + takeFree(slots)
		ds, err := w.next(ctx, free)
		for range free - len(ds) {
			<-slots
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			outage.failed(ctx, w.log, err)
			clock.Sleep(ctx, time.Second)
			continue
		}
		outage.over(ctx, w.log)
		for _, d := range ds {
			start(d)
		}
	}
}

// fetchOutage logs an outage when it starts and when it ends, not once a
// second per fetcher while it lasts.
type fetchOutage struct {
	mu      sync.Mutex
	failing int // fetches failed in a row
}

func (o *fetchOutage) failed(ctx context.Context, log *slog.Logger, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failing == 0 {
		log.WarnContext(ctx, "cannot fetch jobs; retrying every second", "err", err)
	} else {
		log.DebugContext(ctx, "fetch failed", "err", err)
	}
	o.failing++
}

func (o *fetchOutage) over(ctx context.Context, log *slog.Logger) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failing > 0 {
		log.InfoContext(ctx, "fetching jobs again", "failed_fetches", o.failing)
		o.failing = 0
	}
}

// takeFree takes every slot that is free right now and returns how many.
func takeFree(slots chan struct{}) int {
	n := 0
	for {
		select {
		case slots <- struct{}{}:
			n++
		default:
			return n
		}
	}
}

// next takes up to n jobs from the queue: in one round trip if the queue
// can hand out several.
func (w *Worker) next(ctx context.Context, n int) ([]driver.Delivery, error) {
	if w.cfg.Capabilities.BatchQueue && n > 1 {
		return w.cfg.Queue.NextBatch(ctx, n)
	}
	d, err := w.cfg.Queue.Next(ctx)
	if err != nil {
		return nil, err
	}
	return []driver.Delivery{d}, nil
}
