package activity

import (
	"context"
	"fmt"
	"time"
)

// KSBTotal is one KSB of a standard with what a user's log holds for it.
type KSBTotal struct {
	// Code is the natural code ("K1"); Category "knowledge", "skill" or
	// "behaviour" as the reference data names it.
	Code, Category, Title string
	// Activities is how many of the user's activities evidence it, and
	// Hours their hours.
	Activities int
	Hours      float64
	// Assured reports whether at least one of them has evidence of
	// quality Good or Ready for review.
	Assured bool
}

// DayHours is a user's hours on one civil date (midnight UTC).
type DayHours struct {
	Date  time.Time
	Hours float64
}

// TypeHours is a user's hours and activity count of one activity type
// (a stored value of ActivityTypes).
type TypeHours struct {
	Type       string
	Activities int
	Hours      float64
}

// Totals are the sums over a user's log that batch analytics needs,
// each aggregated by the database: a few hundred rows at most, however
// long the log.
type Totals struct {
	// KSBs are the KSBs of the user's standard, K, S, B in number
	// order; none when the user has chosen no standard.
	KSBs []KSBTotal
	// Days are the dates in [from, to) that have hours, oldest first.
	Days []DayHours
	// Types are the activity types the user has logged, by stored value.
	Types []TypeHours
}

// assuredQualities are the evidence qualities that count towards
// portfolio readiness: the values of "Good" and "Ready for review".
const assuredQualities = `('good', 'review_ready')`

// analyticsKSBs aggregates the user's KSB links per KSB code first (an
// index scan of the user's activities and the link table's primary
// key), then joins the standard's KSBs to it, so that other users' links
// are never read.
const analyticsKSBs = `
SELECT k.natural_code, k.category, k.title, COALESCE(x.n, 0), COALESCE(x.hours, 0), COALESCE(x.assured, 0)
FROM ksb k
LEFT JOIN (
	SELECT ak.ksb_code, count(*) AS n, sum(a.duration_hours) AS hours,
		max(CASE WHEN a.evidence_quality IN ` + assuredQualities + ` THEN 1 ELSE 0 END) AS assured
	FROM activity a JOIN activity_ksbs ak ON ak.activity_id = a.id
	WHERE a.user_id = ?
	GROUP BY ak.ksb_code
) x ON x.ksb_code = k.code
WHERE k.spec_code = ?
ORDER BY k.sort_order, k.code`

// The dates are bound as YYYY-MM-DD text: SQLite stores them so, and
// PostgreSQL reads such a parameter as a date.
const (
	analyticsDays = `
SELECT activity_date, sum(duration_hours) FROM activity
WHERE user_id = ? AND activity_date >= ? AND activity_date < ?
GROUP BY activity_date ORDER BY activity_date`
	analyticsTypes = `
SELECT activity_type, count(*), sum(duration_hours) FROM activity
WHERE user_id = ? GROUP BY activity_type ORDER BY activity_type`
)

// AnalyticsTotals returns the sums batch analytics is built from, for
// the user u (whose standard picks the KSBs): per KSB, per date in
// [from, to) (civil dates), and per activity type. The three queries
// run in one read transaction, so they agree with each other.
func (s *Store) AnalyticsTotals(ctx context.Context, u User, from, to time.Time) (Totals, error) {
	var t Totals
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return t, fmt.Errorf("analytics totals of user %d: %w", u.ID, err)
	}
	// Read only: nothing to commit.
	defer func() { _ = tx.Rollback() }()

	if u.SelectedSpec != "" {
		rows, err := tx.QueryContext(ctx, analyticsKSBs, u.ID, u.SelectedSpec)
		if err != nil {
			return t, fmt.Errorf("analytics KSBs of user %d: %w", u.ID, err)
		}
		defer rows.Close()
		for rows.Next() {
			var k KSBTotal
			var assured int
			if err := rows.Scan(&k.Code, &k.Category, &k.Title, &k.Activities, &k.Hours, &assured); err != nil {
				return t, fmt.Errorf("analytics KSBs of user %d: %w", u.ID, err)
			}
			k.Assured = assured > 0
			t.KSBs = append(t.KSBs, k)
		}
		if err := rows.Err(); err != nil {
			return t, fmt.Errorf("analytics KSBs of user %d: %w", u.ID, err)
		}
		rows.Close()
	}

	rows, err := tx.QueryContext(ctx, analyticsDays, u.ID, from.Format(dateLayout), to.Format(dateLayout))
	if err != nil {
		return t, fmt.Errorf("analytics days of user %d: %w", u.ID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var d civilDate
		var h float64
		if err := rows.Scan(&d, &h); err != nil {
			return t, fmt.Errorf("analytics days of user %d: %w", u.ID, err)
		}
		t.Days = append(t.Days, DayHours{Date: d.t, Hours: h})
	}
	if err := rows.Err(); err != nil {
		return t, fmt.Errorf("analytics days of user %d: %w", u.ID, err)
	}
	rows.Close()

	trows, err := tx.QueryContext(ctx, analyticsTypes, u.ID)
	if err != nil {
		return t, fmt.Errorf("analytics types of user %d: %w", u.ID, err)
	}
	defer trows.Close()
	for trows.Next() {
		var th TypeHours
		if err := trows.Scan(&th.Type, &th.Activities, &th.Hours); err != nil {
			return t, fmt.Errorf("analytics types of user %d: %w", u.ID, err)
		}
		t.Types = append(t.Types, th)
	}
	if err := trows.Err(); err != nil {
		return t, fmt.Errorf("analytics types of user %d: %w", u.ID, err)
	}
	return t, nil
}

// UserIDsAfter returns up to limit user ids greater than after, in
// order: a page of every user, for commands that fan out one job per
// user without holding all the users at once.
func (s *Store) UserIDsAfter(ctx context.Context, after int64, limit int) ([]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM app_user WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("user ids after %d: %w", after, err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("user ids after %d: %w", after, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("user ids after %d: %w", after, err)
	}
	return ids, nil
}
