package app

import (
	"strings"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/digest"
)

func TestConfigMailRejectsBadValues(t *testing.T) {
	tests := []struct{ name, value string }{
		{"SMTP_URL", "mail.example.org:587"},
		{"SMTP_URL", "http://mail.example.org"},
		{"SMTP_URL", "smtp://"},
		{"SMTP_URL", "smtp://user:s3cret@mail.example.org:99999"},
		{"SMTP_URL", "smtp://mail.example.org/inbox"},
		{"MAIL_FROM", "not an address"},
		{"MAIL_FROM", "OTJ <otj@>"},
		{"DIGEST_SCHEDULE", "monday 07:00"},
		{"DIGEST_SCHEDULE", "mon 25:00"},
		{"DIGEST_SCHEDULE", "daily"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			_, err := loadConfig(mapEnv(map[string]string{tt.name: tt.value}))
			if err == nil || !strings.HasPrefix(err.Error(), tt.name+" ") && !strings.HasPrefix(err.Error(), tt.name+":") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("%s=%q: err = %v, want one line naming %s", tt.name, tt.value, err, tt.name)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

func TestConfigMail(t *testing.T) {
	c, err := loadConfig(mapEnv(map[string]string{}))
	if err != nil {
		t.Fatal(err)
	}
	if c.DigestSchedule == nil || c.DigestSchedule.Day != time.Monday || c.DigestSchedule.Hour != 7 || c.DigestSchedule.Loc.String() != "Europe/London" {
		t.Errorf("default DIGEST_SCHEDULE: %+v", c.DigestSchedule)
	}
	if c, err := loadConfig(mapEnv(map[string]string{"DIGEST_SCHEDULE": "off"})); err != nil || c.DigestSchedule != nil {
		t.Errorf("DIGEST_SCHEDULE=off: %+v %v", c.DigestSchedule, err)
	}
	if c.SMTPURL != "" || c.MailFrom != digest.DefaultFrom {
		t.Errorf("defaults: SMTP_URL %q, MAIL_FROM %q", c.SMTPURL, c.MailFrom)
	}
	if _, ok := mustSender(t, c).(digest.Outbox); !ok {
		t.Error("without SMTP_URL, digests do not go to the outbox")
	}
	c, err = loadConfig(mapEnv(map[string]string{"SMTP_URL": "smtps://u:p@mail.example.org", "MAIL_FROM": "OTJ <otj@example.org>"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.MailFrom != "OTJ <otj@example.org>" {
		t.Errorf("MAIL_FROM %q", c.MailFrom)
	}
	if _, ok := mustSender(t, c).(*digest.SMTP); !ok {
		t.Error("with SMTP_URL, digests do not go by SMTP")
	}
}

func mustSender(t *testing.T, c config) digest.Sender {
	t.Helper()
	s, err := digestSender(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
