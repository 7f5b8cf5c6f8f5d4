package testsupport

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nuid"
	"github.com/redis/go-redis/v9"
)

// RedisURLEnv names the setting that points the tests at a Redis server.
// scripts/test starts a redis-server on a free port and sets it.
const RedisURLEnv = "OTJ_TEST_REDIS_URL"

// RedisURL returns the test Redis server's URL. Without one the test is
// skipped, naming the setting; under CI=true a missing Redis fails it.
func RedisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(RedisURLEnv)
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: CI must run the Redis tests (scripts/test starts a redis-server)", RedisURLEnv)
		}
		t.Skipf("%s is not set: skipping the tests that need a real Redis (scripts/test starts one)", RedisURLEnv)
	}
	return u
}

// Redis connects to the test Redis server and returns the client and a
// key prefix of the test's own, so tests sharing the server cannot see
// each other's keys; the keys are deleted and the client closed when the
// test ends.
func Redis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	opts, err := redis.ParseURL(RedisURL(t))
	if err != nil {
		t.Fatalf("%s: %v", RedisURLEnv, err)
	}
	rdb := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		t.Fatalf("%s: redis does not answer: %v", RedisURLEnv, err)
	}
	prefix := "{otjtest:" + nuid.Next() + "}"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		rdb.Close()
	})
	return rdb, prefix
}
