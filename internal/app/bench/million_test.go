package bench

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBenchMillionFlags(t *testing.T) {
	t.Parallel()
	o, err := parseMillionFlags(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.jobs != 1000000 || o.workers != 4 || o.concurrency != 10 || o.batch != 1000 || o.json || o.child != "" {
		t.Errorf("defaults %+v", o)
	}
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--jobs", "0"}, "--jobs"},
		{[]string{"--workers", "0"}, "--workers"},
		{[]string{"--workers", "100"}, "--workers"},
		{[]string{"--concurrency", "0"}, "--concurrency"},
		{[]string{"--batch", "0"}, "--batch"},
		{[]string{"--child", "db", "--dir", "x"}, "--child"},
		{[]string{"--child", "web"}, "--dir"},
		{[]string{"--child", "worker", "--dir", "x"}, "--nats-url"},
		{[]string{"--fast"}, "-fast"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		_, err := parseMillionFlags(tc.args, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: err = %v, want one line about %s", tc.args, err, tc.wantErr)
		}
	}
	var help bytes.Buffer
	if _, err := parseMillionFlags([]string{"-h"}, &help); err == nil {
		t.Error("-h: no flag.ErrHelp")
	}
	for _, want := range []string{"usage: app bench million", "--jobs", "--workers", "--concurrency", "--json", "MaxAckPending"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, help.String())
		}
	}
	for _, hidden := range []string{"--child", "--dir", "--nats-url"} {
		if strings.Contains(help.String(), hidden) {
			t.Errorf("help shows %s:\n%s", hidden, help.String())
		}
	}
}

// TestBenchMillionRefusesNATSURL checks the run stops before starting
// anything when the settings point at an external server.
func TestBenchMillionRefusesNATSURL(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := Run(t.Context(), []string{"million", "--jobs", "10"}, func() (Env, error) { return Env{External: true}, nil }, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "NATS_URL") {
		t.Fatalf("err = %v, want one naming NATS_URL", err)
	}
}

func TestDirSize(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "nats", "jetstream"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]int{"otj.db": 5000, "nats/jetstream/1.blk": 70000, "empty": 0} {
		if err := os.WriteFile(filepath.Join(dir, name), bytes.Repeat([]byte{'x'}, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := dirSize(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Files != 3 || s.Bytes != 75000 || s.AllocatedBytes < 70000 {
		t.Errorf("size %+v, want 3 files of 75000 bytes, most of them allocated", s)
	}
	if _, err := dirSize(filepath.Join(dir, "missing")); err == nil {
		t.Error("no error for a missing dir")
	}
}

func TestWaitCommand(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cmds := readCommands(strings.NewReader("go\n"))
	if err := waitCommand(ctx, cmds, "go", nil); err != nil {
		t.Fatalf("go: %v", err)
	}
	if err := waitCommand(ctx, cmds, "", nil); err != nil {
		t.Fatalf("end of stdin: %v", err)
	}
	if err := waitCommand(ctx, readCommands(strings.NewReader("")), "go", nil); err == nil {
		t.Error("no error for stdin ending before go")
	}
	if err := waitCommand(ctx, readCommands(strings.NewReader("stop\n")), "go", nil); err == nil || !strings.Contains(err.Error(), "stop") {
		t.Errorf("err = %v, want one naming the wrong command", err)
	}
	failed := make(chan struct{})
	close(failed)
	never := make(chan string)
	if err := waitCommand(ctx, never, "go", failed); err == nil {
		t.Error("no error for a failed service")
	}
}

// TestBenchChild runs children that stand in for bench million's
// processes (a shell), and checks each way out ends and waits for them.
func TestBenchChild(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	// A shell started where SIGINT is ignored cannot trap it: the kill
	// after the grace is what ends it then.
	grace := childStopGrace
	childStopGrace = time.Second
	t.Cleanup(func() { childStopGrace = grace })
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var buf bytes.Buffer
	stderr := &lockedWriter{w: &buf} // the children's copies write at once
	exits := make(chan *benchChild, 3)

	// Says ready, reads a command, stops at the end of its stdin.
	good, err := startBenchChild(ctx, "good", sh, []string{"-c", `echo '{"event":"ready"}'; read cmd; cat >/dev/null; echo '{"event":"stopped","worker":{"succeeded":7}}'`}, stderr, exits)
	if err != nil {
		t.Fatal(err)
	}
	defer good.kill()
	if _, err := good.next(ctx, "ready", exits); err != nil {
		t.Fatal(err)
	}
	if err := good.send("go"); err != nil {
		t.Fatal(err)
	}
	m, err := good.finish(ctx, "stopped", exits)
	if err != nil || m.Worker == nil || m.Worker.Succeeded != 7 {
		t.Fatalf("finish: %+v, %v", m, err)
	}

	// Ends on its own: the parent, waiting for another, hears of it.
	early, err := startBenchChild(ctx, "early", sh, []string{"-c", "exit 3"}, stderr, exits)
	if err != nil {
		t.Fatal(err)
	}
	defer early.kill()
	hang, err := startBenchChild(ctx, "hang", sh, []string{"-c", "sleep 60"}, stderr, exits)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hang.next(ctx, "ready", exits); err == nil || !strings.Contains(err.Error(), "early") {
		t.Errorf("err = %v, want one naming the process that ended", err)
	}
	// kill ends one that would never end by itself, and waits for it.
	done := make(chan struct{})
	go func() { hang.kill(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("kill did not end the child")
	}
	if hang.cmd.ProcessState == nil {
		t.Error("kill returned before the child was waited for")
	}
	var exitErr *exec.ExitError
	if !errors.As(early.exitError(), &exitErr) {
		t.Errorf("early: %v, want its exit status", early.exitError())
	}
}

func TestCheckMillion(t *testing.T) {
	t.Parallel()
	rep := MillionResult{Jobs: 10, Succeeded: 10}
	if err := checkMillion(rep); err != nil {
		t.Errorf("a good run: %v", err)
	}
	rep.Succeeded = 9
	if err := checkMillion(rep); err == nil {
		t.Error("no error for a job that did not run")
	}
	rep.Succeeded, rep.Consumer.PendingAtEnd = 10, 1
	if err := checkMillion(rep); err == nil {
		t.Error("no error for work items left waiting")
	}
	var table bytes.Buffer
	rep.Timeline = []MillionSample{{AtS: 1, Completed: 10}}
	if err := printMillionTable(&table, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"drain, workers started", "peak RSS, web process", "MaxAckPending", "completed"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}
