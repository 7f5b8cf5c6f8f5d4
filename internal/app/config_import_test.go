package app

import (
	"strings"
	"testing"
)

func TestConfigImportMaxBytes(t *testing.T) {
	tests := []struct {
		value string
		want  int64
	}{{"", 10 << 20}, {"1KiB", 1 << 10}, {" 64MiB ", 64 << 20}, {"256MiB", 256 << 20}, {"5000000", 5_000_000}}
	for _, tt := range tests {
		cfg, err := loadConfig(mapEnv(map[string]string{"IMPORT_MAX_BYTES": tt.value}))
		if err != nil || cfg.ImportMaxBytes != tt.want {
			t.Errorf("IMPORT_MAX_BYTES=%q: %d, %v; want %d", tt.value, cfg.ImportMaxBytes, err, tt.want)
		}
	}
	for _, v := range []string{"lots", "0", "1023", "257MiB", "-1MiB", "1.5MiB"} {
		_, err := loadConfig(mapEnv(map[string]string{"IMPORT_MAX_BYTES": v}))
		if err == nil {
			t.Errorf("IMPORT_MAX_BYTES=%q: no error", v)
			continue
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "IMPORT_MAX_BYTES ") || strings.Contains(msg, "\n") {
			t.Errorf("IMPORT_MAX_BYTES=%q: error %q: want one line starting with the setting's name", v, msg)
		}
	}
}
