// Package tasks is OTJ Helper's background-job system, and its one door:
// a Client (NewClient) enqueues jobs, cancels and retries them, reads
// tasks, their histories and their results, and runs the worker and the
// task_result projection; a Registry holds the job types modules
// register.
//
// The types every part shares (jobs, events, states, policies, errors)
// are in tasktype; what a driver must offer is in taskdriver, with the
// drivers in jetstream (the event log, results, and a queue) and
// redisbroker (a queue on Redis). The machinery is under internal/. This
// package knows nothing of NATS, Redis or any job type.
package tasks
