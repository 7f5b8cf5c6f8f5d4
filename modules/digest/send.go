package digest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// Sender delivers one composed digest. eml is msg as written, and name a
// file name for it.
type Sender interface {
	Send(ctx context.Context, msg *gomail.Msg, name string, eml []byte) error
}

// sendTimeout bounds one delivery: connecting, the SMTP dialogue, the data.
const sendTimeout = time.Minute

// SMTP is a Sender through the mail server at SMTP_URL.
type SMTP struct {
	host     string
	port     int
	implicit bool // smtps: TLS from the first byte
	user     *url.Userinfo
	tls      *tls.Config
}

// NewSMTP reads an SMTP_URL: smtp://[user:pass@]host[:port] (port 587 by
// default; STARTTLS when the server offers it) or smtps://… (port 465;
// implicit TLS). rootCAs, when not nil, are the CAs the server's
// certificate is checked against instead of the system's.
func NewSMTP(raw string, tlsConfig *tls.Config) (*SMTP, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("not a URL: %w", err)
	}
	s := &SMTP{host: u.Hostname(), user: u.User, tls: tlsConfig}
	switch u.Scheme {
	case "smtp":
		s.port = 587
	case "smtps":
		s.port, s.implicit = 465, true
	default:
		return nil, fmt.Errorf("scheme %q: want smtp:// or smtps://", u.Scheme)
	}
	if s.host == "" {
		return nil, errors.New("no host, as in smtp://user:pass@mail.example.org:587")
	}
	if p := u.Port(); p != "" {
		if s.port, err = strconv.Atoi(p); err != nil || s.port < 1 || s.port > 65535 {
			return nil, fmt.Errorf("port %q: not a port number", p)
		}
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("path %q: an SMTP URL has none", u.Path)
	}
	if s.tls == nil {
		s.tls = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if s.tls.ServerName == "" {
		s.tls = s.tls.Clone()
		s.tls.ServerName = s.host
	}
	return s, nil
}

// Send sends msg through the server, on a connection of its own: digests
// are few and far between, a pooled connection would mostly sit idle.
func (s *SMTP) Send(ctx context.Context, msg *gomail.Msg, _ string, _ []byte) error {
	ctx, cancel := context.WithTimeout(ctx, sendTimeout)
	defer cancel()
	opts := []gomail.Option{gomail.WithPort(s.port), gomail.WithTimeout(sendTimeout), gomail.WithTLSConfig(s.tls)}
	if s.implicit {
		opts = append(opts, gomail.WithSSL())
	} else {
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if s.user != nil {
		pass, _ := s.user.Password()
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(s.user.Username()), gomail.WithPassword(pass))
	}
	c, err := gomail.NewClient(s.host, opts...)
	if err != nil {
		return fmt.Errorf("smtp %s:%d: %w", s.host, s.port, err)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("smtp %s:%d: %w", s.host, s.port, err)
	}
	return nil
}

// Outbox is a Sender that writes each digest as an .eml file into a
// directory (<OTJ_DATA_DIR>/outbox), for when no SMTP_URL is set.
type Outbox struct{ Dir string }

// Send writes eml to Dir/name, whole or not at all: through a temporary
// file renamed into place, so nobody reads half a message.
func (o Outbox) Send(_ context.Context, _ *gomail.Msg, name string, eml []byte) error {
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	f, err := os.CreateTemp(o.Dir, ".tmp-*.eml")
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	defer os.Remove(f.Name()) // after the rename, a no-op
	if _, err := f.Write(eml); err != nil {
		f.Close()
		return fmt.Errorf("outbox: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if err := os.Rename(f.Name(), filepath.Join(o.Dir, name)); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// outboxName is the name of a user's digest of a week in the outbox: the
// user's id in it, as the outbox holds everyone's, and erasure finds
// theirs by it.
func outboxName(week Week, userID int64) string {
	return fmt.Sprintf("otj-digest-%s-user%d.eml", week.String(), userID)
}

// outboxUser is the user id in an outbox file's name, or false for a
// name that is not a digest's.
func outboxUser(name string) (int64, bool) {
	rest, ok := strings.CutPrefix(name, "otj-digest-")
	if !ok {
		return 0, false
	}
	rest, ok = strings.CutSuffix(rest, ".eml")
	if !ok {
		return 0, false
	}
	i := strings.LastIndex(rest, "-user")
	if i < 0 {
		return 0, false
	}
	id, err := strconv.ParseInt(rest[i+len("-user"):], 10, 64)
	if err != nil || id <= 0 {
		return 0, false
	}
	return id, true
}

// EraseUser removes every digest of the user from the outbox, and says
// how many: an erased user's mail must not outlive them on a worker's
// disk. An outbox never made holds none.
func (o Outbox) EraseUser(ctx context.Context, userID int64) (int, error) {
	return o.remove(ctx, func(_ context.Context, id int64) (bool, error) { return id == userID, nil })
}

// Sweep removes the digests of every user for whom exists says false (an
// erasure announced while this process was down), and says how many.
// Each user is looked up once.
func (o Outbox) Sweep(ctx context.Context, exists func(ctx context.Context, userID int64) (bool, error)) (int, error) {
	known := map[int64]bool{}
	return o.remove(ctx, func(ctx context.Context, id int64) (bool, error) {
		keep, seen := known[id]
		if !seen {
			var err error
			if keep, err = exists(ctx, id); err != nil {
				return false, err
			}
			known[id] = keep
		}
		return !keep, nil
	})
}

// remove deletes the digests whose user gone says so.
func (o Outbox) remove(ctx context.Context, gone func(ctx context.Context, userID int64) (bool, error)) (int, error) {
	ents, err := os.ReadDir(o.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("outbox: %w", err)
	}
	n := 0
	for _, e := range ents {
		id, ok := outboxUser(e.Name())
		if !ok || e.IsDir() {
			continue
		}
		if err := ctx.Err(); err != nil {
			return n, fmt.Errorf("outbox: %w", err)
		}
		g, err := gone(ctx, id)
		if err != nil {
			return n, fmt.Errorf("outbox: user %d: %w", id, err)
		}
		if !g {
			continue
		}
		if err := os.Remove(filepath.Join(o.Dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, fmt.Errorf("outbox: %w", err)
		}
		n++
	}
	return n, nil
}
