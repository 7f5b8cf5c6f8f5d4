package testsupport

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// SMTPMessage is one message an SMTPServer accepted.
type SMTPMessage struct {
	From string
	To   []string
	Data []byte
	// TLS says whether it came over TLS (STARTTLS or implicit).
	TLS bool
}

// SMTPServer is a real SMTP server (emersion/go-smtp) on a loopback port,
// for tests of code that sends mail. It keeps what it accepts, and
// answers DATA with the reply Reject gives, if any.
type SMTPServer struct {
	// Addr is the server's host:port.
	Addr string
	// URL is smtp://Addr, as SMTP_URL takes it.
	URL string

	mu       sync.Mutex
	messages []SMTPMessage
	attempts int
	reject   func(attempt int) *smtp.SMTPError
}

// SMTP starts an SMTP server for the test, without TLS or auth; it is
// stopped when the test ends.
func SMTP(t testing.TB) *SMTPServer {
	t.Helper()
	return SMTPWith(t, nil, false)
}

// SMTPWith is SMTP with TLS: with config set, the server offers STARTTLS
// (URL smtp://), or with implicit speaks TLS from the first byte (URL
// smtps://). TLSCert makes a certificate for it.
func SMTPWith(t testing.TB, config *tls.Config, implicit bool) *SMTPServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtp listen: %v", err)
	}
	s := &SMTPServer{Addr: ln.Addr().String()}
	s.URL = "smtp://" + s.Addr
	if implicit {
		ln = tls.NewListener(ln, config)
		s.URL = "smtps://" + s.Addr
	}
	srv := smtp.NewServer(smtpBackend{s})
	if !implicit {
		srv.TLSConfig = config
	}
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.ErrorLog = tLogger{t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			t.Errorf("smtp serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return s
}

// Reject makes the server answer the DATA of attempt n (from 1, counting
// every message it has been sent) with the reply fn returns; nil accepts.
// For example a 451 on the first and nothing after, or a 554 always.
func (s *SMTPServer) Reject(fn func(attempt int) *smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reject = fn
}

// Messages returns what the server has accepted so far.
func (s *SMTPServer) Messages() []SMTPMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SMTPMessage(nil), s.messages...)
}

// Attempts returns how many messages the server has been sent, whether
// it took them or not.
func (s *SMTPServer) Attempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts
}

type smtpBackend struct{ s *SMTPServer }

func (b smtpBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &smtpSession{s: b.s, conn: c}, nil
}

type smtpSession struct {
	s    *SMTPServer
	conn *smtp.Conn
	msg  SMTPMessage
}

func (ss *smtpSession) Reset()        { ss.msg = SMTPMessage{} }
func (ss *smtpSession) Logout() error { return nil }

func (ss *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.msg.From = from
	return nil
}

func (ss *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.msg.To = append(ss.msg.To, to)
	return nil
}

func (ss *smtpSession) Data(r io.Reader) error {
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, r); err != nil {
		return err
	}
	s := ss.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts++
	if s.reject != nil {
		if e := s.reject(s.attempts); e != nil {
			return e
		}
	}
	m := ss.msg
	m.Data = buf.Bytes()
	_, m.TLS = ss.conn.TLSConnectionState()
	s.messages = append(s.messages, m)
	return nil
}

// tLogger passes the SMTP server's log to the test's.
type tLogger struct{ t testing.TB }

func (l tLogger) Printf(format string, v ...any) { l.t.Logf(format, v...) }
func (l tLogger) Println(v ...any)               { l.t.Log(v...) }
