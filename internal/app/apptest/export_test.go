package apptest

import (
	"context"
	"io"

	"github.com/otjhelper/otj/internal/app"
)

// What the scenarios take from the app they run: its entry points and
// the few of its defaults they hold their own clients to.

// roleTokenFiles are where an embedded server keeps each role's token.
var roleTokenFiles = app.RoleTokenFiles()

// defaultLease is JOB_LEASE's default, which the tests' own brokers use.
const defaultLease = app.DefaultLease

// settingNames are the settings the app reads.
func settingNames() []string { return app.SettingNames() }

// runBench is app bench, as the tests drive it in this process.
func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return app.Run(ctx, testOptions(), append([]string{"bench"}, args...), getenv, stdout, stderr)
}

// quietRedis drops the Redis client's own pool messages, as Main does.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}
