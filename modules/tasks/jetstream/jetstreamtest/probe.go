package jetstreamtest

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/platform/testsupport"
)

// WorkersAckWait reads the deployed workers consumer's AckWait, the
// lease every worker is held to, as the server has it.
func WorkersAckWait(t testing.TB, nc *nats.Conn) time.Duration {
	t.Helper()
	cons, err := jetStream(t, nc).Consumer(testsupport.Context(t), jetstream.StreamName, jetstream.WorkConsumer)
	if err != nil {
		t.Fatalf("read consumer %s: %v", jetstream.WorkConsumer, err)
	}
	return cons.CachedInfo().Config.AckWait
}

// ResultBounds reads the results bucket's TTL and size bound as the
// server holds them.
func ResultBounds(t testing.TB, nc *nats.Conn) (time.Duration, int64) {
	t.Helper()
	s, err := jetStream(t, nc).Stream(testsupport.Context(t), "OBJ_"+jetstream.ResultsBucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(testsupport.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.Config.MaxAge, info.Config.MaxBytes
}

func jetStream(t testing.TB, nc *nats.Conn) natsjs.JetStream {
	t.Helper()
	js, err := natsjs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
