package apptest

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/natsconn"
	"github.com/otjhelper/otj/platform/testsupport"
)

// extServer is an external NATS server of a test, how to reach it, and
// what the app and the test's own client present to it.
type extServer struct {
	url    string
	env    map[string]string // the app's NATS settings
	client natsconn.Options  // the test's own connection
}

// connect opens the test's own connection to x, closed when the test ends.
func (x extServer) connect(t *testing.T) *jetstream.Broker {
	t.Helper()
	o := x.client
	o.URL, o.Name, o.Logger = x.url, "test", testsupport.Logger(t)
	nc, err := natsconn.Connect(o)
	if err != nil {
		t.Fatalf("test client: %v", err)
	}
	t.Cleanup(nc.Close)
	return jetstreamtest.BrokerWith(t, nc, jetstream.Config{AckWait: defaultLease})
}

// extServers are the external servers the app must work with, one of
// each kind of credentials, and TLS.
func extServers(t *testing.T) map[string]func(t *testing.T) extServer {
	const user, password = "otj", "a-password-of-the-operators-choosing"
	return map[string]func(t *testing.T) extServer{
		"user and password": func(t *testing.T) extServer {
			s := testsupport.NATSWith(t, func(o *server.Options) { o.Username, o.Password = user, password })
			return extServer{s.ClientURL(), map[string]string{"NATS_USER": user, "NATS_PASSWORD": password},
				natsconn.Options{User: user, Password: password}}
		},
		"nkey seed": func(t *testing.T) extServer {
			seed, nk := testsupport.NKeyUser(t, nil)
			s := testsupport.NATSWith(t, func(o *server.Options) { o.Nkeys = []*server.NkeyUser{nk} })
			return extServer{s.ClientURL(), map[string]string{"NATS_NKEY": seed}, natsconn.Options{NKeyFile: seed}}
		},
		"credentials file": func(t *testing.T) extServer {
			op := testsupport.NewOperator(t)
			s := testsupport.NATSWith(t, op.Configure)
			app, test := op.UserCreds(t, "app"), op.UserCreds(t, "test")
			return extServer{s.ClientURL(), map[string]string{"NATS_CREDS": app}, natsconn.Options{CredsFile: test}}
		},
		"tls with a CA file": func(t *testing.T) extServer {
			cert, key := testsupport.TLSCert(t)
			s := testsupport.NATSWith(t, func(o *server.Options) {
				tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cert, KeyFile: key})
				if err != nil {
					t.Fatal(err)
				}
				o.TLSConfig, o.TLS, o.Username, o.Password = tc, true, user, password
			})
			url := strings.Replace(s.ClientURL(), "nats://", "tls://", 1)
			return extServer{url, map[string]string{"NATS_USER": user, "NATS_PASSWORD": password, "NATS_TLS_CA": cert},
				natsconn.Options{User: user, Password: password, CAFile: cert}}
		},
		"mutual tls": func(t *testing.T) extServer {
			cert, key := testsupport.TLSCert(t)
			s := testsupport.NATSWith(t, func(o *server.Options) {
				// The client must present a certificate the same CA
				// signed: here the test's one certificate.
				tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cert, KeyFile: key, CaFile: cert, Verify: true})
				if err != nil {
					t.Fatal(err)
				}
				o.TLSConfig, o.TLS, o.TLSVerify, o.Username, o.Password = tc, true, true, user, password
			})
			url := strings.Replace(s.ClientURL(), "nats://", "tls://", 1)
			return extServer{url, map[string]string{"NATS_USER": user, "NATS_PASSWORD": password, "NATS_TLS_CA": cert,
				"NATS_TLS_CERT": cert, "NATS_TLS_KEY": key},
				natsconn.Options{User: user, Password: password, CAFile: cert, CertFile: cert, KeyFile: key}}
		},
	}
}

// TestWorkerJoinsAnAuthenticatedServer starts app worker against an
// external server with each kind of credentials: it connects as the
// settings say and runs a job the test enqueues.
func TestWorkerJoinsAnAuthenticatedServer(t *testing.T) {
	t.Parallel()
	for name, start := range extServers(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			x := start(t)
			env := baseEnv(t)
			env["NATS_URL"] = x.url
			for k, v := range x.env {
				env[k] = v
			}
			b := x.connect(t) // the web side's part: it makes the stream
			w := startApp(t, env, "worker")
			testsupport.Eventually(t, 30*time.Second, "the worker never started", func() bool {
				select {
				case <-w.done:
					t.Fatalf("worker exited: %v", w.err)
				default:
				}
				return strings.Contains(w.logs.String(), `msg="worker started"`)
			})
			job := opEnqueue(t, b, 1, testSleep, `{"ms":0}`)
			opWaitKind(t, b, job.ID, tasktype.EventSucceeded)
		})
	}
}

// TestWrongNATSCredentialsStopAtStart gives app worker credentials the
// server refuses, or files it cannot use: each stops it at once, with
// one line naming the setting and showing no secret.
func TestWrongNATSCredentialsStopAtStart(t *testing.T) {
	t.Parallel()
	op := testsupport.NewOperator(t)
	opServer := testsupport.NATSWith(t, op.Configure)
	_, nk := testsupport.NKeyUser(t, nil)
	otherSeed, _ := testsupport.NKeyUser(t, nil)
	nkServer := testsupport.NATSWith(t, func(o *server.Options) { o.Nkeys = []*server.NkeyUser{nk} })
	userServer := testsupport.NATSWith(t, func(o *server.Options) { o.Username, o.Password = "otj", "the-right-password" })
	cert, key := testsupport.TLSCert(t)
	otherCA, _ := testsupport.TLSCert(t)
	tlsServer := testsupport.NATSWith(t, func(o *server.Options) {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cert, KeyFile: key})
		if err != nil {
			t.Fatal(err)
		}
		o.TLSConfig, o.TLS, o.Username, o.Password = tc, true, "otj", "the-right-password"
	})
	tlsURL := strings.Replace(tlsServer.ClientURL(), "nats://", "tls://", 1)
	garbage := filepath.Join(t.TempDir(), "garbage")
	if err := os.WriteFile(garbage, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing")

	tests := []struct {
		name   string
		env    map[string]string
		want   string // the error's start
		secret string // what it must not show
	}{
		{"refused credentials file", map[string]string{"NATS_URL": opServer.ClientURL(), "NATS_CREDS": op.ForeignCreds(t)}, "NATS_CREDS: ", ""},
		{"unreadable credentials file", map[string]string{"NATS_URL": opServer.ClientURL(), "NATS_CREDS": missing}, "NATS_CREDS: ", ""},
		{"malformed credentials file", map[string]string{"NATS_URL": opServer.ClientURL(), "NATS_CREDS": garbage}, "NATS_CREDS ", ""},
		{"refused nkey", map[string]string{"NATS_URL": nkServer.ClientURL(), "NATS_NKEY": otherSeed}, "NATS_NKEY: ", ""},
		{"unreadable nkey seed", map[string]string{"NATS_URL": nkServer.ClientURL(), "NATS_NKEY": missing}, "NATS_NKEY ", ""},
		{"malformed nkey seed", map[string]string{"NATS_URL": nkServer.ClientURL(), "NATS_NKEY": garbage}, "NATS_NKEY ", ""},
		{"wrong password", map[string]string{"NATS_URL": userServer.ClientURL(), "NATS_USER": "otj", "NATS_PASSWORD": "a-wrong-password"}, "NATS_USER: ", "a-wrong-password"},
		{"wrong CA", map[string]string{"NATS_URL": tlsURL, "NATS_USER": "otj", "NATS_PASSWORD": "the-right-password", "NATS_TLS_CA": otherCA}, "NATS_TLS_CA ", "the-right-password"},
		{"two kinds of credentials", map[string]string{"NATS_URL": userServer.ClientURL(), "NATS_USER": "otj", "NATS_PASSWORD": "x", "NATS_NKEY": otherSeed}, "NATS_USER and NATS_NKEY: ", ""},
		{"creds for the embedded server", map[string]string{"NATS_CREDS": op.UserCreds(t, "x")}, "NATS_CREDS: ", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := baseEnv(t)
			for k, v := range tt.env {
				env[k] = v
			}
			cmd := "worker"
			if env["NATS_URL"] == "" {
				cmd = "all"
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			began := time.Now()
			err := run(ctx, []string{cmd}, mapEnv(env), io.Discard, io.Discard)
			t.Logf("app %s: %v", cmd, err)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") ||
				(tt.secret != "" && strings.Contains(err.Error(), tt.secret)) {
				t.Errorf("app %s: %v, want one line starting %q", cmd, err, tt.want)
			}
			if took := time.Since(began); took > 10*time.Second {
				t.Errorf("took %s to stop", took)
			}
		})
	}
}
