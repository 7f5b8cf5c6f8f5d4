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

func TestConfigBaseURL(t *testing.T) {
	tests := []struct{ value, want string }{
		{"", ""},
		{"https://otj.example.org", "https://otj.example.org"},
		{" https://otj.example.org/ ", "https://otj.example.org"},
		{"HTTPS://otj.example.org:8443", "https://otj.example.org:8443"},
		{"http://10.0.0.5:8080", "http://10.0.0.5:8080"},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			cfg, err := LoadConfig(mapEnv(map[string]string{"BASE_URL": tt.value}))
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if cfg.BaseURL != nil {
				got = cfg.BaseURL.String()
			}
			if got != tt.want {
				t.Errorf("BASE_URL=%q gives %q, want %q", tt.value, got, tt.want)
			}
		})
	}
}

func TestConfigBaseURLRejectsBadValues(t *testing.T) {
	for _, v := range []string{"otj.example.org", "ftp://otj.example.org", "https://", "https://:443",
		"https://otj.example.org/otj", "https://otj.example.org/?a=1", "https://otj.example.org/#top",
		"https://user:pw@otj.example.org", "https://otj.example.org?", "https://otj example.org", "//otj.example.org"} {
		t.Run(v, func(t *testing.T) {
			_, err := LoadConfig(mapEnv(map[string]string{"BASE_URL": v}))
			if err == nil || !strings.HasPrefix(err.Error(), "BASE_URL") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("BASE_URL=%q: err = %v, want one line naming BASE_URL", v, err)
			}
		})
	}
}
