package jetstream

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// RetentionMetadata is the key of the TASKS stream's metadata that holds
// the task retention in force (TASK_RETENTION), as a Go duration: on the
// server, so that every web process reads one value and an operator sees
// it with `nats stream info TASKS`.
const RetentionMetadata = "otj_task_retention"

// ErrRetentionMismatch is what a RetentionMismatchError is.
var ErrRetentionMismatch = errors.New("the deployed task retention differs")

// RetentionMismatchError is Open's refusal of a Config.TaskRetention that
// differs from the one recorded on the stream: processes that disagree
// would otherwise prune by different bounds, each rewriting the other's.
type RetentionMismatchError struct {
	Deployed, Wanted time.Duration
}

func (e *RetentionMismatchError) Error() string {
	return fmt.Sprintf("stream %s keeps finished tasks for %s (its metadata %s), not %s", StreamName, e.Deployed, RetentionMetadata, e.Wanted)
}

// Is makes errors.Is(err, ErrRetentionMismatch) hold.
func (e *RetentionMismatchError) Is(target error) bool { return target == ErrRetentionMismatch }

// retentionMetadata gives want the metadata the deployed stream has, with
// Config.TaskRetention recorded in it when there is none yet or
// Config.ResetTaskRetention says to replace it. It reports whether that
// changes the deployed metadata, and refuses a retention that differs
// from the recorded one without the reset.
func (b *Broker) retentionMetadata(have map[string]string, want *natsjs.StreamConfig) (bool, error) {
	want.Metadata = maps.Clone(have)
	r := b.cfg.TaskRetention
	if r <= 0 {
		return false, nil
	}
	if v, ok := have[RetentionMetadata]; ok {
		deployed, err := time.ParseDuration(v)
		if err == nil && deployed == r {
			return false, nil
		}
		if err == nil && !b.cfg.ResetTaskRetention {
			return false, &RetentionMismatchError{Deployed: deployed, Wanted: r}
		}
		// An unreadable value is nobody's: this process's replaces it.
	}
	if want.Metadata == nil {
		want.Metadata = map[string]string{}
	}
	want.Metadata[RetentionMetadata] = r.String()
	return true, nil
}

// TaskRetention is the task retention recorded on the stream, 0 when none
// is.
func (b *Broker) TaskRetention(ctx context.Context) (time.Duration, error) {
	rctx, cancel := b.request(ctx)
	defer cancel()
	info, err := b.stream.Info(rctx)
	if err != nil {
		return 0, fmt.Errorf("task retention: %w", classify(err))
	}
	v, ok := info.Config.Metadata[RetentionMetadata]
	if !ok {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("task retention: stream metadata %s %q: %w", RetentionMetadata, v, err)
	}
	return d, nil
}

// PurgeJob implements driver.Log: it purges the job's events at or
// before sequence through, through Admin (the everyday connection may
// not purge the log). Events stored after through, such as a retry
// appended meanwhile, stay. Purging what is already gone is a no-op.
func (b *Broker) PurgeJob(ctx context.Context, userID int64, jobID string, through uint64) error {
	if userID <= 0 || !tasktype.ValidID(jobID) {
		return fmt.Errorf("purge job %q of user %d: not a job", jobID, userID)
	}
	rctx, cancel := b.request(ctx)
	defer cancel()
	if err := b.adminStream.Purge(rctx, natsjs.WithPurgeSubject(JobFilter(userID, jobID)), natsjs.WithPurgeSequence(through+1)); err != nil {
		return fmt.Errorf("purge job %s: %w", jobID, classify(err))
	}
	return nil
}
