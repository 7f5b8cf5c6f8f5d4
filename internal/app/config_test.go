package app

import (
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/platform/natsserver"
	"github.com/otjhelper/otj/platform/testsupport"
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
			cfg, err := loadConfig(mapEnv(map[string]string{"NATS_SYNC": tt.value}))
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
			_, err := loadConfig(mapEnv(map[string]string{"NATS_SYNC": v}))
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
			cfg, err := loadConfig(mapEnv(map[string]string{"BASE_URL": tt.value}))
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
			_, err := loadConfig(mapEnv(map[string]string{"BASE_URL": v}))
			if err == nil || !strings.HasPrefix(err.Error(), "BASE_URL") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("BASE_URL=%q: err = %v, want one line naming BASE_URL", v, err)
			}
		})
	}
}

func TestConfigNATSCredentialsAndTLSRejectBadValues(t *testing.T) {
	cert, key := testsupport.TLSCert(t)
	const token = "0123456789abcdef"
	tests := []struct {
		name string
		set  map[string]string
		want string // the error's start: the setting it names
	}{
		{"short token", map[string]string{"NATS_TOKEN": "0123456789abcde"}, "NATS_TOKEN: "},
		{"token and user", map[string]string{"NATS_TOKEN": token, "NATS_USER": "otj", "NATS_PASSWORD": token}, "NATS_TOKEN and NATS_USER"},
		{"token and password", map[string]string{"NATS_TOKEN": token, "NATS_PASSWORD": token}, "NATS_TOKEN and NATS_USER"},
		{"user without password", map[string]string{"NATS_USER": "otj"}, "NATS_USER and NATS_PASSWORD"},
		{"password without user", map[string]string{"NATS_PASSWORD": token}, "NATS_USER and NATS_PASSWORD"},
		{"short password for the embedded server", map[string]string{"NATS_USER": "otj", "NATS_PASSWORD": "secret"}, "NATS_PASSWORD: "},
		{"cert without key", map[string]string{"NATS_TLS_CERT": cert}, "NATS_TLS_CERT and NATS_TLS_KEY"},
		{"key without cert", map[string]string{"NATS_TLS_KEY": key}, "NATS_TLS_CERT and NATS_TLS_KEY"},
		{"cert and key swapped", map[string]string{"NATS_TLS_CERT": key, "NATS_TLS_KEY": cert}, "NATS_TLS_CERT and NATS_TLS_KEY"},
		{"cert missing", map[string]string{"NATS_TLS_CERT": cert + ".gone", "NATS_TLS_KEY": key}, "NATS_TLS_CERT and NATS_TLS_KEY"},
		{"CA missing", map[string]string{"NATS_TLS_CA": cert + ".gone"}, "NATS_TLS_CA: "},
		{"CA not PEM", map[string]string{"NATS_TLS_CA": "config_test.go"}, "NATS_TLS_CA config_test.go"},
		{"insecure not a bool", map[string]string{"NATS_LISTEN_INSECURE": "sure"}, "NATS_LISTEN_INSECURE "},
		{"listen on every interface", map[string]string{"NATS_LISTEN": "0.0.0.0:4250"}, "NATS_LISTEN "},
		{"listen with no host", map[string]string{"NATS_LISTEN": ":4250"}, "NATS_LISTEN "},
		{"listen on an outside address", map[string]string{"NATS_LISTEN": "192.0.2.10:4250"}, "NATS_LISTEN "},
		{"listen on a name", map[string]string{"NATS_LISTEN": "example.org:4250"}, "NATS_LISTEN "},
		{"listen insecure false", map[string]string{"NATS_LISTEN": "0.0.0.0:4250", "NATS_LISTEN_INSECURE": "false"}, "NATS_LISTEN "},
		{"creds and token", map[string]string{"NATS_URL": "nats://h:4222", "NATS_TOKEN": token, "NATS_CREDS": "x.creds"}, "NATS_TOKEN and NATS_CREDS: "},
		{"nkey and creds", map[string]string{"NATS_URL": "nats://h:4222", "NATS_NKEY": "x.nk", "NATS_CREDS": "x.creds"}, "NATS_CREDS and NATS_NKEY: "},
		{"creds missing", map[string]string{"NATS_URL": "nats://h:4222", "NATS_CREDS": cert + ".gone"}, "NATS_CREDS: "},
		{"creds not creds", map[string]string{"NATS_URL": "nats://h:4222", "NATS_CREDS": cert}, "NATS_CREDS "},
		{"nkey not a seed", map[string]string{"NATS_URL": "nats://h:4222", "NATS_NKEY": key}, "NATS_NKEY "},
		{"nkey for the embedded server", map[string]string{"NATS_NKEY": key}, "NATS_NKEY: "},
		{"redis CA without rediss", map[string]string{"TASKS_BROKER": "redis", "REDIS_URL": "redis://h:6379/0", "REDIS_TLS_CA": cert}, "REDIS_TLS_CA: "},
		{"redis CA missing", map[string]string{"TASKS_BROKER": "redis", "REDIS_URL": "rediss://h:6379/0", "REDIS_TLS_CA": cert + ".gone"}, "REDIS_TLS_CA: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(mapEnv(tt.set))
			if err == nil {
				t.Fatalf("%v: no error", tt.set)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line starting %q", msg, tt.want)
			}
			for k, v := range tt.set {
				if (k == "NATS_TOKEN" || k == "NATS_PASSWORD") && strings.Contains(msg, v) {
					t.Errorf("error %q shows the value of %s", msg, k)
				}
			}
		})
	}
}

func TestConfigNATSCredentialsAndTLS(t *testing.T) {
	cert, key := testsupport.TLSCert(t)
	const token = "0123456789abcdef"
	tests := []struct {
		name  string
		set   map[string]string
		check func(config) bool
	}{
		{"token", map[string]string{"NATS_TOKEN": " " + token + " "}, func(c config) bool { return c.NATSToken == token }},
		{"user and password", map[string]string{"NATS_USER": "otj", "NATS_PASSWORD": token}, func(c config) bool {
			return c.NATSUser == "otj" && c.NATSPassword == token && c.NATSToken == ""
		}},
		// An external server decides what a password must be.
		{"short password for an external server", map[string]string{"NATS_URL": "nats://nats.example:4222", "NATS_USER": "otj", "NATS_PASSWORD": "secret"}, func(c config) bool { return c.NATSPassword == "secret" }},
		{"loopback listens", map[string]string{"NATS_LISTEN": "127.0.0.2:4250"}, func(c config) bool { return !c.NATSListenInsecure }},
		{"ipv6 loopback", map[string]string{"NATS_LISTEN": "[::1]:4250"}, func(c config) bool { return true }},
		{"localhost", map[string]string{"NATS_LISTEN": "localhost:4250"}, func(c config) bool { return true }},
		{"beyond loopback with TLS", map[string]string{"NATS_LISTEN": "0.0.0.0:4250", "NATS_TLS_CERT": cert, "NATS_TLS_KEY": key}, func(c config) bool {
			return c.NATSTLS == natsserver.TLSFiles{Cert: cert, Key: key}
		}},
		{"beyond loopback acknowledged", map[string]string{"NATS_LISTEN": "0.0.0.0:4250", "NATS_LISTEN_INSECURE": "true"}, func(c config) bool { return c.NATSListenInsecure }},
		// NATS_LISTEN is not used with NATS_URL: a worker's shared
		// settings are not refused for it.
		{"listen ignored with an external server", map[string]string{"NATS_URL": "nats://nats.example:4222", "NATS_LISTEN": "0.0.0.0:4250"}, func(c config) bool { return true }},
		{"CA", map[string]string{"NATS_TLS_CA": cert}, func(c config) bool { return c.NATSTLSCA == cert }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(mapEnv(tt.set))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("%v gives %+v", tt.set, c)
			}
		})
	}
}

// ADMIN_EMAILS is read as ALLOWED_EMAILS is, by the same parser: exact
// addresses and @domain entries; unset, nobody is an operator. A bad
// entry is a one-line error naming the setting.
func TestConfigAdminEmails(t *testing.T) {
	for _, tt := range []struct {
		value       string
		admits      []string
		refuses     []string
		wantNoAdmin bool
	}{
		{value: "", refuses: []string{"ops@example.org"}, wantNoAdmin: true},
		{value: "Ops@Example.org, @staff.example.org", admits: []string{"ops@example.org", "ana@staff.example.org"},
			refuses: []string{"bob@example.org", "ops@example.org.evil", "x@sub.staff.example.org"}},
	} {
		t.Run(tt.value, func(t *testing.T) {
			cfg, err := loadConfig(mapEnv(map[string]string{"ADMIN_EMAILS": tt.value}))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Operators.Empty() != tt.wantNoAdmin {
				t.Errorf("ADMIN_EMAILS=%q: empty %v, want %v", tt.value, cfg.Operators.Empty(), tt.wantNoAdmin)
			}
			for _, e := range tt.admits {
				if !cfg.Operators.Admits(e) {
					t.Errorf("ADMIN_EMAILS=%q does not admit %s", tt.value, e)
				}
			}
			for _, e := range tt.refuses {
				if !cfg.Operators.Empty() && cfg.Operators.Admits(e) {
					t.Errorf("ADMIN_EMAILS=%q admits %s", tt.value, e)
				}
			}
		})
	}
	for _, v := range []string{"ops", "a@b@c", "@", "ops@example.org, <x@y>"} {
		_, err := loadConfig(mapEnv(map[string]string{"ADMIN_EMAILS": v}))
		if err == nil || !strings.HasPrefix(err.Error(), "ADMIN_EMAILS: ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("ADMIN_EMAILS=%q: err = %v, want one line naming ADMIN_EMAILS", v, err)
		}
	}
}
