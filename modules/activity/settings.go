package activity

import (
	"context"
	"errors"
	"fmt"
)

// Standard is an apprenticeship standard a user can choose (the spec
// reference table).
type Standard struct {
	Code  string // e.g. ST0787
	Name  string
	Level int
}

// Standards lists the standards on offer, by code.
func (s *Store) Standards(ctx context.Context) ([]Standard, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT code, name, level FROM spec WHERE available ORDER BY code`)
	if err != nil {
		return nil, fmt.Errorf("standards: %w", err)
	}
	defer rows.Close()
	var out []Standard
	for rows.Next() {
		var st Standard
		if err := rows.Scan(&st.Code, &st.Name, &st.Level); err != nil {
			return nil, fmt.Errorf("standards: %w", err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("standards: %w", err)
	}
	return out, nil
}

// Settings are what a user chooses on the settings page. Targets of 0
// mean none.
type Settings struct {
	SelectedSpec       string
	OTJTargetHours     float64
	SeminarTargetHours float64
	WeeklyTargetHours  float64
	Timezone           string
}

// UpdateSettings saves a user's settings; the caller has checked them.
// An unknown user is ErrNotFound.
func (s *Store) UpdateSettings(ctx context.Context, userID int64, set Settings) error {
	if set.SelectedSpec == "" || set.Timezone == "" {
		return errors.New("update settings: standard and time zone are required")
	}
	res, err := s.db.ExecContext(ctx, `UPDATE app_user SET selected_spec = ?, otj_target_hours = ?, seminar_target_hours = ?,
		weekly_target_hours = ?, timezone = ? WHERE id = ?`,
		set.SelectedSpec, set.OTJTargetHours, set.SeminarTargetHours, set.WeeklyTargetHours, set.Timezone, userID)
	if err != nil {
		return fmt.Errorf("update settings of user %d: %w", userID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("update settings of user %d: %w", userID, err)
	} else if n == 0 {
		return fmt.Errorf("update settings of user %d: %w", userID, ErrNotFound)
	}
	return nil
}
