package digest

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// fakeClock is a Clock the test moves by hand.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), ch: ch})
	return ch
}

// set moves the clock to t and fires the waits that are over.
func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(t) {
			w.ch <- t
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// reset forgets the waits of stopped schedulers.
func (c *fakeClock) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waiters = nil
}

func (c *fakeClock) waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// fanOuts records the batches schedulers enqueue.
type fanOuts struct {
	mu      sync.Mutex
	batches [][]tasktype.EnqueueRequest
}

func (f *fanOuts) enqueue(_ context.Context, rs []tasktype.EnqueueRequest) ([]tasktype.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches = append(f.batches, rs)
	return make([]tasktype.Job, len(rs)), nil
}

// weeks are the periods fanned out, in order, each with its job count.
func (f *fanOuts) weeks(t *testing.T) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ws []string
	for _, b := range f.batches {
		var p Payload
		if err := json.Unmarshal(b[0].Payload, &p); err != nil {
			t.Fatal(err)
		}
		if len(b) != 3 || b[0].Type != WeeklyDigest || b[0].Key != "digest-"+p.Week || b[2].UserID != 3 {
			t.Errorf("batch %+v: want one digest job for each of 3 users, keyed by the week", b)
		}
		ws = append(ws, p.Week)
	}
	return ws
}

// Two schedulers on one KV fan each period out once between them; after
// a gap of several periods, a scheduler starting up catches up the
// latest one only, once.
func TestSchedulerFiresOncePerPeriod(t *testing.T) {
	ctx := testsupport.Context(t)
	js, err := jetstream.New(testsupport.Connect(t, testsupport.NATS(t), "schedule-test"))
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: ScheduleBucket})
	if err != nil {
		t.Fatal(err)
	}
	loc := london(t)
	sch, ok, err := ParseSchedule("mon 07:00", loc)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	clock := &fakeClock{now: time.Date(2026, 12, 2, 12, 0, 0, 0, loc)} // a Wednesday
	got := &fanOuts{}
	start := func(n int) (stop func()) {
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for range n {
			s, err := NewScheduler(SchedulerConfig{Schedule: sch, KV: kv, Clock: clock, Logger: testsupport.Logger(t),
				Users:   func(context.Context) ([]int64, error) { return []int64{1, 2, 3}, nil },
				Enqueue: got.enqueue})
			if err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				if err := s.Run(ctx); err != nil {
					t.Errorf("run: %v", err)
				}
			})
		}
		return func() { cancel(); wg.Wait() }
	}
	settled := func(n int) {
		t.Helper()
		testsupport.Eventually(t, 10*time.Second, "schedulers never went back to sleep", func() bool { return clock.waiting() == n })
	}
	expect := func(want ...string) {
		t.Helper()
		ws := got.weeks(t)
		if len(ws) != len(want) {
			t.Fatalf("fanned out %v, want %v", ws, want)
		}
		for i := range want {
			if ws[i] != want[i] {
				t.Fatalf("fanned out %v, want %v", ws, want)
			}
		}
	}

	// Four processes, as two web processes and two workers run it.
	stop := start(4)
	settled(4)
	expect("2026-W48") // first start: Monday 30 Nov's run, the week to Sunday 29 Nov
	clock.set(time.Date(2026, 12, 7, 6, 59, 0, 0, loc))
	settled(4)
	expect("2026-W48")
	clock.set(time.Date(2026, 12, 7, 7, 0, 0, 0, loc))
	settled(4)
	expect("2026-W48", "2026-W49")
	stop()

	// Down for three Mondays: the latest is caught up, once.
	clock.set(time.Date(2026, 12, 30, 9, 0, 0, 0, loc))
	clock.reset()
	stop = start(4)
	settled(4)
	expect("2026-W48", "2026-W49", "2026-W52")
	stop()
	clock.reset()
	stop = start(1)
	settled(1)
	expect("2026-W48", "2026-W49", "2026-W52")
	stop()
}

func TestParseSchedule(t *testing.T) {
	loc := london(t)
	for _, bad := range []string{"", "monday 07:00", "mon 7", "mon 25:00", "07:00", "mon"} {
		if _, _, err := ParseSchedule(bad, loc); err == nil {
			t.Errorf("ParseSchedule(%q) accepted", bad)
		}
	}
	if _, ok, err := ParseSchedule("off", loc); ok || err != nil {
		t.Errorf("off: %v %v", ok, err)
	}
	s, ok, err := ParseSchedule("Fri 17:30", loc)
	if !ok || err != nil || s.Day != time.Friday || s.Hour != 17 || s.Minute != 30 {
		t.Fatalf("Fri 17:30: %+v %v %v", s, ok, err)
	}
	// Across the clocks going back (25 Oct 2026): still 17:30 local.
	at := time.Date(2026, 10, 26, 9, 0, 0, 0, loc)
	if l, n := s.Last(at), s.Next(at); l != time.Date(2026, 10, 23, 17, 30, 0, 0, loc) || n != time.Date(2026, 10, 30, 17, 30, 0, 0, loc) {
		t.Errorf("Last %v Next %v", l, n)
	}
	if p := Period(s.Next(at)); p.String() != "2026-W44" {
		t.Errorf("a Friday run covers %s, want its own week 2026-W44", p)
	}
}
