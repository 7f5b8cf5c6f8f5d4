// Package jetstream carries OTJ Helper's jobs, job events and result files
// on NATS JetStream.
//
// One limits-retention stream, TASKS, holds every job event under
// tasks.<type>.<user>.<job>.<kind>. The enqueued, retrying and retried
// events are also the work items: workers share the durable pull consumer
// "workers", filtered to those kinds, so storing the enqueued event is the
// whole of an enqueue and nothing can be half-enqueued, and a retry is one
// write that both records the failure and schedules the next attempt.
// Every later event of a job is stored on condition that the job's last
// event is the one its writer read, so racing workers, web processes and
// operators cannot interleave impossible steps. Because the stream keeps
// every event, it is also the log from which task_result is projected
// (and can be rebuilt). Result files go to the Object Store bucket
// "task_results", one per attempt, named by job id and attempt.
package jetstream

import (
	"sync/atomic"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/tasks/internal/driver"
)

// Broker is the task system's Log on JetStream, and a Transport whose
// work items are the log's own events: it hands out driver.Queue values
// for workers.
type Broker struct {
	cfg     Config
	js      natsjs.JetStream
	stream  natsjs.Stream
	results natsjs.ObjectStore
	// workers is the bucket of the workers' heartbeats.
	workers natsjs.KeyValue
	// pauses is the bucket of the paused job types.
	pauses natsjs.KeyValue
	// sawPull is when QueueStats last found a worker's pull request
	// held, in Unix nanoseconds; 0 if it never has.
	sawPull *atomic.Int64
	// admin is js over Config.Admin, and adminStream the stream through
	// it: what makes the stream and purges from it.
	admin       natsjs.JetStream
	adminStream natsjs.Stream
}

// The Broker is a job driver and the task system's log.
var (
	_ driver.Transport = (*Broker)(nil)
	_ driver.Log       = (*Broker)(nil)
)
