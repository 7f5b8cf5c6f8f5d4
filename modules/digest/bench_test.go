package digest

import (
	"context"
	"net/mail"
	"path/filepath"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

// BenchmarkDigestOneUser is one user's digest, from the queries to the
// .eml in the outbox, on a demo log of 10,000 activities (18 months).
// Each run's claim is dropped before the next, untimed, so that each
// sends.
func BenchmarkDigestOneUser(b *testing.B) {
	db, _ := testsupport.DB(b)
	ctx := testsupport.Context(b)
	store := activity.NewStore(db)
	if err := store.SeedReference(ctx); err != nil {
		b.Fatal(err)
	}
	u, err := activity.Fill(ctx, db, activity.DemoOptions{Email: "bench@example.org", Activities: 10_000, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	j := &job{cfg: Config{Source: store, DB: db, Sender: Outbox{Dir: filepath.Join(b.TempDir(), "outbox")}, Now: time.Now},
		from: &mail.Address{Address: "digest@example.org"}, sent: sentLog{db: db}}
	tj := tasktype.Job{ID: "bench", Type: WeeklyDigest, UserID: u.ID, EnqueuedAt: time.Now()}
	week := WeekOf(time.Now().In(userLocation(u.Timezone))).String()
	b.ReportAllocs()
	for b.Loop() {
		res, err := j.run(ctx, tj, discardOutput{})
		if err != nil || res.Summary == "" {
			b.Fatal(res, err)
		}
		b.StopTimer()
		if _, err := db.ExecContext(ctx, `DELETE FROM digest_sent WHERE user_id = ? AND week = ?`, u.ID, week); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkFanOut1000 is one scheduled fan-out to 1,000 users: 1,000
// digest jobs enqueued on embedded JetStream in batches, each run for a
// week of its own (a repeated week would dedupe).
func BenchmarkFanOut1000(b *testing.B) {
	srv := testsupport.NATS(b)
	broker := jetstreamtest.Broker(b, testsupport.Connect(b, srv, "bench"))
	db, _ := testsupport.DB(b)
	c, err := tasks.NewClient(tasks.Config{DB: db, Log: broker, Transport: broker, Logger: testsupport.Logger(b)})
	if err != nil {
		b.Fatal(err)
	}
	users := make([]int64, 1000)
	for i := range users {
		users[i] = int64(i + 1)
	}
	// fanOut alone: the lease is not what is measured.
	s := &Scheduler{cfg: SchedulerConfig{
		Users:   func(context.Context) ([]int64, error) { return users, nil },
		Enqueue: c.EnqueueBatch}}
	week, _ := ParseWeek("2027-W01")
	ctx := testsupport.Context(b)
	for b.Loop() {
		if n, err := s.fanOut(ctx, week); err != nil || n != 1000 {
			b.Fatal(n, err)
		}
		week = week.Next()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/job")
}
