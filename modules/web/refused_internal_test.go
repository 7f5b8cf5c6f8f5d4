package web

import (
	"testing"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// A failed task offers the fix its failure carried only while it is
// failed, only from its last event, and only as a page of this app: a
// link elsewhere is never shown.
func TestRefusedInput(t *testing.T) {
	fix := func(href string) *tasktype.Fix { return &tasktype.Fix{Href: href, Label: "Fix it"} }
	failed := func(f *tasktype.Fix) tasktype.Event { return tasktype.Event{Kind: tasktype.EventFailed, Fix: f} }
	tests := []struct {
		name   string
		status tasktype.Status
		events []tasktype.Event
		want   string // the href offered; "" for none
	}{
		{"refused file", tasktype.StatusFailed, []tasktype.Event{{Kind: tasktype.EventEnqueued}, failed(fix("/activities/import"))}, "/activities/import"},
		{"failure without a fix", tasktype.StatusFailed, []tasktype.Event{failed(nil)}, ""},
		{"retried since", tasktype.StatusPending, []tasktype.Event{failed(fix("/settings")), {Kind: tasktype.EventRetried}}, ""},
		{"another site", tasktype.StatusFailed, []tasktype.Event{failed(fix("//evil.example/x"))}, ""},
		{"backslash", tasktype.StatusFailed, []tasktype.Event{failed(fix(`/\evil.example`))}, ""},
		{"absolute URL", tasktype.StatusFailed, []tasktype.Event{failed(fix("https://evil.example/"))}, ""},
		{"no label", tasktype.StatusFailed, []tasktype.Event{failed(&tasktype.Fix{Href: "/settings"})}, ""},
		{"no history", tasktype.StatusFailed, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := refusedInput(tt.status, tt.events)
			if (got == nil) != (tt.want == "") || got != nil && got.Href != tt.want {
				t.Errorf("refusedInput = %+v, want %q", got, tt.want)
			}
		})
	}
}
