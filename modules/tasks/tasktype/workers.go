package tasktype

import "time"

// WorkerInfo is a worker process as its own heartbeats describe it, for
// operators: which workers are connected, and what each is running.
type WorkerInfo struct {
	// Name identifies the worker in events and logs (host:pid unless
	// configured).
	Name string `json:"name"`
	// Host is the machine's host name.
	Host string `json:"host"`
	// Version is the build the worker runs.
	Version string `json:"version"`
	// StartedAt is when the worker started taking jobs.
	StartedAt time.Time `json:"started_at"`
	// Concurrency is how many jobs it runs at once.
	Concurrency int `json:"concurrency"`
	// Running holds the ids of the jobs it is running now.
	Running []string `json:"running"`
	// LastHeartbeat is when it last said so.
	LastHeartbeat time.Time `json:"last_heartbeat"`
	// Lease is the worker's job lease: a worker not heard from for that
	// long has stopped, and its jobs go to others.
	Lease time.Duration `json:"lease"`
}
