package operator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/otjhelper/otj/internal/app/cli"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// AnalyticsBatch is how many jobs app analytics --all enqueues in one
// call by default: one JetStream batch, and one page of users read.
const AnalyticsBatch = 500

// callTimeout bounds each page of users read and each batch enqueued.
const callTimeout = 30 * time.Second

// analyticsFlags is app analytics's flag set.
func analyticsFlags(all *bool, batch *int, stderr io.Writer) *flag.FlagSet {
	fs := cli.NewFlagSet("analytics", "", stderr)
	fs.BoolVar(all, "all", false, "run analytics for every user, one job each")
	fs.IntVar(batch, "batch", AnalyticsBatch, "jobs enqueued per call to the broker")
	return fs
}

// Analytics is app analytics --all: it enqueues one job of type jobType
// (the batch analytics) per user, a page of users at a time, and prints
// how many. args are what follows "analytics".
func Analytics(ctx context.Context, jobType string, args []string, open OpenFunc, stdout, stderr io.Writer) error {
	all, batch := new(bool), new(int)
	fs := analyticsFlags(all, batch, stderr)
	pos, err := cli.ParseFlags(fs, args)
	if err != nil || len(pos) > 0 {
		return cli.FlagError(err, fs, "analytics", pos)
	}
	if !*all {
		return errors.New("analytics: --all: give --all to run analytics for every user, one job each")
	}
	if *batch < 1 || *batch > 10000 {
		return fmt.Errorf("analytics: --batch %d: must be 1 to 10000", *batch)
	}
	return withBackend(ctx, open, func(b *Backend) error {
		n, calls := 0, 0
		after := int64(0)
		for {
			cctx, cancel := context.WithTimeout(ctx, callTimeout)
			ids, err := b.Users.UserIDsAfter(cctx, after, *batch)
			cancel()
			if err != nil {
				return fmt.Errorf("analytics: %w", err)
			}
			if len(ids) == 0 {
				break
			}
			rs := make([]tasktype.EnqueueRequest, len(ids))
			for i, id := range ids {
				rs[i] = tasktype.EnqueueRequest{Type: jobType, UserID: id}
			}
			cctx, cancel = context.WithTimeout(ctx, callTimeout)
			jobs, err := b.Tasks.EnqueueBatch(cctx, rs)
			cancel()
			n += len(jobs)
			if err != nil {
				return fmt.Errorf("analytics: queued %d jobs, then: %w", n, err)
			}
			calls++
			after = ids[len(ids)-1]
		}
		fmt.Fprintf(stdout, "queued %d analytics jobs, one per user, in %d batches\n", n, calls)
		return nil
	})
}
