package digest

import (
	"fmt"
	"time"
)

// Week is an ISO 8601 week: Monday to Sunday, numbered within the year
// that holds its Thursday.
type Week struct {
	Year, Num int
	// Monday is the week's first day, a civil date held as midnight UTC.
	Monday time.Time
}

// WeekOf is the ISO week holding t's calendar date, in t's location.
func WeekOf(t time.Time) Week {
	y, n := t.ISOWeek()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	back := (int(day.Weekday()) + 6) % 7 // days since Monday
	return Week{Year: y, Num: n, Monday: day.AddDate(0, 0, -back)}
}

// ParseWeek reads a week written as String writes it ("2026-W49").
func ParseWeek(s string) (Week, error) {
	var y, n int
	if _, err := fmt.Sscanf(s, "%4d-W%2d", &y, &n); err != nil || len(s) != 8 {
		return Week{}, fmt.Errorf("week %q: not YYYY-Www", s)
	}
	// 4 January is always in week 1.
	w := WeekOf(time.Date(y, time.January, 4, 0, 0, 0, 0, time.UTC))
	w = WeekOf(w.Monday.AddDate(0, 0, 7*(n-1)))
	if w.Year != y || w.Num != n {
		return Week{}, fmt.Errorf("week %q: %d has no week %d", s, y, n)
	}
	return w, nil
}

// String is the week as "2026-W49".
func (w Week) String() string { return fmt.Sprintf("%04d-W%02d", w.Year, w.Num) }

// Title is the week as people read it: "the week of Mon 30 Nov 2026".
func (w Week) Title() string { return "the week of " + w.Monday.Format("Mon 2 Jan 2006") }

// Next is the week after w.
func (w Week) Next() Week { return WeekOf(w.Monday.AddDate(0, 0, 7)) }
