package natsconn

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestNotReady sorts the answers of a JetStream still forming from
// refusals that waiting would not mend.
func TestNotReady(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"no answer in time", fmt.Errorf("ensure: %w", context.DeadlineExceeded), true},
		{"request timeout", nats.ErrTimeout, true},
		{"no responders", nats.ErrNoResponders, true},
		{"between leaders", &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}, true},
		{"a node not up yet", &jetstream.APIError{Code: 400, ErrorCode: 10005, Description: "no suitable peers for placement, peer offline"}, true},
		{"too few nodes", &jetstream.APIError{Code: 400, ErrorCode: 10005, Description: "no suitable peers for placement"}, false},
		{"no JetStream", jetstream.ErrJetStreamNotEnabled, false},
		{"no JetStream for the account", jetstream.ErrJetStreamNotEnabledForAccount, false},
		{"permissions", nats.ErrPermissionViolation, false},
		{"bad settings", &jetstream.APIError{Code: 500, ErrorCode: 10052, Description: "stream configuration invalid"}, false},
		{"nothing", nil, false},
	} {
		if got := NotReady(tc.err); got != tc.want {
			t.Errorf("%s: NotReady(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// TestWaitJetStream waits out what NotReady and waitAlso accept, and
// returns any other error at once.
func TestWaitJetStream(t *testing.T) {
	refused := errors.New("refused")
	notDeployed := errors.New("not deployed")
	answers := []error{nats.ErrTimeout, notDeployed, refused}
	calls := 0
	err := WaitJetStream(t.Context(), nil, "a stream", func(context.Context) error {
		calls++
		return answers[calls-1]
	}, func(err error) bool { return errors.Is(err, notDeployed) })
	if !errors.Is(err, refused) || calls != 3 {
		t.Fatalf("WaitJetStream = %v after %d calls, want refused after 3", err, calls)
	}
}
