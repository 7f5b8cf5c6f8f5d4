package tasks

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/uptrace/bun"
)

// Status is a task's state as the projection shows it.
type Status string

// The task states, with the seed's names.
const (
	StatusPending   Status = "pending"
	StatusRunning   Status = "running"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
)

// Active reports whether the task may still change by itself.
func (s Status) Active() bool { return s == StatusPending || s == StatusRunning }

// TaskResult is one row of the task_result projection: the seed's
// TaskResult, derived from job events.
type TaskResult struct {
	bun.BaseModel `bun:"table:task_result"`

	ID          string    `bun:"id,pk"`
	UserID      int64     `bun:"user_id"`
	TaskType    string    `bun:"task_type"`
	Status      Status    `bun:"status"`
	ResultData  string    `bun:"result_data,nullzero"`
	ResultPath  string    `bun:"result_path,nullzero"`
	Error       string    `bun:"error_message,nullzero"`
	CreatedAt   time.Time `bun:"created_at"`
	CompletedAt time.Time `bun:"completed_at,nullzero"`
	StartedAt   time.Time `bun:"started_at,nullzero"`
	UpdatedAt   time.Time `bun:"updated_at"`
	Attempts    int       `bun:"attempts"`
	MaxAttempts int       `bun:"max_attempts"`
	Worker      string    `bun:"worker"`
	ResultName  string    `bun:"result_name,nullzero"`
	ResultType  string    `bun:"result_content_type,nullzero"`
	ResultSize  int64     `bun:"result_size,nullzero"`
	Digest      string    `bun:"result_digest,nullzero"`
	LastSeq     uint64    `bun:"last_seq"`
}

// HasResult reports whether a completed task has a file to download.
func (t *TaskResult) HasResult() bool { return t.Status == StatusCompleted && t.ResultPath != "" }

// ProjectionName is the task_result projection's row in projection_offset.
const ProjectionName = "task_result"

// Projection keeps task_result in step with the event stream. Each event
// is applied in one transaction together with the stream position, and
// anything at or below the stored position is skipped: events are applied
// exactly once however often they are delivered, and any number of
// processes may run the projection against one database.
type Projection struct {
	db     *bun.DB
	stream EventStream
	log    *slog.Logger

	mu       sync.Mutex
	pos      uint64        // highest sequence this process has seen applied
	advanced chan struct{} // closed and replaced whenever pos moves
}

// NewProjection returns a projection of stream into db.
func NewProjection(db *bun.DB, stream EventStream, logger *slog.Logger) *Projection {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Projection{db: db, stream: stream, log: logger.With("projection", ProjectionName), advanced: make(chan struct{})}
}

// Run follows the stream from the stored position until ctx ends,
// starting again from the stored position after any error.
func (p *Projection) Run(ctx context.Context) error {
	for {
		from, err := p.Offset(ctx)
		if err == nil {
			p.advance(from)
			p.log.InfoContext(ctx, "projection following events", "from_seq", from)
			err = p.stream.Follow(ctx, from, func(e Event) error { return p.Apply(ctx, e) })
		}
		if ctx.Err() != nil {
			return nil
		}
		p.log.WarnContext(ctx, "projection interrupted; resuming", "err", err)
		sleep(ctx, time.Second)
	}
}

// Offset is the stream sequence the projection has applied up to.
func (p *Projection) Offset(ctx context.Context) (uint64, error) {
	var seq uint64
	err := p.db.NewSelect().Table("projection_offset").Column("seq").
		Where("name = ?", ProjectionName).Scan(ctx, &seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("projection offset: %w", err)
	}
	return seq, nil
}

// Apply applies one event. It changes nothing if the event's sequence is
// at or below the stored position, or if the event would be an impossible
// transition (a finished task never starts again).
func (p *Projection) Apply(ctx context.Context, e Event) error {
	if e.Seq == 0 {
		return fmt.Errorf("apply %s event of job %s: no stream sequence", e.Kind, e.JobID)
	}
	err := p.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var done uint64
		err := tx.NewSelect().Table("projection_offset").Column("seq").
			Where("name = ?", ProjectionName).Scan(ctx, &done)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if e.Seq <= done {
			return nil
		}
		if err := applyEvent(ctx, tx, e); err != nil {
			return err
		}
		_, err = tx.NewRaw(`INSERT INTO projection_offset (name, seq) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET seq = excluded.seq`, ProjectionName, e.Seq).Exec(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("apply %s event %d of job %s: %w", e.Kind, e.Seq, e.JobID, err)
	}
	p.advance(e.Seq)
	return nil
}

func applyEvent(ctx context.Context, tx bun.Tx, e Event) error {
	active := []Status{StatusPending, StatusRunning}
	switch e.Kind {
	case EventEnqueued:
		row := &TaskResult{
			ID: e.JobID, UserID: e.UserID, TaskType: e.JobType, Status: StatusPending,
			CreatedAt: e.Time, UpdatedAt: e.Time, MaxAttempts: 1, LastSeq: e.Seq,
		}
		_, err := tx.NewInsert().Model(row).On("CONFLICT (id) DO NOTHING").Exec(ctx)
		return err
	case EventStarted:
		_, err := tx.NewUpdate().Model((*TaskResult)(nil)).
			Set("status = ?", StatusRunning).
			Set("attempts = ?", e.Attempt).
			Set("started_at = ?", e.Time).
			Set("worker = ?", e.Worker).
			Set("updated_at = ?", e.Time).
			Set("last_seq = ?", e.Seq).
			Where("id = ?", e.JobID).
			Where("status IN (?)", bun.List(active)).
			Where("attempts <= ?", e.Attempt).
			Where("last_seq < ?", e.Seq).
			Exec(ctx)
		return err
	case EventSucceeded:
		q := tx.NewUpdate().Model((*TaskResult)(nil)).
			Set("status = ?", StatusCompleted).
			Set("result_data = ?", nullString(e.Summary)).
			Set("error_message = NULL").
			Set("completed_at = ?", e.Time).
			Set("updated_at = ?", e.Time).
			Set("last_seq = ?", e.Seq)
		if r := e.Result; r != nil {
			q = q.Set("result_path = ?", r.Object).
				Set("result_name = ?", r.Name).
				Set("result_content_type = ?", r.ContentType).
				Set("result_size = ?", r.Size).
				Set("result_digest = ?", r.Digest)
		}
		_, err := q.Where("id = ?", e.JobID).
			Where("status IN (?)", bun.List(active)).
			Where("last_seq < ?", e.Seq).
			Exec(ctx)
		return err
	case EventFailed:
		_, err := tx.NewUpdate().Model((*TaskResult)(nil)).
			Set("status = ?", StatusFailed).
			Set("error_message = ?", e.Error).
			Set("completed_at = ?", e.Time).
			Set("updated_at = ?", e.Time).
			Set("last_seq = ?", e.Seq).
			Where("id = ?", e.JobID).
			Where("status IN (?)", bun.List(active)).
			Where("last_seq < ?", e.Seq).
			Exec(ctx)
		return err
	default:
		// An event kind this version does not know: skip it, so that an
		// older process never stalls on a newer process's events.
		return nil
	}
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// Rebuild empties task_result and the stored position; a running or the
// next Run then replays the whole stream into it.
func (p *Projection) Rebuild(ctx context.Context) error {
	return p.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewDelete().Model((*TaskResult)(nil)).Where("1 = 1").Exec(ctx); err != nil {
			return fmt.Errorf("rebuild: clear task_result: %w", err)
		}
		if _, err := tx.NewDelete().Table("projection_offset").Where("name = ?", ProjectionName).Exec(ctx); err != nil {
			return fmt.Errorf("rebuild: clear offset: %w", err)
		}
		return nil
	})
}

func (p *Projection) advance(seq uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if seq > p.pos {
		p.pos = seq
		close(p.advanced)
		p.advanced = make(chan struct{})
	}
}

// WaitFor blocks until this process's projection has applied the event at
// seq (or a later one), or ctx ends. Web handlers use it so that a task
// appears on the next page right after it was enqueued.
func (p *Projection) WaitFor(ctx context.Context, seq uint64) error {
	for {
		p.mu.Lock()
		pos, ch := p.pos, p.advanced
		p.mu.Unlock()
		if pos >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for projection to reach %d (at %d): %w", seq, pos, ctx.Err())
		}
	}
}
