package drivertest

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// testCapabilities: the transport can do what its Capabilities say, and
// hands out no more than they allow, so that a driver cannot skip a
// subtest by claiming too little, nor the engine rely on what it lacks.
func testCapabilities(t *testing.T, open Open) {
	h := setup(t, open, 2*time.Second)
	caps := h.b.Transport.Capabilities()
	t.Logf("capabilities: %+v", caps)
	const n = 6
	var rs []tasktype.EnqueueRequest
	for i := range n {
		rs = append(rs, tasktype.EnqueueRequest{Type: "contract_caps", UserID: 8, Payload: json.RawMessage(`{"n":` + strconv.Itoa(i) + `}`)})
	}
	if _, err := h.b.Transport.EnqueueBatch(h.ctx, rs); err != nil {
		t.Fatalf("enqueue batch: %v", err)
	}
	q, err := h.b.Queue(h.ctx)
	if err != nil {
		t.Fatalf("queue: %v", err)
	}
	ctx, cancel := context.WithTimeout(h.ctx, waitTimeout)
	defer cancel()
	// Every item is stored before the first pull: a queue that hands out
	// batches gives more than one at some pull, one that does not never.
	most, taken := 0, 0
	for taken < n {
		ds, err := q.NextBatch(ctx, 3)
		if err != nil {
			t.Fatalf("next batch with %d of %d taken: %v", taken, n, err)
		}
		most, taken = max(most, len(ds)), taken+len(ds)
		for _, d := range ds {
			if err := d.Ack(ctx); err != nil {
				t.Fatalf("ack: %v", err)
			}
		}
	}
	if batches := most > 1; batches != caps.BatchQueue {
		t.Errorf("the queue handed out up to %d items a pull; Capabilities.BatchQueue says %v", most, caps.BatchQueue)
	}
	if caps.DelayedRedelivery {
		// A delayed item is not handed out again before its time.
		job := h.enqueue("contract_caps_delay", 8, "", `{}`)
		d, err := q.Next(ctx)
		if err != nil {
			t.Fatalf("take job %s: %v", job.ID, err)
		}
		delayed := time.Now()
		if err := d.Delay(ctx, time.Second); err != nil {
			t.Fatalf("delay: %v", err)
		}
		again, err := q.Next(ctx)
		if err != nil {
			t.Fatalf("take job %s again: %v", job.ID, err)
		}
		if waited := time.Since(delayed); waited < time.Second-50*time.Millisecond {
			t.Errorf("an item delayed by 1s came back after %s", waited)
		}
		if err := again.Ack(ctx); err != nil {
			t.Fatalf("ack: %v", err)
		}
	}
}

// testEnqueueBatch: a batch's jobs come back in the order of their
// requests, each as a single Enqueue would return it, and every one of
// them runs, whether the transport sends them in one go or not.
func testEnqueueBatch(t *testing.T, open Open) {
	h := setup(t, open, time.Second)
	const typ = "contract_batch"
	reg, seen := h.counting(typ)
	var rs []tasktype.EnqueueRequest
	for i := range 5 {
		rs = append(rs, tasktype.EnqueueRequest{Type: typ, UserID: int64(20 + i), Payload: json.RawMessage(`{"n":` + strconv.Itoa(i) + `}`)})
	}
	jobs, err := h.b.Transport.EnqueueBatch(h.ctx, rs)
	if err != nil {
		t.Fatalf("enqueue batch: %v", err)
	}
	if len(jobs) != len(rs) {
		t.Fatalf("enqueue batch of %d returned %d jobs", len(rs), len(jobs))
	}
	for i, job := range jobs {
		if !tasktype.ValidID(job.ID) || job.Type != typ || job.UserID != rs[i].UserID || string(job.Payload) != string(rs[i].Payload) ||
			job.EventSeq == 0 || job.EnqueuedAt.IsZero() {
			t.Errorf("job %d of the batch is %+v, for request %+v", i, job, rs[i])
		}
	}
	h.startWorker("w1", reg, nil)
	for _, job := range jobs {
		h.waitDone(job)
		h.expectHistory(job, "enqueued started succeeded")
		if n := len(seen.of(job.ID)); n != 1 {
			t.Errorf("job %s ran %d times, want 1", job.ID, n)
		}
	}
}

// testNextBatch: a batch pull hands out at least one and at most the
// asked-for number of deliveries, each job's once; acked, none comes
// back. Every queue has NextBatch; one without Capabilities.BatchQueue
// hands out one at a time.
func testNextBatch(t *testing.T, open Open) {
	// A lease long enough that no delivery comes back while the batch
	// is being acked, even on a slow machine.
	h := setup(t, open, 2*time.Second)
	want := make(map[string]bool)
	for i := range 5 {
		want[h.enqueue("contract_next_batch", 9, "", `{"n":`+strconv.Itoa(i)+`}`).ID] = true
	}
	q, err := h.b.Queue(h.ctx)
	if err != nil {
		t.Fatalf("queue: %v", err)
	}
	ctx, cancel := context.WithTimeout(h.ctx, waitTimeout)
	defer cancel()
	got := make(map[string]int)
	for len(got) < len(want) {
		ds, err := q.NextBatch(ctx, 3)
		if err != nil {
			t.Fatalf("next batch, with %d of %d jobs taken: %v", len(got), len(want), err)
		}
		if len(ds) < 1 || len(ds) > 3 {
			t.Fatalf("next batch of at most 3 handed out %d", len(ds))
		}
		for _, d := range ds {
			item := d.Item()
			if !want[item.JobID] || item.Kind != tasktype.EventEnqueued {
				t.Fatalf("delivered %s item of job %s, not one of the enqueued jobs", item.Kind, item.JobID)
			}
			got[item.JobID]++
			if got[item.JobID] > 1 {
				t.Fatalf("job %s handed out twice within its lease", item.JobID)
			}
			if err := d.Ack(ctx); err != nil {
				t.Fatalf("ack job %s: %v", item.JobID, err)
			}
		}
	}
	h.expectNoDelivery()
}
