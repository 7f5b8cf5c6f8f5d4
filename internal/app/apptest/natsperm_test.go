package apptest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	natsroles "github.com/otjhelper/otj/deploy/nats"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/platform/natsconn"
	"github.com/otjhelper/otj/platform/testsupport"
)

// documentedPasswords are the passwords the tests give the roles of
// deploy/nats/roles.conf.
var documentedPasswords = map[string]string{natsroles.Web: "web-pass-0123456789abcdef", natsroles.Worker: "worker-pass-0123456789abcdef",
	natsroles.Maint: "maint-pass-0123456789abcdef"}

// documentedUsers are the users of deploy/nats/roles.conf, the one file
// of the roles, as nats-server loads them, with documentedPasswords.
func documentedUsers(t *testing.T) []*server.User {
	t.Helper()
	users, err := natsroles.Users(documentedPasswords)
	if err != nil {
		t.Fatal(err)
	}
	return users
}

// TestDocumentedNATSPermissionsSuffice loads deploy/nats/roles.conf
// into a nats-server, runs app web and app worker as their own users on
// it, and drives a report end to end; then checks that the worker's user
// cannot delete the stream.
func TestDocumentedNATSPermissionsSuffice(t *testing.T) {
	t.Parallel()
	users := documentedUsers(t)
	webPass, workerPass := documentedPasswords["otj-web"], documentedPasswords["otj-worker"]
	s := testsupport.NATSWith(t, func(o *server.Options) { o.Users = users })

	env := baseEnv(t)
	env["NATS_URL"], env["NATS_USER"], env["NATS_PASSWORD"] = s.ClientURL(), "otj-web", webPass
	env["NATS_MAINT_USER"], env["NATS_MAINT_PASSWORD"] = natsroles.Maint, documentedPasswords[natsroles.Maint]
	// The web side runs the digest schedule, on its KV bucket.
	env["DIGEST_SCHEDULE"] = "mon 07:00"
	wenv := maps.Clone(env) // the database is shared
	wenv["NATS_URL"], wenv["NATS_USER"], wenv["NATS_PASSWORD"] = s.ClientURL(), "otj-worker", workerPass
	delete(wenv, "NATS_MAINT_USER")
	delete(wenv, "NATS_MAINT_PASSWORD")
	// The worker first: it may not make the stream, so it waits for the
	// web side to.
	worker := startApp(t, wenv, "worker")
	testsupport.Eventually(t, 30*time.Second, "the worker never said it waits for the stream", func() bool {
		return strings.Contains(worker.logs.String(), "waiting for the stream TASKS")
	})
	web := startApp(t, env, "web")
	base := web.waitOutput(t, runningRE)
	// The web side makes the schedules bucket and catches up the latest
	// period, with nobody to send to yet: before the report's users.
	testsupport.Eventually(t, 30*time.Second, "the web side never caught up the digest schedule", func() bool {
		return strings.Contains(web.logs.String(), "digest schedule: fanned out")
	})
	jobID, file := reportFlow(t, env["OTJ_DATA_DIR"], base)
	// The activity log's changes reach its stream through the web's relay,
	// as the web user sees it.
	alice := ensureUser(t, env["OTJ_DATA_DIR"], "alice@example.org")
	events := activityChanges(t, base, alice.ID)
	ac, err := natsconn.Connect(natsconn.Options{URL: s.ClientURL(), User: "otj-web", Password: webPass, Name: "test-activity"})
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	waitActivityEvents(t, ac, events)
	// An operator command, as the web user, shows the result's digest in
	// the form sha256sum prints for the downloaded file.
	out, err := opCLIErr(t, env, "tasks", "show", jobID)
	if want := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(file))); err != nil || !strings.Contains(out, want) {
		t.Errorf("tasks show %s: err %v, want the digest %s in:\n%s", jobID, err, want, out)
	}
	// Erasing an account, as the web user: the user's job events and
	// activity changes are purged by their subject filters.
	ca := testsupport.Client(t, base, testsupport.Signer(t), alice.ID)
	if resp, body := testsupport.PostForm(t, ca, base+"/account/delete", url.Values{"confirm": {alice.Email}}); resp.StatusCode != http.StatusOK {
		t.Errorf("POST /account/delete as the web user = %d:\n%s", resp.StatusCode, body)
	}
	for name, p := range map[string]*proc{"web": web, "worker": worker} {
		if logs := p.logs.String(); strings.Contains(logs, "Permissions Violation") {
			t.Errorf("app %s was refused a right the README does not grant:\n%s", name, violations(logs))
		}
	}
	if strings.Contains(worker.logs.String(), "digest schedule") {
		t.Error("the worker runs the digest schedule, whose fan-out enqueues, which its role may not do")
	}
	worker.shutdown(t)
	web.shutdown(t)

	// The worker's user asks the server to delete the stream.
	nc, err := natsconn.Connect(natsconn.Options{URL: s.ClientURL(), User: "otj-worker", Password: workerPass, Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// The web's user may move the schedule's lease, as a web process's
	// scheduler does when it wins a period.
	wl, err := natsconn.Connect(natsconn.Options{URL: s.ClientURL(), User: "otj-web", Password: webPass, Name: "test-lease"})
	if err != nil {
		t.Fatal(err)
	}
	defer wl.Close()
	if js, err := natsjs.New(wl); err != nil {
		t.Fatal(err)
	} else if kv, err := js.KeyValue(testsupport.Context(t), "schedules"); err != nil {
		t.Errorf("the web's user opening the schedules bucket: %v", err)
	} else if e, err := kv.Get(testsupport.Context(t), "digest"); err != nil {
		t.Errorf("the web's user reading the schedule's key: %v", err)
	} else if _, err := kv.Update(testsupport.Context(t), "digest", []byte("9999-W01"), e.Revision()); err != nil {
		t.Errorf("the web's user moving the schedule's key: %v", err)
	}
	refused := make(chan error, 4)
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { refused <- err })
	if _, err := nc.Request("$JS.API.STREAM.DELETE."+jetstream.StreamName, nil, 2*time.Second); err == nil {
		t.Error("the worker's user was answered on $JS.API.STREAM.DELETE")
	}
	select {
	case err := <-refused:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("the delete: %v, want a permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("no permissions violation for the worker's $JS.API.STREAM.DELETE")
	}
	// The stream is still there, as the web user sees it.
	wc, err := natsconn.Connect(natsconn.Options{URL: s.ClientURL(), User: "otj-web", Password: webPass, Name: "test-web"})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	if msg, err := wc.Request("$JS.API.STREAM.INFO."+jetstream.StreamName, nil, 5*time.Second); err != nil || strings.Contains(string(msg.Data), `"error"`) {
		t.Errorf("stream info after the refused delete: %v %s", err, msgData(msg))
	}
}

// violations are the log lines that report a permissions violation.
func violations(logs string) string { return violationsBut(logs, "") }

// uploadCleanup is what a worker is refused when nats.go's ObjectStore.Put
// cleans up after itself: an upload that failed half-way (a node killed
// under it) or that replaced an object asks to purge the left-over
// chunks. A worker may not purge the results bucket (README, NATS
// permissions); the chunks it leaves expire with RESULT_TTL.
const uploadCleanup = `Publish to \"$JS.API.STREAM.PURGE.OBJ_task_results\"`

// violationsBut is the permissions violations in logs, one a line,
// except those naming allowed ("" allows none).
func violationsBut(logs, allowed string) string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "Permissions Violation") && (allowed == "" || !strings.Contains(l, allowed)) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func msgData(m *nats.Msg) string {
	if m == nil {
		return ""
	}
	return string(m.Data)
}
