package activity

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/platform/database"
)

// Store reads and writes the activity log in the app's database.
type Store struct {
	db *bun.DB
}

// NewStore returns a Store over db, which must have the migrations applied.
func NewStore(db *bun.DB) *Store { return &Store{db: db} }

// normalizeEmail is the form emails are stored and looked up in, so that
// "Alice@Example.org " and "alice@example.org" are one user.
func normalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

const userColumns = `id, email, name, selected_spec, otj_target_hours, seminar_target_hours, weekly_target_hours, timezone, created_at`

// queryRower is what both *bun.DB and bun.Tx offer for one-row queries.
type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// scanUser reads one app_user row selected with userColumns.
func scanUser(row *sql.Row) (User, error) {
	var u User
	var spec sql.NullString
	err := row.Scan(&u.ID, &u.Email, &u.Name, &spec, &u.OTJTargetHours, &u.SeminarTargetHours, &u.WeeklyTargetHours, &u.Timezone, &u.CreatedAt)
	u.SelectedSpec = spec.String
	return u, err
}

// EnsureUser returns the user with that email (lower-cased, trimmed),
// creating it if missing. It is safe under concurrent calls from several
// processes: the INSERT does nothing when another caller got there first,
// and the SELECT then finds that caller's row. It reads first, so the
// usual call (every request under DEV_AUTO_LOGIN_EMAIL) takes no write lock.
func (s *Store) EnsureUser(ctx context.Context, email string) (User, error) {
	u, err := ensureUser(ctx, s.db, email)
	if err != nil {
		return User{}, fmt.Errorf("ensure user: %w", err)
	}
	return u, nil
}

// ensureUser is EnsureUser on either the database or a transaction (Fill
// creates its user inside its bulk-load transaction).
func ensureUser(ctx context.Context, db interface {
	queryRower
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}, email string) (User, error) {
	email = normalizeEmail(email)
	if email == "" {
		return User{}, errors.New("email is empty")
	}
	const byEmail = `SELECT ` + userColumns + ` FROM app_user WHERE email = ?`
	u, err := scanUser(db.QueryRowContext(ctx, byEmail, email))
	if err == nil {
		return u, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("%s: %w", email, err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO app_user (email) VALUES (?) ON CONFLICT (email) DO NOTHING`, email); err != nil {
		return User{}, fmt.Errorf("%s: %w", email, err)
	}
	u, err = scanUser(db.QueryRowContext(ctx, byEmail, email))
	if err != nil {
		return User{}, fmt.Errorf("%s: %w", email, err)
	}
	return u, nil
}

// UserByID returns the user with that id, or an error wrapping ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id int64) (User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM app_user WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("user %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("user %d: %w", id, err)
	}
	return u, nil
}

// UserByEmail returns the user with that email address (compared as
// EnsureUser stores it), or ErrNotFound. Unlike
// EnsureUser it never creates one, so lookups by operators cannot add
// users by mistyping.
func (s *Store) UserByEmail(ctx context.Context, email string) (User, error) {
	email = normalizeEmail(email)
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM app_user WHERE email = ?`, email))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("user %s: %w", email, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("user %s: %w", email, err)
	}
	return u, nil
}

// UserEmails returns the emails of the users with these ids, in one
// query, for listings that show whose each row is; a user that does not
// exist (any more) is left out.
func (s *Store) UserEmails(ctx context.Context, ids []int64) (map[int64]string, error) {
	emails := make(map[int64]string, len(ids))
	if len(ids) == 0 {
		return emails, nil
	}
	// One JSON array, not one placeholder an id: a listing may name more
	// users than SQLite takes variables.
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, fmt.Errorf("user emails: %w", err)
	}
	q := `SELECT id, email FROM app_user WHERE id IN (SELECT value FROM json_each(?))`
	if database.DialectOf(s.db) == database.Postgres {
		q = `SELECT id, email FROM app_user WHERE id IN (SELECT value::bigint FROM json_array_elements_text(?::json))`
	}
	rows, err := s.db.QueryContext(ctx, q, string(list))
	if err != nil {
		return nil, fmt.Errorf("user emails: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var email string
		if err := rows.Scan(&id, &email); err != nil {
			return nil, fmt.Errorf("user emails: %w", err)
		}
		emails[id] = email
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("user emails: %w", err)
	}
	return emails, nil
}

// CountActivities returns how many activities the user has logged.
// A user this database does not have is ErrNotFound, not a count of 0.
func (s *Store) CountActivities(ctx context.Context, userID int64) (int, error) {
	var n int
	var known bool
	// One query: a user's count, and whether the user is there at all,
	// since a missing user's log would count as an empty one.
	err := s.db.QueryRowContext(ctx,
		`SELECT (SELECT count(*) FROM activity WHERE user_id = ?), EXISTS (SELECT 1 FROM app_user WHERE id = ?)`,
		userID, userID).Scan(&n, &known)
	if err != nil {
		return 0, fmt.Errorf("count activities of user %d: %w", userID, err)
	}
	if !known {
		return 0, fmt.Errorf("count activities of user %d: %w", userID, ErrNotFound)
	}
	return n, nil
}

// ListActivities returns one page of the user's activities that pass f,
// newest first (activity_date DESC, id DESC); page is 1-based. Total and
// TotalHours cover all the user's activities that pass f. Tags are sorted
// by name, KSBs (natural codes) by number (K2 before K10), links by id. A
// page past the end has no activities but still the totals.
func (s *Store) ListActivities(ctx context.Context, userID int64, f Filter, page, perPage int) (Page, error) {
	if page < 1 || perPage < 1 {
		return Page{}, fmt.Errorf("list activities: page %d of %d: both must be 1 or more", page, perPage)
	}
	pg := Page{Page: page, PerPage: perPage}
	where, args := activityFilters(f, database.DialectOf(s.db))
	args = append([]any{userID}, args...)
	// A read-only transaction (a deferred BEGIN, not the DSN's immediate
	// one, so it takes no write lock) makes the totals and the page one
	// snapshot even while a writer adds activities.
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Page{}, fmt.Errorf("list activities: %w", err)
	}
	defer tx.Rollback() // read-only: nothing to commit

	// coalesce(sum(), 0), not SQLite's total(): the same on both dialects.
	if err := tx.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(a.duration_hours), 0) FROM activity a WHERE a.user_id = ?`+where, args...).
		Scan(&pg.Total, &pg.TotalHours); err != nil {
		return Page{}, fmt.Errorf("list activities: totals: %w", err)
	}
	if int64(page-1) > math.MaxInt64/int64(perPage) {
		return pg, nil // an offset past any table
	}
	offset := int64(page-1) * int64(perPage)
	if offset >= int64(pg.Total) {
		return pg, nil // past the end: skip the query
	}
	sel := activitySelect
	if database.DialectOf(s.db) == database.Postgres {
		sel = activitySelectPG
	}
	rows, err := tx.QueryContext(ctx, sel+where+activityOrder+` LIMIT ? OFFSET ?`, append(args, perPage, offset)...)
	if err != nil {
		return Page{}, fmt.Errorf("list activities: %w", err)
	}
	defer rows.Close()
	pg.Activities = make([]Activity, 0, min(perPage, pg.Total))
	var r activityRow
	for rows.Next() {
		if err := r.scan(rows); err != nil {
			return Page{}, fmt.Errorf("list activities: %w", err)
		}
		// Fresh slices per activity: unlike a report row, a page's
		// activities all live at once.
		pg.Activities = append(pg.Activities, Activity{
			ID: r.id, Date: r.date.t, Title: r.title, Description: r.description, Hours: r.hours,
			Type: r.typ, Quality: r.quality, Notes: r.notes,
			Tags: splitList(nil, r.tags), KSBs: splitList(nil, r.ksbs), Links: splitList(nil, r.links),
			LinkTitles: splitList(nil, r.linkTitles),
		})
	}
	if err := rows.Err(); err != nil {
		return Page{}, fmt.Errorf("list activities: %w", err)
	}
	return pg, nil
}

// activityFilters returns the AND clauses that narrow a listing of
// activity a to f, and their arguments, in dialect d.
func activityFilters(f Filter, d database.Dialect) (string, []any) {
	var sb strings.Builder
	var args []any
	if f.From != "" {
		sb.WriteString(` AND a.activity_date >= ?`)
		args = append(args, f.From)
	}
	if f.To != "" {
		sb.WriteString(` AND a.activity_date <= ?`)
		args = append(args, f.To)
	}
	if f.Text != "" {
		// SQLite's LIKE ignores ASCII case; PostgreSQL's ILIKE does the
		// same and more. No index helps a search for a part of a text:
		// it reads the user's rows (through activity_user_date), not
		// the table.
		like := "LIKE"
		if d == database.Postgres {
			like = "ILIKE"
		}
		sb.WriteString(` AND (a.title ` + like + ` ? ESCAPE '!' OR a.description ` + like + ` ? ESCAPE '!' OR a.notes ` + like + ` ? ESCAPE '!')`)
		pat := "%" + likeEscaper.Replace(f.Text) + "%"
		args = append(args, pat, pat, pat)
	}
	if f.Type != "" {
		sb.WriteString(` AND a.activity_type = ?`)
		args = append(args, f.Type)
	}
	if f.KSB != "" {
		sb.WriteString(` AND EXISTS (SELECT 1 FROM activity_ksbs fk JOIN ksb k ON k.code = fk.ksb_code
		WHERE fk.activity_id = a.id AND k.natural_code = ?)`)
		args = append(args, f.KSB)
	}
	if f.Tag != "" {
		sb.WriteString(` AND EXISTS (SELECT 1 FROM activity_tags ft JOIN tag t ON t.id = ft.tag_id
		WHERE ft.activity_id = a.id AND t.user_id = a.user_id AND t.name = ?)`)
		args = append(args, f.Tag)
	}
	return sb.String(), args
}

// likeEscaper makes a text match itself in a LIKE pattern with ESCAPE
// '!' (not a backslash, which bun's placeholders read as their own).
var likeEscaper = strings.NewReplacer("!", "!!", "%", "!%", "_", "!_")
