package activity

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// ImportRow is one activity to import: a report row read back, with
// stored values for Type and Quality (not labels) and KSBs by natural
// code ("K1"), which ImportActivities maps through the user's standard.
type ImportRow struct {
	// Date is a civil date; only its year, month and day count.
	Date        time.Time
	Title       string
	Hours       float64
	Type        string
	Quality     string
	Tags        []string
	KSBs        []string
	Links       []string
	Description string
	Notes       string
}

// RowError is why one row of an import was refused; Row is its index in
// the rows given to ImportActivities.
type RowError struct {
	Row    int
	Reason string
}

// RowsError is the error of an import that refused rows: nothing of it
// was written.
type RowsError struct{ Rows []RowError }

func (e *RowsError) Error() string {
	return fmt.Sprintf("import: %d rows refused, the first (row %d): %s", len(e.Rows), e.Rows[0].Row, e.Rows[0].Reason)
}

// ImportResult says what an import did: activities added, and those
// skipped because the log already held them.
type ImportResult struct{ Added, Skipped int }

// importProgressEvery is how many rows pass between progress calls.
const importProgressEvery = 500

// ImportActivities adds rows to the user's log in one transaction:
// all of them or, on any error, none. progress, if set, is called now
// and then with the number of rows done.
//
// A row the log already holds is skipped, so that importing a file twice,
// or a report of this very log, adds nothing. "Holds" is a natural key,
// the same date, title, type and hours to one decimal place (as the
// report rounds them), counted: a file with the key twice where the log
// has it once adds one. A natural key rather than a fingerprint of the
// file, because the same activities come back in files that differ (a
// report made a day later holds the new ones too), and because a report
// of the log imported into it must change nothing.
func (s *Store) ImportActivities(ctx context.Context, userID int64, rows []ImportRow, progress func(done int)) (ImportResult, error) {
	var res ImportResult
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		im := &importer{tx: tx, userID: userID, existing: map[string]map[importKey]int{}, seen: map[datedKey]int{}, tags: map[string]int64{}}
		if err := im.loadKSBs(ctx); err != nil {
			return err
		}
		if err := im.check(rows); err != nil {
			return err
		}
		for i := range rows {
			added, err := im.add(ctx, &rows[i])
			if err != nil {
				return fmt.Errorf("row %d: %w", i, err)
			}
			if added {
				res.Added++
			} else {
				res.Skipped++
			}
			if progress != nil && (i+1)%importProgressEvery == 0 {
				progress(i + 1)
			}
		}
		return nil
	})
	if err != nil {
		return ImportResult{}, fmt.Errorf("import activities of user %d: %w", userID, err)
	}
	return res, nil
}

// importKey is the natural key an import recognises an activity by.
type importKey struct {
	title, typ string
	// hours as the report shows them, to one decimal place: formatted
	// by the report's own rule (round half to even on the binary value,
	// so 2.25 is "2.2"), which math.Round(h*10) is not.
	hours string
}

func keyOf(title, typ string, hours float64) importKey {
	return importKey{title: title, typ: typ, hours: strconv.FormatFloat(hours, 'f', 1, 64)}
}

// datedKey is an importKey on a date.
type datedKey struct {
	date string
	key  importKey
}

// importer is one ImportActivities transaction's state.
type importer struct {
	tx     bun.Tx
	userID int64
	ksbs   map[string]string // natural code → stored code, of the user's standard
	spec   string
	// existing counts the log's activities by key, per date, as they were
	// before the import: a date is read on its first row.
	existing map[string]map[importKey]int
	seen     map[datedKey]int // the file's rows by date and key, so far
	tags     map[string]int64 // tag name → id
}

// loadKSBs reads the user's standard and its KSBs; a user the database
// does not have is ErrNotFound.
func (im *importer) loadKSBs(ctx context.Context) error {
	var spec sql.NullString
	err := im.tx.QueryRowContext(ctx, `SELECT selected_spec FROM app_user WHERE id = ?`, im.userID).Scan(&spec)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("user %d: %w", im.userID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("user %d: %w", im.userID, err)
	}
	im.spec = spec.String
	im.ksbs = map[string]string{}
	if im.spec == "" {
		return nil
	}
	rows, err := im.tx.QueryContext(ctx, `SELECT natural_code, code FROM ksb WHERE spec_code = ?`, im.spec)
	if err != nil {
		return fmt.Errorf("KSBs of %s: %w", im.spec, err)
	}
	defer rows.Close()
	for rows.Next() {
		var natural, code string
		if err := rows.Scan(&natural, &code); err != nil {
			return fmt.Errorf("KSBs of %s: %w", im.spec, err)
		}
		im.ksbs[strings.ToUpper(natural)] = code
	}
	return rows.Err()
}

// ErrNoStandard is the error of an import whose file names KSBs for a
// user who has chosen no apprenticeship standard: a KSB code means
// nothing without one, so no row that names one can be imported.
var ErrNoStandard = errors.New("the file names KSBs, and no apprenticeship standard is chosen")

// check refuses rows whose KSBs are not of the user's standard, or whose
// type or hours the log cannot hold, before anything is written.
func (im *importer) check(rows []ImportRow) error {
	if im.spec == "" && slices.ContainsFunc(rows, func(r ImportRow) bool { return len(r.KSBs) > 0 }) {
		// One reason, not one per row: every KSB of the file is refused
		// for it.
		return ErrNoStandard
	}
	var bad []RowError
	for i, r := range rows {
		var reasons []string
		if label(ActivityTypes, r.Type) == r.Type {
			reasons = append(reasons, "the type is not an activity type")
		}
		if r.Quality != "" && label(EvidenceQualities, r.Quality) == r.Quality {
			reasons = append(reasons, "the evidence quality is not one of the log's")
		}
		if !(r.Hours > 0 && r.Hours <= 24) {
			reasons = append(reasons, fmt.Sprintf("hours %g are not more than 0 and at most 24", r.Hours))
		}
		for i, k := range r.KSBs {
			if _, ok := im.ksbs[strings.ToUpper(k)]; ok {
				continue
			}
			if im.spec == "" {
				reasons = append(reasons, fmt.Sprintf("%s: no apprenticeship standard is chosen in settings", ksbName(k, i)))
			} else {
				reasons = append(reasons, fmt.Sprintf("%s is not one of standard %s", ksbName(k, i), im.spec))
			}
		}
		for i, t := range r.Tags {
			if strings.ContainsRune(t, '\x1f') {
				reasons = append(reasons, fmt.Sprintf("tag %d holds a control character", i+1))
			}
		}
		for i, l := range r.Links {
			if strings.ContainsRune(l, '\x1f') {
				reasons = append(reasons, fmt.Sprintf("link %d holds a control character", i+1))
			}
		}
		if len(reasons) > 0 {
			bad = append(bad, RowError{Row: i, Reason: strings.Join(reasons, "; ")})
		}
	}
	if len(bad) > 0 {
		return &RowsError{Rows: bad}
	}
	return nil
}

// add inserts r unless the log held it before the import, and reports
// whether it did.
func (im *importer) add(ctx context.Context, r *ImportRow) (bool, error) {
	date := r.Date.Format(dateLayout)
	existing, err := im.existingOn(ctx, date)
	if err != nil {
		return false, err
	}
	key := keyOf(r.Title, r.Type, r.Hours)
	dk := datedKey{date, key}
	im.seen[dk]++
	if im.seen[dk] <= existing[key] {
		return false, nil
	}
	quality := r.Quality
	if quality == "" {
		quality = defaultQuality
	}
	var id int64
	if err := im.tx.QueryRowContext(ctx, `INSERT INTO activity
		(user_id, title, description, activity_date, duration_hours, activity_type, evidence_quality, notes)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		im.userID, r.Title, r.Description, date, r.Hours, r.Type, quality, r.Notes).Scan(&id); err != nil {
		return false, fmt.Errorf("insert activity: %w", err)
	}
	var codes []string
	for _, k := range r.KSBs {
		codes = append(codes, im.ksbs[strings.ToUpper(k)])
	}
	slices.Sort(codes)
	for _, c := range slices.Compact(codes) {
		if _, err := im.tx.ExecContext(ctx, `INSERT INTO activity_ksbs (activity_id, ksb_code) VALUES (?, ?)`, id, c); err != nil {
			return false, fmt.Errorf("insert KSB %s: %w", c, err)
		}
	}
	tags := slices.Clone(r.Tags)
	slices.Sort(tags)
	for _, name := range slices.Compact(tags) {
		tagID, err := im.tag(ctx, name)
		if err != nil {
			return false, err
		}
		if _, err := im.tx.ExecContext(ctx, `INSERT INTO activity_tags (activity_id, tag_id) VALUES (?, ?)`, id, tagID); err != nil {
			// Ids, not the tag's name: an import's error is kept in the
			// task's history, which holds no text the user typed.
			return false, fmt.Errorf("insert tag %d of activity %d: %w", tagID, id, err)
		}
	}
	for _, u := range r.Links {
		if _, err := im.tx.ExecContext(ctx, `INSERT INTO resource_link (activity_id, url) VALUES (?, ?)`, id, u); err != nil {
			return false, fmt.Errorf("insert link: %w", err)
		}
	}
	// An imported activity is a created one to whoever follows the log.
	if err := addEvent(ctx, im.tx, im.userID, id, EventCreated); err != nil {
		return false, err
	}
	return true, nil
}

// existingOn counts the user's activities on date by key, read once per
// date, so before this import added any on it.
func (im *importer) existingOn(ctx context.Context, date string) (map[importKey]int, error) {
	if m, ok := im.existing[date]; ok {
		return m, nil
	}
	rows, err := im.tx.QueryContext(ctx, `SELECT title, activity_type, duration_hours FROM activity WHERE user_id = ? AND activity_date = ?`, im.userID, date)
	if err != nil {
		return nil, fmt.Errorf("activities on %s: %w", date, err)
	}
	defer rows.Close()
	m := map[importKey]int{}
	for rows.Next() {
		var title, typ string
		var hours float64
		if err := rows.Scan(&title, &typ, &hours); err != nil {
			return nil, fmt.Errorf("activities on %s: %w", date, err)
		}
		m[keyOf(title, typ, hours)]++
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("activities on %s: %w", date, err)
	}
	im.existing[date] = m
	return m, nil
}

// tag returns the id of the user's tag called name, creating it.
func (im *importer) tag(ctx context.Context, name string) (int64, error) {
	if id, ok := im.tags[name]; ok {
		return id, nil
	}
	var id int64
	err := im.tx.QueryRowContext(ctx, `SELECT id FROM tag WHERE user_id = ? AND name = ?`, im.userID, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		err = im.tx.QueryRowContext(ctx, `INSERT INTO tag (user_id, name) VALUES (?, ?) RETURNING id`, im.userID, name).Scan(&id)
	}
	if err != nil {
		return 0, fmt.Errorf("a tag of user %d: %w", im.userID, err)
	}
	im.tags[name] = id
	return id, nil
}

// KeptUploads is how many of a user's uploads are kept: saving another
// deletes the oldest. The import reads its file once; the few kept let
// the user retry a failed import without uploading it again, and bound
// what each user can store (KeptUploads times the upload's bound).
const KeptUploads = 10

// SaveUpload stores a file the user uploaded for import and returns its
// id. It is kept in the database, not on the web's disk, so that a worker
// on another machine can read it (Upload). Only the user's newest
// KeptUploads are kept.
func (s *Store) SaveUpload(ctx context.Context, userID int64, body []byte) (int64, error) {
	sum := sha256.Sum256(body)
	var id int64
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := tx.QueryRowContext(ctx, `INSERT INTO import_upload (user_id, sha256, body) VALUES (?, ?, ?) RETURNING id`,
			userID, hex.EncodeToString(sum[:]), body).Scan(&id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM import_upload WHERE user_id = ? AND id NOT IN
			(SELECT id FROM import_upload WHERE user_id = ? ORDER BY id DESC LIMIT ?)`, userID, userID, KeptUploads)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("save upload of user %d: %w", userID, err)
	}
	return id, nil
}

// Upload returns the body of the user's upload id; another user's, or
// one that does not exist, is ErrNotFound.
func (s *Store) Upload(ctx context.Context, userID, id int64) ([]byte, error) {
	var body []byte
	err := s.db.QueryRowContext(ctx, `SELECT body FROM import_upload WHERE id = ? AND user_id = ?`, id, userID).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("upload %d of user %d: %w", id, userID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("upload %d of user %d: %w", id, userID, err)
	}
	return body, nil
}

// ksbCode is what a KSB's code looks like: a letter or two, then digits
// ("K1", "AS12").
var ksbCode = regexp.MustCompile(`^[A-Za-z]{1,3}[0-9]{1,3}$`)

// ksbName names the i-th KSB of a row for a reason, which is kept in the
// task's history: by its code when it looks like one, by its place in
// the row otherwise, since a cell is text the user typed.
func ksbName(k string, i int) string {
	if ksbCode.MatchString(k) {
		return "KSB " + k
	}
	return fmt.Sprintf("KSB %d of the row", i+1)
}
