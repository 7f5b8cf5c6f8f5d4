package apptest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	natsroles "github.com/otjhelper/otj/deploy/nats"
	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/natsconn"
	"github.com/otjhelper/otj/platform/testsupport"
)

// roleClient is a connection as one role, and the permission violations
// the server reports on it.
type roleClient struct {
	nc       *nats.Conn
	violated chan error
}

func connectRole(t *testing.T, o natsconn.Options) *roleClient {
	t.Helper()
	c := &roleClient{violated: make(chan error, 64)}
	o.Name = "attack"
	nc, err := natsconn.Connect(o)
	if err != nil {
		t.Fatalf("connect as %s: %v", o.User, err)
	}
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { c.violated <- err })
	t.Cleanup(nc.Close)
	c.nc = nc
	return c
}

// try sends a request and says whether the server refused it: a
// permissions violation for its subject, or an API error answer. An
// answer without an error is what an allowed request gets.
func (c *roleClient) try(t *testing.T, subject string, hdr nats.Header, body []byte) (refused bool, why string) {
	t.Helper()
	for len(c.violated) > 0 {
		<-c.violated
	}
	inbox := nats.NewInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := c.nc.PublishMsg(&nats.Msg{Subject: subject, Reply: inbox, Header: hdr, Data: body}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-c.violated:
			if strings.Contains(err.Error(), subject) {
				return true, err.Error()
			}
		default:
		}
		m, err := sub.NextMsg(50 * time.Millisecond)
		if err != nil {
			continue
		}
		var answer struct {
			Error *struct {
				Description string `json:"description"`
			} `json:"error"`
		}
		if json.Unmarshal(m.Data, &answer) == nil && answer.Error != nil {
			return true, answer.Error.Description
		}
		return false, string(m.Data)
	}
	t.Fatalf("%s: neither an answer nor a refusal in 10s", subject)
	return false, ""
}

// rolesFixture is a NATS server admitting the documented roles, and a
// test-only user with every right that made the streams, a job, a
// result and an activity change, and checks what is left after each
// attack.
type rolesFixture struct {
	url    string
	admin  *nats.Conn
	js     natsjs.JetStream
	job    tasktype.Job
	object string
}

func newRolesFixture(t *testing.T) *rolesFixture {
	t.Helper()
	users := append(documentedUsers(t), &server.User{Username: "test-admin", Password: "test-admin-0123456789abcdef"})
	s := testsupport.NATSWith(t, func(o *server.Options) { o.Users = users })
	return setUpRolesFixture(t, s.ClientURL(), natsconn.Options{URL: s.ClientURL(), User: "test-admin", Password: "test-admin-0123456789abcdef"})
}

// setUpRolesFixture enqueues a job, stores a result and an activity
// change, as o, which may enqueue; the streams are made if they are not
// there yet.
func setUpRolesFixture(t *testing.T, url string, o natsconn.Options) *rolesFixture {
	t.Helper()
	o.Name = "test-setup"
	admin, err := natsconn.Connect(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	b := jetstreamtest.BrokerWith(t, admin, jetstream.Config{})
	ctx := testsupport.Context(t)
	job, err := b.Enqueue(ctx, tasktype.EnqueueRequest{Type: "full_report", UserID: 7, Payload: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	object := tasktype.ResultObjectName(job.ID, 1)
	if _, err := b.Put(ctx, object, "report.csv", "text/csv", bytes.NewReader([]byte("a,b\n1,2\n"))); err != nil {
		t.Fatal(err)
	}
	js, err := natsjs.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(ctx, activity.Stream); err != nil {
		if err := activity.EnsureStream(ctx, js, activity.StreamConfig{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(ctx, "activity.7.1.created", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	return &rolesFixture{url: url, admin: admin, js: js, job: job, object: object}
}

// intact checks that nothing an attack aimed at happened: both streams
// and the bucket are there, as made, with what they held.
func (f *rolesFixture) intact(t *testing.T) {
	t.Helper()
	ctx := testsupport.Context(t)
	for name, msgs := range map[string]uint64{jetstream.StreamName: 1, activity.Stream: 1} {
		s, err := f.js.Stream(ctx, name)
		if err != nil {
			t.Errorf("stream %s: %v", name, err)
			continue
		}
		info := s.CachedInfo()
		if info.State.Msgs != msgs || info.Config.MaxAge != 0 {
			t.Errorf("stream %s holds %d messages with MaxAge %s; want %d and none", name, info.State.Msgs, info.Config.MaxAge, msgs)
		}
	}
	obs, err := f.js.ObjectStore(ctx, jetstream.ResultsBucket)
	if err != nil {
		t.Errorf("results bucket: %v", err)
		return
	}
	if _, err := obs.GetBytes(ctx, f.object); err != nil {
		t.Errorf("result %s: %v", f.object, err)
	}
}

func event(t *testing.T, kind tasktype.EventKind, userID int64, jobType, jobID string) (string, []byte) {
	t.Helper()
	e := tasktype.Event{ID: "forged", Kind: kind, JobID: jobID, JobType: jobType, UserID: userID, Time: time.Now().UTC(), Attempt: 1,
		Payload: json.RawMessage(`{}`)}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return jetstream.EventSubject(&e), b
}

// TestRolesRefuseAttacks runs, as each role of the documented
// configuration, every attack of issue 23 on a server that holds a job,
// its result and an activity change: each is refused, and the streams
// and bucket are as they were. What a role may do (a worker reading a
// result, the web side enqueuing) is allowed.
func TestRolesRefuseAttacks(t *testing.T) {
	t.Parallel()
	f := newRolesFixture(t)
	f.attack(t, natsconn.Options{URL: f.url, User: "otj-worker", Password: documentedPasswords["otj-worker"]},
		natsconn.Options{URL: f.url, User: "otj-web", Password: documentedPasswords["otj-web"]})
}

// attack runs the attacks as the worker's and the web's credentials.
func (f *rolesFixture) attack(t *testing.T, workerCreds, webCreds natsconn.Options) {
	worker := connectRole(t, workerCreds)
	web := connectRole(t, webCreds)
	purgeAll := []byte(`{}`)
	purgeTasks := []byte(`{"filter":"tasks.>"}`)
	purgeUser := []byte(`{"filter":"tasks.*.7.>"}`)
	info, err := f.js.Stream(testsupport.Context(t), jetstream.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	shortAge := info.CachedInfo().Config
	shortAge.MaxAge, shortAge.Duplicates = time.Second, time.Second // a window longer than MaxAge is refused
	shortAgeBody, _ := json.Marshal(shortAge)
	actInfo, err := f.js.Stream(testsupport.Context(t), activity.Stream)
	if err != nil {
		t.Fatal(err)
	}
	actShort := actInfo.CachedInfo().Config
	actShort.MaxAge, actShort.Duplicates = time.Second, time.Second
	actShortBody, _ := json.Marshal(actShort)
	enqSubj, enqBody := event(t, tasktype.EventEnqueued, 99, "account_export", "forgedjob1")
	retriedSubj, retriedBody := event(t, tasktype.EventRetried, f.job.UserID, f.job.Type, f.job.ID)
	cancelSubj, cancelBody := event(t, tasktype.EventCancelled, f.job.UserID, f.job.Type, f.job.ID)

	attacks := []struct {
		role    string
		c       *roleClient
		name    string
		subject string
		body    []byte
	}{
		{"worker", worker, "purge every result", "$JS.API.STREAM.PURGE." + "OBJ_" + jetstream.ResultsBucket, purgeAll},
		{"worker", worker, "inject an enqueued event as another user", enqSubj, enqBody},
		{"worker", worker, "publish an operator's retried", retriedSubj, retriedBody},
		{"worker", worker, "cancel a job", cancelSubj, cancelBody},
		{"worker", worker, "delete the stream TASKS", "$JS.API.STREAM.DELETE." + jetstream.StreamName, nil},
		{"worker", worker, "delete the results bucket", "$JS.API.STREAM.DELETE.OBJ_" + jetstream.ResultsBucket, nil},
		{"worker", worker, "purge TASKS", "$JS.API.STREAM.PURGE." + jetstream.StreamName, purgeAll},
		{"worker", worker, "set TASKS' MaxAge", "$JS.API.STREAM.UPDATE." + jetstream.StreamName, shortAgeBody},
		{"web", web, "purge TASKS", "$JS.API.STREAM.PURGE." + jetstream.StreamName, purgeAll},
		{"web", web, "purge TASKS by tasks.>", "$JS.API.STREAM.PURGE." + jetstream.StreamName, purgeTasks},
		{"web", web, "purge TASKS by a user", "$JS.API.STREAM.PURGE." + jetstream.StreamName, purgeUser},
		{"web", web, "set TASKS' MaxAge to 1s", "$JS.API.STREAM.UPDATE." + jetstream.StreamName, shortAgeBody},
		{"web", web, "delete the stream TASKS", "$JS.API.STREAM.DELETE." + jetstream.StreamName, nil},
		{"web", web, "purge ACTIVITY", "$JS.API.STREAM.PURGE." + activity.Stream, purgeAll},
		{"web", web, "set ACTIVITY's MaxAge to 1s", "$JS.API.STREAM.UPDATE." + activity.Stream, actShortBody},
		{"web", web, "delete the stream ACTIVITY", "$JS.API.STREAM.DELETE." + activity.Stream, nil},
		{"web", web, "delete the results bucket", "$JS.API.STREAM.DELETE.OBJ_" + jetstream.ResultsBucket, nil},
	}
	for _, a := range attacks {
		if refused, why := a.c.try(t, a.subject, nil, a.body); !refused {
			t.Errorf("%s could %s: %s answered %s", a.role, a.name, a.subject, why)
		} else {
			t.Logf("%s may not %s: %s", a.role, a.name, why)
		}
	}
	f.intact(t)
	ctx := testsupport.Context(t)
	if _, err := f.js.Stream(ctx, jetstream.StreamName); err == nil {
		if s, _ := f.js.Stream(ctx, jetstream.StreamName); s != nil {
			if _, err := s.GetLastMsgForSubject(ctx, enqSubj); err == nil {
				t.Error("the forged enqueued event is in the stream")
			}
		}
	}

	// What the roles are for: a worker reads a result (the accepted
	// boundary: it reads every user's data anyway) and records an
	// outcome; the web side enqueues.
	wjs, err := natsjs.New(worker.nc)
	if err != nil {
		t.Fatal(err)
	}
	if obs, err := wjs.ObjectStore(ctx, jetstream.ResultsBucket); err != nil {
		t.Errorf("worker opening the results bucket: %v", err)
	} else if _, err := obs.GetInfo(ctx, f.object); err != nil {
		t.Errorf("worker reading a result's info: %v", err)
	}
	startSubj, startBody := event(t, tasktype.EventStarted, f.job.UserID, f.job.Type, f.job.ID)
	if refused, why := worker.try(t, startSubj, nil, startBody); refused {
		t.Errorf("worker refused a started event: %s", why)
	}
	okSubj, okBody := event(t, tasktype.EventEnqueued, 8, "full_report", "webjob1")
	if refused, why := web.try(t, okSubj, nil, okBody); refused {
		t.Errorf("web refused an enqueued event: %s", why)
	}
}

// TestEmbeddedServerEnforcesTheRoles runs the same attacks on app web's
// embedded server: as a worker with the token its join line prints, and
// as the web side with the token app web itself connects with (kept in
// its data dir). The join line hands out no right a worker lacks.
func TestEmbeddedServerEnforcesTheRoles(t *testing.T) {
	t.Parallel()
	env := baseEnv(t)
	web := startApp(t, env, "web")
	url, token := web.waitOutput(t, joinURLRE), web.waitOutput(t, joinTokenRE)
	webToken, err := os.ReadFile(filepath.Join(env["OTJ_DATA_DIR"], roleTokenFiles[natsroles.Web]))
	if err != nil {
		t.Fatal(err)
	}
	webCreds := natsconn.Options{URL: url, Token: strings.TrimSpace(string(webToken))}
	if webCreds.Token == token {
		t.Fatal("the join line prints app web's own token")
	}
	f := setUpRolesFixture(t, url, webCreds)
	f.attack(t, natsconn.Options{URL: url, Token: token}, webCreds)
}
