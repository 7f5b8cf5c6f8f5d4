package app

import (
	"strings"
	"testing"
	"time"
)

func TestConfigResultSettings(t *testing.T) {
	cfg, err := loadConfig(mapEnv(map[string]string{}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ResultTTL != 30*24*time.Hour || cfg.ResultKeep != 5 || cfg.ResultMaxBytes != 1<<30 {
		t.Fatalf("defaults: TTL %s, keep %d, max %d", cfg.ResultTTL, cfg.ResultKeep, cfg.ResultMaxBytes)
	}
	tests := []struct {
		env  map[string]string
		ttl  time.Duration
		keep int
		max  int64
	}{
		{map[string]string{"RESULT_TTL": "7d"}, 7 * 24 * time.Hour, 5, 1 << 30},
		{map[string]string{"RESULT_TTL": "36h"}, 36 * time.Hour, 5, 1 << 30},
		{map[string]string{"RESULT_TTL": "1h", "RESULT_KEEP": "0"}, time.Hour, 0, 1 << 30},
		{map[string]string{"RESULT_TTL": "3650d", "RESULT_KEEP": "20"}, 3650 * 24 * time.Hour, 20, 1 << 30},
		{map[string]string{"RESULT_MAX_BYTES": "512MiB"}, 30 * 24 * time.Hour, 5, 512 << 20},
		{map[string]string{"RESULT_MAX_BYTES": " 2GiB "}, 30 * 24 * time.Hour, 5, 2 << 30},
		{map[string]string{"RESULT_MAX_BYTES": "500MB"}, 30 * 24 * time.Hour, 5, 500_000_000},
		{map[string]string{"RESULT_MAX_BYTES": "10485760"}, 30 * 24 * time.Hour, 5, 10 << 20},
	}
	for _, tt := range tests {
		cfg, err := loadConfig(mapEnv(tt.env))
		if err != nil {
			t.Errorf("%v: %v", tt.env, err)
			continue
		}
		if cfg.ResultTTL != tt.ttl || cfg.ResultKeep != tt.keep || cfg.ResultMaxBytes != tt.max {
			t.Errorf("%v: TTL %s, keep %d, max %d", tt.env, cfg.ResultTTL, cfg.ResultKeep, cfg.ResultMaxBytes)
		}
	}
}

func TestConfigResultSettingsRejectBadValues(t *testing.T) {
	bad := map[string][]string{
		"RESULT_TTL":          {"forever", "59m", "3651d", "-1d", "0", "1.5d", "d"},
		"RESULT_KEEP":         {"-1", "many", "1001"},
		"RESULT_MAX_BYTES":    {"lots", "1KiB", "0", "-5MiB", "2XB", "1.5GiB", "100PiB"},
		"REPORT_MIN_DURATION": {"slow", "-1s", "11m", "20"},
	}
	for name, values := range bad {
		for _, v := range values {
			_, err := loadConfig(mapEnv(map[string]string{name: v}))
			if err == nil {
				t.Errorf("%s=%q: no error", name, v)
				continue
			}
			if msg := err.Error(); !strings.HasPrefix(msg, name+" ") || strings.Contains(msg, "\n") {
				t.Errorf("%s=%q: error %q: want one line starting with the setting's name", name, v, msg)
			}
		}
	}
}

// REPORT_MIN_DURATION paces reports for a demo; unset, they are not paced.
func TestConfigReportMinDuration(t *testing.T) {
	for env, want := range map[string]time.Duration{"": 0, "0": 0, "20s": 20 * time.Second, "10m": 10 * time.Minute} {
		cfg, err := loadConfig(mapEnv(map[string]string{"REPORT_MIN_DURATION": env}))
		if err != nil || cfg.ReportMinDuration != want {
			t.Errorf("REPORT_MIN_DURATION=%q: %s, %v; want %s", env, cfg.ReportMinDuration, err, want)
		}
	}
}

// TASK_RETENTION keeps finished tasks 90 days unless told otherwise, and
// takes days or a Go duration down to 10s, for tests and benchmarks.
func TestConfigTaskRetention(t *testing.T) {
	for env, want := range map[string]time.Duration{"": 90 * 24 * time.Hour, "30d": 30 * 24 * time.Hour, "10s": 10 * time.Second, "2m": 2 * time.Minute} {
		cfg, err := loadConfig(mapEnv(map[string]string{"TASK_RETENTION": env}))
		if err != nil || cfg.TaskRetention != want {
			t.Errorf("TASK_RETENTION=%q: %s, %v; want %s", env, cfg.TaskRetention, err, want)
		}
	}
	for _, v := range []string{"forever", "9s", "0", "-1d", "3651d", "1.5d"} {
		_, err := loadConfig(mapEnv(map[string]string{"TASK_RETENTION": v}))
		if err == nil || !strings.HasPrefix(err.Error(), "TASK_RETENTION ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("TASK_RETENTION=%q: error %v; want one line starting with the setting's name", v, err)
		}
	}
	if _, err := loadConfig(mapEnv(map[string]string{"TASK_RETENTION_RESET": "maybe"})); err == nil || !strings.HasPrefix(err.Error(), "TASK_RETENTION_RESET ") {
		t.Errorf("TASK_RETENTION_RESET=maybe: error %v; want one naming the setting", err)
	}
}
