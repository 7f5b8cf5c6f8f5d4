package drivertest

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks/taskdriver"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// testFeatures: the driver has exactly the features it claims, so that a
// driver cannot skip a subtest by claiming too little, nor the worker
// rely on what it lacks.
func testFeatures(t *testing.T, open Open, f Features) {
	h := setup(t, open, time.Second)
	if _, ok := h.b.Enqueuer.(taskdriver.BatchEnqueuer); ok != f.BatchEnqueue {
		t.Errorf("the enqueuer takes batches: %v; Features.BatchEnqueue says %v", ok, f.BatchEnqueue)
	}
	q, err := h.b.Queue(h.ctx)
	if err != nil {
		t.Fatalf("queue: %v", err)
	}
	if _, ok := q.(taskdriver.BatchQueue); ok != f.BatchQueue {
		t.Errorf("the queue hands out batches: %v; Features.BatchQueue says %v", ok, f.BatchQueue)
	}
	job := h.enqueue("contract_features", 8, "", `{}`)
	ctx, cancel := context.WithTimeout(h.ctx, waitTimeout)
	defer cancel()
	d, err := q.Next(ctx)
	if err != nil {
		t.Fatalf("take job %s: %v", job.ID, err)
	}
	l, ok := d.(taskdriver.ItemLease)
	if perItem := ok && l.LeasePerItem(); perItem != f.LeasePerItem {
		t.Errorf("a delivery keeps one lease per item: %v; Features.LeasePerItem says %v", perItem, f.LeasePerItem)
	}
	if err := d.Ack(ctx); err != nil {
		t.Errorf("ack: %v", err)
	}
}

// testEnqueueBatch: a batch's jobs come back in the order of their
// requests, each as a single Enqueue would return it, and every one of
// them runs.
func testEnqueueBatch(t *testing.T, open Open, f Features) {
	if !f.BatchEnqueue {
		t.Skip("the driver does not take batches (Features.BatchEnqueue)")
	}
	h := setup(t, open, time.Second)
	const typ = "contract_batch"
	reg, seen := h.counting(typ)
	benq := h.b.Enqueuer.(taskdriver.BatchEnqueuer)
	var rs []tasktype.EnqueueRequest
	for i := range 5 {
		rs = append(rs, tasktype.EnqueueRequest{Type: typ, UserID: int64(20 + i), Payload: json.RawMessage(`{"n":` + strconv.Itoa(i) + `}`)})
	}
	jobs, err := benq.EnqueueBatch(h.ctx, rs)
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
// asked-for number of deliveries, each job's once; acked, none comes back.
func testNextBatch(t *testing.T, open Open, f Features) {
	if !f.BatchQueue {
		t.Skip("the driver's queues do not hand out batches (Features.BatchQueue)")
	}
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
	bq := q.(taskdriver.BatchQueue)
	ctx, cancel := context.WithTimeout(h.ctx, waitTimeout)
	defer cancel()
	got := make(map[string]int)
	for len(got) < len(want) {
		ds, err := bq.NextBatch(ctx, 3)
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
