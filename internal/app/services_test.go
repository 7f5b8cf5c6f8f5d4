package app

import (
	"strings"
	"testing"

	"github.com/otjhelper/otj/modules/tasks/redisbroker"
	"github.com/otjhelper/otj/platform/testsupport"
)

// TestJoinLineShowsOnlyTheMadeUpToken checks the join line: the worker
// role's token, which the server made up, is printed for the workers to
// copy, and other settings' secrets are referred to by name.
func TestJoinLineShowsOnlyTheMadeUpToken(t *testing.T) {
	t.Parallel()
	s := testsupport.NATS(t)
	url := s.ClientURL()
	tests := []struct {
		name string
		cfg  config
		c    string // the worker role's token
		want string
	}{
		{"made up", config{}, "made-up-0123456789abcdef",
			"NATS_URL=" + url + " NATS_TOKEN=made-up-0123456789abcdef"},
		{"with a CA", config{NATSTLSCA: "/etc/otj/ca.pem"}, "made-up-0123456789abcdef",
			"NATS_URL=" + url + " NATS_TOKEN=made-up-0123456789abcdef NATS_TLS_CA=/etc/otj/ca.pem"},
		{"redis without a password", config{Broker: brokerRedis, RedisURL: "redis://10.0.0.5:6379/0", RedisKeyPrefix: defaultRedisPrefix},
			"made-up-0123456789abcdef",
			"NATS_URL=" + url + " NATS_TOKEN=made-up-0123456789abcdef TASKS_BROKER=redis REDIS_URL=redis://10.0.0.5:6379/0"},
		{"redis with a password, TLS and a prefix", config{Broker: brokerRedis, RedisURL: "rediss://:pw-secret@redis.example:6380/0",
			RedisTLSCA: "/etc/otj/redis-ca.pem", RedisKeyPrefix: "{otj:staging}"},
			"made-up-0123456789abcdef",
			"NATS_URL=" + url + ` NATS_TOKEN=made-up-0123456789abcdef TASKS_BROKER=redis REDIS_URL="$REDIS_URL" REDIS_TLS_CA=/etc/otj/redis-ca.pem REDIS_KEY_PREFIX='{otj:staging}'`},
		{"postgres with a password", config{DatabaseURL: "postgres://otj:pw@db.example:5432/otj"},
			"made-up-0123456789abcdef",
			"NATS_URL=" + url + ` NATS_TOKEN=made-up-0123456789abcdef DATABASE_URL="$DATABASE_URL"`},
		{"postgres without one", config{DatabaseURL: "postgres://db.example/otj?sslmode=require&user=otj"},
			"made-up-0123456789abcdef",
			"NATS_URL=" + url + ` NATS_TOKEN=made-up-0123456789abcdef DATABASE_URL='postgres://db.example/otj?sslmode=require&user=otj'`},
	}
	for _, tt := range tests {
		if got := joinSettings(tt.cfg, s, tt.c); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestDevLoginExposed(t *testing.T) {
	tests := []struct {
		host, email string
		warn        bool
	}{
		{"127.0.0.1", "you@example.org", false},
		{"localhost", "you@example.org", false},
		{"::1", "you@example.org", false},
		{"0.0.0.0", "you@example.org", true},
		{"192.168.1.5", "you@example.org", true},
		{"0.0.0.0", "", false},
	}
	for _, tt := range tests {
		got := devLoginExposed(config{Host: tt.host, DevAutoLoginEmail: tt.email})
		if (got != "") != tt.warn || tt.warn && !strings.Contains(got, tt.host) {
			t.Errorf("HOST %s, email %q: warning %q", tt.host, tt.email, got)
		}
	}
}

// A job run in a request while Redis is down is presumed orphaned
// OrphanAfter after its latest event, so no job type may be allowed to
// run that long: its attempt would be counted as lost while it runs.
func TestNoJobTypeOutlivesTheOrphanLimit(t *testing.T) {
	db, _ := testsupport.DB(t)
	reg, err := newRegistry(db, config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range reg.Types() {
		_, p, _ := reg.Lookup(typ)
		if p.Timeout >= redisbroker.DefaultOrphanAfter {
			t.Errorf("job type %s times out after %s, not before the %s after which a job run in a request is presumed orphaned", typ, p.Timeout, redisbroker.DefaultOrphanAfter)
		}
	}
	if len(reg.Types()) == 0 {
		t.Fatal("no job types registered")
	}
}
