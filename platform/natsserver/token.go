package natsserver

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// TokenFileName is the file in a data dir that keeps the token an
// embedded server made up, for its next start and for the processes on
// the same machine that connect to it.
const TokenFileName = "nats-token"

// LoadOrCreateToken returns the token kept at path, or makes up a random
// one and keeps it there, readable by the owner only. Made and kept once,
// it stays the token across restarts, so clients that reconnect present
// the one they started with. Two processes creating it at once agree on
// one: the file appears whole, by a link that fails if it exists.
func LoadOrCreateToken(path string) (token string, created bool, err error) {
	token, err = ReadToken(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return token, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", false, fmt.Errorf("nats token: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), TokenFileName+".*.tmp")
	if err != nil {
		return "", false, fmt.Errorf("nats token: %w", err)
	}
	defer os.Remove(tmp.Name())
	token = rand.Text() + rand.Text() // 52 base32 characters, 260 bits
	// CreateTemp makes the file 0600; Chmod makes sure under any umask.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", false, fmt.Errorf("nats token: %w", err)
	}
	if _, err := tmp.WriteString(token + "\n"); err != nil {
		tmp.Close()
		return "", false, fmt.Errorf("nats token %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", false, fmt.Errorf("nats token %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return "", false, fmt.Errorf("nats token %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		// Another process kept one first: that one is the token.
		token, err = ReadToken(path)
		return token, false, err
	} else if err != nil {
		return "", false, fmt.Errorf("nats token %s: %w", path, err)
	}
	return token, true, nil
}

// ReadToken returns the token kept at path. Its error wraps
// fs.ErrNotExist when there is none.
func ReadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("nats token: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if len(token) < MinTokenLen || strings.ContainsAny(token, " \t\r\n") {
		return "", fmt.Errorf("nats token %s: want one line of at least %d bytes; delete the file to have a new one made", path, MinTokenLen)
	}
	return token, nil
}
