package apptest

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/otjhelper/otj/platform/testsupport"
)

// TestKilledWorkerLeavesTheWorkersList runs app web and two app worker
// processes, on each broker: the operators' API lists both from their
// own heartbeats, with their version and concurrency; a worker SIGKILLed
// leaves the list within one lease, and one stopped with SIGTERM at once.
func TestKilledWorkerLeavesTheWorkersList(t *testing.T) {
	eachBroker(t, func(t *testing.T, broker map[string]string) {
		const lease = 3 * time.Second
		env := baseEnv(t)
		env["ADMIN_EMAILS"] = "ops@example.org"
		env["JOB_LEASE"] = lease.String()
		env["WORKER_CONCURRENCY"] = "3"
		maps.Copy(env, broker)
		web := startProcess(t, "web", env, "web")
		base := web.waitStdout(t, runningRE)
		j := web.waitJoin(t)
		wenv := maps.Clone(env)
		maps.Copy(wenv, j.env())
		victim := startWorker(t, "worker-1", wenv)
		stopped := startWorker(t, "worker-2", wenv)
		ops := ensureUser(t, env["OTJ_DATA_DIR"], "ops@example.org")
		operator := testsupport.Client(t, base, testsupport.Signer(t), ops.ID)

		type worker struct {
			Name          string    `json:"name"`
			Version       string    `json:"version"`
			Concurrency   int       `json:"concurrency"`
			Running       []string  `json:"running"`
			LastHeartbeat time.Time `json:"last_heartbeat"`
		}
		listed := func() map[string]worker {
			resp, body := testsupport.Get(t, operator, base+"/admin/api/workers")
			var out struct {
				Workers []worker `json:"workers"`
			}
			if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &out) != nil {
				t.Fatalf("GET /admin/api/workers: %d %s", resp.StatusCode, body)
			}
			m := map[string]worker{}
			for _, w := range out.Workers {
				m[w.Name] = w
			}
			return m
		}
		names := func(m map[string]worker) []string { return slices.Sorted(maps.Keys(m)) }
		testsupport.Eventually(t, 30*time.Second, "the two workers were never both listed", func() bool {
			m := listed()
			_, a := m[victim.workerName()]
			_, b := m[stopped.workerName()]
			return a && b
		})
		if w := listed()[victim.workerName()]; w.Concurrency != 3 || w.Version == "" || w.Running == nil {
			t.Errorf("worker listed as %+v; want concurrency 3, a version and a running list", w)
		}

		if err := victim.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		// Left out a lease after its last heartbeat (TestWorkersListsLiveWorkers
		// holds the rule itself); here with room for a loaded machine.
		testsupport.Eventually(t, 2*lease+5*time.Second, "the killed worker stayed on the list", func() bool {
			_, there := listed()[victim.workerName()]
			return !there
		})

		if err := stopped.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if _, err := stopped.waitExit(t, 30*time.Second); err != nil {
			t.Fatalf("worker-2 on SIGTERM: %v", err)
		}
		if m := listed(); len(m) != 0 {
			t.Errorf("after both stopped, the list still holds %v", names(m))
		}
	})
}
