package bench

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// noEnv is the app's settings for a bench that must stop at its flags:
// loading them is an error of its own.
func noEnv(t *testing.T) func() (Env, error) {
	return func() (Env, error) {
		t.Error("the settings were loaded")
		return Env{}, errNoEnv
	}
}

// TestBenchBadFlags checks each bad flag is refused in one line naming it,
// before anything starts.
func TestBenchBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"--broker", "kafka"}, "--broker"},
		{[]string{"--jobs", "0"}, "--jobs"},
		{[]string{"--jobs", "many"}, "-jobs"},
		{[]string{"--concurrency", "0"}, "--concurrency"},
		{[]string{"--concurrency", "5000"}, "--concurrency"},
		{[]string{"--batch", "-1"}, "--batch"},
		{[]string{"--rate", "0"}, "--rate"},
		{[]string{"--rate", "10", "--duration", "50ms"}, "--duration"},
		{[]string{"--duration", "soon"}, "-duration"},
		{[]string{"--runs", "0"}, "--runs"},
		{[]string{"--fast"}, "-fast"},
		{[]string{"extra"}, "extra"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := Run(t.Context(), tc.args, noEnv(t), &stdout, &stderr)
			if err == nil {
				t.Fatal("no error")
			}
			if msg := err.Error(); !strings.Contains(msg, tc.flag) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line naming %s", msg, tc.flag)
			}
			if stdout.Len()+stderr.Len() > 0 {
				t.Errorf("printed something:\n%s%s", stdout.String(), stderr.String())
			}
		})
	}
}

// TestBenchHelp checks -h prints the help and the flags, and is no error.
func TestBenchHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := Run(t.Context(), []string{"-h"}, noEnv(t), &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"usage: app bench", "NATS_URL", "-concurrency", "-json"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, stdout.String())
		}
	}
}

var errNoEnv = errors.New("no settings in this test")
