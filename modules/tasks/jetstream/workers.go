package jetstream

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// WorkersBucket is the key-value bucket where each worker process keeps
// its own heartbeat: one key a worker, rewritten every few seconds.
const WorkersBucket = "task_workers"

// workersMaxAge bounds how long the bucket keeps a worker's last
// heartbeat. A reader leaves out a worker silent for longer than its
// lease well before that; the bound only reclaims keys of workers gone.
const workersMaxAge = time.Hour

// workersBucket is the workers bucket's settings. It is held in memory:
// heartbeats are worth nothing after a server restart, and every worker
// writes its own again within seconds.
func workersBucket(cfg Config) natsjs.KeyValueConfig {
	return natsjs.KeyValueConfig{
		Bucket:      WorkersBucket,
		Description: "OTJ Helper worker processes, each from its own heartbeats",
		History:     1,
		TTL:         workersMaxAge,
		Storage:     natsjs.MemoryStorage,
		Replicas:    max(cfg.Replicas, 1),
	}
}

// openBucket opens the key-value bucket kcfg names, making it with kcfg
// if it is missing and cfg allows (not JoinOnly).
func openBucket(ctx context.Context, js natsjs.JetStream, cfg Config, kcfg natsjs.KeyValueConfig) (natsjs.KeyValue, error) {
	rctx, cancel := context.WithTimeout(ctx, 2*cfg.RequestTimeout)
	defer cancel()
	kv, err := js.KeyValue(rctx, kcfg.Bucket)
	switch {
	case err == nil:
		return kv, nil
	case !errors.Is(err, natsjs.ErrBucketNotFound):
		return nil, classify(err)
	case cfg.JoinOnly:
		return nil, ErrNotDeployed
	}
	kv, err = js.CreateKeyValue(rctx, kcfg)
	if errors.Is(err, natsjs.ErrBucketExists) {
		// Another process made it meanwhile.
		kv, err = js.KeyValue(rctx, kcfg.Bucket)
	}
	if err != nil {
		return nil, classify(err)
	}
	return kv, nil
}

// workerKey is a worker's key: its name in an encoding whose characters
// a key may hold (a name holds ':').
func workerKey(name string) string { return base64.RawURLEncoding.EncodeToString([]byte(name)) }

// Beat stores info as its worker's latest heartbeat.
func (b *Broker) Beat(ctx context.Context, info tasktype.WorkerInfo) error {
	data, err := json.Marshal(info)
	if err != nil {
		return fmt.Errorf("worker heartbeat: %w", err)
	}
	rctx, cancel := b.request(ctx)
	defer cancel()
	if _, err := b.workers.Put(rctx, workerKey(info.Name), data); err != nil {
		return fmt.Errorf("worker heartbeat: %w", classify(err))
	}
	return nil
}

// Leave removes the named worker's heartbeat, as it stops: it is then
// gone at once rather than a lease later.
func (b *Broker) Leave(ctx context.Context, name string) error {
	rctx, cancel := b.request(ctx)
	defer cancel()
	if err := b.workers.Delete(rctx, workerKey(name)); err != nil && !errors.Is(err, natsjs.ErrKeyNotFound) {
		return fmt.Errorf("worker leaving: %w", classify(err))
	}
	return nil
}

// Workers returns the worker processes heard from within their lease, by
// name. A worker that stopped without leaving (killed) is left out once
// its lease has passed since its last heartbeat, as its jobs then go to
// other workers.
func (b *Broker) Workers(ctx context.Context) ([]tasktype.WorkerInfo, error) {
	rctx, cancel := b.request(ctx)
	defer cancel()
	w, err := b.workers.WatchAll(rctx, natsjs.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("list workers: %w", classify(err))
	}
	defer func() { _ = w.Stop() }()
	now := b.cfg.Now()
	var out []tasktype.WorkerInfo
	for {
		select {
		case <-rctx.Done():
			return nil, fmt.Errorf("list workers: %w", classify(rctx.Err()))
		case e := <-w.Updates():
			if e == nil { // every stored heartbeat has been read
				slices.SortFunc(out, func(a, b tasktype.WorkerInfo) int { return cmp.Compare(a.Name, b.Name) })
				return out, nil
			}
			var info tasktype.WorkerInfo
			if err := json.Unmarshal(e.Value(), &info); err != nil {
				b.cfg.Logger.WarnContext(ctx, "unreadable worker heartbeat; leaving it out", "key", e.Key(), "err", err)
				continue
			}
			if info.Lease > 0 && now.Sub(info.LastHeartbeat) > info.Lease {
				continue
			}
			out = append(out, info)
		}
	}
}
