package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/otjhelper/otj/modules/tasks"
)

// Job types that exist only in the test binary, registered on the workers
// of re-exec'd app processes (see TestMain), so that lifecycle tests can
// run jobs that sleep, fail or crash in real worker processes.
const (
	// testSleep sleeps for payload ms, or until its context ends, which
	// it then returns as its error. In a worker started with
	// OTJ_TEST_FAST=1 it returns at once.
	testSleep = "test_sleep"
	// testFail fails its first payload times attempts (permanently if
	// payload permanent), then succeeds. Its error, for operators, says
	// "planned failure n of m"; its user sees "This is planned failure n
	// of m."
	testFail = "test_fail"
	// testFile writes a result file of payload bytes.
	testFile = "test_file"
)

// runLogEnv names a file each test job appends a line to when it starts
// and ends: "<job> <attempt> <pid> start|end|cancelled", so tests can
// count runs across processes.
const runLogEnv = "OTJ_TEST_RUNLOG"

type testPayload struct {
	MS        int  `json:"ms"`
	Times     int  `json:"times"`
	Permanent bool `json:"permanent"`
	Bytes     int  `json:"bytes"`
}

func registerTestJobs(reg *tasks.Registry) error {
	policy := tasks.Policy{MaxAttempts: 3, BackoffMin: 100 * time.Millisecond, BackoffMax: 500 * time.Millisecond, Timeout: time.Minute}
	err := reg.Register(testSleep, func(ctx context.Context, job tasks.Job, _ tasks.Output) (tasks.Result, error) {
		var p testPayload
		if err := json.Unmarshal(job.Payload, &p); err != nil {
			return tasks.Result{}, tasks.Permanent(err)
		}
		logRun(job, "start")
		if os.Getenv("OTJ_TEST_FAST") == "1" {
			p.MS = 0
		}
		t := time.NewTimer(time.Duration(p.MS) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
			logRun(job, "end")
			return tasks.Result{Summary: "slept"}, nil
		case <-ctx.Done():
			logRun(job, "cancelled")
			return tasks.Result{}, ctx.Err()
		}
	}, policy)
	if err != nil {
		return err
	}
	err = reg.Register(testFile, func(ctx context.Context, job tasks.Job, out tasks.Output) (tasks.Result, error) {
		var p testPayload
		if err := json.Unmarshal(job.Payload, &p); err != nil {
			return tasks.Result{}, tasks.Permanent(err)
		}
		w, err := out.Create("test.bin", "application/octet-stream")
		if err != nil {
			return tasks.Result{}, err
		}
		if _, err := w.Write(make([]byte, p.Bytes)); err != nil {
			return tasks.Result{}, err
		}
		return tasks.Result{Summary: fmt.Sprintf("%d bytes", p.Bytes)}, nil
	}, policy)
	if err != nil {
		return err
	}
	return reg.Register(testFail, func(ctx context.Context, job tasks.Job, _ tasks.Output) (tasks.Result, error) {
		var p testPayload
		if err := json.Unmarshal(job.Payload, &p); err != nil {
			return tasks.Result{}, tasks.Permanent(err)
		}
		logRun(job, "start")
		if job.Attempt <= p.Times {
			err := tasks.UserMessage(fmt.Errorf("planned failure %d of %d", job.Attempt, p.Times),
				fmt.Sprintf("This is planned failure %d of %d.", job.Attempt, p.Times))
			if p.Permanent {
				err = tasks.Permanent(err)
			}
			logRun(job, "failed")
			return tasks.Result{}, err
		}
		logRun(job, "end")
		return tasks.Result{Summary: "passed"}, nil
	}, policy)
}

func logRun(job tasks.Job, what string) {
	path := os.Getenv(runLogEnv)
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		panic(errors.Join(errors.New("test run log"), err))
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %d %d %s\n", job.ID, job.Attempt, os.Getpid(), what)
}
