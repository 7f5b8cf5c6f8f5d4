package digest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// users is a Source that knows its users and nothing else.
type users map[int64]activity.User

func (u users) UserByID(_ context.Context, id int64) (activity.User, error) {
	if got, ok := u[id]; ok {
		return got, nil
	}
	return activity.User{}, fmt.Errorf("user %d: %w", id, activity.ErrNotFound)
}

func (users) DigestFacts(context.Context, activity.User, time.Time, time.Time) (activity.DigestFacts, error) {
	return activity.DigestFacts{}, errors.New("not in this test")
}

// The summary the log keeps names no address; the page gets it from the
// database. Summaries recorded before, with the address in them, and
// those of digests not sent, are shown as they are.
func TestRestate(t *testing.T) {
	restate := restate(users{7: {ID: 7, Email: "ann@example.org"}, 8: {ID: 8}})
	tests := []struct {
		name    string
		user    int64
		summary string
		want    string
	}{
		{"sent", 7, "Sent: the week of Mon 30 Nov 2026", "Sent to ann@example.org: the week of Mon 30 Nov 2026"},
		{"recorded with the address", 7, "Sent to old@example.org: the week of Mon 30 Nov 2026", "Sent to old@example.org: the week of Mon 30 Nov 2026"},
		{"not sent", 7, "Not sent: you have logged no activity yet.", "Not sent: you have logged no activity yet."},
		{"user gone", 9, "Sent: the week of Mon 30 Nov 2026", "Sent: the week of Mon 30 Nov 2026"},
		{"no address now", 8, "Sent: the week of Mon 30 Nov 2026", "Sent: the week of Mon 30 Nov 2026"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := restate(t.Context(), tt.user, tt.summary); got != tt.want {
				t.Errorf("restate(%q) = %q, want %q", tt.summary, got, tt.want)
			}
		})
	}
}

// A failed attempt's error and sentence lose the address, in whatever
// case the server quoted it, and keep what they wrap.
func TestWithoutAddress(t *testing.T) {
	u := activity.User{ID: 7, Email: "Ann.Lee@example.org"}
	sentinel := errors.New("smtp said no")
	err := tasktype.Permanent(tasktype.UserMessage(fmt.Errorf("send to ann.lee@EXAMPLE.org: %w", sentinel),
		"The mail server refused your digest: 550 <ANN.LEE@example.org> unknown"))
	got := withoutAddress(err, u)
	if want := "send to <user 7's address>: smtp said no"; got.Error() != want {
		t.Errorf("error %q, want %q", got.Error(), want)
	}
	if want := "The mail server refused your digest: 550 <your address> unknown"; tasktype.MessageOf(got) != want {
		t.Errorf("message %q, want %q", tasktype.MessageOf(got), want)
	}
	if !errors.Is(got, sentinel) || !tasktype.IsPermanent(got) {
		t.Error("the scrubbed error lost what it wraps")
	}
	if withoutAddress(nil, u) != nil {
		t.Error("nil became an error")
	}
}
