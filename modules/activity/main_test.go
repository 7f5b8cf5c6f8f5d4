package activity

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: the
// report's reader must always be stopped and waited for.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
