package natsserver

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func TestStoreIsOwnedByOneServer(t *testing.T) {
	dir := t.TempDir()
	first, err := Start(Config{StoreDir: dir, Auth: testAuth})
	if err != nil {
		t.Fatal(err)
	}
	if first.ClientURL() != "" {
		t.Errorf("in-process server listens on %q", first.ClientURL())
	}
	if _, err := Start(Config{StoreDir: dir, Auth: testAuth, Listen: "127.0.0.1:0"}); !errors.Is(err, ErrStoreInUse) {
		t.Fatalf("second server on the store: %v, want ErrStoreInUse", err)
	}
	first.Shutdown()
	first.Shutdown() // safe twice
	second, err := Start(Config{StoreDir: dir, Auth: testAuth, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("start after the first shut down: %v", err)
	}
	defer second.Shutdown()
	if !strings.HasPrefix(second.ClientURL(), "nats://127.0.0.1:") {
		t.Errorf("ClientURL %q", second.ClientURL())
	}
}

func TestTakenListenAddressFailsAtOnce(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = Start(Config{StoreDir: t.TempDir(), Auth: testAuth, Listen: l.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("err = %v, want address already in use", err)
	}
}

// TestSyncReachesServer checks that each Sync setting is the one the
// server's file stores are made with, and that the zero value keeps
// nats-server's own 2-minute default.
func TestSyncReachesServer(t *testing.T) {
	tests := []struct {
		sync         Sync
		wantAlways   bool
		wantInterval time.Duration
	}{
		{Sync{}, false, 2 * time.Minute},
		{Sync{Always: true}, true, 2 * time.Minute},
		{Sync{Interval: 30 * time.Second}, false, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.sync.String(), func(t *testing.T) {
			s, err := Start(Config{StoreDir: t.TempDir(), Auth: testAuth, Sync: tt.sync})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Shutdown()
			js := s.Server().JetStreamConfig()
			if js == nil {
				t.Fatal("JetStream is not enabled")
			}
			if js.SyncAlways != tt.wantAlways || js.SyncInterval != tt.wantInterval {
				t.Errorf("server has SyncAlways %v, SyncInterval %s; want %v, %s", js.SyncAlways, js.SyncInterval, tt.wantAlways, tt.wantInterval)
			}
		})
	}
}

func TestSyncIntervalOutOfRangeFails(t *testing.T) {
	for _, d := range []time.Duration{-time.Second, time.Nanosecond} {
		if s, err := Start(Config{StoreDir: t.TempDir(), Auth: testAuth, Sync: Sync{Interval: d}}); err == nil {
			s.Shutdown()
			t.Errorf("Start with sync interval %s: no error", d)
		}
	}
}

// testAuth is the token the tests' servers require.
var testAuth = Auth{Token: "natsserver-test-token-0123456789"}
