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

// The task states: the seed's four, plus retrying (an attempt failed and
// another is scheduled) and cancelled.
const (
	StatusPending   Status = "pending"
	StatusRunning   Status = "running"
	StatusRetrying  Status = "retrying"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
)

// Statuses lists every state, in the order a task may pass through them.
var Statuses = []Status{StatusPending, StatusRunning, StatusRetrying, StatusCompleted, StatusFailed, StatusCancelled}

// Active reports whether the task may still change by itself.
func (s Status) Active() bool {
	return s == StatusPending || s == StatusRunning || s == StatusRetrying
}

// Valid reports whether s is one of Statuses.
func (s Status) Valid() bool {
	for _, v := range Statuses {
		if s == v {
			return true
		}
	}
	return false
}

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
	// NextAttemptAt is when a retrying task runs again.
	NextAttemptAt time.Time `bun:"next_attempt_at,nullzero"`
	// ChangedBy says who cancelled or last retried the task by hand.
	ChangedBy string `bun:"changed_by"`
	// ProgressPercent and ProgressMessage are the running attempt's
	// latest progress report.
	ProgressPercent int    `bun:"progress_percent"`
	ProgressMessage string `bun:"progress_message"`
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
	observe  func(Event)
}

// Observe registers fn to be called with each event this process applies,
// in stream order, once the transaction holding it has committed: what
// readers of task_result can see from then on. It is for measurements
// (app bench) and must be set before Run; fn must be quick.
func (p *Projection) Observe(fn func(Event)) { p.observe = fn }

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
			p.restart(from)
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
		if done < p.position() {
			// Someone reset the stored position (a rebuild) under this
			// follower: start again from there rather than skip ahead.
			return errReset
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
	if p.observe != nil {
		p.observe(e)
	}
	return nil
}

// from lists the states each kind of event may move a task out of. An
// event arriving in any other state would be an impossible step (a
// completed task starting again) and leaves the row as it is.
var from = map[EventKind][]Status{
	EventStarted:   {StatusPending, StatusRetrying},
	EventSucceeded: {StatusRunning},
	EventRetrying:  {StatusRunning},
	EventFailed:    {StatusPending, StatusRunning, StatusRetrying},
	EventCancelled: {StatusPending, StatusRunning, StatusRetrying},
	EventRetried:   {StatusFailed, StatusCancelled},
	EventReleased:  {StatusRunning},
	EventProgress:  {StatusRunning},
}

func applyEvent(ctx context.Context, tx bun.Tx, e Event) error {
	if e.Kind == EventEnqueued {
		row := &TaskResult{
			ID: e.JobID, UserID: e.UserID, TaskType: e.JobType, Status: StatusPending,
			CreatedAt: e.Time, UpdatedAt: e.Time, LastSeq: e.Seq,
		}
		_, err := tx.NewInsert().Model(row).On("CONFLICT (id) DO NOTHING").Exec(ctx)
		return err
	}
	states, known := from[e.Kind]
	if !known {
		// An event kind this version does not know, or a message that is
		// no event at all: skip it, so that an older process never
		// stalls on a newer process's events.
		return nil
	}
	q := tx.NewUpdate().Model((*TaskResult)(nil)).
		Set("status = ?", StatusAfter(e.Kind)).
		Set("updated_at = ?", e.Time).
		Set("last_seq = ?", e.Seq).
		Where("id = ?", e.JobID).
		Where("status IN (?)", bun.List(states)).
		Where("last_seq < ?", e.Seq)
	switch e.Kind {
	case EventStarted:
		q = q.Set("attempts = ?", e.Attempt).
			Set("max_attempts = ?", e.MaxAttempts).
			Set("started_at = ?", e.Time).
			Set("worker = ?", e.Worker).
			Set("next_attempt_at = NULL").
			Set("progress_percent = 0").
			Set("progress_message = ''")
	case EventProgress:
		q = q.Set("progress_percent = ?", e.Percent).
			Set("progress_message = ?", e.Message)
	case EventSucceeded:
		q = q.Set("result_data = ?", nullString(e.Summary)).
			Set("error_message = NULL").
			Set("completed_at = ?", e.Time)
		if r := e.Result; r != nil {
			q = q.Set("result_path = ?", r.Object).
				Set("result_name = ?", r.Name).
				Set("result_content_type = ?", r.ContentType).
				Set("result_size = ?", r.Size).
				Set("result_digest = ?", r.Digest)
		}
	case EventRetrying:
		q = q.Set("attempts = ?", e.Attempt).
			Set("max_attempts = ?", e.MaxAttempts).
			Set("error_message = ?", e.Error).
			Set("next_attempt_at = ?", e.RetryAt)
	case EventFailed:
		q = q.Set("error_message = ?", e.Error).
			Set("completed_at = ?", e.Time).
			Set("next_attempt_at = NULL")
		if e.Attempt > 0 {
			q = q.Set("attempts = ?", e.Attempt)
		}
		if e.MaxAttempts > 0 {
			q = q.Set("max_attempts = ?", e.MaxAttempts)
		}
	case EventCancelled:
		q = q.Set("completed_at = ?", e.Time).
			Set("next_attempt_at = NULL").
			Set("changed_by = ?", e.By)
	case EventRetried:
		q = q.Set("error_message = NULL").
			Set("completed_at = NULL").
			Set("changed_by = ?", e.By)
	case EventReleased:
		q = q.Set("worker = ''")
	}
	_, err := q.Exec(ctx)
	return err
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

// errReset stops a follower whose stored position went backwards.
var errReset = errors.New("projection position was reset (rebuild); starting again from it")

// CatchUp applies every event stored when it is called, then returns.
// With Rebuild first, it recreates task_result from the whole stream.
func (p *Projection) CatchUp(ctx context.Context) error {
	target, err := p.stream.LastSeq(ctx)
	if err != nil {
		return fmt.Errorf("catch up: %w", err)
	}
	from, err := p.Offset(ctx)
	if err != nil {
		return fmt.Errorf("catch up: %w", err)
	}
	if from >= target {
		return nil
	}
	p.restart(from)
	errDone := errors.New("caught up")
	err = p.stream.Follow(ctx, from, func(e Event) error {
		if err := p.Apply(ctx, e); err != nil {
			return err
		}
		if e.Seq >= target {
			return errDone
		}
		return nil
	})
	if errors.Is(err, errDone) {
		return nil
	}
	return fmt.Errorf("catch up to %d: %w", target, err)
}

func (p *Projection) position() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pos
}

// restart sets the position a follower starts from, which may be lower
// than before after a rebuild.
func (p *Projection) restart(seq uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pos = seq
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
