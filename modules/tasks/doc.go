// Package tasks is OTJ Helper's background-job system, and its one door:
// a Client (NewClient) enqueues jobs, cancels and retries them, reads
// tasks, their histories and their results, and runs the worker and the
// task_result projection; a Registry holds the job types modules
// register.
//
// The types every part shares (jobs, events, states, policies, errors)
// are in tasktype. A Client is built over a driver's Log and Transport:
// jetstream is both (the event log, its results, and a queue), and
// redisbroker is a Transport on Redis over jetstream's Log. What a
// driver offers the engine is internal/driver, which nothing outside
// this module can name; the rest of the machinery is under internal/
// too. This package knows nothing of NATS, Redis or any job type.
package tasks
