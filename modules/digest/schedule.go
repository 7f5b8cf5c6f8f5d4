package digest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// Schedule is when the weekly digests go out: a weekday and a time of
// day in a zone (DIGEST_SCHEDULE, "mon 07:00" in Europe/London).
type Schedule struct {
	Day          time.Weekday
	Hour, Minute int
	Loc          *time.Location
}

// DefaultSchedule is DIGEST_SCHEDULE's default.
const DefaultSchedule = "mon 07:00"

var weekdays = map[string]time.Weekday{"mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday, "sun": time.Sunday}

// ParseSchedule reads "mon 07:00" (a weekday's first three letters and a
// 24-hour time) in loc. "off" is ok == false: no schedule.
func ParseSchedule(s string, loc *time.Location) (sch Schedule, ok bool, err error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "off" {
		return Schedule{}, false, nil
	}
	day, hm, found := strings.Cut(s, " ")
	wd, known := weekdays[day]
	t, terr := time.Parse("15:04", strings.TrimSpace(hm))
	if !found || !known || terr != nil {
		return Schedule{}, false, fmt.Errorf("%q: want a day and a time, such as %q, or off", s, DefaultSchedule)
	}
	return Schedule{Day: wd, Hour: t.Hour(), Minute: t.Minute(), Loc: loc}, true, nil
}

// Last is the latest due time at or before t.
func (s Schedule) Last(t time.Time) time.Time {
	t = t.In(s.Loc)
	back := (int(t.Weekday()) - int(s.Day) + 7) % 7
	d := time.Date(t.Year(), t.Month(), t.Day()-back, s.Hour, s.Minute, 0, 0, s.Loc)
	if d.After(t) {
		d = time.Date(t.Year(), t.Month(), t.Day()-back-7, s.Hour, s.Minute, 0, 0, s.Loc)
	}
	return d
}

// Next is the first due time after t.
func (s Schedule) Next(t time.Time) time.Time {
	l := s.Last(t)
	return time.Date(l.Year(), l.Month(), l.Day()+7, s.Hour, s.Minute, 0, 0, s.Loc)
}

// Period is the ISO week the digests due at due cover: the week of the
// day before, so that a Monday run sends the week just ended and a
// Friday run the week nearly done.
func Period(due time.Time) Week { return WeekOf(due.AddDate(0, 0, -1)) }

// Clock is the scheduler's time: the real one, or a test's.
type Clock interface {
	Now() time.Time
	// After fires once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// The schedule's lease in JetStream KV: the key holds the last period
// fanned out.
const (
	ScheduleBucket = "schedules"
	scheduleKey    = "digest"
)

// kvTimeout bounds each KV call.
const kvTimeout = 10 * time.Second

// SchedulerConfig is what a Scheduler needs. All but Clock and Logger are
// required.
type SchedulerConfig struct {
	Schedule Schedule
	// KV is the schedules bucket, shared by every process.
	KV jetstream.KeyValue
	// Users lists whom a digest goes to: everyone with any activity.
	Users func(ctx context.Context) ([]int64, error)
	// Enqueue enqueues one batch of digest jobs (tasks.Client.EnqueueBatch).
	Enqueue func(ctx context.Context, rs []tasktype.EnqueueRequest) ([]tasktype.Job, error)
	Clock   Clock
	Logger  *slog.Logger
}

// Scheduler fans the weekly digests out once per period, whichever of the
// app's processes get there: each runs one, and only the one that moves
// the KV key to the period (a compare-and-swap on its revision) enqueues.
// It never keeps a ticker of its own: it sleeps to the next due time,
// then races for the key; the key, not the process, remembers what was
// sent, so a restart neither repeats a period nor (catching up the latest
// one it missed, once) loses one.
type Scheduler struct{ cfg SchedulerConfig }

// NewScheduler checks cfg and fills its defaults.
func NewScheduler(cfg SchedulerConfig) (*Scheduler, error) {
	if cfg.KV == nil || cfg.Users == nil || cfg.Enqueue == nil || cfg.Schedule.Loc == nil {
		return nil, errors.New("digest scheduler: Schedule, KV, Users and Enqueue are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{cfg: cfg}, nil
}

// retryAfter is how soon a failed claim or fan-out is tried again.
const retryAfter = time.Minute

// Run catches up the latest due period if no process has fanned it out,
// then fans out each period as it falls due, until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	due := s.cfg.Schedule.Last(s.cfg.Clock.Now())
	for {
		if err := s.fire(ctx, Period(due)); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.cfg.Logger.Warn("digest schedule: will try again", "period", Period(due).String(), "err", err, "in", retryAfter)
			select {
			case <-ctx.Done():
				return nil
			case <-s.cfg.Clock.After(retryAfter):
			}
			continue
		}
		due = s.cfg.Schedule.Next(due)
		if wait := due.Sub(s.cfg.Clock.Now()); wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-s.cfg.Clock.After(wait):
			}
		}
	}
}

// fire claims period and, if this process won it, fans it out.
func (s *Scheduler) fire(ctx context.Context, period Week) error {
	won, err := s.claim(ctx, period.String())
	if err != nil || !won {
		return err
	}
	n, err := s.fanOut(ctx, period)
	if err != nil {
		// The period is claimed: a retry by this process fans it out
		// again; the jobs' keys and digest_sent keep anyone from a
		// second mail.
		return fmt.Errorf("fan out %s after %d jobs: %w", period, n, err)
	}
	s.cfg.Logger.Info("digest schedule: fanned out", "period", period.String(), "jobs", n)
	return nil
}

// claim moves the key to period, and reports whether this call did: a
// key already at period or later, or moved by another process meanwhile,
// is a loss.
func (s *Scheduler) claim(ctx context.Context, period string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, kvTimeout)
	defer cancel()
	e, err := s.cfg.KV.Get(ctx, scheduleKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		_, err = s.cfg.KV.Create(ctx, scheduleKey, []byte(period))
		if errors.Is(err, jetstream.ErrKeyExists) {
			return false, nil
		}
		return err == nil, err
	}
	if err != nil {
		return false, fmt.Errorf("read the schedule's key: %w", err)
	}
	// ISO weeks as YYYY-Www sort as text.
	if string(e.Value()) >= period {
		return false, nil
	}
	if _, err := s.cfg.KV.Update(ctx, scheduleKey, []byte(period), e.Revision()); err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			return false, nil
		}
		return false, fmt.Errorf("move the schedule's key to %s: %w", period, err)
	}
	return true, nil
}

// fanOutBatch is how many jobs one EnqueueBatch call carries.
const fanOutBatch = 500

// fanOut enqueues one digest job per user with any activity, keyed by
// the period, so that a second fan-out of the same period dedupes.
func (s *Scheduler) fanOut(ctx context.Context, period Week) (int, error) {
	users, err := s.cfg.Users(ctx)
	if err != nil {
		return 0, err
	}
	payload := []byte(`{"week":"` + period.String() + `"}`)
	n := 0
	for len(users) > 0 {
		chunk := users[:min(fanOutBatch, len(users))]
		users = users[len(chunk):]
		rs := make([]tasktype.EnqueueRequest, len(chunk))
		for i, id := range chunk {
			rs[i] = tasktype.EnqueueRequest{Type: WeeklyDigest, UserID: id, Payload: payload, Key: "digest-" + period.String()}
		}
		if _, err := s.cfg.Enqueue(ctx, rs); err != nil {
			return n, err
		}
		n += len(rs)
	}
	return n, nil
}
