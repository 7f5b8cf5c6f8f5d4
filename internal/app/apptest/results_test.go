package apptest

import (
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// The app gives the results bucket RESULT_TTL and RESULT_MAX_BYTES; a
// report that does not fit fails at once with a sentence naming what
// helps, while app tasks show keeps the server's wording; an operator
// command run without the settings leaves the bucket's bounds alone.
func TestResultBucketBoundsInTheApp(t *testing.T) {
	t.Parallel()
	env := withEnv(withEnv(baseEnv(t), "RESULT_MAX_BYTES", "1MiB"), "RESULT_TTL", "7d")
	web := startApp(t, env, "web")
	nj := web.waitJoin(t)
	cliEnv := withEnv(env, "NATS_URL", nj.URL)
	startApp(t, cliEnv, "worker")

	b, nc := opBroker(t, nj)
	if ttl, max := jetstreamtest.ResultBounds(t, nc); ttl != 7*24*time.Hour || max != 1<<20 {
		t.Fatalf("bucket TTL %s, max %d; want 7 days and 1 MiB", ttl, max)
	}

	user := ensureUser(t, env["OTJ_DATA_DIR"], "alice@example.org")
	job := opEnqueue(t, b, user.ID, testFile, `{"bytes":3000000}`)
	opWaitKind(t, b, job.ID, tasktype.EventFailed)
	out := opCLI(t, cliEnv, "tasks", "show", job.ID)
	opContains(t, out, "maximum bytes exceeded", "attempt 1/3 failed", "user sees",
		"There is no room to store this report right now; older reports expire after 7 days, or ask the operator to raise RESULT_MAX_BYTES.")
	opLacks(t, out, "attempt 2/3")

	opCLI(t, withEnv(withEnv(cliEnv, "RESULT_TTL", "1h"), "RESULT_MAX_BYTES", "2GiB"), "tasks", "list")
	if ttl, max := jetstreamtest.ResultBounds(t, nc); ttl != 7*24*time.Hour || max != 1<<20 {
		t.Fatalf("after an operator command: bucket TTL %s, max %d; want them unchanged", ttl, max)
	}
}
