package tasktype

import (
	"context"
	"io"
)

// Result is what a successful handler reports besides any file it wrote.
type Result struct {
	// Summary is a short line for the task list, e.g. "1,204 activities".
	// It is kept in the event log for as long as the task, so it holds
	// ids, numbers, dates and codes, never what the user typed (titles,
	// cells of a file) nor their email address or name: a sentence that
	// needs those is built when the page is read (Kind.Restate).
	Summary string
}

// Output is where a handler writes its result file and reports its
// progress.
type Output interface {
	// Create starts the job's result file. A handler creates at most one;
	// it is stored when the handler returns nil and discarded otherwise.
	Create(name, contentType string) (io.Writer, error)
	// Progress reports how far the job has got: percent from 0 to 100
	// and a short line such as "4,000 of 10,000 activities": numbers,
	// never personal text, as for Result.Summary. It never
	// blocks: the worker records the latest report with its next
	// heartbeat (about once a second), so calling it often costs nothing.
	Progress(percent int, message string)
}

// HandlerFunc runs one job. It must stop when ctx ends, and be safe to run
// more than once for the same job: delivery is at least once.
type HandlerFunc func(ctx context.Context, job Job, out Output) (Result, error)
