package analytics_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/analytics"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/testsupport"
)

func TestMain(m *testing.M) { testsupport.VerifyNoLeaks(m) }

func TestWeekRange(t *testing.T) {
	london, _ := time.LoadLocation("Europe/London")
	auckland, _ := time.LoadLocation("Pacific/Auckland")
	for _, tc := range []struct {
		name     string
		now      time.Time
		loc      *time.Location
		from, to string
	}{
		{"thursday", time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC), london, "2025-12-08", "2026-12-07"},
		{"monday itself", time.Date(2026, 11, 30, 0, 30, 0, 0, time.UTC), london, "2025-12-08", "2026-12-07"},
		{"sunday night in London", time.Date(2026, 12, 6, 23, 30, 0, 0, time.UTC), london, "2025-12-08", "2026-12-07"},
		// Already Monday in Auckland: the next week is the current one.
		{"monday morning in Auckland", time.Date(2026, 12, 6, 23, 30, 0, 0, time.UTC), auckland, "2025-12-15", "2026-12-14"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from, to := analytics.WeekRange(tc.now, tc.loc)
			if from.Format(time.DateOnly) != tc.from || to.Format(time.DateOnly) != tc.to {
				t.Errorf("WeekRange = %s..%s, want %s..%s", from.Format(time.DateOnly), to.Format(time.DateOnly), tc.from, tc.to)
			}
			if d := to.Sub(from); d != 52*7*24*time.Hour {
				t.Errorf("range is %s, want 52 weeks", d)
			}
		})
	}
}

func TestLocationDefaultsToLondon(t *testing.T) {
	for _, tz := range []string{"", "Mars/Olympus"} {
		if loc, name := analytics.Location(activity.User{Timezone: tz}); name != "Europe/London" || loc.String() != "Europe/London" {
			t.Errorf("zone %q: %s (%s), want Europe/London", tz, name, loc)
		}
	}
	if _, name := analytics.Location(activity.User{Timezone: "America/New_York"}); name != "America/New_York" {
		t.Errorf("own zone: %s", name)
	}
}

// fixture is one activity, inserted as the app writes them.
type fixture struct {
	date, typ, quality string
	hours              float64
	ksbs               []string
}

// newLog creates a user on ST0787 with a seminar target and the
// activities; it returns the user's id.
func newLog(t *testing.T, db *bun.DB, email string, fs ...fixture) int64 {
	t.Helper()
	ctx := t.Context()
	s := activity.NewStore(db)
	if err := s.SeedReference(ctx); err != nil {
		t.Fatal(err)
	}
	u, err := s.EnsureUser(ctx, email)
	if err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`UPDATE app_user SET selected_spec = 'ST0787', seminar_target_hours = 10 WHERE id = ?`, u.ID)
	for _, f := range fs {
		var id int64
		if err := db.QueryRowContext(ctx, `INSERT INTO activity (user_id, title, activity_date, duration_hours, activity_type, evidence_quality)
			VALUES (?, 'a', ?, ?, ?, ?) RETURNING id`, u.ID, f.date, f.hours, f.typ, f.quality).Scan(&id); err != nil {
			t.Fatal(err)
		}
		for _, k := range f.ksbs {
			exec(`INSERT INTO activity_ksbs (activity_id, ksb_code) VALUES (?, ?)`, id, k)
		}
	}
	return u.ID
}

// handLog is a log whose figures are worked out by hand in TestJob.
var handLog = []fixture{
	{"2026-11-30", "training_course", "good", 2, []string{"K1", "K2"}},
	{"2026-12-02", "workshop", "draft", 1.5, []string{"K1"}},
	{"2026-11-20", "self_study", "review_ready", 3, []string{"S1"}},
	{"2026-11-20", "self_study", "draft", 0.5, nil},
	{"2025-01-01", "mentoring", "draft", 4, []string{"K3"}}, // over a year ago
}

// TestJob runs an analytics job through a real task client on embedded
// NATS, with the log in SQLite and PostgreSQL, and checks the stored
// result against figures worked out by hand.
func TestJob(t *testing.T) {
	testsupport.EachDialect(t, func(t *testing.T, db *bun.DB) {
		ctx := testsupport.Context(t)
		uid := newLog(t, db, "ana@example.org", handLog...)
		// Another user's hours count nowhere.
		newLog(t, db, "other@example.org", fixture{"2026-11-30", "workshop", "good", 9, []string{"K4"}})

		broker := jetstreamtest.Broker(t, testsupport.Connect(t, testsupport.NATS(t), "analytics"))
		reg := tasks.NewRegistry()
		now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
		if err := analytics.Register(reg, activity.NewStore(db), func() time.Time { return now }); err != nil {
			t.Fatal(err)
		}
		c, err := tasks.NewClient(tasks.Config{DB: db, Log: broker, Transport: broker, Registry: reg, Logger: testsupport.Logger(t),
			Worker: tasks.WorkerConfig{ShutdownGrace: 10 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		wctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = c.RunWorker(wctx) }()
		t.Cleanup(func() { stop(); <-done })

		job, err := c.Enqueue(ctx, tasktype.EnqueueRequest{Type: analytics.Type, UserID: uid})
		if err != nil {
			t.Fatal(err)
		}
		wait, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		e, err := c.WaitOutcome(wait, uid, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if e.Kind != tasktype.EventSucceeded || e.Result == nil {
			t.Fatalf("job ended %s (%s), result %+v", e.Kind, e.Error, e.Result)
		}
		if e.Summary != "Readiness 16%, 11 hours" || e.Result.Name != "analytics.json" || e.Result.ContentType != "application/json" {
			t.Errorf("summary %q, file %q %q", e.Summary, e.Result.Name, e.Result.ContentType)
		}
		stored, err := c.Open(ctx, e.Result.Object)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(stored)
		stored.Close()
		if err != nil {
			t.Fatal(err)
		}
		var r analytics.Result
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatal(err)
		}
		checkHandFigures(t, r, now)

		var html strings.Builder
		if err := analytics.RenderHTML(ctx, &html, tasktype.Task{ID: job.ID}, strings.NewReader(string(raw))); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"<svg", `<th scope="row">K1 <span class="ksb-title">Systems thinking</span></th><td>2</td><td>3.5</td><td>Yes</td>`,
			`<th scope="row">Seminars</th><td>3.5</td>`, `<th scope="row">2026-W49</th><td>2026-11-30</td><td>3.5</td>`, "<strong>16.4</strong>"} {
			if !strings.Contains(html.String(), want) {
				t.Errorf("page lacks %q", want)
			}
		}
	})
}

// checkHandFigures compares r with handLog's figures as of now.
func checkHandFigures(t *testing.T, r analytics.Result, now time.Time) {
	t.Helper()
	if r.Version != analytics.Version || !r.ComputedAt.Equal(now) || r.Timezone != "Europe/London" || r.Standard != "ST0787" {
		t.Errorf("header: version %d, computed %s, zone %q, standard %q", r.Version, r.ComputedAt, r.Timezone, r.Standard)
	}
	if r.TotalHours != 11 {
		t.Errorf("total %v hours, want 11", r.TotalHours)
	}
	if len(r.Weeks) != 52 || r.Weeks[0].Week != "2025-W50" || r.Weeks[0].Start != "2025-12-08" || r.Weeks[51].Week != "2026-W49" {
		t.Fatalf("weeks: %d, first %+v, last %+v", len(r.Weeks), r.Weeks[0], r.Weeks[len(r.Weeks)-1])
	}
	nonZero := map[string]float64{}
	for _, w := range r.Weeks {
		if w.Hours != 0 {
			nonZero[w.Week] = w.Hours
		}
	}
	if len(nonZero) != 2 || nonZero["2026-W49"] != 3.5 || nonZero["2026-W47"] != 3.5 {
		t.Errorf("weeks with hours: %v, want 2026-W47 and 2026-W49 3.5 each", nonZero)
	}
	wantTypes := []analytics.TypeHours{
		{Type: "self_study", Label: "Self-study", Activities: 2, Hours: 3.5},
		{Type: "training_course", Label: "Training course", Activities: 1, Hours: 2},
		{Type: "workshop", Label: "Workshop", Activities: 1, Hours: 1.5},
		{Type: "mentoring", Label: "Mentoring", Activities: 1, Hours: 4},
	}
	if len(r.Types) != len(wantTypes) {
		t.Fatalf("types %+v", r.Types)
	}
	for i := range wantTypes {
		if r.Types[i] != wantTypes[i] {
			t.Errorf("type %d = %+v, want %+v", i, r.Types[i], wantTypes[i])
		}
	}
	if r.Seminar != (analytics.Seminar{SeminarHours: 3.5, OtherHours: 7.5, TargetHours: 10}) {
		t.Errorf("seminar %+v", r.Seminar)
	}
	// 22 KSBs; K1, K2, K3 and S1 evidenced; K1, K2 and S1 Good or Ready:
	// 60 × 4/22 + 40 × 3/22 = 360/22.
	if r.Readiness != (analytics.Readiness{Score: 16.36, KSBs: 22, Evidenced: 4, Assured: 3}) {
		t.Errorf("readiness %+v", r.Readiness)
	}
	if len(r.KSBs) != 22 || r.KSBs[0] != (analytics.KSB{Code: "K1", Category: "knowledge", Title: "Systems thinking", Activities: 2, Hours: 3.5, Assured: true}) {
		t.Errorf("KSBs: %d, first %+v", len(r.KSBs), r.KSBs[0])
	}
}

func TestUnknownUserFailsForGood(t *testing.T) {
	db, _ := testsupport.DB(t)
	reg := tasks.NewRegistry()
	if err := analytics.Register(reg, activity.NewStore(db), nil); err != nil {
		t.Fatal(err)
	}
	h, _, ok := reg.Lookup(analytics.Type)
	if !ok {
		t.Fatal("analytics not registered")
	}
	_, err := h(t.Context(), tasktype.Job{ID: "j1", Type: analytics.Type, UserID: 4242}, discardOutput{})
	if !errors.Is(err, activity.ErrNotFound) || !tasktype.IsPermanent(err) {
		t.Fatalf("analytics of a user the log lacks: %v, want a permanent error wrapping activity.ErrNotFound", err)
	}
}

// TestHandlerReportsProgress runs the handler itself: through a worker a
// job this quick ends before its first heartbeat carries any progress.
func TestHandlerReportsProgress(t *testing.T) {
	db, _ := testsupport.DB(t)
	uid := newLog(t, db, "ana@example.org", handLog...)
	reg := tasks.NewRegistry()
	if err := analytics.Register(reg, activity.NewStore(db), nil); err != nil {
		t.Fatal(err)
	}
	h, policy, _ := reg.Lookup(analytics.Type)
	if policy.MaxAttempts < 2 {
		t.Errorf("policy %+v: a failed query deserves another attempt", policy)
	}
	out := &recordingOutput{}
	if _, err := h(t.Context(), tasktype.Job{ID: "j1", Type: analytics.Type, UserID: uid}, out); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(out.progress, " | "); got != "0 Reading your activity log | 70 Computing the figures | 100 Done" {
		t.Errorf("progress %q", got)
	}
	var r analytics.Result
	if err := json.Unmarshal([]byte(out.buf.String()), &r); err != nil || r.Readiness.Evidenced != 4 {
		t.Errorf("result %+v, %v", r.Readiness, err)
	}
}

// recordingOutput keeps what a handler writes.
type recordingOutput struct {
	buf      strings.Builder
	progress []string
}

func (o *recordingOutput) Progress(p int, m string) {
	o.progress = append(o.progress, strconv.Itoa(p)+" "+m)
}
func (o *recordingOutput) Create(string, string) (io.Writer, error) { return &o.buf, nil }

type discardOutput struct{}

func (discardOutput) Progress(int, string)                     {}
func (discardOutput) Create(string, string) (io.Writer, error) { return io.Discard, nil }
