package main

import (
	"fmt"
	"net/mail"
	"path/filepath"
	"strings"

	"github.com/otjhelper/otj/modules/digest"
)

// mailSettings reads SMTP_URL and MAIL_FROM, the digests' delivery.
func mailSettings(c *Config, getenv func(string) string) error {
	c.SMTPURL = strings.TrimSpace(getenv("SMTP_URL"))
	if c.SMTPURL != "" {
		if _, err := digest.NewSMTP(c.SMTPURL, nil); err != nil {
			// The URL may hold a password: name the setting, not the value.
			return fmt.Errorf("SMTP_URL: want smtp://[user:pass@]host[:port] or smtps://…: %v", err)
		}
	}
	c.MailFrom = strings.TrimSpace(getenv("MAIL_FROM"))
	if c.MailFrom == "" {
		c.MailFrom = digest.DefaultFrom
	}
	if _, err := mail.ParseAddress(c.MailFrom); err != nil {
		return fmt.Errorf("MAIL_FROM %q: want an address such as otj@example.org or OTJ Helper <otj@example.org>", c.MailFrom)
	}
	return nil
}

// digestSender is how this process delivers digests: through SMTP_URL,
// or into the data dir's outbox when it is unset.
func digestSender(cfg Config) (digest.Sender, error) {
	if cfg.SMTPURL == "" {
		return digest.Outbox{Dir: filepath.Join(cfg.DataDir, "outbox")}, nil
	}
	s, err := digest.NewSMTP(cfg.SMTPURL, nil)
	if err != nil {
		return nil, fmt.Errorf("SMTP_URL: %v", err)
	}
	return s, nil
}
