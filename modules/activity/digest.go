package activity

import (
	"context"
	"fmt"
	"time"
)

// WeekActivity is one activity of a week, as a digest lists it.
type WeekActivity struct {
	// Date is a civil date, held as midnight UTC.
	Date      time.Time
	Title     string
	Hours     float64
	TypeLabel string
}

// DigestFacts is what a weekly digest says about one user: their week's
// hours and activities, their total, and the KSBs still without evidence.
type DigestFacts struct {
	// Activities is how many activities the user has logged ever;
	// TotalHours their hours over all of them.
	Activities int
	TotalHours float64
	// WeekHours is the hours of the week's activities, Week those
	// activities, oldest first.
	WeekHours float64
	Week      []WeekActivity
	// Unevidenced are the KSBs of the user's standard that no activity of
	// theirs names yet, K, S then B, each by number; empty when the user
	// has chosen no standard.
	Unevidenced []KSB
}

// DigestFacts reads what the digest of the week from..to (civil dates,
// both included) says about the user. The same queries run on SQLite and
// PostgreSQL: dates are compared as the text SQLite stores (YYYY-MM-DD),
// which PostgreSQL casts to its date.
func (s *Store) DigestFacts(ctx context.Context, u User, from, to time.Time) (DigestFacts, error) {
	var f DigestFacts
	err := s.db.QueryRowContext(ctx,
		`SELECT count(*), coalesce(sum(duration_hours), 0) FROM activity WHERE user_id = ?`, u.ID).
		Scan(&f.Activities, &f.TotalHours)
	if err != nil {
		return f, fmt.Errorf("digest of user %d: totals: %w", u.ID, err)
	}
	rows, err := s.db.QueryContext(ctx,
		`SELECT activity_date, title, duration_hours, activity_type FROM activity
		WHERE user_id = ? AND activity_date >= ? AND activity_date <= ?
		ORDER BY activity_date, id`,
		u.ID, from.Format(dateLayout), to.Format(dateLayout))
	if err != nil {
		return f, fmt.Errorf("digest of user %d: week: %w", u.ID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var a WeekActivity
		var d civilDate
		var typ string
		if err := rows.Scan(&d, &a.Title, &a.Hours, &typ); err != nil {
			return f, fmt.Errorf("digest of user %d: week: %w", u.ID, err)
		}
		a.Date, a.TypeLabel = d.t, TypeLabel(typ)
		f.WeekHours += a.Hours
		f.Week = append(f.Week, a)
	}
	if err := rows.Err(); err != nil {
		return f, fmt.Errorf("digest of user %d: week: %w", u.ID, err)
	}
	if u.SelectedSpec == "" {
		return f, nil
	}
	krows, err := s.db.QueryContext(ctx,
		`SELECT k.code, k.natural_code, k.category, k.title FROM ksb k
		WHERE k.spec_code = ? AND NOT EXISTS (
			SELECT 1 FROM activity_ksbs ak JOIN activity a ON a.id = ak.activity_id
			WHERE ak.ksb_code = k.code AND a.user_id = ?)
		ORDER BY k.sort_order, k.code`,
		u.SelectedSpec, u.ID)
	if err != nil {
		return f, fmt.Errorf("digest of user %d: KSBs: %w", u.ID, err)
	}
	defer krows.Close()
	for krows.Next() {
		var k KSB
		if err := krows.Scan(&k.Code, &k.NaturalCode, &k.Category, &k.Title); err != nil {
			return f, fmt.Errorf("digest of user %d: KSBs: %w", u.ID, err)
		}
		f.Unevidenced = append(f.Unevidenced, k)
	}
	if err := krows.Err(); err != nil {
		return f, fmt.Errorf("digest of user %d: KSBs: %w", u.ID, err)
	}
	return f, nil
}

// UsersWithActivity returns the ids of every user who has logged any
// activity, in id order: those a weekly digest goes to.
func (s *Store) UsersWithActivity(ctx context.Context) ([]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM app_user u WHERE EXISTS (SELECT 1 FROM activity a WHERE a.user_id = u.id) ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("users with activity: %w", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("users with activity: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("users with activity: %w", err)
	}
	return ids, nil
}
