package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
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
	// testUpload streams payload MB megabytes into its result file,
	// pausing payload ms after each, with the report's policy timeout, so
	// that a test can catch a job in the middle of its upload. At its
	// start it also creates the file startedMarker names, for a test that
	// must act within milliseconds of it.
	testUpload = "test_upload"
	// testFile writes a result file of payload bytes, taking payload ms
	// to do it (none with OTJ_TEST_FAST=1).
	testFile = "test_file"
	// testCrash kills its worker process the moment it starts, every
	// time (exit status 3): long before the attempt's first heartbeat.
	testCrash = "test_crash"
	// testProgress reports 42% done ("128,000 of 300,000"), as a long
	// report does, then says nothing more: in its first payload times
	// attempts it sleeps payload ms (or until its context ends), in later
	// ones a second. It is a job whose worker is silent between progress
	// reports, to be killed in the middle.
	testProgress = "test_progress"
)

// runLogEnv names a file each test job appends a line to when it starts
// and ends: "<job> <attempt> <pid> start|end|cancelled", so tests can
// count runs across processes.
const runLogEnv = "OTJ_TEST_RUNLOG"

type testPayload struct {
	MS        int  `json:"ms"`
	MB        int  `json:"mb"`
	Times     int  `json:"times"`
	Permanent bool `json:"permanent"`
	Bytes     int  `json:"bytes"`
}

func registerTestJobs(reg *tasks.Registry) error {
	policy := tasktype.Policy{MaxAttempts: 3, BackoffMin: 100 * time.Millisecond, BackoffMax: 500 * time.Millisecond, Timeout: time.Minute}
	err := reg.Register(testSleep, func(ctx context.Context, job tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
		var p testPayload
		if err := json.Unmarshal(job.Payload, &p); err != nil {
			return tasktype.Result{}, tasktype.Permanent(err)
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
			return tasktype.Result{Summary: "slept"}, nil
		case <-ctx.Done():
			logRun(job, "cancelled")
			return tasktype.Result{}, ctx.Err()
		}
	}, policy)
	if err != nil {
		return err
	}
	// The report's timeout: an attempt whose upload hangs is not ended by
	// its timeout within any test's patience.
	uploadPolicy := policy
	uploadPolicy.Timeout = 30 * time.Minute
	err = reg.Register(testUpload, func(ctx context.Context, job tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
		var p testPayload
		if err := json.Unmarshal(job.Payload, &p); err != nil {
			return tasktype.Result{}, tasktype.Permanent(err)
		}
		logRun(job, "start")
		if path := os.Getenv(runLogEnv); path != "" {
			if err := os.WriteFile(startedMarker(path, job), nil, 0o644); err != nil {
				return tasktype.Result{}, err
			}
		}
		out.Progress(0, "uploading")
		w, err := out.Create("upload.bin", "application/octet-stream")
		if err != nil {
			return tasktype.Result{}, err
		}
		chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
		for i := range p.MB * 16 {
			if _, err := w.Write(chunk); err != nil {
				logRun(job, "failed")
				return tasktype.Result{}, err
			}
			if i%16 == 15 {
				time.Sleep(time.Duration(p.MS) * time.Millisecond)
			}
		}
		logRun(job, "end")
		return tasktype.Result{Summary: "uploaded"}, nil
	}, uploadPolicy)
	if err != nil {
		return err
	}
	err = reg.Register(testProgress, func(ctx context.Context, job tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
		var p testPayload
		if err := json.Unmarshal(job.Payload, &p); err != nil {
			return tasktype.Result{}, tasktype.Permanent(err)
		}
		logRun(job, "start")
		out.Progress(42, "128,000 of 300,000")
		wait := time.Second
		if job.Attempt <= p.Times {
			wait = time.Duration(p.MS) * time.Millisecond
		}
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
			logRun(job, "end")
			return tasktype.Result{Summary: "done"}, nil
		case <-ctx.Done():
			logRun(job, "cancelled")
			return tasktype.Result{}, ctx.Err()
		}
	}, uploadPolicy) // a long attempt: killed, not timed out
	if err != nil {
		return err
	}
	err = reg.Register(testCrash, func(_ context.Context, job tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
		logRun(job, "start")
		os.Exit(3)
		return tasktype.Result{}, nil
	}, policy)
	if err != nil {
		return err
	}
	err = reg.Register(testFile, func(ctx context.Context, job tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
		var p testPayload
		if err := json.Unmarshal(job.Payload, &p); err != nil {
			return tasktype.Result{}, tasktype.Permanent(err)
		}
		logRun(job, "start")
		w, err := out.Create("test.bin", "application/octet-stream")
		if err != nil {
			logRun(job, "failed")
			return tasktype.Result{}, err
		}
		if os.Getenv("OTJ_TEST_FAST") != "1" && p.MS > 0 {
			t := time.NewTimer(time.Duration(p.MS) * time.Millisecond)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				logRun(job, "cancelled")
				return tasktype.Result{}, ctx.Err()
			}
		}
		if _, err := w.Write(make([]byte, p.Bytes)); err != nil {
			logRun(job, "failed")
			return tasktype.Result{}, err
		}
		logRun(job, "end")
		return tasktype.Result{Summary: fmt.Sprintf("%d bytes", p.Bytes)}, nil
	}, policy)
	if err != nil {
		return err
	}
	return reg.Register(testFail, func(ctx context.Context, job tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
		var p testPayload
		if err := json.Unmarshal(job.Payload, &p); err != nil {
			return tasktype.Result{}, tasktype.Permanent(err)
		}
		logRun(job, "start")
		if job.Attempt <= p.Times {
			err := tasktype.UserMessage(fmt.Errorf("planned failure %d of %d", job.Attempt, p.Times),
				fmt.Sprintf("This is planned failure %d of %d.", job.Attempt, p.Times))
			if p.Permanent {
				err = tasktype.Permanent(err)
			}
			logRun(job, "failed")
			return tasktype.Result{}, err
		}
		logRun(job, "end")
		return tasktype.Result{Summary: "passed"}, nil
	}, policy)
}

// startedMarker is the file a test_upload attempt creates as it starts.
func startedMarker(runLog string, job tasktype.Job) string {
	return fmt.Sprintf("%s.%s.%d.started", runLog, job.ID, job.Attempt)
}

func logRun(job tasktype.Job, what string) {
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
