package app

import (
	"bytes"
	"context"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
)

// TestSettingsTableIsWhatLoadConfigReads records every name loadConfig
// asks the environment for: help's table must list exactly those, so
// that the help cannot drift from the configuration.
func TestSettingsTableIsWhatLoadConfigReads(t *testing.T) {
	read := map[string]bool{}
	// TASKS_BROKER=redis and NATS_URL set, so that every branch that
	// reads a setting runs.
	env := map[string]string{"TASKS_BROKER": "redis", "NATS_URL": "nats://127.0.0.1:4222", "OTJ_DATA_DIR": t.TempDir()}
	if _, err := loadConfig(func(k string) string { read[k] = true; return env[k] }); err != nil {
		t.Fatal(err)
	}
	table := settingNames()
	for name := range read {
		if !slices.Contains(table, name) {
			t.Errorf("loadConfig reads %s, which help's settings table does not list", name)
		}
	}
	for _, name := range table {
		if !read[name] {
			t.Errorf("help's settings table lists %s, which loadConfig does not read", name)
		}
	}
	for _, s := range envSettings {
		if s.cmds == 0 || s.doc == "" {
			t.Errorf("%s: no command or no description", s.name)
		}
	}
}

// TestHelp asks each command for help every way: app help CMD, app CMD
// --help and -h. Each prints its usage and the settings it reads, on
// stdout, and succeeds without starting anything.
func TestHelp(t *testing.T) {
	for _, c := range commands {
		ways := [][]string{{"help", c.name}}
		if c.name != "help" && c.name != "version" {
			ways = append(ways, []string{c.name, "--help"}, []string{c.name, "-h"})
		}
		for _, args := range ways {
			var out, errOut bytes.Buffer
			// No environment at all: help must not need a valid one.
			err := run(context.Background(), args, func(string) string { return "" }, &out, &errOut)
			if err != nil {
				t.Errorf("app %s: %v", strings.Join(args, " "), err)
				continue
			}
			got := out.String()
			if !strings.HasPrefix(got, "usage: app "+c.name) {
				t.Errorf("app %s printed:\n%s", strings.Join(args, " "), got)
			}
			for _, s := range envSettings {
				if listed := strings.Contains(got, "\n  "+s.name+" "); listed != (s.cmds&c.cmds != 0) {
					t.Errorf("app %s: %s listed %v, want %v", strings.Join(args, " "), s.name, listed, !listed)
				}
			}
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"help", "nonsense"}, func(string) string { return "" }, &out, &out); err == nil || !strings.Contains(err.Error(), "nonsense") {
		t.Errorf("app help nonsense: %v", err)
	}
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		out.Reset()
		if err := run(context.Background(), args, func(string) string { return "" }, &out, &out); err != nil || !strings.Contains(out.String(), "  version ") {
			t.Errorf("app %v: %v\n%s", args, err, out.String())
		}
	}
}

func TestVersion(t *testing.T) {
	info := &debug.BuildInfo{GoVersion: "go1.26", Main: debug.Module{Version: "v0.3.0"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0d6e3690f00"}, {Key: "vcs.time", Value: "2026-12-02T10:00:00Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	tests := []struct {
		name     string
		override string
		info     *debug.BuildInfo
		ok       bool
		want     string
	}{
		{"stamped build", "", info, true, "app v0.3.0\ncommit 0d6e3690f00 (2026-12-02T10:00:00Z), with uncommitted changes\nbuilt with go1.26\n"},
		{"release override", "v1.2.3", info, true, "app v1.2.3\ncommit 0d6e3690f00 (2026-12-02T10:00:00Z), with uncommitted changes\nbuilt with go1.26\n"},
		{"no vcs", "", &debug.BuildInfo{GoVersion: "go1.26", Main: debug.Module{Version: "(devel)"}}, true, "app (devel)\ncommit unknown (built without VCS information)\nbuilt with go1.26\n"},
		{"no build info", "", nil, false, "app (devel)\ncommit unknown (built without VCS information)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := Version
			Version = tt.override
			defer func() { Version = old }()
			var out bytes.Buffer
			printVersion(&out, tt.info, tt.ok)
			if out.String() != tt.want {
				t.Errorf("got\n%s\nwant\n%s", out.String(), tt.want)
			}
		})
	}
	// The real binary's answer, whatever its build recorded.
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, func(string) string { return "" }, &out, &out); err != nil || !strings.HasPrefix(out.String(), "app ") {
		t.Errorf("app version: %v %q", err, out.String())
	}
}
