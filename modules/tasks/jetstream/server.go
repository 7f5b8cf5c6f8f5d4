package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// MinServerVersion is the oldest nats-server the broker works with:
// 2.11.0, for the header Append relies on to make every later event of a
// job conditional on the job's newest one
// (Nats-Expected-Last-Subject-Sequence-Subject, new in 2.11). Older servers
// ignore a header they do not know, so on them racing workers could both
// record an outcome: silently wrong, not an error. The work consumer's
// several filter subjects need 2.10 as well.
var MinServerVersion = serverVersion{2, 11, 0}

// needs is what the oldest version is needed for, in the words of the
// error that refuses an older one.
const needs = "conditional event writes per job, multiple consumer filter subjects"

// ErrServerUnsuitable is what a ServerError is.
var ErrServerUnsuitable = errors.New("the NATS server cannot serve OTJ Helper")

// ServerError says the connected server cannot serve the broker: too old,
// or without JetStream for the connection's account. Open returns it
// before it creates anything on the server; the caller adds the setting
// that names the server.
type ServerError struct {
	// Version is the server's version as it reported it.
	Version string
	// TooOld says the version is below MinServerVersion; otherwise
	// JetStream is not enabled for the account.
	TooOld bool
}

func (e *ServerError) Error() string {
	if e.TooOld {
		return fmt.Sprintf("nats-server %s is too old: OTJ Helper needs nats-server %d.%d or newer (%s)",
			e.Version, MinServerVersion.major, MinServerVersion.minor, needs)
	}
	return fmt.Sprintf("nats-server %s has no JetStream for this account: start it with JetStream enabled (nats-server -js, or jetstream {} in its config) and give the account JetStream", e.Version)
}

// Is makes errors.Is(err, ErrServerUnsuitable) hold.
func (e *ServerError) Is(target error) bool { return target == ErrServerUnsuitable }

// checkServer refuses a server older than MinServerVersion, and one
// whose JetStream is off for the connection's account.
func checkServer(ctx context.Context, nc *nats.Conn, js natsjs.JetStream) error {
	v := nc.ConnectedServerVersion()
	got, ok := parseServerVersion(v)
	if !ok || got.less(MinServerVersion) {
		// A version that does not parse is no version this code knows.
		return &ServerError{Version: v, TooOld: true}
	}
	_, err := js.AccountInfo(ctx)
	if errors.Is(err, natsjs.ErrJetStreamNotEnabled) || errors.Is(err, natsjs.ErrJetStreamNotEnabledForAccount) {
		return &ServerError{Version: v}
	}
	if err != nil {
		return fmt.Errorf("account info: %w", classify(err))
	}
	return nil
}

type serverVersion struct{ major, minor, patch int }

func (v serverVersion) less(w serverVersion) bool {
	if v.major != w.major {
		return v.major < w.major
	}
	if v.minor != w.minor {
		return v.minor < w.minor
	}
	return v.patch < w.patch
}

// parseServerVersion reads major.minor.patch from a server's version,
// ignoring a "v" before it and a pre-release or build suffix after it
// ("2.11.0-RC.1"; a release candidate counts as its release).
func parseServerVersion(s string) (serverVersion, bool) {
	s = strings.TrimPrefix(s, "v")
	if i := strings.IndexAny(s, "-+"); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return serverVersion{}, false
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return serverVersion{}, false
		}
		n[i] = v
	}
	return serverVersion{n[0], n[1], n[2]}, true
}
