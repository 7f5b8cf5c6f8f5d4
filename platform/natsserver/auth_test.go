package natsserver_test

import (
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/otjhelper/otj/platform/natsconn"
	"github.com/otjhelper/otj/platform/natsserver"
	"github.com/otjhelper/otj/platform/testsupport"
)

const token = "auth-test-token-0123456789abcdef"

func start(t *testing.T, cfg natsserver.Config) *natsserver.Server {
	t.Helper()
	if cfg.StoreDir == "" {
		cfg.StoreDir = t.TempDir()
	}
	s, err := natsserver.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

func TestStartRefusesMissingOrWeakCredentials(t *testing.T) {
	for name, auth := range map[string]natsserver.Auth{
		"none":                  {},
		"short token":           {Token: "0123456789abcde"},
		"token and user":        {Token: token, User: "otj", Password: token},
		"user without password": {User: "otj"},
		"password without user": {Password: token},
		"short password":        {User: "otj", Password: "secret"},
	} {
		t.Run(name, func(t *testing.T) {
			for _, listen := range []string{"", "127.0.0.1:0"} {
				if s, err := natsserver.Start(natsserver.Config{StoreDir: t.TempDir(), Listen: listen, Auth: auth}); err == nil {
					s.Shutdown()
					t.Errorf("Start with %s credentials, listen %q: no error", name, listen)
				}
			}
		})
	}
}

// TestClientsNeedCredentials connects to the listener and in-process,
// without credentials, with wrong ones and with the right ones.
func TestClientsNeedCredentials(t *testing.T) {
	for name, auth := range map[string]natsserver.Auth{
		"token":         {Token: token},
		"user password": {User: "otj", Password: token},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := start(t, natsserver.Config{Listen: "127.0.0.1:0", Auth: auth})
			right := natsconn.Options{Token: auth.Token, User: auth.User, Password: auth.Password}
			wrong := natsconn.Options{Token: auth.Token + "x"}
			if auth.User != "" {
				wrong = natsconn.Options{User: auth.User, Password: "not-" + auth.Password}
			}
			for _, where := range []string{"listener", "in-process"} {
				at := func(o natsconn.Options) natsconn.Options {
					o.Name = "auth-test"
					if where == "listener" {
						o.URL = s.ClientURL()
					} else {
						o.Server = s.Server()
					}
					return o
				}
				for cname, o := range map[string]natsconn.Options{"no credentials": {}, "wrong credentials": wrong} {
					if where == "in-process" && cname == "wrong credentials" {
						continue // each in-process refusal takes 10s (below)
					}
					began := time.Now()
					nc, err := natsconn.Connect(at(o))
					if err == nil {
						nc.Close()
						t.Errorf("%s, %s: connected", where, cname)
						continue
					}
					if where == "in-process" {
						// Refused too, but over net.Pipe the server's
						// -ERR meets a client still writing: nats.go
						// sees the pipe close after the server's write
						// deadline, not the authorization error.
						continue
					}
					if !errors.Is(err, nats.ErrAuthorization) {
						t.Errorf("%s, %s: %v, want nats.ErrAuthorization", where, cname, err)
					}
					if took := time.Since(began); took > 5*time.Second {
						t.Errorf("%s, %s: refused after %s, want at once", where, cname, took)
					}
				}
				nc, err := natsconn.Connect(at(right))
				if err != nil {
					t.Fatalf("%s, right credentials: %v", where, err)
				}
				if _, err := nc.Request("$JS.API.INFO", nil, 5*time.Second); err != nil {
					t.Errorf("%s: JetStream with the right credentials: %v", where, err)
				}
				nc.Close()
			}
		})
	}
}

// TestRawClientWithoutCredentialsIsRefused speaks the protocol by hand,
// as any NATS client would, to be sure the refusal is the server's.
func TestRawClientWithoutCredentialsIsRefused(t *testing.T) {
	s := start(t, natsserver.Config{Listen: "127.0.0.1:0", Auth: natsserver.Auth{Token: token}})
	u, _ := url.Parse(s.ClientURL())
	line := testsupport.RawNATS(t, u.Host, "CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB > 1\r\nPING\r\n")
	if !strings.Contains(strings.ToLower(line), "authorization violation") {
		t.Errorf("server answered %q, want an authorization violation", line)
	}
}

func TestListenBeyondLoopbackNeedsTLSOrConsent(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:0", "example.org:0"} {
		if s, err := natsserver.Start(natsserver.Config{StoreDir: t.TempDir(), Listen: listen, Auth: natsserver.Auth{Token: token}}); err == nil {
			s.Shutdown()
			t.Errorf("listen %q without TLS: no error", listen)
		} else if !strings.Contains(err.Error(), "beyond loopback") {
			t.Errorf("listen %q: %v, want it to say beyond loopback", listen, err)
		}
	}
	for _, listen := range []string{"127.0.0.1:0", "127.8.9.1:0", "[::1]:0", "localhost:0"} {
		if !natsserver.IsLoopback(strings.Trim(listen[:strings.LastIndex(listen, ":")], "[]")) {
			t.Errorf("%s is not taken as loopback", listen)
		}
	}
	s := start(t, natsserver.Config{Listen: "0.0.0.0:0", InsecureListen: true, Auth: natsserver.Auth{Token: token}})
	if s.ClientURL() == "" {
		t.Error("no listener with InsecureListen")
	}
}

// TestTLSListener serves TLS with a certificate made for the test: a
// client that trusts it connects, one that does not and one that speaks
// plain text are refused, and in-process clients need no TLS.
func TestTLSListener(t *testing.T) {
	cert, key := testsupport.TLSCert(t)
	s := start(t, natsserver.Config{Listen: "0.0.0.0:0", Auth: natsserver.Auth{Token: token}, TLS: natsserver.TLSFiles{Cert: cert, Key: key}})
	if !strings.HasPrefix(s.ClientURL(), "tls://") {
		t.Fatalf("ClientURL %q, want tls://", s.ClientURL())
	}
	u, _ := url.Parse(s.ClientURL())
	_, port, _ := net.SplitHostPort(u.Host)
	addr := "tls://127.0.0.1:" + port

	nc, err := natsconn.Connect(natsconn.Options{URL: addr, Token: token, CAFile: cert, Name: "tls-test"})
	if err != nil {
		t.Fatalf("client trusting the certificate: %v", err)
	}
	if !nc.TLSRequired() {
		t.Error("connection is not TLS")
	}
	nc.Close()
	// A nats:// URL upgrades too: the server requires TLS.
	nc, err = natsconn.Connect(natsconn.Options{URL: "nats://127.0.0.1:" + port, Token: token, CAFile: cert, Name: "tls-test"})
	if err != nil {
		t.Fatalf("nats:// URL to the TLS listener: %v", err)
	}
	nc.Close()

	if nc, err := natsconn.Connect(natsconn.Options{URL: addr, Token: token, Name: "tls-test"}); err == nil {
		nc.Close()
		t.Error("client that does not trust the certificate connected")
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusting client: %v, want a certificate error", err)
	}
	if line := testsupport.RawNATS(t, "127.0.0.1:"+port, "CONNECT {\"auth_token\":\""+token+"\"}\r\nPING\r\n"); line == "PONG" {
		t.Error("plain-text client with the token was answered PONG")
	}

	nc, err = natsconn.Connect(natsconn.Options{Server: s.Server(), Token: token, Name: "tls-test"})
	if err != nil {
		t.Fatalf("in-process client of a TLS server: %v", err)
	}
	nc.Close()
}

func TestInProcessOnlyServerHasNoListener(t *testing.T) {
	s := start(t, natsserver.Config{Auth: natsserver.Auth{Token: token}})
	if a := s.Server().Addr(); a != nil {
		t.Errorf("in-process server listens on %s", a)
	}
	if s.ClientURL() != "" {
		t.Errorf("ClientURL %q", s.ClientURL())
	}
}
