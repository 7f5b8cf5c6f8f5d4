package activity

import (
	"context"
	"fmt"
)

// EachReportRow calls fn with each of the user's activities, newest first
// (activity_date DESC, id DESC), as the full report shows them: labels for
// type and quality, KSBs by natural code; tags ordered by name, KSBs by
// number (K2 before K10), links by id.
//
// It streams: one query, read a row at a time, so memory stays flat however
// long the log is. For the same reason the *ReportRow, its slices and their
// strings' backing are reused between calls: fn must not keep row or its
// slices after it returns (copy what it needs).
//
// It stops and returns fn's error if fn returns one, and stops with ctx's
// error when ctx is done.
func (s *Store) EachReportRow(ctx context.Context, userID int64, fn func(*ReportRow) error) error {
	rows, err := s.db.QueryContext(ctx, activitySelect, userID)
	if err != nil {
		return fmt.Errorf("report rows: %w", err)
	}
	defer rows.Close()
	var (
		r   activityRow
		out ReportRow
	)
	for rows.Next() {
		// The driver interrupts a running statement when ctx ends, but a
		// row already fetched would still reach fn without this check.
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("report rows: %w", err)
		}
		if err := r.scan(rows); err != nil {
			return fmt.Errorf("report rows: %w", err)
		}
		out.Date = r.date.t
		out.Title = r.title
		out.Hours = r.hours
		out.TypeLabel = TypeLabel(r.typ)
		out.QualityLabel = QualityLabel(r.quality)
		out.Tags = splitList(out.Tags, r.tags)
		out.KSBs = splitList(out.KSBs, r.ksbs)
		out.Links = splitList(out.Links, r.links)
		out.Description = r.description
		out.Notes = r.notes
		if err := fn(&out); err != nil {
			return err // fn's own error, as it gave it
		}
	}
	if err := rows.Err(); err != nil {
		// A statement interrupted because ctx ended fails with the
		// driver's "interrupted"; ctx's own error says why.
		if cerr := ctx.Err(); cerr != nil {
			err = cerr
		}
		return fmt.Errorf("report rows: %w", err)
	}
	return nil
}
