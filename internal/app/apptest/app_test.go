package apptest

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"github.com/otjhelper/otj/internal/app"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/uptrace/bun"

	"github.com/redis/go-redis/v9"

	natsroles "github.com/otjhelper/otj/deploy/nats"
	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/reports"
	"github.com/otjhelper/otj/platform/database"
	"github.com/otjhelper/otj/platform/natsconn"
	"github.com/otjhelper/otj/platform/natsserver"
	"github.com/otjhelper/otj/platform/testsupport"
)

func TestMain(m *testing.M) {
	redis.SetLogger(quietRedis{}) // as main does
	// Re-exec'd by tests that need the app as a real OS process.
	if os.Getenv(runMainEnv) == "1" {
		os.Exit(app.Main(testOptions()))
	}
	testsupport.VerifyNoLeaks(m)
}

// testOptions are the program's options in the test binary: workers of
// apps run by the tests, in this process or re-exec'd, also run the test
// job types.
func testOptions() app.Options { return app.Options{ExtraJobs: registerTestJobs} }

// run is the program as the tests drive it in this process, with
// testOptions.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return app.Run(ctx, testOptions(), args, getenv, stdout, stderr)
}

// runMainEnv makes the test binary run main() instead of the tests.
const runMainEnv = "OTJ_TEST_RUN_MAIN"

// proc is one app command running in this test process, with its own
// NATS connections, as a separate OS process would have.
type proc struct {
	stop   context.CancelFunc
	done   chan struct{} // closed when run has returned, with err set
	err    error
	stdout *testsupport.Buffer
	logs   *testsupport.Buffer
	dir    string // its OTJ_DATA_DIR
}

func startApp(t *testing.T, env map[string]string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &proc{stop: cancel, done: make(chan struct{}), stdout: &testsupport.Buffer{}, logs: &testsupport.Buffer{}, dir: env["OTJ_DATA_DIR"]}
	logs := io.MultiWriter(&tLogWriter{t: t, prefix: args[0]}, p.logs)
	go func() {
		defer close(p.done)
		p.err = run(ctx, args, mapEnv(env), p.stdout, logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-p.done:
		case <-time.After(60 * time.Second):
			t.Errorf("app %s did not stop within 60s", args[0])
		}
	})
	return p
}

// waitOutput waits for re to match the process's stdout and returns the
// first submatch.
func (p *proc) waitOutput(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	var m []string
	testsupport.Eventually(t, 30*time.Second, "no output matching "+re.String(), func() bool {
		select {
		case <-p.done:
			t.Fatalf("app exited early: %v", p.err)
		default:
		}
		m = re.FindStringSubmatch(p.stdout.String())
		return m != nil
	})
	return m[1]
}

// shutdown stops the process as SIGTERM would and checks it ended cleanly.
func (p *proc) shutdown(t *testing.T) {
	t.Helper()
	p.stop()
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("app ended with %v", p.err)
		}
	case <-time.After(45 * time.Second):
		t.Fatal("app did not shut down within 45s")
	}
}

type tLogWriter struct {
	t      *testing.T
	prefix string
}

func (w *tLogWriter) Write(p []byte) (int, error) {
	w.t.Logf("[%s] %s", w.prefix, strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func mapEnv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// baseEnv is the settings of an app process on a fresh data dir. With
// OTJ_TEST_DIALECT=postgres it has a fresh DATABASE_URL too, so that the
// suite runs on PostgreSQL.
func baseEnv(t *testing.T) map[string]string {
	env := map[string]string{
		"OTJ_DATA_DIR": t.TempDir(),
		"PORT":         "0",
		"NATS_LISTEN":  "127.0.0.1:0",
		"SECRET_KEY":   testsupport.TestSecretKey,
		// The weekly schedule would catch up at start and add digest
		// tasks to lists other tests count; its tests turn it on.
		"DIGEST_SCHEDULE": "off",
	}
	if u := testsupport.AppDatabaseURL(t); u != "" {
		usePostgres(t, env, u)
	}
	return env
}

// appDatabases maps a test's data dir to the DATABASE_URL its processes
// were given, so that dataDB opens the database they use.
var appDatabases sync.Map

// usePostgres gives env's processes the PostgreSQL database at u.
func usePostgres(t *testing.T, env map[string]string, u string) {
	env["DATABASE_URL"] = u
	appDatabases.Store(env["OTJ_DATA_DIR"], u)
	t.Cleanup(func() { appDatabases.Delete(env["OTJ_DATA_DIR"]) })
}

var (
	runningRE = regexp.MustCompile(`running at (http://\S+)/tasks/`)
	joinRE    = regexp.MustCompile(`NATS_URL=(\S+) NATS_TOKEN=(\S+) .*app worker`)
	keyRE     = regexp.MustCompile(`name="key" value="([^"]+)"`)
)

// natsJoin is where a test's processes and clients find a NATS server,
// and the token it requires: what app web's join line prints, or a test
// server of testsupport's. WebToken, for app web's embedded server, is
// the web role's token from its data dir: what the test's own clients
// present, as they enqueue and read as the web side does; the join
// line's Token is a worker's.
type natsJoin struct{ URL, Token, User, Password, WebToken string }

// join parses a join line matched by joinRE.
func join(m []string) natsJoin { return natsJoin{URL: m[1], Token: m[2]} }

// waitJoin waits for app web's join line.
func (p *proc) waitJoin(t *testing.T) natsJoin {
	t.Helper()
	p.waitOutput(t, joinRE)
	return join(joinRE.FindStringSubmatch(p.stdout.String())).withWebToken(t, p.dir)
}

// waitJoin waits for app web's join line.
func (p *appProcess) waitJoin(t *testing.T) natsJoin {
	t.Helper()
	p.waitStdout(t, joinRE)
	return join(joinRE.FindStringSubmatch(p.stdout.String())).withWebToken(t, p.dir)
}

// withWebToken adds the web role's token kept in app web's data dir.
func (j natsJoin) withWebToken(t *testing.T, dir string) natsJoin {
	t.Helper()
	token, err := natsserver.ReadToken(filepath.Join(dir, roleTokenFiles[natsroles.Web]))
	if err != nil {
		t.Fatalf("app web's web token: %v", err)
	}
	j.WebToken = token
	return j
}

// env is the settings of a process that joins: NATS_URL and NATS_TOKEN.
func (j natsJoin) env() map[string]string {
	return map[string]string{"NATS_URL": j.URL, "NATS_TOKEN": j.Token}
}

// connect opens a connection to j as another process would, closed when
// the test ends.
func (j natsJoin) connect(t *testing.T, name string) *nats.Conn {
	t.Helper()
	token := j.Token
	if j.WebToken != "" {
		token = j.WebToken
	}
	nc, err := natsconn.Connect(natsconn.Options{URL: j.URL, Token: token, User: j.User, Password: j.Password, Name: name, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatalf("connect %s to %s: %v", name, j.URL, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// activityFixture is one activity to insert and the report row it must give.
type activityFixture struct {
	date, title, typ, quality, desc, notes string
	hours                                  float64
	tags, ksbs, links                      []string
	want                                   []string
}

// dataDB opens the data dir's database beside the running app, closed
// when the test ends.
func dataDB(t *testing.T, dataDir string) *bun.DB {
	t.Helper()
	sqlitePath, pgURL := filepath.Join(dataDir, database.FileName), ""
	if u, ok := appDatabases.Load(dataDir); ok {
		pgURL = u.(string)
	}
	db, err := database.OpenEither(testsupport.Context(t), pgURL, sqlitePath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func insertActivities(t *testing.T, dataDir string, userID int64, acts []activityFixture) {
	t.Helper()
	ctx := testsupport.Context(t)
	db := dataDB(t, dataDir)
	for _, a := range acts {
		var id int64
		err := db.NewRaw(`INSERT INTO activity (user_id, title, description, activity_date, duration_hours, activity_type, evidence_quality, notes)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`, userID, a.title, a.desc, a.date, a.hours, a.typ, a.quality, a.notes).Scan(ctx, &id)
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range a.tags {
			if _, err := db.NewRaw(`INSERT INTO tag (user_id, name) VALUES (?, ?) ON CONFLICT DO NOTHING`, userID, tag).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := db.NewRaw(`INSERT INTO activity_tags (activity_id, tag_id) SELECT ?, id FROM tag WHERE user_id = ? AND name = ?`, id, userID, tag).Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range a.ksbs {
			if _, err := db.NewRaw(`INSERT INTO activity_ksbs (activity_id, ksb_code) VALUES (?, ?)`, id, k).Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
		for _, l := range a.links {
			if _, err := db.NewRaw(`INSERT INTO resource_link (activity_id, url) VALUES (?, ?)`, id, l).Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func ensureUser(t *testing.T, dataDir, email string) activity.User {
	t.Helper()
	ctx := testsupport.Context(t)
	u, err := activity.NewStore(dataDB(t, dataDir)).EnsureUser(ctx, email)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestFullReportEndToEnd drives the real path: app web (embedded NATS
// listening for workers) and app worker (its own NATS connection) over
// one data dir; an HTTP POST, JetStream, the worker, the events, the
// projection, the object store and the HTTP download.
// With TASKS_BROKER=redis the jobs go through a real Redis, the events
// still through JetStream.
//
// On PostgreSQL (DATABASE_URL) the worker runs as on another host: its
// OTJ_DATA_DIR cannot be created (a path under a file), and it has only
// DATABASE_URL, NATS_URL and NATS_TOKEN to go on.
func TestFullReportEndToEnd(t *testing.T) {
	t.Run("jetstream", func(t *testing.T) { fullReportEndToEnd(t, baseEnv(t)) })
	t.Run("redis", func(t *testing.T) { fullReportEndToEnd(t, redisEnv(t)) })
	t.Run("postgres", func(t *testing.T) {
		env := baseEnv(t)
		usePostgres(t, env, testsupport.PostgresURL(t))
		fullReportEndToEnd(t, env)
	})
}

// redisEnv is baseEnv with the Redis broker.
func redisEnv(t *testing.T) map[string]string {
	t.Helper()
	env := baseEnv(t)
	maps.Copy(env, redisSettings(t))
	return env
}

// redisSettings select the Redis broker on the test Redis, under a key
// prefix of the test's own.
func redisSettings(t *testing.T) map[string]string {
	t.Helper()
	_, prefix := testsupport.Redis(t)
	return map[string]string{"TASKS_BROKER": "redis", "REDIS_URL": testsupport.RedisURL(t), "REDIS_KEY_PREFIX": prefix}
}

// eachBroker runs test with the jobs on JetStream, then on Redis (the
// events on JetStream both times), passing the settings that choose the
// broker, to add to each process's environment.
func eachBroker(t *testing.T, test func(t *testing.T, broker map[string]string)) {
	t.Run("jetstream", func(t *testing.T) { test(t, map[string]string{}) })
	t.Run("redis", func(t *testing.T) { test(t, redisSettings(t)) })
}

func fullReportEndToEnd(t *testing.T, env map[string]string) {
	webProc := startApp(t, env, "web")
	base := webProc.waitOutput(t, runningRE)
	natsURL := webProc.waitOutput(t, joinRE)

	workerEnv := map[string]string{"NATS_URL": natsURL}
	for k, v := range env {
		workerEnv[k] = v
	}
	workerEnv["NATS_URL"] = natsURL
	var workerDir string
	if env["DATABASE_URL"] != "" {
		// No data dir for the worker: nothing it needs lives there.
		file := filepath.Join(t.TempDir(), "not-a-dir")
		if err := os.WriteFile(file, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		workerDir = filepath.Join(file, "data")
		workerEnv["OTJ_DATA_DIR"] = workerDir
		workerEnv["NATS_TOKEN"] = webProc.waitJoin(t).Token
	}
	workerProc := startApp(t, workerEnv, "worker")
	reportFlow(t, env["OTJ_DATA_DIR"], base)
	workerProc.shutdown(t)
	webProc.shutdown(t)
	if workerDir != "" {
		if _, err := os.Stat(workerDir); !errors.Is(err, syscall.ENOTDIR) && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the worker's data dir: %v, want none", err)
		}
	}
}

// reportFlow drives a report through app web at base and the workers
// behind it, on the data dir dataDir: the user's POST, the list, the
// download and its CSV, isolation between users, and the health check.
// It returns the job's id and the downloaded file.
func reportFlow(t *testing.T, dataDir, base string) (jobID, file string) {
	env := map[string]string{"OTJ_DATA_DIR": dataDir}
	alice := ensureUser(t, env["OTJ_DATA_DIR"], "alice@example.org")
	bob := ensureUser(t, env["OTJ_DATA_DIR"], "bob@example.org")
	acts := []activityFixture{
		{date: "2026-02-01", title: "=HYPERLINK(\"http://evil.example\",\"click\")", typ: "workshop", quality: "good", hours: 3,
			desc: "Formula-like title must be neutralised", tags: []string{"security"},
			want: []string{"2026-02-01", "'=HYPERLINK(\"http://evil.example\",\"click\")", "3.0", "Workshop", "Good", "security", "", "", "Formula-like title must be neutralised", ""}},
		{date: "2026-03-15", title: `Read "Thinking in Systems", ch. 1–3`, typ: "self_study", quality: "review_ready", hours: 2.25,
			desc: "Stocks, flows & feedback loops.\nSecond line: naïve café, Øresund, ŵ, £12, 🙂", notes: "-- follow up with mentor",
			tags: []string{"reading", "books"}, ksbs: []string{"K2", "K1"}, links: []string{"https://example.org/a?x=1,2", "https://example.org/b"},
			want: []string{"2026-03-15", `Read "Thinking in Systems", ch. 1–3`, "2.2", "Self-study", "Ready for review", "books; reading", "K1; K2",
				"https://example.org/a?x=1,2; https://example.org/b", "Stocks, flows & feedback loops.\nSecond line: naïve café, Øresund, ŵ, £12, 🙂", "'-- follow up with mentor"}},
		{date: "2026-03-15", title: "@channel stand-up +1", typ: "mentoring", quality: "", hours: 0.5, notes: "tab\tinside",
			want: []string{"2026-03-15", "'@channel stand-up +1", "0.5", "Mentoring", "Draft", "", "", "", "", "tab\tinside"}},
	}
	insertActivities(t, env["OTJ_DATA_DIR"], alice.ID, acts)
	insertActivities(t, env["OTJ_DATA_DIR"], bob.ID, []activityFixture{{date: "2026-01-01", title: "Bob's secret", typ: "other", quality: "draft", hours: 1}})

	signer := testsupport.Signer(t)
	ca := testsupport.Client(t, base, signer, alice.ID)
	cb := testsupport.Client(t, base, signer, bob.ID)

	_, page := testsupport.Get(t, ca, base+"/tasks/")
	key := keyRE.FindStringSubmatch(page)[1]
	resp, _ := testsupport.PostForm(t, ca, base+"/tasks/generate-report", url.Values{"key": {key}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST generate-report = %d", resp.StatusCode)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	jobID = loc.Query().Get("queued")
	// A double-click sends the same form again: still one job.
	again, _ := testsupport.PostForm(t, ca, base+"/tasks/generate-report", url.Values{"key": {key}})
	if l2, _ := url.Parse(again.Header.Get("Location")); l2.Query().Get("queued") != jobID {
		t.Fatalf("second POST of one form made job %q, first %q", l2.Query().Get("queued"), jobID)
	}

	_, page = testsupport.Get(t, ca, base+loc.String())
	if !strings.Contains(page, `class="notice"`) || !strings.Contains(page, "task-"+jobID) {
		t.Fatalf("list right after POST lacks the task or the message:\n%s", page)
	}
	download := "/tasks/" + jobID + "/download"
	testsupport.Eventually(t, 30*time.Second, "report never completed", func() bool {
		_, page = testsupport.Get(t, ca, base+"/tasks/")
		return strings.Contains(page, `href="`+download+`"`)
	})
	if strings.Count(page, `<tr id="task-`) != 1 || !strings.Contains(page, "badge-completed") || !strings.Contains(page, "3 activities") {
		t.Fatalf("list after completion:\n%s", page)
	}
	if strings.Contains(page, `http-equiv="refresh"`) {
		t.Error("list still refreshing after the task completed")
	}

	resp, body := testsupport.Get(t, ca, base+download)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("download = %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if cd := resp.Header.Get("Content-Disposition"); !regexp.MustCompile(`^attachment; filename=otj-full-report-\d{4}-\d{2}-\d{2}\.csv$`).MatchString(cd) {
		t.Errorf("Content-Disposition %q", cd)
	}
	if !strings.HasPrefix(body, reports.BOM) {
		t.Errorf("downloaded CSV does not start with the UTF-8 byte-order mark: %q", body[:min(len(body), 20)])
	}
	records, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(body, reports.BOM))).ReadAll()
	if err != nil {
		t.Fatalf("parse CSV: %v\n%s", err, body)
	}
	want := [][]string{{"date", "title", "hours", "type", "evidence_quality", "tags", "ksbs", "links", "description", "notes"},
		acts[2].want, acts[1].want, acts[0].want} // newest first; same date: newest id first
	if len(records) != len(want) {
		t.Fatalf("%d records, want %d:\n%s", len(records), len(want), body)
	}
	for i := range want {
		for j := range want[i] {
			if records[i][j] != want[i][j] {
				t.Errorf("row %d column %s = %q, want %q", i, want[0][j], records[i][j], want[i][j])
			}
		}
	}

	// Isolation and cross-site protection.
	if resp, _ := testsupport.Get(t, cb, base+download); resp.StatusCode != http.StatusNotFound {
		t.Errorf("bob downloading alice's report: %d, want 404", resp.StatusCode)
	}
	if _, bobPage := testsupport.Get(t, cb, base+"/tasks/"); strings.Contains(bobPage, jobID) {
		t.Error("alice's task is on bob's list")
	}
	if resp, _ := testsupport.PostForm(t, ca, base+"/tasks/generate-report", url.Values{"key": {"X1"}}, "Sec-Fetch-Site", "cross-site"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST = %d, want 403", resp.StatusCode)
	}
	if resp, health := testsupport.Get(t, http.DefaultClient, base+"/healthz"); resp.StatusCode != 200 || !strings.Contains(health, `"nats":"ok"`) || !strings.Contains(health, `"database":"ok"`) {
		t.Errorf("healthz %d %s", resp.StatusCode, health)
	}
	return jobID, body
}

func TestSecondProcessOnSameDataDirFails(t *testing.T) {
	env := baseEnv(t)
	first := startApp(t, env, "all")
	first.waitOutput(t, runningRE)
	for _, cmd := range []string{"all", "web"} {
		t.Run(cmd, func(t *testing.T) {
			err := run(testsupport.Context(t), []string{cmd}, mapEnv(env), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), "in use by another process") || !strings.Contains(err.Error(), "OTJ_DATA_DIR") {
				t.Fatalf("second %s: %v", cmd, err)
			}
		})
	}
	first.shutdown(t)
}

func TestStartupErrorsNameTheSetting(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := fmt.Sprint(taken.Addr().(*net.TCPAddr).Port)

	tests := []struct {
		name string
		cmd  string
		set  map[string]string
		want string
	}{
		{"port not a number", "all", map[string]string{"PORT": "eighty"}, "PORT"},
		{"port out of range", "all", map[string]string{"PORT": "70000"}, "PORT"},
		{"port taken", "all", map[string]string{"PORT": takenPort}, "PORT " + takenPort},
		{"nats listen taken", "web", map[string]string{"NATS_LISTEN": "127.0.0.1:" + takenPort}, "NATS_LISTEN"},
		{"nats listen malformed", "web", map[string]string{"NATS_LISTEN": "nope"}, "NATS_LISTEN"},
		{"bad nats sync", "all", map[string]string{"NATS_SYNC": "never"}, "NATS_SYNC"},
		{"nats replicas zero", "worker", map[string]string{"NATS_URL": "nats://127.0.0.1:" + takenPort, "NATS_REPLICAS": "0"}, "NATS_REPLICAS"},
		{"nats replicas beyond five", "worker", map[string]string{"NATS_URL": "nats://127.0.0.1:" + takenPort, "NATS_REPLICAS": "6"}, "NATS_REPLICAS"},
		{"nats replicas on the embedded server", "all", map[string]string{"NATS_REPLICAS": "3"}, "NATS_REPLICAS"},
		{"nats listen beyond loopback", "web", map[string]string{"NATS_LISTEN": "0.0.0.0:0"}, "NATS_LISTEN"},
		{"short nats token", "web", map[string]string{"NATS_TOKEN": "short"}, "NATS_TOKEN"},
		{"nats token and user", "worker", map[string]string{"NATS_URL": "nats://127.0.0.1:" + takenPort, "NATS_TOKEN": "0123456789abcdef", "NATS_USER": "otj", "NATS_PASSWORD": "x"}, "NATS_TOKEN"},
		{"nats user without password", "all", map[string]string{"NATS_USER": "otj"}, "NATS_USER"},
		{"nats tls cert without key", "web", map[string]string{"NATS_TLS_CERT": "cert.pem"}, "NATS_TLS_CERT"},
		{"nats listen insecure malformed", "web", map[string]string{"NATS_LISTEN_INSECURE": "yes please"}, "NATS_LISTEN_INSECURE"},
		{"nats url malformed", "worker", map[string]string{"NATS_URL": "http://x"}, "NATS_URL"},
		{"worker without nats url", "worker", map[string]string{}, "NATS_URL"},
		{"nats url unreachable", "worker", map[string]string{"NATS_URL": "nats://127.0.0.1:" + takenPort}, "NATS_URL"},
		{"short secret", "all", map[string]string{"SECRET_KEY": "short"}, "SECRET_KEY"},
		{"no secret", "all", map[string]string{"SECRET_KEY": ""}, "SECRET_KEY"},
		{"no secret for web", "web", map[string]string{"SECRET_KEY": ""}, "SECRET_KEY"},
		{"short secret even with dev sign-in", "all", map[string]string{"SECRET_KEY": "short", "DEV_AUTO_LOGIN_EMAIL": "you@example.org"}, "SECRET_KEY"},
		{"oidc without a secret", "all", oidcEnv("OIDC_CLIENT_SECRET"), "OIDC_CLIENT_SECRET"},
		{"oidc without a redirect", "all", oidcEnv("OIDC_REDIRECT_URL"), "OIDC_REDIRECT_URL"},
		{"oidc issuer alone", "all", map[string]string{"OIDC_ISSUER": "https://accounts.google.com"}, "OIDC_CLIENT_ID"},
		{"oidc issuer plain http", "all", withEnv(oidcEnv(""), "OIDC_ISSUER", "http://accounts.google.com"), "OIDC_ISSUER"},
		{"oidc redirect without path", "all", withEnv(oidcEnv(""), "OIDC_REDIRECT_URL", "https://otj.example.org"), "OIDC_REDIRECT_URL"},
		{"oidc redirect off BASE_URL", "all", withEnv(withEnv(oidcEnv(""), "BASE_URL", "https://otj.example.org"), "OIDC_REDIRECT_URL", "https://other.example.org/auth/callback"), "OIDC_REDIRECT_URL"},
		{"allowed emails malformed", "all", withEnv(oidcEnv(""), "ALLOWED_EMAILS", "alice@example.org, nobody"), "ALLOWED_EMAILS"},
		{"allowed emails without oidc", "all", map[string]string{"ALLOWED_EMAILS": "alice@example.org"}, "ALLOWED_EMAILS"},
		{"admin emails malformed", "all", map[string]string{"ADMIN_EMAILS": "ops@example.org, nobody"}, "ADMIN_EMAILS"},
		{"session ttl malformed", "all", map[string]string{"SESSION_TTL": "a week"}, "SESSION_TTL"},
		{"session ttl too short", "all", map[string]string{"SESSION_TTL": "1s"}, "SESSION_TTL"},
		{"trust proxy headers malformed", "web", map[string]string{"TRUST_PROXY_HEADERS": "sometimes"}, "TRUST_PROXY_HEADERS"},
		{"bad email", "all", map[string]string{"DEV_AUTO_LOGIN_EMAIL": "nobody"}, "DEV_AUTO_LOGIN_EMAIL"},
		{"bad host", "all", map[string]string{"HOST": "my host"}, "HOST"},
		{"bad worker concurrency", "worker", map[string]string{"WORKER_CONCURRENCY": "0"}, "WORKER_CONCURRENCY"},
		{"bad lease reset", "worker", map[string]string{"JOB_LEASE_RESET": "maybe"}, "JOB_LEASE_RESET"},
		{"unknown broker", "all", map[string]string{"TASKS_BROKER": "rabbitmq"}, "TASKS_BROKER"},
		{"redis url malformed", "all", map[string]string{"TASKS_BROKER": "redis", "REDIS_URL": "http://x"}, "REDIS_URL"},
		{"redis timeout malformed", "all", map[string]string{"TASKS_BROKER": "redis", "REDIS_TIMEOUT": "soon"}, "REDIS_TIMEOUT"},
		{"redis prefix with glob", "all", map[string]string{"TASKS_BROKER": "redis", "REDIS_KEY_PREFIX": "otj*"}, "REDIS_KEY_PREFIX"},
		{"bad result ttl", "all", map[string]string{"RESULT_TTL": "forever"}, "RESULT_TTL"},
		{"bad result keep", "all", map[string]string{"RESULT_KEEP": "-1"}, "RESULT_KEEP"},
		{"bad result bound", "all", map[string]string{"RESULT_MAX_BYTES": "lots"}, "RESULT_MAX_BYTES"},
		{"result bound beyond the server's storage", "all", map[string]string{"RESULT_MAX_BYTES": "1024TiB"}, "RESULT_MAX_BYTES"},
		{"metrics listen taken", "worker", map[string]string{"NATS_URL": "nats://127.0.0.1:1", "METRICS_LISTEN": "127.0.0.1:" + takenPort}, "METRICS_LISTEN 127.0.0.1:" + takenPort},
		{"metrics listen malformed", "all", map[string]string{"METRICS_LISTEN": "9090"}, "METRICS_LISTEN"},
		{"bad workers stall after", "web", map[string]string{"WORKERS_STALL_AFTER": "0s"}, "WORKERS_STALL_AFTER"},
		{"database url not postgres", "all", map[string]string{"DATABASE_URL": "mysql://otj:pw@db/otj"}, "DATABASE_URL"},
		{"database url malformed", "worker", map[string]string{"DATABASE_URL": "postgres://otj:pw@db:port/otj"}, "DATABASE_URL"},
		{"database unreachable, for a command that does not wait", "migrate", map[string]string{"DATABASE_URL": "postgres://otj:pw@127.0.0.1:" + takenPort + "/otj?connect_timeout=5"}, "DATABASE_URL"},
		{"unknown command", "serve", map[string]string{}, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := baseEnv(t)
			for k, v := range tt.set {
				env[k] = v
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := run(ctx, []string{tt.cmd}, mapEnv(env), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to name %q", err, tt.want)
			}
			if tt.cmd != "serve" && strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if strings.Contains(err.Error(), ":pw@") {
				t.Errorf("error shows the database password: %q", err)
			}
		})
	}
}

func TestMigrateAndDemo(t *testing.T) {
	env := baseEnv(t)
	var out bytes.Buffer
	if err := run(testsupport.Context(t), []string{"migrate"}, mapEnv(env), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "applied") {
		t.Errorf("first migrate printed %q", out.String())
	}
	out.Reset()
	if err := run(testsupport.Context(t), []string{"migrate"}, mapEnv(env), &out, io.Discard); err != nil || !strings.Contains(out.String(), "up to date") {
		t.Fatalf("second migrate: %v %q", err, out.String())
	}
	var progress bytes.Buffer
	for range 2 { // a refill replaces, it does not add
		out.Reset()
		if err := run(testsupport.Context(t), []string{"demo", "--email", "demo@example.org", "--activities", "250"}, mapEnv(env), &out, &progress); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(out.String(), "250 activities") || !strings.Contains(progress.String(), "250") {
		t.Errorf("demo printed %q, progress %q", out.String(), progress.String())
	}
	u := ensureUser(t, env["OTJ_DATA_DIR"], "demo@example.org")
	pg, err := activity.NewStore(dataDB(t, env["OTJ_DATA_DIR"])).ListActivities(testsupport.Context(t), u.ID, activity.Filter{}, 1, 10)
	if err != nil || pg.Total != 250 {
		t.Fatalf("demo user has %d activities (err %v), want 250", pg.Total, err)
	}
	if err := run(testsupport.Context(t), []string{"demo", "--activities", "5"}, mapEnv(env), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "--email") {
		t.Errorf("demo without email: %v", err)
	}
}
