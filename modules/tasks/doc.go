// Package tasks is OTJ Helper's background-job system: the Job, the Enqueuer
// port that web handlers call, the handler registry that modules fill with
// their job types, the worker runtime that runs handlers, the job events
// every state change produces, and the task_result projection built from
// those events.
//
// The broker behind the ports lives in a sub-package (tasks/jetstream);
// this package knows nothing of NATS or of any job type.
package tasks
