package jetstream_test

import (
	"errors"
	"strconv"
	"testing"

	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

func TestEnqueueBatch(t *testing.T) {
	srv := testsupport.NATS(t)
	b := jetstreamtest.Broker(t, testsupport.Connect(t, srv, "web"))
	ctx := testsupport.Context(t)

	// More than one window's worth, with a key repeated inside the batch
	// and one repeating an earlier single enqueue.
	first, err := b.Enqueue(ctx, tasktype.EnqueueRequest{Type: "noop", UserID: 3, Key: "k-early"})
	if err != nil {
		t.Fatal(err)
	}
	var rs []tasktype.EnqueueRequest
	for i := range 700 {
		rs = append(rs, tasktype.EnqueueRequest{Type: "noop", UserID: int64(1 + i%3), Payload: []byte(`{"i":` + strconv.Itoa(i) + `}`)})
	}
	rs[10].Key, rs[600].Key = "k-same", "k-same"
	rs[10].UserID, rs[600].UserID = 2, 2
	rs[20].Key, rs[20].UserID = "k-early", 3
	jobs, err := b.EnqueueBatch(ctx, rs)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != len(rs) {
		t.Fatalf("%d jobs for %d requests", len(jobs), len(rs))
	}
	ids := map[string]bool{}
	for i, j := range jobs {
		if j.UserID != rs[i].UserID || string(j.Payload) != string(rs[i].Payload) && rs[i].Key == "" {
			t.Fatalf("job %d is %+v, for request %+v", i, j, rs[i])
		}
		ids[j.ID] = true
		last, err := b.Last(ctx, j.UserID, j.ID)
		if err != nil || last.Kind != tasktype.EventEnqueued || last.Seq != j.EventSeq {
			t.Fatalf("job %d: stored %+v, %v; want its enqueued event at %d", i, last, err, j.EventSeq)
		}
	}
	if jobs[600].ID != jobs[10].ID {
		t.Errorf("a key repeated in the batch made two jobs: %s and %s", jobs[10].ID, jobs[600].ID)
	}
	if jobs[20].ID != first.ID {
		t.Errorf("a key repeating an earlier enqueue made job %s, want the first, %s", jobs[20].ID, first.ID)
	}
	if len(ids) != len(rs)-1 { // one key twice in the batch
		t.Errorf("%d distinct jobs, want %d", len(ids), len(rs)-1)
	}
}

func TestEnqueueBatchRefusesABadRequestBeforeSendingAny(t *testing.T) {
	srv := testsupport.NATS(t)
	b := jetstreamtest.Broker(t, testsupport.Connect(t, srv, "web"))
	ctx := testsupport.Context(t)
	before, err := b.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rs := []tasktype.EnqueueRequest{{Type: "noop", UserID: 1}, {Type: "noop", UserID: 1, Payload: []byte("{not json")}, {Type: "noop", UserID: 1}}
	jobs, err := b.EnqueueBatch(ctx, rs)
	if !errors.Is(err, tasktype.ErrInvalidJob) || len(jobs) != 0 {
		t.Fatalf("got %d jobs, %v; want none and ErrInvalidJob", len(jobs), err)
	}
	if after, _ := b.LastSeq(ctx); after != before {
		t.Fatalf("stream moved from %d to %d: a refused batch stored something", before, after)
	}
}

func TestEnqueueBatchWithTheServerDown(t *testing.T) {
	srv := testsupport.NATS(t)
	b := jetstreamtest.Broker(t, testsupport.Connect(t, srv, "web"))
	ctx := testsupport.Context(t)
	srv.Shutdown()
	jobs, err := b.EnqueueBatch(ctx, []tasktype.EnqueueRequest{{Type: "noop", UserID: 1}, {Type: "noop", UserID: 1}})
	if !errors.Is(err, tasktype.ErrUnavailable) || len(jobs) != 0 {
		t.Fatalf("got %d jobs, %v; want none and ErrUnavailable", len(jobs), err)
	}
}

// BenchmarkEnqueue measures storing enqueued events on the embedded
// server over a loopback connection: one at a time (each waits for its
// ack) and in batches of 1000. ns/op is per job.
//
//	go test -run XXX -bench Enqueue -benchmem ./modules/tasks/jetstream
func BenchmarkEnqueue(b *testing.B) {
	srv := testsupport.NATS(b)
	br := jetstreamtest.Broker(b, testsupport.Connect(b, srv, "web"))
	ctx := testsupport.Context(b)
	req := tasktype.EnqueueRequest{Type: "noop", UserID: 1, Payload: []byte(`{"from":"2026-01-01"}`)}
	b.Run("one", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := br.Enqueue(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("batch=1000", func(b *testing.B) {
		b.ReportAllocs()
		rs := make([]tasktype.EnqueueRequest, 1000)
		for i := range rs {
			rs[i] = req
		}
		for i := 0; i < b.N; i += len(rs) {
			if _, err := br.EnqueueBatch(ctx, rs[:min(len(rs), b.N-i)]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
