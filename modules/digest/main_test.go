package digest

import (
	"testing"

	"github.com/otjhelper/otj/platform/testsupport"
)

// TestMain fails the package's tests if a goroutine outlives them: the
// worker, the SMTP server and the schedulers must all stop.
func TestMain(m *testing.M) {
	testsupport.VerifyNoLeaks(m)
}
