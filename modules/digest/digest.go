// Package digest holds the weekly email digest: a job that mails one
// apprentice a summary of their ISO week (hours against their weekly
// target, total hours against their OTJ target, the KSBs of their
// standard still without evidence, the week's activities), once per user
// and week, through SMTP or into an outbox directory, and keeps the
// message as the task's result so the user can read it in the app.
package digest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"
	gomail "github.com/wneessen/go-mail"

	"github.com/otjhelper/otj/modules/activity"
	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// WeeklyDigest is the job type of a user's weekly digest.
const WeeklyDigest = "weekly_digest"

// Label is how users see a digest's task.
const Label = "Weekly digest (email)"

// DefaultTimezone is the zone of users who have set none, and of the
// schedule.
const DefaultTimezone = "Europe/London"

// Policy is how digest jobs are retried: a mail server that says "try
// later" (4xx) or cannot be reached gets a few more goes, minutes apart.
var Policy = tasktype.Policy{MaxAttempts: 5, Timeout: 2 * time.Minute, BackoffMin: 30 * time.Second, BackoffMax: 10 * time.Minute}

// Source is what the digest needs from the activity log.
type Source interface {
	// UserByID returns the user, or an error wrapping activity.ErrNotFound.
	UserByID(ctx context.Context, id int64) (activity.User, error)
	// DigestFacts reads the user's week from..to (civil dates, both
	// included) and totals.
	DigestFacts(ctx context.Context, u activity.User, from, to time.Time) (activity.DigestFacts, error)
}

// Config is what digest jobs need. Source, DB and Sender are required.
type Config struct {
	Source Source
	// DB holds the digest_sent table, the record of what was sent.
	DB *bun.DB
	// Sender delivers a composed message: SMTP or the outbox.
	Sender Sender
	// From is the sender's address (MAIL_FROM); empty: DefaultFrom.
	From string
	// Policy overrides the package's Policy when its MaxAttempts is set
	// (tests shorten the backoff).
	Policy tasktype.Policy
	// BaseURL is where users reach the app (BASE_URL): the digest links
	// back to its task list. Empty: the app's address is not known to
	// the worker, and the digest links nowhere.
	BaseURL string
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// DefaultFrom is the sender when MAIL_FROM is not set.
const DefaultFrom = "OTJ Helper <otj-helper@localhost>"

// Payload is a digest job's payload. Without one (the "Send me my digest
// now" button), the digest is of the week the job was enqueued in, in the
// user's time zone.
type Payload struct {
	// Week is the ISO week, as "2026-W49".
	Week string `json:"week,omitempty"`
}

// Register adds the digest job type to reg.
func Register(reg *tasks.Registry, cfg Config) error {
	if cfg.Source == nil || cfg.DB == nil || cfg.Sender == nil {
		return errors.New("digest: Source, DB and Sender are required")
	}
	if cfg.From == "" {
		cfg.From = DefaultFrom
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return fmt.Errorf("digest: MAIL_FROM %q: %w", cfg.From, err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := Policy
	if cfg.Policy.MaxAttempts > 0 {
		p = cfg.Policy
	}
	j := &job{cfg: cfg, from: from, sent: sentLog{db: cfg.DB}}
	if err := reg.Register(WeeklyDigest, j.run, p); err != nil {
		return err
	}
	return reg.Describe(tasktype.Kind{
		Type: WeeklyDigest, Label: Label, Noun: "digest",
		Start: &tasktype.StartButton{Path: "send-digest", Label: "Send me my digest now",
			Hint:   "This week's hours, targets and KSBs still to evidence, by email; once a week.",
			Queued: "Your digest is being sent in the background. It will appear below when it has gone."},
		View:    &tasktype.ResultView{Path: "digest", Link: "Read the digest", Render: RenderHTML},
		Restate: restate(cfg.Source),
	})
}

type job struct {
	cfg  Config
	from *mail.Address
	sent sentLog
}

// run sends one digest. What it returns is kept in the event log, so its
// summary and errors name the user by id only: the address, which a mail
// server's reply or a send error may quote, is taken out of both (see
// withoutAddress), and the page says where the digest went when it is
// read (restate).
func (j *job) run(ctx context.Context, tj tasktype.Job, out tasktype.Output) (tasktype.Result, error) {
	u, err := j.cfg.Source.UserByID(ctx, tj.UserID)
	if errors.Is(err, activity.ErrNotFound) {
		err = fmt.Errorf("weekly digest: user %d is not in this worker's database (is it the web's? OTJ_DATA_DIR): %w", tj.UserID, err)
		return tasktype.Result{}, tasktype.Permanent(tasktype.UserMessage(err,
			"Your activity log could not be found by the service that sends digests, so no digest was sent. Please tell the operator."))
	}
	if err != nil {
		return tasktype.Result{}, fmt.Errorf("weekly digest: %w", err)
	}
	if strings.TrimSpace(u.Email) == "" {
		return tasktype.Result{Summary: "Not sent: your account has no email address."}, nil
	}
	res, err := j.send(ctx, tj, u, out)
	return res, withoutAddress(err, u)
}

// send composes, sends and stores the digest of the user u.
func (j *job) send(ctx context.Context, tj tasktype.Job, u activity.User, out tasktype.Output) (tasktype.Result, error) {
	loc := userLocation(u.Timezone)
	week, err := jobWeek(tj, loc)
	if err != nil {
		return tasktype.Result{}, tasktype.Permanent(fmt.Errorf("weekly digest: %w", err))
	}
	facts, err := j.cfg.Source.DigestFacts(ctx, u, week.Monday, week.Monday.AddDate(0, 0, 6))
	if err != nil {
		return tasktype.Result{}, fmt.Errorf("weekly digest: %w", err)
	}
	if facts.Activities == 0 {
		return tasktype.Result{Summary: "Not sent: you have logged no activity yet."}, nil
	}
	msgID := messageID(u.ID, week, j.from.Address)
	now := j.cfg.Now()
	claimed, prior, err := j.sent.claim(ctx, u.ID, week.String(), msgID, now)
	if err != nil {
		return tasktype.Result{}, fmt.Errorf("weekly digest: %w", err)
	}
	if !claimed {
		return tasktype.Result{Summary: alreadySent(week, prior, loc)}, nil
	}
	msg, err := compose(j.from, u, week, facts, msgID, now.In(loc), j.cfg.BaseURL)
	if err != nil {
		// Nothing left this process: another attempt may send.
		return tasktype.Result{}, j.release(ctx, u.ID, week, fmt.Errorf("weekly digest: %w", err))
	}
	var eml bytes.Buffer
	if _, err := msg.WriteTo(&eml); err != nil {
		return tasktype.Result{}, j.release(ctx, u.ID, week, fmt.Errorf("weekly digest: write message: %w", err))
	}
	name := outboxName(week, u.ID)
	if err := j.cfg.Sender.Send(ctx, msg, name, eml.Bytes()); err != nil {
		return tasktype.Result{}, j.failed(ctx, u.ID, week, err)
	}
	if err := j.unlessErased(ctx, u.ID); err != nil {
		return tasktype.Result{}, err
	}
	if err := j.sent.markSent(ctx, u.ID, week.String(), j.cfg.Now()); err != nil {
		// The mail is out: the claim alone keeps it from going twice.
		return tasktype.Result{}, tasktype.Permanent(fmt.Errorf("weekly digest: sent, but not recorded: %w", err))
	}
	w, err := out.Create(name, "message/rfc822")
	if err != nil {
		return tasktype.Result{}, tasktype.Permanent(fmt.Errorf("weekly digest: sent, but not stored: %w", err))
	}
	if _, err := w.Write(eml.Bytes()); err != nil {
		return tasktype.Result{}, tasktype.Permanent(fmt.Errorf("weekly digest: sent, but not stored: %w", err))
	}
	return tasktype.Result{Summary: sentPrefix + week.Title()}, nil
}

// sentPrefix starts the summary of a digest that went out: "Sent: the
// week of Mon 30 Nov 2026". The log holds no address; restate names it
// on the page. Summaries recorded before that rule read "Sent to
// you@example.org: the week of …", and are shown as they are.
const sentPrefix = "Sent: "

// restate is the digest kind's Kind.Restate: "Sent: the week of …" as
// the log keeps it becomes "Sent to you@example.org: the week of …",
// with the address read from the database now. Any other summary, or a
// user who cannot be read, is shown as it is.
func restate(src Source) func(ctx context.Context, userID int64, summary string) string {
	return func(ctx context.Context, userID int64, summary string) string {
		rest, ok := strings.CutPrefix(summary, sentPrefix)
		if !ok {
			return summary
		}
		u, err := src.UserByID(ctx, userID)
		if err != nil || strings.TrimSpace(u.Email) == "" {
			return summary
		}
		return "Sent to " + u.Email + ": " + rest
	}
}

// withoutAddress takes the user's email address out of err, the error a
// digest attempt ends with, before it is recorded: go-mail names the
// recipients in its errors, and a mail server may quote the address in
// its reply, which is the sentence the user is shown. The operator's
// error says whose address it was by user id; the owner's sentence says
// "your address". Everything err wraps is kept for errors.Is and As.
func withoutAddress(err error, u activity.User) error {
	if err == nil || strings.TrimSpace(u.Email) == "" {
		return err
	}
	text := replaceFold(err.Error(), u.Email, fmt.Sprintf("<user %d's address>", u.ID))
	var m *tasktype.MessageError
	if errors.As(err, &m) {
		m.Message = replaceFold(m.Message, u.Email, "your address")
	}
	return &scrubbedError{err: err, text: text}
}

// scrubbedError is an error whose text had an address taken out.
type scrubbedError struct {
	err  error
	text string
}

func (e *scrubbedError) Error() string { return e.text }
func (e *scrubbedError) Unwrap() error { return e.err }

// replaceFold replaces every occurrence of old in s, in any case, with
// repl. Addresses are compared without case, as mail servers quote them
// as they please.
func replaceFold(s, old, repl string) string {
	if old == "" {
		return s
	}
	lower, lold := strings.ToLower(s), strings.ToLower(old)
	if len(lower) != len(s) || len(lold) != len(old) {
		// Case folding changed a length (rare non-ASCII): exact matches only.
		return strings.ReplaceAll(s, old, repl)
	}
	var b strings.Builder
	for {
		i := strings.Index(lower, lold)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString(repl)
		s, lower = s[i+len(old):], lower[i+len(old):]
	}
}

// unlessErased removes the copy just written to the outbox when the user
// was erased meanwhile: the erasure's announcement and sweeps may have
// passed this outbox before the file was in it.
func (j *job) unlessErased(ctx context.Context, userID int64) error {
	keeper, ok := j.cfg.Sender.(interface {
		EraseUser(ctx context.Context, userID int64) (int, error)
	})
	if !ok {
		return nil
	}
	_, err := j.cfg.Source.UserByID(ctx, userID)
	if !errors.Is(err, activity.ErrNotFound) {
		return nil // there, or unknown: the sweeps see to it
	}
	if _, err := keeper.EraseUser(context.WithoutCancel(ctx), userID); err != nil {
		return tasktype.Permanent(fmt.Errorf("weekly digest: user %d erased while it was written: %w", userID, err))
	}
	return tasktype.Permanent(tasktype.UserMessage(fmt.Errorf("weekly digest: user %d erased while it was written; removed", userID),
		"Your account was deleted, so no digest was kept."))
}

// failed is what a failed delivery makes of the job. A reply from the
// server means the message was not taken: the claim is let go, so that the
// next attempt (after a 4xx) or a retry by hand (after a 5xx) may send.
// A 5xx is permanent, its reply the user's message. An error without a
// reply before the message was handed over (connection refused, a lost
// connection during the greeting) is retried the same way. An error
// without a reply after the data went out is ambiguous: the server may
// have taken the mail. The claim stays, and the job fails for good:
// sending is at most once, since a digest missed is better than a digest
// twice.
func (j *job) failed(ctx context.Context, userID int64, week Week, err error) error {
	err = fmt.Errorf("weekly digest: %w", err)
	var se *gomail.SendError
	if errors.As(err, &se) {
		code := se.ErrorCode()
		switch {
		case code >= 500:
			reply := serverReply(se)
			return j.release(ctx, userID, week, tasktype.Permanent(tasktype.UserMessage(err,
				"The mail server refused your digest: "+reply)))
		case code >= 400:
			return j.release(ctx, userID, week, err)
		case se.Reason == gomail.ErrSMTPDataClose || se.Reason == gomail.ErrWriteContent:
			return tasktype.Permanent(tasktype.UserMessage(err,
				"Your digest may or may not have reached the mail server; it will not be sent again this week, so that you do not get it twice."))
		}
	}
	return j.release(ctx, userID, week, err)
}

// release lets go of the user's claim on the week, and returns cause.
func (j *job) release(ctx context.Context, userID int64, week Week, cause error) error {
	if err := j.sent.release(context.WithoutCancel(ctx), userID, week.String()); err != nil {
		// The claim stays: this week's digest will not be sent, which
		// is the safe side.
		return tasktype.Permanent(errors.Join(cause, err))
	}
	return cause
}

// serverReply is the server's reply in a send error: "550 5.1.1 no such
// user", without go-mail's words around it.
func serverReply(se *gomail.SendError) string {
	s := se.Error()
	if i := strings.Index(s, strconv.Itoa(se.ErrorCode())); i >= 0 {
		s = s[i:]
	}
	if i := strings.Index(s, ", affected "); i >= 0 {
		s = s[:i]
	}
	// go-mail quotes the reply's text: 554 "5.7.1 Mailbox disabled".
	if code, text, ok := strings.Cut(s, " "); ok {
		if u, err := strconv.Unquote(text); err == nil {
			s = code + " " + u
		}
	}
	return s
}

// alreadySent is the note of a job that found the week's digest claimed.
func alreadySent(week Week, prior claim, loc *time.Location) string {
	if prior.State == stateSent {
		return fmt.Sprintf("Not sent again: your digest for %s was sent on %s.", week.Title(), prior.At.In(loc).Format("Mon 2 Jan 15:04"))
	}
	return fmt.Sprintf("Not sent again: your digest for %s was already being sent on %s.", week.Title(), prior.At.In(loc).Format("Mon 2 Jan 15:04"))
}

// jobWeek is the ISO week a job's digest covers: its payload's, or the
// week it was enqueued in, in loc.
func jobWeek(tj tasktype.Job, loc *time.Location) (Week, error) {
	var p Payload
	if len(tj.Payload) > 0 {
		if err := json.Unmarshal(tj.Payload, &p); err != nil {
			return Week{}, fmt.Errorf("payload: %w", err)
		}
	}
	if p.Week != "" {
		return ParseWeek(p.Week)
	}
	at := tj.EnqueuedAt
	if at.IsZero() {
		at = time.Now()
	}
	return WeekOf(at.In(loc)), nil
}

// userLocation is the user's time zone, or DefaultTimezone when theirs is
// unset or unknown to this machine.
func userLocation(name string) *time.Location {
	if name != "" {
		if loc, err := time.LoadLocation(name); err == nil {
			return loc
		}
	}
	loc, err := time.LoadLocation(DefaultTimezone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// messageID is the Message-ID of a user's digest of a week, derived from
// both, so that a copy sent twice in spite of everything is one message to
// mail clients.
func messageID(userID int64, week Week, from string) string {
	domain := "localhost"
	if i := strings.LastIndexByte(from, '@'); i >= 0 && i < len(from)-1 {
		domain = from[i+1:]
	}
	return fmt.Sprintf("weekly-digest.%d.%s@%s", userID, week.String(), domain)
}
