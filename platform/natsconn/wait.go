package natsconn

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/platform/service"
)

// NotReady says err is what a JetStream request gets from a server that
// cannot serve it yet but will: a cluster still electing its meta leader
// or a new stream's leader answers 503 ("JetStream system temporarily
// unavailable"), or does not answer within the request's deadline, one
// whose nodes are not all up refuses replicas it cannot place on them
// yet ("peer offline"), and a connection between servers has no one to
// ask. A refusal (permissions,
// a setting the server rejects, a server without JetStream) is not:
// waiting would not mend it.
func NotReady(err error) bool {
	if err == nil {
		return false
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		if apiErr.ErrorCode == errCodeNoPeers {
			// A node the cluster knows is down, or not up yet: a
			// cluster with too few nodes does not say "peer offline".
			return strings.Contains(apiErr.Description, "peer offline")
		}
		return apiErr.Code == http.StatusServiceUnavailable &&
			apiErr.ErrorCode != jetstream.JSErrCodeJetStreamNotEnabled &&
			apiErr.ErrorCode != jetstream.JSErrCodeJetStreamNotEnabledForAccount
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrConnectionReconnecting)
}

// errCodeNoPeers is a cluster's refusal of a stream or consumer whose
// replicas it cannot place ("no suitable peers for placement").
const errCodeNoPeers jetstream.ErrorCode = 10005

// WaitJetStream calls try, which makes or opens a stream, a bucket or a
// consumer, until it succeeds or fails for good, so that a process
// started with its NATS cluster, or while the cluster elects leaders,
// waits as it does for a server not yet up. Every such step of the app
// goes through it. It waits out NotReady errors and those waitAlso (which
// may be nil) accepts, logging each as service.WaitFor does, and returns
// any other error at once, or ctx's error, wrapped with what, once ctx
// ends. try bounds each of its own requests.
func WaitJetStream(ctx context.Context, log *slog.Logger, what string, try func(context.Context) error, waitAlso func(error) bool) error {
	return service.WaitFor(ctx, log, what, try, func(err error) bool {
		return !NotReady(err) && (waitAlso == nil || !waitAlso(err))
	})
}
