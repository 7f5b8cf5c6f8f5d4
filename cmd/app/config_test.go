package main

import (
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/platform/natsserver"
)

func TestConfigNATSSync(t *testing.T) {
	tests := []struct {
		value string
		want  natsserver.Sync
	}{
		{"", natsserver.Sync{}},
		{"interval", natsserver.Sync{}},
		{" Always ", natsserver.Sync{Always: true}},
		{"30s", natsserver.Sync{Interval: 30 * time.Second}},
		{"100ms", natsserver.Sync{Interval: 100 * time.Millisecond}},
		{"1h", natsserver.Sync{Interval: time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			cfg, err := LoadConfig(mapEnv(map[string]string{"NATS_SYNC": tt.value}))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.NATSSync != tt.want {
				t.Errorf("NATS_SYNC=%q gives %+v, want %+v", tt.value, cfg.NATSSync, tt.want)
			}
		})
	}
}

func TestConfigNATSSyncRejectsBadValues(t *testing.T) {
	for _, v := range []string{"never", "sometimes", "30", "-1s", "0s", "10ms", "2h"} {
		t.Run(v, func(t *testing.T) {
			_, err := LoadConfig(mapEnv(map[string]string{"NATS_SYNC": v}))
			if err == nil {
				t.Fatalf("NATS_SYNC=%q: no error", v)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "NATS_SYNC ") || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line starting with the setting's name", msg)
			}
		})
	}
}
