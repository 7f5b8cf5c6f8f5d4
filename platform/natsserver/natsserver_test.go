package natsserver

import (
	"errors"
	"net"
	"strings"
	"testing"
)

func TestStoreIsOwnedByOneServer(t *testing.T) {
	dir := t.TempDir()
	first, err := Start(Config{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if first.ClientURL() != "" {
		t.Errorf("in-process server listens on %q", first.ClientURL())
	}
	if _, err := Start(Config{StoreDir: dir, Listen: "127.0.0.1:0"}); !errors.Is(err, ErrStoreInUse) {
		t.Fatalf("second server on the store: %v, want ErrStoreInUse", err)
	}
	first.Shutdown()
	first.Shutdown() // safe twice
	second, err := Start(Config{StoreDir: dir, Listen: "127.0.0.1:0"})
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
	_, err = Start(Config{StoreDir: t.TempDir(), Listen: l.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("err = %v, want address already in use", err)
	}
}
