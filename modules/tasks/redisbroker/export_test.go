package redisbroker

import (
	"context"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// MarkerTTL is markerTTL, for tests of how long markers last.
const MarkerTTL = markerTTL

// The senders of the handoff script, for tests of its protocol.
const (
	SenderEnqueuer     = byEnqueuer
	SenderRelayFirst   = byRelayFirst
	SenderRelay        = byRelay
	SenderRebuild      = byRebuild
	SenderRebuildAlone = byRebuildAlone
)

// Handoff sends a new job's item, due now, as sender does, and says what
// it did: "added", "sent before" or "full".
func (b *Broker) Handoff(ctx context.Context, sender string, item tasktype.Event) (string, error) {
	res, err := b.handoff(ctx, sender, []outgoing{{item: item}})
	if err != nil {
		return "", err
	}
	return map[sendResult]string{added: "added", sentBefore: "sent before", full: "full"}[res[0]], nil
}

// Answering reports whether the broker takes Redis to be answering, so
// that Enqueue does not wait for its sends.
func (b *Broker) Answering() bool { return b.health.good(b.cfg.Now()) }
