package testsupport

import (
	"testing"

	"go.uber.org/goleak"
)

// VerifyNoLeaks runs the package's tests, then fails if any goroutine
// is left over, apart from known ones in libraries. Call it from
// TestMain.
func VerifyNoLeaks(m *testing.M) {
	goleak.VerifyTestMain(m,
		// nats.go v1.55.0 bug, not ours: ObjectStore.Put (a job's result
		// file) starts this goroutine, which reads its status channel only
		// once scheduled; when Put's deferred cleanupReplySub has already
		// set that field to nil, the goroutine blocks on a nil channel for
		// good. It happens under load only; ignoring it keeps the tests
		// about our own goroutines.
		goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"),
	)
}
