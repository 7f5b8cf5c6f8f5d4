package activity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// LinkStages are the stages of the CORE workflow a resource link is
// tagged with, in the order forms show them.
var LinkStages = []Option{
	{"capture", "Capture"},
	{"organise", "Organise"},
	{"review", "Review"},
	{"engage", "Engage"},
}

// LinkSourceTypes are the kinds of resource a link points at, in the order
// forms show them.
var LinkSourceTypes = []Option{
	{"article", "Article"},
	{"video", "Video"},
	{"course", "Course"},
	{"documentation", "Documentation"},
	{"book", "Book"},
	{"podcast", "Podcast"},
	{"other", "Other"},
}

// StageLabel returns the label of a stored link stage, or v itself.
func StageLabel(v string) string { return label(LinkStages, v) }

// SourceTypeLabel returns the label of a stored link source type, or v itself.
func SourceTypeLabel(v string) string { return label(LinkSourceTypes, v) }

// Link is one resource link of an activity, with the CORE stage it
// belongs to and the kind of source it is.
type Link struct {
	URL         string
	Title       string
	SourceType  string
	Description string
	Stage       string
}

// Input is what a user writes about an activity: the fields the form
// edits. The store checks only what the schema needs (KSBs of the user's
// standard, a date); the web's form validation checks the rest first.
type Input struct {
	Title string
	// Date is a civil date; only its year, month and day are stored.
	Date        time.Time
	Hours       float64
	Type        string
	Quality     string
	Description string
	Notes       string
	// KSBs are stored KSB codes (KSB.Code) of the user's standard.
	KSBs []string
	// Tags are tag names, created for the user on first use.
	Tags  []string
	Links []Link
}

// Entry is one stored activity with everything the form edits.
type Entry struct {
	ID     int64
	UserID int64
	Input
	CreatedAt time.Time
	UpdatedAt time.Time
}

// KSB is one knowledge, skill or behaviour of a standard.
type KSB struct {
	// Code is the stored code (e.g. "AK1"), NaturalCode what people see ("K1").
	Code, NaturalCode string
	// Category is "knowledge", "skill" or "behaviour" as the reference data says.
	Category string
	Title    string
}

// Filter narrows a listing of activities; empty fields do not narrow.
type Filter struct {
	// KSB is a natural code ("K1").
	KSB string
	// Type is a stored activity type.
	Type string
	// Tag is a tag name.
	Tag string
	// Text is searched for in the title, description and notes, as a
	// part of them, without regard to ASCII letters' case.
	Text string
	// From and To bound the activities' dates, both days included, as
	// YYYY-MM-DD.
	From, To string
}

// ErrUnknownKSB is returned (wrapped) when an Input names a KSB that is
// not in the user's standard.
var ErrUnknownKSB = errors.New("not a KSB of the user's standard")

// writeTimeout bounds one write transaction of the log, whatever the
// caller's context allows.
const writeTimeout = 10 * time.Second

// KSBs returns the KSBs of a standard, K then S then B, each by number;
// none for an unknown or empty spec.
func (s *Store) KSBs(ctx context.Context, spec string) ([]KSB, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT code, natural_code, category, title FROM ksb WHERE spec_code = ? ORDER BY sort_order, code`, spec)
	if err != nil {
		return nil, fmt.Errorf("ksbs of %s: %w", spec, err)
	}
	defer rows.Close()
	var out []KSB
	for rows.Next() {
		var k KSB
		if err := rows.Scan(&k.Code, &k.NaturalCode, &k.Category, &k.Title); err != nil {
			return nil, fmt.Errorf("ksbs of %s: %w", spec, err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ksbs of %s: %w", spec, err)
	}
	return out, nil
}

// Tags returns the names of the user's tags, sorted.
func (s *Store) Tags(ctx context.Context, userID int64) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name FROM tag WHERE user_id = ? ORDER BY name`, userID)
	if err != nil {
		return nil, fmt.Errorf("tags of user %d: %w", userID, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("tags of user %d: %w", userID, err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tags of user %d: %w", userID, err)
	}
	return out, nil
}

// CreateActivity stores a new activity for the user, with its tags, KSBs
// and links, and its "created" event in the outbox, in one transaction.
// It returns the new activity's id.
func (s *Store) CreateActivity(ctx context.Context, userID int64, in Input) (int64, error) {
	var id int64
	err := s.inTx(ctx, func(tx bun.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO activity (user_id, title, description, activity_date, duration_hours,
			activity_type, evidence_quality, notes) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			userID, in.Title, in.Description, in.Date.Format(dateLayout), in.Hours, in.Type, quality(in.Quality), in.Notes).Scan(&id)
		if err != nil {
			return err
		}
		if err := writeParts(ctx, tx, userID, id, in); err != nil {
			return err
		}
		return addEvent(ctx, tx, userID, id, EventCreated)
	})
	if err != nil {
		return 0, fmt.Errorf("create activity for user %d: %w", userID, err)
	}
	return id, nil
}

// UpdateActivity replaces the user's activity id with in, tags, KSBs and
// links included, and writes its "edited" event, in one transaction.
// Another user's or an unknown id is ErrNotFound.
func (s *Store) UpdateActivity(ctx context.Context, userID, id int64, in Input) error {
	err := s.inTx(ctx, func(tx bun.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE activity SET title = ?, description = ?, activity_date = ?, duration_hours = ?,
			activity_type = ?, evidence_quality = ?, notes = ?, updated_at = CURRENT_TIMESTAMP WHERE id = ? AND user_id = ?`,
			in.Title, in.Description, in.Date.Format(dateLayout), in.Hours, in.Type, quality(in.Quality), in.Notes, id, userID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		for _, q := range []string{
			`DELETE FROM activity_tags WHERE activity_id = ?`,
			`DELETE FROM activity_ksbs WHERE activity_id = ?`,
			`DELETE FROM resource_link WHERE activity_id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return err
			}
		}
		if err := writeParts(ctx, tx, userID, id, in); err != nil {
			return err
		}
		return addEvent(ctx, tx, userID, id, EventEdited)
	})
	if err != nil {
		return fmt.Errorf("update activity %d of user %d: %w", id, userID, err)
	}
	return nil
}

// DeleteActivity deletes the user's activity id (its tags, KSBs and links
// go with it) and writes its "deleted" event, in one transaction. The
// user's tags stay, for the next activity. Another user's or an unknown
// id is ErrNotFound.
func (s *Store) DeleteActivity(ctx context.Context, userID, id int64) error {
	err := s.inTx(ctx, func(tx bun.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM activity WHERE id = ? AND user_id = ?`, id, userID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		return addEvent(ctx, tx, userID, id, EventDeleted)
	})
	if err != nil {
		return fmt.Errorf("delete activity %d of user %d: %w", id, userID, err)
	}
	return nil
}

// GetActivity returns the user's activity id with everything the form
// edits. Another user's or an unknown id is ErrNotFound.
func (s *Store) GetActivity(ctx context.Context, userID, id int64) (Entry, error) {
	e, err := s.getActivity(ctx, userID, id)
	if err != nil {
		return Entry{}, fmt.Errorf("get activity %d of user %d: %w", id, userID, err)
	}
	return e, nil
}

func (s *Store) getActivity(ctx context.Context, userID, id int64) (Entry, error) {
	// One snapshot for the row and its parts, as ListActivities reads.
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Entry{}, err
	}
	defer tx.Rollback() // read-only: nothing to commit
	e := Entry{ID: id, UserID: userID}
	var date civilDate
	err = tx.QueryRowContext(ctx, `SELECT title, description, activity_date, duration_hours, activity_type,
		evidence_quality, notes, created_at, updated_at FROM activity WHERE id = ? AND user_id = ?`, id, userID).
		Scan(&e.Title, &e.Description, &date, &e.Hours, &e.Type, &e.Quality, &e.Notes, &e.CreatedAt, &e.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return Entry{}, ErrNotFound
	}
	if err != nil {
		return Entry{}, err
	}
	e.Date = date.t
	if e.Tags, err = strings1(ctx, tx, `SELECT t.name FROM activity_tags atg JOIN tag t ON t.id = atg.tag_id
		WHERE atg.activity_id = ? ORDER BY t.name`, id); err != nil {
		return Entry{}, err
	}
	if e.KSBs, err = strings1(ctx, tx, `SELECT k.code FROM activity_ksbs ak JOIN ksb k ON k.code = ak.ksb_code
		WHERE ak.activity_id = ? ORDER BY k.sort_order, k.code`, id); err != nil {
		return Entry{}, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT url, title, source_type, description, stage FROM resource_link
		WHERE activity_id = ? ORDER BY id`, id)
	if err != nil {
		return Entry{}, err
	}
	defer rows.Close()
	for rows.Next() {
		var l Link
		if err := rows.Scan(&l.URL, &l.Title, &l.SourceType, &l.Description, &l.Stage); err != nil {
			return Entry{}, err
		}
		e.Links = append(e.Links, l)
	}
	return e, rows.Err()
}

// strings1 returns the one text column of a query's rows.
func strings1(ctx context.Context, tx bun.Tx, q string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// inTx runs fn in a write transaction bounded by writeTimeout, committing
// when it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx bun.Tx) error) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error { return fn(tx) })
}

// quality is the stored evidence quality: "" is the column's default.
func quality(q string) string {
	if q == "" {
		return defaultQuality
	}
	return q
}

// writeParts inserts an activity's tags (creating the user's missing
// ones), KSBs and links.
func writeParts(ctx context.Context, tx bun.Tx, userID, id int64, in Input) error {
	seen := make(map[string]bool, len(in.Tags))
	for _, name := range in.Tags {
		if seen[name] {
			continue
		}
		seen[name] = true
		if _, err := tx.ExecContext(ctx, `INSERT INTO tag (user_id, name) VALUES (?, ?) ON CONFLICT (user_id, name) DO NOTHING`, userID, name); err != nil {
			return fmt.Errorf("tag %q: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO activity_tags (activity_id, tag_id)
			SELECT ?, id FROM tag WHERE user_id = ? AND name = ?`, id, userID, name); err != nil {
			return fmt.Errorf("tag %q: %w", name, err)
		}
	}
	clear(seen)
	for _, code := range in.KSBs {
		if seen[code] {
			continue
		}
		seen[code] = true
		// Only a KSB of the user's own standard: the form offers no
		// other, and a forged one must not land.
		res, err := tx.ExecContext(ctx, `INSERT INTO activity_ksbs (activity_id, ksb_code)
			SELECT ?, k.code FROM ksb k JOIN app_user u ON u.selected_spec = k.spec_code
			WHERE k.code = ? AND u.id = ?`, id, code, userID)
		if err != nil {
			return fmt.Errorf("ksb %q: %w", code, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("ksb %q: %w", code, err)
		} else if n == 0 {
			return fmt.Errorf("ksb %q: %w", code, ErrUnknownKSB)
		}
	}
	for _, l := range in.Links {
		if _, err := tx.ExecContext(ctx, `INSERT INTO resource_link (activity_id, url, title, source_type, description, stage)
			VALUES (?, ?, ?, ?, ?, ?)`, id, l.URL, l.Title, l.SourceType, l.Description, l.Stage); err != nil {
			return fmt.Errorf("link %q: %w", l.URL, err)
		}
	}
	return nil
}
