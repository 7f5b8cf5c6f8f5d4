package service_test

import (
	"errors"
	"testing"
	"time"

	"github.com/otjhelper/otj/platform/service"
	"github.com/otjhelper/otj/platform/testsupport"
)

func TestMain(m *testing.M) { testsupport.VerifyNoLeaks(m) }

// The first service to fail closes Failed, and Wait returns its error,
// named, once every service has returned; services that end without an
// error report nothing.
func TestGroupReportsTheFirstFailure(t *testing.T) {
	var g service.Group
	stop := make(chan struct{})
	boom := errors.New("boom")
	g.Go("quiet", func() error { return nil })
	g.Go("waits", func() error { <-stop; return nil })
	select {
	case <-g.Failed():
		t.Fatal("Failed closed with no service failed")
	case <-time.After(20 * time.Millisecond):
	}
	g.Go("fails", func() error { return boom })
	select {
	case <-g.Failed():
	case <-time.After(5 * time.Second):
		t.Fatal("Failed not closed after a service failed")
	}
	g.Go("fails later", func() error { return errors.New("second") })
	close(stop)
	err := g.Wait()
	if !errors.Is(err, boom) || err.Error() != "fails: boom" {
		t.Fatalf("Wait = %v, want the first failure, named", err)
	}
}
