package worker

import (
	"context"
	"fmt"

	"github.com/otjhelper/otj/modules/tasks/taskdriver"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// Committer gathers the conditional appends of jobs that finish at about
// the same time into one BatchEventLog.AppendBatch: a group commit.
// While one batch waits for the server, the next gathers, so under load
// a batch holds what finished during the last round trip, and a lone
// outcome goes at once. Each append keeps its own condition and its own
// result: one job's conflict fails no other.
type Committer struct {
	log taskdriver.BatchEventLog
	in  chan commitReq
}

type commitReq struct {
	a   taskdriver.Append
	res chan taskdriver.Appended
}

// maxCommit bounds one batch: the appends of a few pulls' worth of jobs.
const maxCommit = 256

// NewCommitter is a Committer over log. It appends nothing until Run.
func NewCommitter(log taskdriver.BatchEventLog) *Committer {
	return &Committer{log: log, in: make(chan commitReq, maxCommit)}
}

// Run sends the batches until ctx ends. Appends still waiting then end
// with their own contexts.
func (c *Committer) Run(ctx context.Context) {
	batch := make([]commitReq, 0, maxCommit)
	as := make([]taskdriver.Append, 0, maxCommit)
	for {
		batch, as = batch[:0], as[:0]
		select {
		case r := <-c.in:
			batch = append(batch, r)
		case <-ctx.Done():
			return
		}
	gather:
		for len(batch) < maxCommit {
			select {
			case r := <-c.in:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		for _, r := range batch {
			as = append(as, r.a)
		}
		// Bounded by the log's own deadline per request; each caller's
		// context still ends its own wait for the result.
		results := c.log.AppendBatch(context.WithoutCancel(ctx), as)
		for i, r := range batch {
			r.res <- results[i]
		}
	}
}

// Append appends e on condition that its job's newest event is at after,
// in the next batch, and waits for the result until ctx ends.
func (c *Committer) Append(ctx context.Context, e tasktype.Event, after uint64) (uint64, error) {
	r := commitReq{a: taskdriver.Append{Event: e, After: after}, res: make(chan taskdriver.Appended, 1)}
	select {
	case c.in <- r:
	case <-ctx.Done():
		return 0, fmt.Errorf("append %s event of job %s: %w: %w", e.Kind, e.JobID, tasktype.ErrUnavailable, ctx.Err())
	}
	select {
	case res := <-r.res:
		return res.Seq, res.Err
	case <-ctx.Done():
		return 0, fmt.Errorf("append %s event of job %s: %w: %w", e.Kind, e.JobID, tasktype.ErrUnavailable, ctx.Err())
	}
}
