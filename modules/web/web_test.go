package web_test

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/modules/web"
	"github.com/otjhelper/otj/platform/natsserver"
	"github.com/otjhelper/otj/platform/testsupport"
)

func TestMain(m *testing.M) {
	testsupport.VerifyNoLeaks(m)
}

// fakeEnqueuer records what it was asked to enqueue.
type fakeEnqueuer struct {
	mu    sync.Mutex
	calls []tasktype.EnqueueRequest
	err   error
	// takes makes each enqueue last this long whatever its context, as
	// one that runs the job in the request (the Redis fallback) does.
	takes time.Duration
}

func (f *fakeEnqueuer) Enqueue(_ context.Context, r tasktype.EnqueueRequest) (tasktype.Job, error) {
	time.Sleep(f.takes)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return tasktype.Job{}, f.err
	}
	f.calls = append(f.calls, r)
	return tasktype.Job{ID: "job1", Type: r.Type, UserID: r.UserID}, nil
}

// fakeControl records the cancels and retries it is asked for and
// answers each with err, or with an event at sequence 1.
type fakeControl struct {
	mu    sync.Mutex
	calls []controlCall
	err   error
	// hang makes each call wait for its context to end, as a broker that
	// never answers would.
	hang bool
}

type controlCall struct {
	Op     string
	UserID int64
	JobID  string
	By     string
}

func (f *fakeControl) Cancel(ctx context.Context, userID int64, jobID, by string) (tasktype.Event, error) {
	return f.do(ctx, controlCall{"cancel", userID, jobID, by}, tasktype.EventCancelled)
}

func (f *fakeControl) Retry(ctx context.Context, userID int64, jobID, by string) (tasktype.Event, error) {
	return f.do(ctx, controlCall{"retry", userID, jobID, by}, tasktype.EventRetried)
}

func (f *fakeControl) do(ctx context.Context, c controlCall, kind tasktype.EventKind) (tasktype.Event, error) {
	f.mu.Lock()
	f.calls = append(f.calls, c)
	hang, err := f.hang, f.err
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return tasktype.Event{}, fmt.Errorf("%s task %s: %w", c.Op, c.JobID, ctx.Err())
	}
	if err != nil {
		return tasktype.Event{}, err
	}
	return tasktype.Event{Kind: kind, JobID: c.JobID, UserID: c.UserID, By: c.By, Seq: 1}, nil
}

func (f *fakeControl) Calls() []controlCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// fakeHistory serves fixed event histories, each visible to its owner
// only, as the broker's History is.
type fakeHistory struct {
	events []tasktype.Event // of any number of jobs, in stream order
	err    error
}

func (f *fakeHistory) History(_ context.Context, userID int64, jobID string) ([]tasktype.Event, error) {
	if f.err != nil {
		return nil, f.err
	}
	var h []tasktype.Event
	for _, e := range f.events {
		if e.JobID == jobID && e.UserID == userID {
			h = append(h, e)
		}
	}
	if len(h) == 0 {
		return nil, fmt.Errorf("history of job %s: %w", jobID, tasktype.ErrNotFound)
	}
	return h, nil
}

// fakeTasks is a TaskReader over fixed rows.
type fakeTasks struct{ rows []tasktype.Task }

func (f *fakeTasks) ListForUser(_ context.Context, userID int64, limit int) ([]tasktype.Task, error) {
	var out []tasktype.Task
	for _, r := range f.rows {
		if r.UserID == userID && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, nil
}

func (f *fakeTasks) List(_ context.Context, fl tasktype.Filter) ([]tasktype.Task, error) {
	var out []tasktype.Task
	for _, r := range f.rows {
		if (fl.UserID == 0 || r.UserID == fl.UserID) && (fl.Type == "" || r.TaskType == fl.Type) && (fl.Limit == 0 || len(out) < fl.Limit) {
			out = append(out, r)
		}
	}
	return out, nil
}

func (f *fakeTasks) GetForUser(_ context.Context, userID int64, id string) (tasktype.Task, error) {
	for _, r := range f.rows {
		if r.ID == id && r.UserID == userID {
			return r, nil
		}
	}
	return tasktype.Task{}, fmt.Errorf("task %s: %w", id, tasktype.ErrNotFound)
}

func (f *fakeTasks) NewerResults(_ context.Context, userID int64, typ, id string, completed time.Time) (int, error) {
	n := 0
	for _, r := range f.rows {
		if r.UserID == userID && r.TaskType == typ && r.HasResult() && (r.CompletedAt.After(completed) || r.CompletedAt.Equal(completed) && r.ID > id) {
			n++
		}
	}
	return n, nil
}

// noResults is a ResultOpener with nothing stored.
type noResults struct{}

func (noResults) Open(context.Context, string) (*tasktype.StoredResult, error) {
	return nil, errors.New("no results in this test")
}

type fixture struct {
	srv        *httptest.Server
	db         *bun.DB
	users      *activity.Store
	alice, bob activity.User
	// broker and proj are the real broker and the web side's task client
	// (which runs the projection) behind a liveFixture, nil otherwise.
	broker *jetstream.Broker
	proj   *tasks.Client
	// hs is the app's own server behind srv; nats the live fixture's
	// NATS server.
	hs   *http.Server
	nats *natsserver.Server
}

func (f *fixture) client(t *testing.T, u activity.User) *http.Client {
	return testsupport.Client(t, f.srv.URL, testsupport.Signer(t), u.ID)
}

// reportType and reportLabel are the report's job type and its label as
// the fixture configures them, in the place of internal/app's reports.FullReport
// and its label: a name of the tests' own, so that a web module naming
// the report's job type itself would fail them.
const (
	reportType  = "test_report"
	reportLabel = "Full report (CSV)"
)

// reportKinds offers the tests' report as the app offers the real one.
var reportKinds = []web.TaskKind{{
	Type: reportType, Label: reportLabel, Noun: "report",
	Start: &web.StartButton{Path: "generate-report", Label: "Generate Full Report"},
}}

// Job types come from the configuration: a web offering none refuses to
// start, saying what is missing.
func TestConfigNeedsKinds(t *testing.T) {
	db, _ := testsupport.DB(t)
	store := activity.NewStore(db)
	_, err := web.New(web.Config{
		Tasks: &fakeTasks{}, Enqueuer: &fakeEnqueuer{}, Control: &fakeControl{}, History: &fakeHistory{},
		Results: noResults{}, Users: store, Activities: store, Sessions: testsupport.Signer(t),
	})
	if err == nil || !strings.Contains(err.Error(), "at least one kind must have a Start button") {
		t.Fatalf("web.New without Kinds: %v", err)
	}
}

// newFixture serves the web module over a real temp database, with the
// given enqueuer and results. Control and History default to fakes that
// know no task.
func newFixture(t *testing.T, cfg web.Config) *fixture {
	t.Helper()
	db, _ := testsupport.DB(t)
	return newFixtureOn(t, db, cfg)
}

func newFixtureOn(t *testing.T, db *bun.DB, cfg web.Config) *fixture {
	t.Helper()
	store := activity.NewStore(db)
	ctx := testsupport.Context(t)
	if err := store.SeedReference(ctx); err != nil {
		t.Fatal(err)
	}
	alice, err := store.EnsureUser(ctx, "alice@example.org")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := store.EnsureUser(ctx, "bob@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Tasks == nil {
		cfg.Tasks = readTasks(t, db)
	}
	if cfg.Results == nil {
		cfg.Results = noResults{}
	}
	if cfg.Control == nil {
		cfg.Control = &fakeControl{err: tasktype.ErrNotFound}
	}
	if cfg.History == nil {
		cfg.History = &fakeHistory{}
	}
	cfg.Users, cfg.Activities = store, store
	if cfg.Kinds == nil {
		cfg.Kinds = reportKinds
	}
	if cfg.Sessions == nil {
		cfg.Sessions = testsupport.Signer(t)
	}
	cfg.Logger = testsupport.Logger(t)
	srv := httptest.NewUnstartedServer(nil)
	if cfg.OIDC != nil && cfg.OIDC.RedirectURL == "" {
		// The callback is on the test server, whose address is known now.
		cfg.OIDC.RedirectURL = "http://" + srv.Listener.Addr().String() + "/auth/callback"
	}
	// The app's own server, timeouts and all.
	hs, err := web.NewServer(cfg)
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	srv.Config = hs
	srv.Start()
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, db: db, users: store, alice: alice, bob: bob, hs: hs}
}

func getBody(t *testing.T, c *http.Client, u string) (int, string) {
	resp, body := testsupport.Get(t, c, u)
	return resp.StatusCode, body
}

func post(t *testing.T, c *http.Client, u string, form url.Values, hdr map[string]string) *http.Response {
	var pairs []string
	for k, v := range hdr {
		pairs = append(pairs, k, v)
	}
	resp, _ := testsupport.PostForm(t, c, u, form, pairs...)
	return resp
}

// The seed's test_task_list_accessible.
func TestTaskListAccessible(t *testing.T) {
	f := newFixture(t, web.Config{Enqueuer: &fakeEnqueuer{}})
	code, body := getBody(t, f.client(t, f.alice), f.srv.URL+"/tasks/")
	if code != http.StatusOK {
		t.Fatalf("GET /tasks/ = %d", code)
	}
	if !strings.Contains(body, "Generate Full Report") || strings.Contains(body, `http-equiv="refresh"`) {
		t.Errorf("page without the button, or refreshing with no active task:\n%s", body)
	}
}

// The seed's test_generate_report_enqueues.
func TestGenerateReportEnqueues(t *testing.T) {
	enq := &fakeEnqueuer{}
	f := newFixture(t, web.Config{Enqueuer: enq})
	resp := post(t, f.client(t, f.alice), f.srv.URL+"/tasks/generate-report", url.Values{"key": {"K1"}}, nil)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/tasks/") {
		t.Fatalf("POST = %d to %q, want 303 to /tasks/", resp.StatusCode, resp.Header.Get("Location"))
	}
	want := []tasktype.EnqueueRequest{{Type: reportType, UserID: f.alice.ID, Key: "K1"}}
	if len(enq.calls) != 1 || enq.calls[0].Type != want[0].Type || enq.calls[0].UserID != want[0].UserID || enq.calls[0].Key != "K1" {
		t.Fatalf("enqueued %+v, want %+v", enq.calls, want)
	}
}

func TestBadRequestsChangeNothing(t *testing.T) {
	enq := &fakeEnqueuer{}
	f := newFixture(t, web.Config{Enqueuer: enq})
	c := f.client(t, f.alice)
	tests := []struct {
		name   string
		do     func() int
		status int
	}{
		{"malformed key", func() int {
			return post(t, c, f.srv.URL+"/tasks/generate-report", url.Values{"key": {"<script>"}}, nil).StatusCode
		}, http.StatusBadRequest},
		{"malformed form body", func() int {
			req, _ := http.NewRequest("POST", f.srv.URL+"/tasks/generate-report", strings.NewReader("%zz"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}, http.StatusBadRequest},
		{"cross-site post", func() int {
			return post(t, c, f.srv.URL+"/tasks/generate-report", url.Values{"key": {"K2"}}, map[string]string{"Sec-Fetch-Site": "cross-site"}).StatusCode
		}, http.StatusForbidden},
		{"foreign origin post", func() int {
			return post(t, c, f.srv.URL+"/tasks/generate-report", url.Values{"key": {"K3"}}, map[string]string{"Origin": "https://evil.example"}).StatusCode
		}, http.StatusForbidden},
		{"unknown task download", func() int { code, _ := getBody(t, c, f.srv.URL+"/tasks/nosuchjob/download"); return code }, http.StatusNotFound},
		{"bad page number", func() int { code, _ := getBody(t, c, f.srv.URL+"/activities?page=abc"); return code }, http.StatusBadRequest},
		{"zero page number", func() int { code, _ := getBody(t, c, f.srv.URL+"/activities?page=0"); return code }, http.StatusBadRequest},
		{"unknown path", func() int { code, _ := getBody(t, c, f.srv.URL+"/nope"); return code }, http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.do(); got != tt.status {
				t.Fatalf("status %d, want %d", got, tt.status)
			}
		})
	}
	if len(enq.calls) != 0 {
		t.Fatalf("bad requests enqueued %+v", enq.calls)
	}
}

func TestBrokerDownIs503WithMessage(t *testing.T) {
	enq := &fakeEnqueuer{err: errors.Join(tasktype.ErrUnavailable, errors.New("nats: connection closed"))}
	f := newFixture(t, web.Config{Enqueuer: enq})
	resp, body := testsupport.PostForm(t, f.client(t, f.alice), f.srv.URL+"/tasks/generate-report", url.Values{"key": {"K9"}})
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "no report was started") {
		t.Fatalf("status %d body %s", resp.StatusCode, body)
	}
	if strings.Contains(body, "connection closed") {
		t.Error("internal error text shown to the user")
	}
}

func TestNotSignedInShowsHowToSignIn(t *testing.T) {
	f := newFixture(t, web.Config{Enqueuer: &fakeEnqueuer{}})
	code, body := getBody(t, http.DefaultClient, f.srv.URL+"/tasks/")
	if code != http.StatusUnauthorized || !strings.Contains(body, "DEV_AUTO_LOGIN_EMAIL") {
		t.Fatalf("status %d body %s", code, body)
	}
}

func TestDevAutoLoginCreatesUser(t *testing.T) {
	f := newFixture(t, web.Config{Enqueuer: &fakeEnqueuer{}, DevAutoLoginEmail: "New.Apprentice@Example.org"})
	code, body := getBody(t, http.DefaultClient, f.srv.URL+"/tasks/")
	if code != http.StatusOK || !strings.Contains(body, "new.apprentice@example.org") {
		t.Fatalf("status %d body %s", code, body)
	}
}

func TestHealth(t *testing.T) {
	down := errors.New("connection refused")
	tests := []struct {
		name   string
		checks []web.HealthCheck
		status int
		want   string
	}{
		{"all up", []web.HealthCheck{{Name: "database", Check: func(context.Context) error { return nil }}, {Name: "nats", Check: func(context.Context) error { return nil }}}, 200, `"nats":"ok"`},
		{"nats down", []web.HealthCheck{{Name: "database", Check: func(context.Context) error { return nil }}, {Name: "nats", Check: func(context.Context) error { return down }}}, 503, `"nats":"down: connection refused"`},
		{"redis down", []web.HealthCheck{{Name: "nats", Check: func(context.Context) error { return nil }}, {Name: "redis", Degraded: true, Check: func(context.Context) error { return down }}}, 200, `"redis":"degraded: connection refused","status":"degraded"`},
		{"redis and nats down", []web.HealthCheck{{Name: "nats", Check: func(context.Context) error { return down }}, {Name: "redis", Degraded: true, Check: func(context.Context) error { return down }}}, 503, `"redis":"degraded: connection refused","status":"unavailable"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, web.Config{Enqueuer: &fakeEnqueuer{}, Health: tt.checks})
			code, body := getBody(t, http.DefaultClient, f.srv.URL+"/healthz")
			if code != tt.status || !strings.Contains(body, tt.want) {
				t.Fatalf("status %d body %s", code, body)
			}
		})
	}
}

// liveFixture is the web module over the real JetStream path: broker,
// worker, projection, control and object store on an embedded server.
// concurrency is the worker's (0: its default); register adds the job
// types the test needs, with their policies.
func liveFixture(t *testing.T, concurrency int, register func(*tasks.Registry) error) *fixture {
	t.Helper()
	return liveFixtureWith(t, liveOptions{concurrency: concurrency, register: register})
}

// liveOptions are the settings a live fixture's test needs beyond the
// defaults.
type liveOptions struct {
	concurrency int
	register    func(*tasks.Registry) error
	// broker is the settings of both sides' brokers; Conn is filled in.
	broker jetstream.Config
	// worker and web change the worker's and the web module's settings
	// once the fixture has filled them in.
	worker func(*tasks.Config)
	web    func(*web.Config)
	// db is the database, or nil for testsupport.DB's.
	db *bun.DB
}

func liveFixtureWith(t *testing.T, o liveOptions) *fixture {
	t.Helper()
	srv := testsupport.NATS(t)
	webSide := jetstreamtest.BrokerWith(t, testsupport.Connect(t, srv, "web"), o.broker)
	workerSide := jetstreamtest.BrokerWith(t, testsupport.Connect(t, srv, "worker"), o.broker)
	db := o.db
	if db == nil {
		db, _ = testsupport.DB(t)
	}
	// Both sides know the job types, as the app's web and worker do.
	reg := tasks.NewRegistry()
	if err := o.register(reg); err != nil {
		t.Fatal(err)
	}
	proj, err := tasks.NewClient(tasks.Config{DB: db, Log: webSide, Transport: webSide, Registry: reg, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	testsupport.Go(t, func(ctx context.Context) { proj.RunProjection(ctx) })
	wc := tasks.Config{
		DB: db, Log: workerSide, Transport: workerSide, Registry: reg, Logger: testsupport.Logger(t),
		Worker: tasks.WorkerConfig{
			Concurrency: o.concurrency, Name: testWorker,
			// A test that fails with a handler still blocked ends in
			// 2s, not the default 20.
			ShutdownGrace: 2 * time.Second,
		},
	}
	if o.worker != nil {
		o.worker(&wc)
	}
	w, err := tasks.NewClient(wc)
	if err != nil {
		t.Fatal(err)
	}
	testsupport.Go(t, func(ctx context.Context) { w.RunWorker(ctx) })
	cfg := web.Config{
		Tasks: proj, Enqueuer: proj, Results: proj, Projection: proj,
		Control: proj, History: proj,
	}
	if o.web != nil {
		o.web(&cfg)
	}
	f := newFixtureOn(t, db, cfg)
	f.broker, f.proj, f.nats = webSide, proj, srv
	return f
}

// testWorker names the live fixture's worker in events.
const testWorker = "web-test-worker"

var keyRE = regexp.MustCompile(`name="key" value="([^"]+)"`)

// A failure shows its owner a plain sentence, never the error chain,
// which is for operators: the handler's own sentence if it gave one
// (tasktype.UserMessage), otherwise one for the task's state.
func TestFailingHandlerShowsPlainSentence(t *testing.T) {
	testsupport.EachDialect(t, func(t *testing.T, db *bun.DB) {
		const internal = "activity log unreadable: disk I/O error"
		f := liveFixtureWith(t, liveOptions{db: db, register: func(r *tasks.Registry) error {
			return r.Register(reportType, func(_ context.Context, job tasktype.Job, _ tasktype.Output) (tasktype.Result, error) {
				if job.Payload != nil {
					return tasktype.Result{}, tasktype.UserMessage(errors.New(internal), "Your activity log could not be read.")
				}
				return tasktype.Result{}, errors.New(internal)
			}, tasktype.Policy{MaxAttempts: 1})
		}})
		c := f.client(t, f.alice)
		_, page := getBody(t, c, f.srv.URL+"/tasks/")
		key := keyRE.FindStringSubmatch(page)[1]
		if resp := post(t, c, f.srv.URL+"/tasks/generate-report", url.Values{"key": {key}}, nil); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("POST = %d", resp.StatusCode)
		}
		testsupport.Eventually(t, 20*time.Second, "task never failed on the list", func() bool {
			_, page = getBody(t, c, f.srv.URL+"/tasks/")
			return strings.Contains(page, "badge-failed")
		})
		if strings.Contains(page, internal) || !strings.Contains(page, html.EscapeString(tasktype.FailureMessage(tasktype.StatusFailed))) {
			t.Fatalf("list shows the error, or not the sentence for failed tasks:\n%s", page)
		}
		if strings.Contains(page, `http-equiv="refresh"`) {
			t.Error("page still refreshing with no active task")
		}

		// With a sentence of the handler's own, on the list and the task page.
		job, err := f.broker.Enqueue(testsupport.Context(t), tasktype.EnqueueRequest{Type: reportType, UserID: f.alice.ID, Payload: []byte(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		taskPage := waitForStatus(t, f, c, "/tasks/"+job.ID, tasktype.StatusFailed)
		// The task page may show the task from its events before the
		// projection has it (see loadTask); the list shows only the
		// projection's rows, so it is waited for too.
		testsupport.Eventually(t, 20*time.Second, "task never failed on the list", func() bool {
			_, page = getBody(t, c, f.srv.URL+"/tasks/")
			return strings.Contains(page, "task-"+job.ID) && !strings.Contains(page, "badge-pending")
		})
		for name, p := range map[string]string{"task page": taskPage, "list": page} {
			if strings.Contains(p, internal) || !strings.Contains(p, "Your activity log could not be read.") {
				t.Errorf("%s shows the error, or not the handler's sentence:\n%s", name, p)
			}
		}
	})
}

// readTasks reads db's task_result.
func readTasks(t testing.TB, db *bun.DB) *tasks.Reader {
	t.Helper()
	return tasks.NewReader(db)
}
