// Package natsconn opens the app's NATS client connections with the
// reconnect behaviour every process needs.
package natsconn

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Options says where to connect. Exactly one of URL and Server is set.
type Options struct {
	URL    string         // an external server, e.g. nats://127.0.0.1:4222
	Server *server.Server // an embedded server in this process
	Name   string         // shown in the server's connection list
	// Token, or User and Password, is presented to the server; the
	// app's embedded server refuses a client without them.
	Token    string
	User     string
	Password string
	// CredsFile is a credentials file (a user JWT and its NKey seed, as
	// nsc writes them) for a server in operator mode; NKeyFile is a file
	// holding a user's NKey seed, for a server that lists NKey users.
	// At most one of Token, User, CredsFile and NKeyFile is set.
	CredsFile string
	NKeyFile  string
	// CAFile, a PEM file, is the certificate authority the server's TLS
	// certificate is checked against, instead of the system's.
	CAFile string
	// CertFile and KeyFile, PEM files, are a client certificate and its
	// key, presented to a server that asks for one (mutual TLS).
	CertFile string
	KeyFile  string
	// Closed, when set, is called with the connection's last error when
	// the connection closes on its own: nats.go gives up reconnecting
	// only when the server refused the credentials twice in a row. It
	// is not called for a close by Drain.
	Closed func(err error)
	Logger *slog.Logger
}

// Connect opens a connection that reconnects forever.
//
// A server that refuses the credentials fails Connect at once with an
// error that wraps nats.ErrAuthorization; the first connection is not
// retried. Once connected, a refusal on two reconnects in a row closes
// the connection, as nats.go does by default, and Options.Closed says so,
// so that a process whose credentials were changed under it can stop
// instead of running on without a connection.
//
// Publishes are not buffered while disconnected (ReconnectBufSize -1): an
// enqueue during an outage fails at once with an error the user sees,
// instead of hanging and perhaps landing later without anyone knowing.
func Connect(o Options) (*nats.Conn, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.ReconnectBufSize(-1),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "conn", o.Name, "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "conn", o.Name, "url", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			if o.Closed != nil {
				o.Closed(nc.LastError())
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Warn("nats async error", "conn", o.Name, "subject", subject, "err", err)
		}),
	}
	if o.Token != "" {
		opts = append(opts, nats.Token(o.Token))
	}
	if o.User != "" || o.Password != "" {
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.NKeyFile != "" {
		// The seed is read and checked now, not at the first handshake,
		// so that an unreadable file fails here, named.
		nkey, err := nats.NkeyOptionFromSeed(o.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nkey seed %s: %w", o.NKeyFile, err)
		}
		opts = append(opts, nkey)
	}
	if o.CAFile != "" {
		opts = append(opts, nats.RootCAs(o.CAFile))
	}
	if o.CertFile != "" || o.KeyFile != "" {
		opts = append(opts, nats.ClientCert(o.CertFile, o.KeyFile))
	}
	url := o.URL
	if o.Server != nil {
		opts = append(opts, nats.InProcessServer(o.Server))
		url = ""
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", url, err)
	}
	return nc, nil
}

// Drain lets pending messages and subscriptions finish, then closes the
// connection, waiting at most until ctx ends.
func Drain(ctx context.Context, nc *nats.Conn) error {
	if nc == nil || nc.IsClosed() {
		return nil
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return fmt.Errorf("drain nats: %w", err)
	}
	select {
	case <-closed:
		return nil
	case <-ctx.Done():
		nc.Close()
		return fmt.Errorf("drain nats: %w", ctx.Err())
	}
}
