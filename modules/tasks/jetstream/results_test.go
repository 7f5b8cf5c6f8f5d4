package jetstream_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// The bucket takes the bounds it is opened with, an existing bucket is
// updated to new ones, and a process that brings none leaves them alone.
func TestResultBoundsAppliedAtOpen(t *testing.T) {
	srv := testsupport.NATS(t)
	nc := testsupport.Connect(t, srv, "app")
	open := func(b *jetstream.ResultBounds) {
		t.Helper()
		jetstreamtest.BrokerWith(t, nc, jetstream.Config{Results: b})
	}
	open(&jetstream.ResultBounds{TTL: 30 * 24 * time.Hour, MaxBytes: 1 << 30})
	if ttl, max := jetstreamtest.ResultBounds(t, nc); ttl != 30*24*time.Hour || max != 1<<30 {
		t.Fatalf("new bucket: TTL %s, max %d", ttl, max)
	}
	open(&jetstream.ResultBounds{TTL: time.Hour, MaxBytes: 512 << 20})
	if ttl, max := jetstreamtest.ResultBounds(t, nc); ttl != time.Hour || max != 512<<20 {
		t.Fatalf("after new bounds: TTL %s, max %d", ttl, max)
	}
	open(nil)
	if ttl, max := jetstreamtest.ResultBounds(t, nc); ttl != time.Hour || max != 512<<20 {
		t.Fatalf("opened without bounds: TTL %s, max %d, want them unchanged", ttl, max)
	}
}

// A result past the bucket's TTL is gone, and opening it says so.
func TestResultExpiresAfterTTL(t *testing.T) {
	srv := testsupport.NATS(t)
	b := jetstreamtest.BrokerWith(t, testsupport.Connect(t, srv, "app"), jetstream.Config{
		Results: &jetstream.ResultBounds{TTL: 500 * time.Millisecond}, // near nats-server's floor of 100ms
	})
	ctx := testsupport.Context(t)
	if _, err := b.Put(ctx, "job1-a1", "r.csv", "text/csv", strings.NewReader("a,b\n")); err != nil {
		t.Fatal(err)
	}
	res, err := b.Open(ctx, "job1-a1")
	if err != nil {
		t.Fatal(err)
	}
	res.Close()
	testsupport.Eventually(t, 10*time.Second, "result still there past its TTL", func() bool {
		res, err := b.Open(ctx, "job1-a1")
		if err == nil {
			res.Close()
		}
		return errors.Is(err, tasktype.ErrResultMissing)
	})
}

// A file that would take the bucket past its bound is refused as
// ErrResultStoreFull, keeping the server's wording; what was stored
// stays.
func TestFullBucketRefusesWithStoreFull(t *testing.T) {
	srv := testsupport.NATS(t)
	b := jetstreamtest.BrokerWith(t, testsupport.Connect(t, srv, "app"), jetstream.Config{
		Results: &jetstream.ResultBounds{MaxBytes: 64 << 10},
	})
	ctx, cancel := context.WithTimeout(testsupport.Context(t), 20*time.Second)
	defer cancel()
	if _, err := b.Put(ctx, "small-a1", "s.csv", "text/csv", strings.NewReader("a,b\n")); err != nil {
		t.Fatal(err)
	}
	_, err := b.Put(ctx, "big-a1", "b.csv", "text/csv", strings.NewReader(strings.Repeat("x", 100<<10)))
	if !errors.Is(err, tasktype.ErrResultStoreFull) || !strings.Contains(err.Error(), "maximum bytes exceeded") {
		t.Fatalf("put past the bound: %v", err)
	}
	res, err := b.Open(ctx, "small-a1")
	if err != nil {
		t.Fatalf("the stored result after a refused put: %v", err)
	}
	res.Close()
}
