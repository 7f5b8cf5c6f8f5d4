package app

import (
	"context"
	"io"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/otjhelper/otj/platform/testsupport"
)

// The unit tests of the command line, the settings and the help; the
// whole-system scenarios are in apptest.

func TestMain(m *testing.M) {
	redis.SetLogger(quietRedis{}) // as Main does
	// Re-exec'd by tests that need the program as a real OS process.
	if os.Getenv(runMainEnv) == "1" {
		os.Exit(Main(Options{}))
	}
	testsupport.VerifyNoLeaks(m)
}

// runMainEnv makes the test binary run Main instead of the tests.
const runMainEnv = "OTJ_TEST_RUN_MAIN"

// run is the program as the tests drive it in this process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return Run(ctx, Options{}, args, getenv, stdout, stderr)
}

func mapEnv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}
