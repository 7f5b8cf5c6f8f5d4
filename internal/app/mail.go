package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"path/filepath"
	"strings"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/digest"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/platform/natsconn"
	"github.com/otjhelper/otj/platform/settings"
)

// mailSettings reads SMTP_URL and MAIL_FROM, the digests' delivery.
func mailSettings(c *config, getenv func(string) string) error {
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
	return digestScheduleSetting(c, getenv)
}

// digestSender is how this process delivers digests: through SMTP_URL,
// or into the data dir's outbox when it is unset.
func digestSender(cfg config) (digest.Sender, error) {
	if cfg.SMTPURL == "" {
		return digest.Outbox{Dir: filepath.Join(cfg.DataDir, "outbox")}, nil
	}
	s, err := digest.NewSMTP(cfg.SMTPURL, nil)
	if err != nil {
		return nil, fmt.Errorf("SMTP_URL: %v", err)
	}
	return s, nil
}

// digestScheduleSetting reads DIGEST_SCHEDULE: "mon 07:00" by default,
// in Europe/London; "off" leaves c.DigestSchedule nil.
func digestScheduleSetting(c *config, getenv func(string) string) error {
	loc, err := time.LoadLocation(digest.DefaultTimezone)
	if err != nil {
		return fmt.Errorf("DIGEST_SCHEDULE: time zone %s: %v (is tzdata installed?)", digest.DefaultTimezone, err)
	}
	raw := settings.String(getenv, "DIGEST_SCHEDULE", digest.DefaultSchedule)
	s, on, err := digest.ParseSchedule(raw, loc)
	if err != nil {
		return fmt.Errorf("DIGEST_SCHEDULE %v", err)
	}
	if on {
		c.DigestSchedule = &s
	}
	return nil
}

// runDigestSchedule runs this web process's digest scheduler until ctx
// ends. It makes the schedules bucket through the maintenance
// connection, when there is one, and uses it through the everyday one.
func runDigestSchedule(ctx context.Context, cfg config, be *backend, client *tasks.Client, log *slog.Logger) error {
	js, err := natsjs.New(be.NC)
	if err != nil {
		return fmt.Errorf("digest schedule: %w", err)
	}
	maint := js
	if be.Maint != nil {
		if maint, err = natsjs.New(be.Maint); err != nil {
			return fmt.Errorf("digest schedule: %w", err)
		}
	}
	var kv natsjs.KeyValue
	// Every error is waited out, not only a cluster electing its
	// leaders: the rest of the app works without the schedule.
	err = natsconn.WaitJetStream(ctx, log, "the bucket "+digest.ScheduleBucket+" of the digest schedule", func(ctx context.Context) (err error) {
		kv, err = openSchedules(ctx, js, maint, cfg)
		return err
	}, func(error) bool { return true })
	if err != nil {
		return nil // stopped while waiting
	}
	log.Info("digest schedule: on", "day", cfg.DigestSchedule.Day.String(), "hour", cfg.DigestSchedule.Hour, "minute", cfg.DigestSchedule.Minute, "zone", cfg.DigestSchedule.Loc.String())
	store := activity.NewStore(be.DB)
	s, err := digest.NewScheduler(digest.SchedulerConfig{
		Schedule: *cfg.DigestSchedule, KV: kv, Users: store.UsersWithActivity, Enqueue: client.EnqueueBatch, Logger: log,
	})
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// openSchedules opens the schedules bucket through js, making it
// through maint when it is not there.
func openSchedules(ctx context.Context, js, maint natsjs.JetStream, cfg config) (natsjs.KeyValue, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, digest.ScheduleBucket)
	if errors.Is(err, natsjs.ErrBucketNotFound) {
		_, err = maint.CreateKeyValue(ctx, natsjs.KeyValueConfig{Bucket: digest.ScheduleBucket, Replicas: max(cfg.NATSReplicas, 1),
			Description: "leases of the app's schedules: the last period each fanned out"})
		if err == nil || errors.Is(err, natsjs.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, digest.ScheduleBucket)
		}
	}
	return kv, err
}
