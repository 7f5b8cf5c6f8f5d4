// Package natsserver runs an embedded NATS server with JetStream, for
// development (app all, app web without NATS_URL) and for tests.
//
// The server always requires credentials, from every client, in-process
// ones included, and listens beyond loopback only with TLS or an explicit
// acknowledgement that the traffic goes in plain text: whoever reaches the
// broker can read every event and result and forge the events the task
// list is made from.
package natsserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/otjhelper/otj/platform/filelock"
)

// ErrStoreInUse means another process already runs a server on the store.
var ErrStoreInUse = errors.New("JetStream store is in use by another process")

// Config configures an embedded server.
type Config struct {
	// StoreDir holds the JetStream store (in a jetstream/ subfolder).
	StoreDir string
	// Listen is host:port for clients in other processes; "" serves only
	// in-process clients, and port 0 (or -1) picks a free port.
	Listen string
	// Name is the server's name; default "otj-embedded".
	Name string
	// ReadyTimeout bounds start-up; default 10s.
	ReadyTimeout time.Duration
	// Sync says when the store is fsynced; the zero value keeps
	// nats-server's default.
	Sync Sync
	// Auth is what every client must present. Start refuses a Config
	// without it.
	Auth Auth
	// TLS, when its files are set, makes the listener take TLS
	// connections only. In-process clients need none.
	TLS TLSFiles
	// InsecureListen allows a listener beyond loopback without TLS. Its
	// traffic, credentials included, can then be read on the network;
	// the caller, who knows the setting's name, warns about it.
	InsecureListen bool
	// Cluster, when set, makes the server a node of a JetStream cluster.
	// The app never runs one itself (a cluster is an operator's external
	// NATS); tests run several nodes in one process with it.
	Cluster *ClusterConfig
	Logger  *slog.Logger
}

// ClusterConfig joins a server to a cluster: a listener for the other
// nodes' routes and the routes to them. Every node has the same Name and
// a distinct Config.Name, which JetStream's consensus groups know it by.
type ClusterConfig struct {
	// Name is the cluster's name, the same on every node.
	Name string
	// Listen is host:port for the other nodes' routes. A fixed port lets a
	// node restarted on its store come back where the others look for it.
	Listen string
	// Routes are the other nodes' route addresses, host:port (this node's
	// own may be among them: the server skips it).
	Routes []string
}

// MinTokenLen is the shortest token, and password, Start accepts: a
// shorter one could be guessed by trying.
const MinTokenLen = 16

// Auth is the credentials the server requires: a token, a user and a
// password, several users, each with a password and the permissions of
// their role, or roles; one of the four.
type Auth struct {
	Token    string
	User     string
	Password string
	// Users, each with a password and optional permissions: how a
	// cluster's operator admits web processes and workers as their own
	// roles (README, NATS permissions), for tests that run that setup.
	Users []*server.User
	// Roles admit each client as the role whose token, or user and
	// password, it presents, with that role's permissions: how app web
	// gives workers a credential of their own.
	Roles []Role
}

// Role is one kind of client of the server: the credential that admits
// it (a token, or a user and password, or both) and what it may do.
type Role struct {
	// Name is the user name the server reports the client by.
	Name     string
	Token    string
	User     string
	Password string
	// Permissions are the role's; nil is every right.
	Permissions *server.Permissions
}

// validate says what is wrong with a, in words naming no value.
func (a Auth) validate() error {
	switch {
	case a.Token != "" && (a.User != "" || a.Password != ""):
		return errors.New("give a token or a user and password, not both")
	case len(a.Roles) > 0:
		if a.Token != "" || a.User != "" || a.Password != "" || len(a.Users) > 0 {
			return errors.New("give roles, users, a token, or a user and password, not two of them")
		}
		for _, r := range a.Roles {
			if r.Name == "" || (r.Token == "" && r.User == "") {
				return errors.New("every role needs a name and a token or a user")
			}
			if (r.Token != "" && len(r.Token) < MinTokenLen) || (r.User != "" && len(r.Password) < MinTokenLen) {
				return fmt.Errorf("every role's token and password must be at least %d bytes", MinTokenLen)
			}
		}
	case len(a.Users) > 0:
		if a.Token != "" || a.User != "" || a.Password != "" {
			return errors.New("give users, a token, or a user and password, not two of them")
		}
		for _, u := range a.Users {
			if u.Username == "" || len(u.Password) < MinTokenLen {
				return fmt.Errorf("every user needs a name and a password of at least %d bytes", MinTokenLen)
			}
		}
	case a.Token != "":
		if len(a.Token) < MinTokenLen {
			return fmt.Errorf("the token must be at least %d bytes", MinTokenLen)
		}
	case a.User != "" || a.Password != "":
		if a.User == "" || a.Password == "" {
			return errors.New("give both a user and a password")
		}
		if len(a.Password) < MinTokenLen {
			return fmt.Errorf("the password must be at least %d bytes", MinTokenLen)
		}
	default:
		return errors.New("no credentials: every client must present a token or a user and password")
	}
	return nil
}

// TLSFiles names the listener's certificate and key, PEM files.
type TLSFiles struct {
	Cert string
	Key  string
}

// Enabled reports whether the files are set.
func (f TLSFiles) Enabled() bool { return f.Cert != "" || f.Key != "" }

// IsLoopback reports whether host, of a host:port, is reachable only from
// this machine: localhost, 127.0.0.0/8 or ::1. An empty host means every
// interface.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Sync says when the server fsyncs its JetStream store to disk.
//
// Whatever the setting, nats-server's file store hands every message of a
// single-replica stream (all an embedded server has) to the operating
// system, with a write syscall, before it acknowledges it, so an
// acknowledged message survives the server's process being killed. Only
// what has been fsynced survives the machine losing power or the kernel
// crashing: with the default, up to the last interval's writes can be lost
// that way; with Always, none, at the price of one fsync per write.
type Sync struct {
	// Always fsyncs each write before it is acknowledged.
	Always bool
	// Interval is how often the store is fsynced in the background when
	// not Always; 0 keeps nats-server's default of 2 minutes.
	Interval time.Duration
}

// String names the setting as NATS_SYNC spells it, for logs.
func (s Sync) String() string {
	switch {
	case s.Always:
		return "always"
	case s.Interval > 0:
		return s.Interval.String()
	default:
		return "interval"
	}
}

// Server is a running embedded server and the lock on its store.
type Server struct {
	ns   *server.Server
	lock *filelock.Lock
	log  *slog.Logger
}

// Start locks the store directory, then starts the server and waits until
// JetStream is ready.
//
// Nothing in nats-server stops two processes from opening one JetStream
// store (and corrupting it), so the lock is ours: a second process on the
// same store fails at once with ErrStoreInUse.
func Start(cfg Config) (*Server, error) {
	if cfg.Name == "" {
		cfg.Name = "otj-embedded"
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if i := cfg.Sync.Interval; i != 0 && i < time.Millisecond {
		// nats-server would panic on a negative or nanosecond interval
		// (its timer draws a random start below half of it), and do
		// little but fsync on a tiny one.
		return nil, fmt.Errorf("embedded nats: sync interval %s: want 0 (the default) or at least 1ms", i)
	}
	if err := cfg.Auth.validate(); err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	var tlsConfig *tls.Config
	if cfg.TLS.Enabled() {
		if cfg.TLS.Cert == "" || cfg.TLS.Key == "" {
			return nil, errors.New("embedded nats: TLS needs both a certificate and a key")
		}
		var err error
		if tlsConfig, err = server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cfg.TLS.Cert, KeyFile: cfg.TLS.Key}); err != nil {
			return nil, fmt.Errorf("embedded nats: TLS: %w", err)
		}
	}
	if cfg.Listen != "" {
		host, _, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("listen address %q: %w", cfg.Listen, err)
		}
		if !IsLoopback(host) && tlsConfig == nil && !cfg.InsecureListen {
			return nil, fmt.Errorf("listen address %q is beyond loopback: give the listener TLS, or allow plain text explicitly", cfg.Listen)
		}
	}
	if err := os.MkdirAll(cfg.StoreDir, 0o755); err != nil {
		return nil, fmt.Errorf("embedded nats store: %w", err)
	}
	lock, err := filelock.TryLock(filepath.Join(cfg.StoreDir, "nats.lock"))
	if errors.Is(err, filelock.ErrLocked) {
		return nil, fmt.Errorf("%w (%s): stop the other app process, or give this one another data dir", ErrStoreInUse, cfg.StoreDir)
	}
	if err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true, // we own signal handling; the server would os.Exit
		NoLog:      true,
		DontListen: cfg.Listen == "",
		SyncAlways: cfg.Sync.Always,
		// Zero is taken as unset: the server fills in its 2m default.
		SyncInterval: cfg.Sync.Interval,
		// Large report files go through the object store in 128 KiB
		// chunks, well within the default 1 MiB payload.
		Authorization: cfg.Auth.Token,
		Username:      cfg.Auth.User,
		Password:      cfg.Auth.Password,
		Users:         cfg.Auth.Users,
	}
	if len(cfg.Auth.Roles) > 0 {
		opts.CustomClientAuthentication = roleAuth(cfg.Auth.Roles)
	}
	if tlsConfig != nil {
		opts.TLSConfig, opts.TLS, opts.TLSTimeout = tlsConfig, true, 2
	}
	if c := cfg.Cluster; c != nil {
		if err := clusterOptions(opts, c); err != nil {
			lock.Unlock()
			return nil, err
		}
	}
	if cfg.Listen != "" {
		host, port, err := splitListen(cfg.Listen)
		if err != nil {
			lock.Unlock()
			return nil, err
		}
		opts.Host, opts.Port = host, port
		if port > 0 {
			// The server reports a taken port only by never becoming
			// ready; trying the address first gives a clear error at once.
			l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
			if err != nil {
				lock.Unlock()
				return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
			}
			l.Close()
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		lock.Unlock()
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(cfg.ReadyTimeout) || !ns.JetStreamEnabled() {
		ns.Shutdown()
		ns.WaitForShutdown()
		lock.Unlock()
		if cfg.Listen != "" {
			return nil, fmt.Errorf("embedded nats did not start on %s within %s (is the address free?)", cfg.Listen, cfg.ReadyTimeout)
		}
		return nil, fmt.Errorf("embedded nats did not start within %s", cfg.ReadyTimeout)
	}
	s := &Server{ns: ns, lock: lock, log: cfg.Logger}
	s.log.Info("embedded nats started", "store", cfg.StoreDir, "listen", s.ClientURL(), "sync", cfg.Sync.String(), "tls", tlsConfig != nil)
	return s, nil
}

// clusterOptions puts c into opts.
func clusterOptions(opts *server.Options, c *ClusterConfig) error {
	if c.Name == "" || c.Listen == "" {
		return errors.New("embedded nats cluster: a cluster needs a name and a route listener")
	}
	host, port, err := splitListen(c.Listen)
	if err != nil {
		return fmt.Errorf("embedded nats cluster: %w", err)
	}
	opts.Cluster = server.ClusterOpts{Name: c.Name, Host: host, Port: port}
	for _, r := range c.Routes {
		u, err := url.Parse("nats-route://" + r)
		if err != nil {
			return fmt.Errorf("embedded nats cluster: route %q: %w", r, err)
		}
		opts.Routes = append(opts.Routes, u)
	}
	return nil
}

// splitListen parses host:port. nats-server reads port 0 as its default
// 4222, so 0 becomes -1, its "any free port".
func splitListen(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("listen address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("listen address %q: port must be 0-65535", addr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// Server returns the underlying server, for in-process connections.
func (s *Server) Server() *server.Server { return s.ns }

// ClientURL is the URL other processes connect to (tls:// when the
// listener has TLS), or "" when the server serves only in-process clients.
func (s *Server) ClientURL() string {
	if s.ns.Addr() == nil {
		return ""
	}
	return s.ns.ClientURL()
}

// Shutdown stops the server and releases the store. Call it after the
// process's own clients have drained. Safe to call twice.
func (s *Server) Shutdown() {
	if s == nil || s.ns == nil {
		return
	}
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
	s.ns = nil
	s.lock.Unlock()
	s.log.Info("embedded nats stopped")
}
