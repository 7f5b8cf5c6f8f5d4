package apptest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/natsserver"
	"github.com/otjhelper/otj/platform/testsupport"
)

// topologyRole is one kind of process in a deployment.
type topologyRole struct {
	// compose is how many compose.yaml runs; topology how many
	// TestTopology runs.
	compose, topology int
	// settings are the deployment settings every process of the role
	// gets, sorted: the same names in compose.yaml and in TestTopology.
	settings []string
}

// topologyRoles are the processes of a deployment on several hosts.
// TestComposeMatchesTopology holds compose.yaml to them; TestTopology
// runs them.
var topologyRoles = map[string]topologyRole{
	"web": {compose: 2, topology: 2, settings: slices.Sorted(slices.Values([]string{
		"HOST", "PORT", "BASE_URL", "SECRET_KEY", "DATABASE_URL", "NATS_URL", "NATS_USER", "NATS_PASSWORD",
		"NATS_MAINT_USER", "NATS_MAINT_PASSWORD", "NATS_REPLICAS", "TASKS_BROKER", "REDIS_URL", "METRICS_LISTEN",
	}))},
	"worker": {compose: 2, topology: 3, settings: slices.Sorted(slices.Values([]string{
		"DATABASE_URL", "NATS_URL", "NATS_USER", "NATS_PASSWORD", "NATS_REPLICAS", "TASKS_BROKER", "REDIS_URL",
		"METRICS_LISTEN",
	}))},
}

// topologyEnv is the environment of one process of role: the role's
// deployment settings, with this test's values, and nothing the role
// does not list; then what only a test sets (its own empty data dir, a
// short lease, every result kept).
func topologyEnv(t *testing.T, role string, deploy map[string]string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, k := range topologyRoles[role].settings {
		v, ok := deploy[k]
		if !ok {
			t.Fatalf("topology test gives no value for %s, which a %s process gets", k, role)
		}
		env[k] = v
	}
	// The data dir is new, empty and never made: a process on its own
	// host has nothing there.
	env["OTJ_DATA_DIR"] = filepath.Join(t.TempDir(), "not-made")
	env["JOB_LEASE"] = "2s"
	// Every report stays downloadable: the default keeps a user's newest
	// five of each type, and the burst makes dozens.
	env["RESULT_KEEP"] = "0"
	env["LOG_LEVEL"] = "info" // startWorker waits for "worker started"
	return env
}

// TestTopology runs the deployment of compose.yaml as real processes on
// one machine: two app web and three app worker, each with its own empty
// data dir, over one PostgreSQL and a three-node NATS cluster with every
// stream, consumer and bucket on three replicas. Under a bounded burst of
// report requests to both web processes it kills the NATS nodes one at a
// time (the stream leader first, then the node a worker is connected to)
// and SIGKILLs a worker. Then every accepted job must have exactly one
// outcome, a succeeded report; every report must download, the same
// bytes, from either web process with the one session cookie; and the
// shared task_result must be what replaying the stream gives.
func TestTopology(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the topology test runs eight processes")
	}
	// The cluster admits the users of deploy/nats/roles.conf, with
	// exactly the permissions it gives each role.
	cluster := testsupport.NATSClusterWith(t, 3, natsserver.Auth{Users: documentedUsers(t)})
	dbURL := testsupport.PostgresURL(t)
	deploy := map[string]string{
		"HOST": "127.0.0.1", "PORT": "0", "BASE_URL": "", "SECRET_KEY": testsupport.TestSecretKey,
		"DATABASE_URL": dbURL, "NATS_URL": cluster.URLs(), "NATS_REPLICAS": "3",
		"NATS_USER": "", "NATS_PASSWORD": "", "NATS_MAINT_USER": "", "NATS_MAINT_PASSWORD": "",
		"TASKS_BROKER": "jetstream", "REDIS_URL": "redis://127.0.0.1:1/0", // unused with jetstream, as in compose.yaml
		"METRICS_LISTEN": "127.0.0.1:0",
	}

	var webs []*appProcess
	var bases []string
	for i := range topologyRoles["web"].topology {
		env := topologyEnv(t, "web", deploy)
		env["NATS_USER"], env["NATS_PASSWORD"] = "otj-web", documentedPasswords["otj-web"]
		env["NATS_MAINT_USER"], env["NATS_MAINT_PASSWORD"] = "otj-maint", documentedPasswords["otj-maint"]
		p := startProcess(t, fmt.Sprintf("web-%d", i+1), env, "web")
		webs = append(webs, p)
		bases = append(bases, p.waitStdout(t, runningRE))
	}
	var workers []*appProcess
	for i := range topologyRoles["worker"].topology {
		env := topologyEnv(t, "worker", deploy)
		env["NATS_USER"], env["NATS_PASSWORD"] = "otj-worker", documentedPasswords["otj-worker"]
		workers = append(workers, startWorker(t, fmt.Sprintf("worker-%d", i+1), env))
	}

	// Three users with small logs, made through the shared database.
	const dbKey = "topology" // what dataDB and the fixtures look the database up by
	usePostgres(t, map[string]string{"OTJ_DATA_DIR": dbKey}, dbURL)
	db := dataDB(t, dbKey)
	signer := testsupport.Signer(t)
	var users []activity.User
	clients := map[int64]*http.Client{}
	for i := range 3 {
		u := ensureUser(t, dbKey, fmt.Sprintf("apprentice%d@example.org", i))
		users = append(users, u)
		var acts []activityFixture
		for j := range 5 + i {
			acts = append(acts, activityFixture{date: fmt.Sprintf("2026-0%d-1%d", 1+j%9, j%10), title: fmt.Sprintf("Activity %d", j),
				typ: "workshop", quality: "good", hours: 1.5, tags: []string{"topology"}})
		}
		insertActivities(t, dbKey, u.ID, acts)
		// One cookie for both web processes: a session signed by one is
		// valid on the other.
		jar, _ := cookiejar.New(nil)
		for _, b := range bases {
			bu, _ := url.Parse(b)
			jar.SetCookies(bu, []*http.Cookie{signer.Cookie(u.ID, time.Hour)})
		}
		clients[u.ID] = &http.Client{Jar: jar, Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}

	// The burst: POSTs to both web processes, alternating, until the
	// faults are done, bounded at burstMax.
	const burstMax = 240
	type accepted struct {
		job  string
		user int64
	}
	var (
		mu       sync.Mutex
		jobs     []accepted
		refused  []string
		stop     = make(chan struct{})
		posters  sync.WaitGroup
		attempts int
	)
	for g := range 3 {
		posters.Add(1)
		go func() {
			defer posters.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				if attempts >= burstMax {
					mu.Unlock()
					return
				}
				attempts++
				mu.Unlock()
				u := users[(g+n)%len(users)]
				base := bases[n%len(bases)]
				key := fmt.Sprintf("topo-%d-%d", g, n)
				job, err := tryPostReport(clients[u.ID], base, key)
				mu.Lock()
				if err != nil {
					refused = append(refused, err.Error())
				} else {
					jobs = append(jobs, accepted{job, u.ID})
				}
				mu.Unlock()
				time.Sleep(40 * time.Millisecond)
			}
		}()
	}

	waitAccepted := func(n int) {
		testsupport.Eventually(t, time.Minute, fmt.Sprintf("fewer than %d jobs accepted", n), func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(jobs) >= n
		})
	}
	waitAccepted(15)
	conn := durableConnect(t, natsJoin{URL: cluster.URLs(), User: "otj-web", Password: documentedPasswords["otj-web"]})
	// The faults, one at a time, each healed before the next.
	leader := cluster.StreamLeader(jetstream.StreamName)
	order := []int{leader}
	if n := nodeServing(cluster, "otj-worker"); n >= 0 && n != leader {
		order = append(order, n)
	}
	for i := range 3 {
		if !slices.Contains(order, i) {
			order = append(order, i)
		}
	}
	for step, node := range order {
		t.Logf("killing NATS node %d (stream leader %d)", node, cluster.StreamLeader(jetstream.StreamName))
		cluster.Kill(node)
		mu.Lock()
		before := len(jobs)
		mu.Unlock()
		if step == 1 {
			killProcesses(t, workers[0])
			t.Logf("SIGKILLed %s", workers[0].name)
		}
		waitAccepted(before + 10) // the app goes on accepting with a node down
		cluster.Restart(node)
		streamHealthy(t, conn)
	}
	close(stop)
	posters.Wait()
	t.Logf("%d jobs accepted, %d requests refused while nodes were down", len(jobs), len(refused))
	if len(refused) > len(jobs)/4 {
		t.Errorf("%d of %d requests refused; the first: %s", len(refused), len(refused)+len(jobs), refused[0])
	}

	// Every accepted job reaches exactly one outcome: one succeeded event.
	var events map[string][]tasktype.Event
	testsupport.Eventually(t, 2*time.Minute, "accepted jobs never all finished", func() bool {
		events = conn.allEvents(t)
		for _, j := range jobs {
			if last := events[j.job]; len(last) == 0 || !isOutcome(last[len(last)-1].Kind) {
				return false
			}
		}
		return true
	})
	for _, j := range jobs {
		var outcomes []string
		for _, e := range events[j.job] {
			if isOutcome(e.Kind) {
				outcomes = append(outcomes, string(e.Kind))
			}
		}
		if !slices.Equal(outcomes, []string{string(tasktype.EventSucceeded)}) {
			t.Errorf("job %s: outcomes %v, want exactly one succeeded", j.job, outcomes)
		}
	}

	// Every report downloads from either web process, the same bytes.
	for _, j := range jobs {
		var sums []string
		for _, base := range bases {
			var sum string
			testsupport.Eventually(t, 30*time.Second, "report "+j.job+" never downloadable from "+base, func() bool {
				resp, err := clients[j.user].Get(base + "/tasks/" + j.job + "/download")
				if err != nil {
					return false
				}
				defer resp.Body.Close()
				h := sha256.New()
				if _, err := io.Copy(h, resp.Body); err != nil || resp.StatusCode != http.StatusOK {
					return false
				}
				sum = fmt.Sprintf("%x", h.Sum(nil))
				return true
			})
			sums = append(sums, sum)
		}
		if sums[0] != sums[1] {
			t.Errorf("job %s: the two web processes serve different reports", j.job)
		}
	}

	// The projections agree: task_result is what replaying each job's
	// history gives, whichever web process applied which event.
	rows := readTasks(t, db)
	for _, j := range jobs {
		want, _ := tasks.Replay(events[j.job])
		got, err := rows.Get(testsupport.Context(t), j.job)
		if err != nil {
			t.Fatalf("task_result for job %s: %v", j.job, err)
		}
		if got.Status != want.Status || got.Attempts != want.Attempts || got.Worker != want.Worker ||
			got.CompletedAt.Sub(want.CompletedAt).Abs() > time.Microsecond { // PostgreSQL keeps microseconds
			t.Errorf("job %s: task_result %s attempt %d by %s at %s; the stream replays to %s attempt %d by %s at %s",
				j.job, got.Status, got.Attempts, got.Worker, got.CompletedAt, want.Status, want.Attempts, want.Worker, want.CompletedAt)
		}
	}
	for _, p := range webs {
		if v := violations(p.stderr.String()); v != "" {
			t.Errorf("%s was refused a right the README does not grant:\n%s", p.name, v)
		}
	}
	for _, p := range workers {
		// Killed nodes fail uploads half-way, and nats.go then asks to
		// purge their chunks, which a worker may not.
		if v := violationsBut(p.stderr.String(), uploadCleanup); v != "" {
			t.Errorf("%s was refused a right the README does not grant:\n%s", p.name, v)
		}
	}
	for _, p := range slices.Concat(webs, workers[1:]) {
		select {
		case <-p.done:
			t.Errorf("%s exited during the test: %v", p.name, p.err)
		default:
		}
	}
}

var queuedRE = regexp.MustCompile(`[?&]queued=([^&]+)`)

// tryPostReport asks base for a report, as the form does, and returns the
// job id, or why the request was not accepted.
func tryPostReport(c *http.Client, base, key string) (string, error) {
	req, err := http.NewRequest("POST", base+"/tasks/generate-report", strings.NewReader(url.Values{"key": {key}}.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := queuedRE.FindStringSubmatch(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || m == nil {
		return "", fmt.Errorf("%s: %d %s", base, resp.StatusCode, strings.TrimSpace(string(body[:min(len(body), 200)])))
	}
	return m[1], nil
}

// isOutcome reports whether an event of kind k ends a job's run.
func isOutcome(k tasktype.EventKind) bool {
	return k == tasktype.EventSucceeded || k == tasktype.EventFailed || k == tasktype.EventCancelled
}

// nodeServing is the index of a running node of c with a client
// connection named name, or -1.
func nodeServing(c *testsupport.Cluster, name string) int {
	for i := range 3 {
		n := c.Node(i)
		if n == nil {
			continue
		}
		conns, err := n.Server().Connz(&server.ConnzOptions{})
		if err != nil {
			continue
		}
		for _, ci := range conns.Conns {
			if ci.Name == name {
				return i
			}
		}
	}
	return -1
}

// streamHealthy waits until the stream has a leader and every replica is
// current with it again, so that the next fault leaves a quorum.
func streamHealthy(t *testing.T, c *durableConn) {
	t.Helper()
	testsupport.Eventually(t, time.Minute, "the stream's replicas never caught up", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := c.js.Stream(ctx, jetstream.StreamName)
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		if err != nil || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
			return false
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current || r.Offline {
				return false
			}
		}
		return true
	})
}
