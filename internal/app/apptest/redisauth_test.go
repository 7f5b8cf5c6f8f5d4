package apptest

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/platform/testsupport"
)

// redisPassword is what the tests' password-protected Redis requires.
const redisPassword = "redis-pass-0123456789abcdef"

// TestRedisWithPasswordAndTLS runs the full report end to end on the
// Redis broker, on a Redis of the test's own that requires a password,
// in plain text and over TLS with REDIS_TLS_CA.
func TestRedisWithPasswordAndTLS(t *testing.T) {
	t.Run("password", func(t *testing.T) {
		addr := testsupport.RedisServer(t, "--requirepass", redisPassword)
		env := baseEnv(t)
		env["TASKS_BROKER"], env["REDIS_URL"] = "redis", "redis://:"+redisPassword+"@"+addr+"/0"
		fullReportEndToEnd(t, env)
	})
	t.Run("tls", func(t *testing.T) {
		cert, key := testsupport.TLSCert(t)
		addr := testsupport.RedisServer(t, append(testsupport.RedisTLSArgs(cert, key), "--requirepass", redisPassword)...)
		env := baseEnv(t)
		env["TASKS_BROKER"], env["REDIS_URL"], env["REDIS_TLS_CA"] = "redis", "rediss://:"+redisPassword+"@"+addr+"/0", cert
		fullReportEndToEnd(t, env)
	})
}

// TestRedisRefusalsStopAtStart: a wrong or missing password, or a
// certificate REDIS_TLS_CA did not sign, stops app web and app worker at
// start with one line naming the setting, never showing the password;
// Redis being down does not (TestSynchronousFallback).
func TestRedisRefusalsStopAtStart(t *testing.T) {
	t.Parallel()
	plain := testsupport.RedisServer(t, "--requirepass", redisPassword)
	cert, key := testsupport.TLSCert(t)
	otherCA, _ := testsupport.TLSCert(t)
	tlsAddr := testsupport.RedisServer(t, testsupport.RedisTLSArgs(cert, key)...)
	tests := []struct {
		name     string
		settings map[string]string
		want     string
	}{
		{"wrong password", map[string]string{"REDIS_URL": "redis://:not-the-password@" + plain + "/0"}, "REDIS_URL: "},
		{"no password", map[string]string{"REDIS_URL": "redis://" + plain + "/0"}, "REDIS_URL: "},
		{"wrong CA", map[string]string{"REDIS_URL": "rediss://" + tlsAddr + "/0", "REDIS_TLS_CA": otherCA}, "REDIS_TLS_CA "},
		{"no CA", map[string]string{"REDIS_URL": "rediss://" + tlsAddr + "/0"}, "REDIS_URL "},
		{"CA without rediss", map[string]string{"REDIS_URL": "redis://" + plain + "/0", "REDIS_TLS_CA": cert}, "REDIS_TLS_CA: "},
	}
	for _, tt := range tests {
		for _, cmd := range []string{"web", "worker"} {
			t.Run(tt.name+"/"+cmd, func(t *testing.T) {
				t.Parallel()
				env := baseEnv(t)
				env["TASKS_BROKER"] = "redis"
				for k, v := range tt.settings {
					env[k] = v
				}
				if cmd == "worker" {
					// A NATS server for the worker to join; the refusal
					// must come from Redis.
					n := testsupport.NATS(t)
					env["NATS_URL"], env["NATS_TOKEN"] = n.ClientURL(), testsupport.NATSToken
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				err := run(ctx, []string{cmd}, mapEnv(env), io.Discard, &tLogWriter{t: t, prefix: cmd})
				t.Logf("app %s: %v", cmd, err)
				if err == nil || !strings.HasPrefix(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "not-the-password") {
					t.Errorf("app %s: %v, want one line starting %q, without the password", cmd, err, tt.want)
				}
			})
		}
	}
}
