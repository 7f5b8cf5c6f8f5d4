package redisbroker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// Calls made together go in batches of at most max, each caller gets its
// own result, and a caller that gives up does not hold up the others.
func TestCombiner(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	release := make(chan struct{})
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(release) }) }
	t.Cleanup(releaseAll) // should the test stop early
	c := newCombiner(3, time.Second, func(ctx context.Context, batch []int) ([]int, error) {
		<-release
		mu.Lock()
		sizes = append(sizes, len(batch))
		mu.Unlock()
		outs := make([]int, len(batch))
		for i, in := range batch {
			if in < 0 {
				return nil, errors.New("negative")
			}
			outs[i] = in * 10
		}
		return outs, nil
	})

	// The first call goes alone and holds the sends up; seven more wait
	// behind it, one of which gives up.
	const n = 8
	outs := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	wg.Go(func() { outs[0], errs[0] = c.do(context.Background(), 0) })
	waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.running })
	gone, giveUp := context.WithCancel(context.Background())
	for i := 1; i < n; i++ {
		ctx := context.Background()
		if i == 4 {
			ctx = gone
		}
		wg.Go(func() { outs[i], errs[i] = c.do(ctx, i) })
	}
	waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.waiting) == n-1 })
	giveUp()
	releaseAll()
	wg.Wait()
	for i := range n {
		switch {
		case i == 4 && !errors.Is(errs[i], context.Canceled):
			t.Errorf("call %d: %v, want its context's end", i, errs[i])
		case i != 4 && (errs[i] != nil || outs[i] != i*10):
			t.Errorf("call %d: %d, %v; want %d", i, outs[i], errs[i], i*10)
		}
	}
	mu.Lock()
	if len(sizes) != 4 || sizes[0] != 1 || sizes[1] != 3 || sizes[2] != 3 || sizes[3] != 1 {
		t.Errorf("batches of %v, want 1 alone then the 7 waiting by 3", sizes)
	}
	mu.Unlock()

	// One error answers every call of its batch.
	if _, err := c.do(context.Background(), -1); err == nil {
		t.Error("a failed send answered without its error")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
