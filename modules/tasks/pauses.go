package tasks

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/otjhelper/otj/modules/tasks/internal/clock"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// Pause pauses a job type on every worker, until Resume: its jobs are
// still accepted, and wait; none runs, and none fails for waiting. A job
// already running goes on to its end. The pause outlasts restarts. by
// names who paused it, as operators see it.
func (c *Client) Pause(ctx context.Context, jobType, by string) error {
	if err := c.knownType(jobType); err != nil {
		return err
	}
	return c.cfg.Log.Pause(ctx, tasktype.Pause{Type: jobType, By: by, At: c.now().UTC()})
}

// Resume resumes a paused job type: its waiting jobs run within a few
// seconds (worker.Config.PauseRecheck).
func (c *Client) Resume(ctx context.Context, jobType string) error {
	if err := c.knownType(jobType); err != nil {
		return err
	}
	return c.cfg.Log.Resume(ctx, jobType)
}

// Pauses lists the paused job types, by type.
func (c *Client) Pauses(ctx context.Context) ([]tasktype.Pause, error) {
	return c.cfg.Log.Pauses(ctx)
}

func (c *Client) knownType(jobType string) error {
	var types []string
	if c.cfg.Registry != nil {
		types = c.cfg.Registry.Types()
	}
	if slices.Contains(types, jobType) {
		return nil
	}
	return fmt.Errorf("%w: %q (known: %s)", tasktype.ErrUnknownType, jobType, strings.Join(types, ", "))
}

// pauseSet is the paused and resumed job types as a worker last heard
// them.
type pauseSet struct {
	types atomic.Pointer[map[string]tasktype.Pause]
}

// state says whether jobType is paused, and when it was last resumed.
func (s *pauseSet) state(jobType string) (paused bool, resumed time.Time) {
	m := s.types.Load()
	if m == nil {
		return false, time.Time{}
	}
	p, ok := (*m)[jobType]
	return ok && p.Resumed.IsZero(), p.Resumed
}

// followPauses keeps w.paused up to date until ctx ends, closing loaded
// once the paused types have been read the first time. A watch that
// fails is made again a second later; meanwhile the types last heard
// stay paused.
func (w *Worker) followPauses(ctx context.Context, loaded chan<- struct{}) {
	var once sync.Once
	for {
		err := w.c.cfg.Log.WatchPauses(ctx, func(ps []tasktype.Pause) error {
			m := make(map[string]tasktype.Pause, len(ps))
			for _, p := range ps {
				m[p.Type] = p
			}
			w.paused.types.Store(&m)
			once.Do(func() { close(loaded) })
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		w.c.log.WarnContext(ctx, "could not follow the paused job types; trying again", "err", err)
		clock.Sleep(ctx, time.Second)
	}
}
