package operator

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestBadArgumentsOpenNothing checks that a command with wrong arguments
// answers without opening the backend: a mistyped flag leaves the data
// dir and the NATS server alone.
func TestBadArgumentsOpenNothing(t *testing.T) {
	open := func(context.Context) (*Backend, error) {
		t.Error("the backend was opened")
		return nil, context.Canceled
	}
	tests := []struct {
		name    string
		run     func(args []string, stdout, stderr *bytes.Buffer) error
		args    []string
		wantErr string
	}{
		{"no subcommand", tasksCmd(open), nil, "tasks: missing subcommand"},
		{"unknown subcommand", tasksCmd(open), []string{"frobnicate"}, `tasks: unknown subcommand "frobnicate"`},
		{"bad state", tasksCmd(open), []string{"list", "--state", "done"}, `tasks list: --state "done": want one of pending, running, retrying, completed, failed, cancelled`},
		{"limit too high", tasksCmd(open), []string{"list", "--limit", "10001"}, "tasks list: --limit 10001: want a whole number from 1 to 10000"},
		{"list takes no id", tasksCmd(open), []string{"list", "X"}, `tasks list: unexpected argument "X"`},
		{"show without id", tasksCmd(open), []string{"show"}, "tasks show: missing argument; usage: app tasks show ID [--json]"},
		{"cancel two ids", tasksCmd(open), []string{"cancel", "A", "B"}, `tasks cancel: unexpected argument "B"; usage: app tasks cancel ID`},
		{"retry unknown flag", tasksCmd(open), []string{"retry", "--force", "A"}, "tasks retry: flag provided but not defined: -force"},
		{"projections without rebuild", projectionsCmd(open), nil, "projections: want: app projections rebuild"},
		{"rebuild takes no argument", projectionsCmd(open), []string{"rebuild", "now"}, `projections rebuild: unexpected argument "now"`},
		{"help", tasksCmd(open), []string{"help"}, ""},
		{"show -h", tasksCmd(open), []string{"show", "-h"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := tt.run(tt.args, &stdout, &stderr)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("err %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)):
				t.Errorf("err %v, want one starting %q", err, tt.wantErr)
			}
		})
	}
}

func tasksCmd(open OpenFunc) func([]string, *bytes.Buffer, *bytes.Buffer) error {
	return func(args []string, stdout, stderr *bytes.Buffer) error {
		return Tasks(context.Background(), args, open, stdout, stderr)
	}
}

func projectionsCmd(open OpenFunc) func([]string, *bytes.Buffer, *bytes.Buffer) error {
	return func(args []string, stdout, stderr *bytes.Buffer) error {
		return Projections(context.Background(), args, open, stdout, stderr)
	}
}
