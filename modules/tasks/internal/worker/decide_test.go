package worker

import (
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// decide's cases where no start is on record: a redelivery is never
// counted as a lost attempt, since nothing proves the delivery before it
// ran (its worker may have been unable to read the log); one late enough
// to follow a lost attempt runs with its start recorded first, so that
// its own loss can be counted.
func TestDecideWithoutARecordedStart(t *testing.T) {
	const lease = 5 * time.Second
	t0 := time.Date(2026, 3, 5, 14, 0, 0, 0, time.UTC)
	enqueued := tasktype.Event{Kind: tasktype.EventEnqueued, Seq: 10, Time: t0}
	retry := tasktype.Event{Kind: tasktype.EventRetrying, Seq: 10, Time: t0, Attempt: 1, RetryAt: t0.Add(time.Minute)}
	started := tasktype.Event{Kind: tasktype.EventStarted, Seq: 11, Attempt: 1, Worker: "w"}
	jetstream := delivered{redelivered: true, perItem: true}
	redis := delivered{redelivered: true}
	tests := []struct {
		name string
		item tasktype.Event
		last tasktype.Event
		d    delivered
		now  time.Time
		want action
	}{
		{"first delivery runs with no write", enqueued, enqueued, delivered{}, t0, actRun},
		{"redelivered a lease after it was due: runs with its start recorded (JetStream)", enqueued, enqueued, jetstream, t0.Add(lease), actRunRecorded},
		{"redelivered a lease after it was due: runs with its start recorded (Redis)", enqueued, enqueued, redis, t0.Add(lease), actRunRecorded},
		{"redelivered sooner than a lost attempt could be: runs", enqueued, enqueued, jetstream, t0.Add(time.Second), actRun},
		{"a retry put off, back on time: runs", retry, retry, jetstream, retry.RetryAt.Add(10 * time.Millisecond), actRun},
		{"a retry put off, back late: runs with its start recorded", retry, retry, jetstream, retry.RetryAt.Add(time.Hour), actRunRecorded},
		{"a retry claimed late on Redis: runs with its start recorded", retry, retry, redis, retry.RetryAt.Add(lease), actRunRecorded},
		{"a retry before its time waits", retry, retry, delivered{}, t0.Add(time.Second), actWait},
		{"redelivered with its start on record: lost", enqueued, started, jetstream, t0.Add(lease), actLost},
		{"first delivery with its start on record, one lease per item: left", enqueued, started, delivered{perItem: true}, t0, actLeave},
		{"redelivered late, its type paused and resumed since it fell due: runs", enqueued, enqueued, delivered{redelivered: true, perItem: true, resumed: t0.Add(time.Hour)}, t0.Add(2 * time.Hour), actRun},
		{"redelivered late, its type resumed before it fell due: runs with its start recorded", enqueued, enqueued, delivered{redelivered: true, resumed: t0.Add(-time.Hour)}, t0.Add(lease), actRunRecorded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decide(tt.item, tt.last, tt.d, tt.now, lease); got != tt.want {
				t.Errorf("decide = %d, want %d", got, tt.want)
			}
		})
	}
}

// An operator's read of a completed job's result (result_read) carries
// no attempt, so a stray work item of the job that finds it newest in
// the log is stale, whichever attempt it asks for: the read never runs
// the job again.
func TestDecideAfterAResultRead(t *testing.T) {
	const lease = 5 * time.Second
	t0 := time.Date(2026, 3, 5, 14, 0, 0, 0, time.UTC)
	read := tasktype.Event{Kind: tasktype.EventResultRead, Seq: 20, Time: t0, By: tasktype.ByOperator, Operator: "ops@example.org"}
	for _, item := range []tasktype.Event{
		{Kind: tasktype.EventEnqueued, Seq: 10, Time: t0},
		{Kind: tasktype.EventRetrying, Seq: 12, Time: t0, Attempt: 1},
		{Kind: tasktype.EventRetried, Seq: 14, Time: t0, Attempt: 2},
	} {
		for _, d := range []delivered{{}, {redelivered: true, perItem: true}, {redelivered: true}} {
			if got := decide(item, read, d, t0.Add(time.Hour), lease); got != actStale {
				t.Errorf("%s item (attempt %d), %+v, after a result read: decide = %d, want stale (%d)", item.Kind, item.Attempt+1, d, got, actStale)
			}
		}
	}
}
