// Package projection keeps the task_result table in step with the event
// stream, and reads it: the projection with its SQL, the read side
// (Store), and Replay, which runs one job's history through the same
// state machine.
package projection

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/otjhelper/otj/modules/tasks/internal/clock"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/platform/database"
	"github.com/uptrace/bun"
)

// taskRow is one row of the task_result projection, derived from job
// events. Readers get it as a tasktype.Task.
type taskRow struct {
	bun.BaseModel `bun:"table:task_result"`

	ID         string          `bun:"id,pk"`
	UserID     int64           `bun:"user_id"`
	TaskType   string          `bun:"task_type"`
	Status     tasktype.Status `bun:"status"`
	ResultData string          `bun:"result_data,nullzero"`
	ResultPath string          `bun:"result_path,nullzero"`
	Error      string          `bun:"error_message,nullzero"`
	// UserMessage is the sentence the owner of a failed or retrying task
	// sees instead of Error; see Message.
	UserMessage string    `bun:"user_message,nullzero"`
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
	// LeaseMS is the running attempt's lease in milliseconds, as its
	// started event recorded it (tasktype.Task.Lease).
	LeaseMS int64 `bun:"lease_ms"`
	// FixHref and FixLabel are the failed task's Fix, when it refused
	// its input (tasktype.Task.Fix).
	FixHref  string `bun:"fix_href,nullzero"`
	FixLabel string `bun:"fix_label,nullzero"`
}

// Name is the task_result projection's row in projection_offset.
const Name = "task_result"

// Stream is what the projection reads of the event log (driver.Log).
type Stream interface {
	Follow(ctx context.Context, from uint64, fn func([]tasktype.Event) error) error
	LastSeq(ctx context.Context) (uint64, error)
	LastStoredSeq(ctx context.Context) (uint64, error)
	Created(ctx context.Context) (time.Time, error)
}

// Projection keeps task_result in step with the event stream. Each event
// is applied in one transaction together with the stream position, and
// anything at or below the stored position is skipped: events are applied
// exactly once however often they are delivered, and any number of
// processes may run the projection against one database.
type Projection struct {
	db     *bun.DB
	stream Stream
	log    *slog.Logger

	mu       sync.Mutex
	pos      uint64        // highest sequence this process has seen applied
	advanced chan struct{} // closed and replaced whenever pos moves
	observe  func(tasktype.Event)
	floor    uint64 // no event at or below it is applied (From)

	stmtsMu sync.Mutex
	stmts   *statements // prepared on first use

	dialect database.Dialect
	pg      bool // dialect is PostgreSQL
}

// statements are the projection's prepared statements. database/sql
// prepares each once per connection and reuses it in every transaction,
// so the SQL is parsed once, not once per batch.
type statements struct {
	offset, setOffset, task, upsert *sql.Stmt
	// ensureOffset is PostgreSQL's only: see applyTx.
	ensureOffset *sql.Stmt
}

// prepared returns the projection's statements, preparing them the first
// time. They live as long as the database: closing it finalizes them.
func (p *Projection) prepared(ctx context.Context) (*statements, error) {
	p.stmtsMu.Lock()
	defer p.stmtsMu.Unlock()
	if p.stmts != nil {
		return p.stmts, nil
	}
	var st statements
	list := []struct {
		dst **sql.Stmt
		sql string
	}{
		{&st.offset, selectOffset}, {&st.setOffset, upsertOffset},
		{&st.task, selectTask}, {&st.upsert, upsertTask},
	}
	if p.pg {
		list[0].sql = selectOffset + ` FOR UPDATE`
		list = append(list, struct {
			dst **sql.Stmt
			sql string
		}{&st.ensureOffset, insertOffset})
	}
	for _, s := range list {
		stmt, err := p.db.DB.PrepareContext(ctx, p.dialect.Rebind(s.sql))
		if err != nil {
			return nil, fmt.Errorf("prepare projection statements: %w", err)
		}
		*s.dst = stmt
	}
	p.stmts = &st
	return p.stmts, nil
}

// Observe registers fn to be called with each event this process applies,
// in stream order, once the transaction holding it has committed: what
// readers of task_result can see from then on. It is for measurements
// (app bench) and must be set before Run; fn must be quick.
func (p *Projection) Observe(fn func(tasktype.Event)) { p.observe = fn }

// From makes the projection start after seq whatever its stored position:
// the events up to seq are never applied. It is for measurements against
// a server that holds other runs' events (app bench), and must be set
// before Run.
func (p *Projection) From(seq uint64) { p.floor = seq }

// NewProjection returns a projection of stream into db.
func New(db *bun.DB, stream Stream, logger *slog.Logger) *Projection {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := database.DialectOf(db)
	return &Projection{db: db, stream: stream, log: logger.With("projection", Name), advanced: make(chan struct{}),
		dialect: d, pg: d == database.Postgres}
}

// Run follows the stream from the stored position until ctx ends,
// starting again from the stored position after any error. Before it
// follows, and every streamCheckEvery while it does, it makes sure the
// stream is the one the position counts in (see checkStream).
func (p *Projection) Run(ctx context.Context) error {
	for {
		created, err := p.checkStream(ctx)
		var from uint64
		if err == nil {
			from, err = p.Offset(ctx)
		}
		if err == nil {
			p.restart(from)
			p.log.InfoContext(ctx, "projection following events", "from_seq", from)
			err = p.follow(ctx, from, created)
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errStreamChanged) {
			continue // checkStream rebuilds, and says so
		}
		p.log.WarnContext(ctx, "projection interrupted; resuming", "err", err)
		clock.Sleep(ctx, time.Second)
	}
}

// streamCheckEvery is how often a following projection asks whether the
// stream is still the one it follows: a server replaced under the same
// address numbers its events from 1 again, and a follower waiting past
// the old stream's end would wait, showing no new task, until the new
// one caught up.
var streamCheckEvery = 5 * time.Second

// errStreamChanged stops a follower whose stream was made anew.
var errStreamChanged = errors.New("the event stream was made anew")

// follow is Follow from from, stopped with errStreamChanged when the
// stream's creation time is no longer created.
func (p *Projection) follow(ctx context.Context, from uint64, created time.Time) error {
	fctx, stop := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(streamCheckEvery)
		defer t.Stop()
		for {
			select {
			case <-fctx.Done():
				return
			case <-t.C:
			}
			now, err := p.stream.Created(fctx)
			if err == nil && !now.Equal(created) {
				stop(errStreamChanged)
				return
			}
			// An error is the broker's to report, through Follow.
		}
	}()
	err := p.stream.Follow(fctx, max(from, p.floor), func(events []tasktype.Event) error { return p.ApplyBatch(fctx, events) })
	stop(nil)
	<-done
	if errors.Is(context.Cause(fctx), errStreamChanged) {
		return errStreamChanged
	}
	return err
}

// checkStream makes sure the stored position counts in the stream the
// projection reads, and returns the stream's creation time. When the
// stream is another one (its creation time is not the one stored with
// the position, or its last sequence is below the position, as with a
// position stored before creation times were), task_result is emptied,
// to be rebuilt from the new stream, and the log says so once. Then the
// stream's creation time is stored beside the position.
func (p *Projection) checkStream(ctx context.Context) (time.Time, error) {
	created, err := p.stream.Created(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("check the event stream: %w", err)
	}
	var row struct {
		Seq     uint64         `bun:"seq"`
		Created sql.NullString `bun:"stream_created"`
	}
	err = p.db.NewSelect().Table("projection_offset").Column("seq", "stream_created").Where("name = ?", Name).Scan(ctx, &row)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, fmt.Errorf("check the event stream: projection offset: %w", err)
	}
	// The stream's end only after the position: another process's
	// projection may move the position on meanwhile, never past the end
	// read after it.
	last, err := p.stream.LastSeq(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("check the event stream: %w", err)
	}
	id := created.UTC().Format(time.RFC3339Nano)
	if (row.Created.Valid && row.Created.String != id) || row.Seq > last {
		p.log.WarnContext(ctx, "the event stream is not the one task_result was built from: rebuilding task_result from this stream",
			"stored_seq", row.Seq, "stream_last_seq", last, "stored_stream_created", row.Created.String, "stream_created", id)
		if err := p.Rebuild(ctx); err != nil {
			return time.Time{}, fmt.Errorf("check the event stream: %w", err)
		}
		row.Created.Valid = false
	}
	if !row.Created.Valid || row.Created.String != id {
		if _, err := p.db.ExecContext(ctx, upsertStream, Name, id); err != nil {
			return time.Time{}, fmt.Errorf("check the event stream: store its creation time: %w", err)
		}
	}
	return created, nil
}

// Offset is the stream sequence the projection has applied up to.
func (p *Projection) Offset(ctx context.Context) (uint64, error) { return Offset(ctx, p.db) }

// Offset is the stream sequence task_result in db has applied up to.
func Offset(ctx context.Context, db *bun.DB) (uint64, error) {
	var seq uint64
	err := db.NewSelect().Table("projection_offset").Column("seq").
		Where("name = ?", Name).Scan(ctx, &seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("projection offset: %w", err)
	}
	return seq, nil
}

// Apply applies one event: ApplyBatch of one.
func (p *Projection) Apply(ctx context.Context, e tasktype.Event) error {
	return p.ApplyBatch(ctx, []tasktype.Event{e})
}

// ApplyBatch applies events, in the order given, in one transaction with
// the new stream position. Events at or below the stored position are
// skipped, as are impossible transitions (a finished task never starts
// again). Each task's row is read at most once and written once however
// many of its events the batch holds, so a burst costs a few statements
// per task rather than one transaction per event.
func (p *Projection) ApplyBatch(ctx context.Context, events []tasktype.Event) error {
	if len(events) == 0 {
		return nil
	}
	for _, e := range events {
		if e.Seq == 0 {
			return fmt.Errorf("apply %s event of job %s: no stream sequence", e.Kind, e.JobID)
		}
	}
	first, last := events[0], events[len(events)-1]
	applied, err := p.applyTx(ctx, events)
	if err != nil {
		if len(events) == 1 {
			return fmt.Errorf("apply %s event %d of job %s: %w", first.Kind, first.Seq, first.JobID, err)
		}
		return fmt.Errorf("apply events %d-%d: %w", first.Seq, last.Seq, err)
	}
	// Events skipped as already applied (by another process on this
	// database) are in task_result all the same: readers waiting for
	// them may go on.
	top := uint64(0)
	for _, e := range events {
		top = max(top, e.Seq)
	}
	p.advance(top)
	if p.observe != nil && applied > 0 {
		for _, e := range events[len(events)-applied:] {
			p.observe(e)
		}
	}
	return nil
}

// applyTx runs one batch's transaction and returns how many events at the
// batch's end were past the stored position (and so applied); with
// nothing past it, it writes nothing.
func (p *Projection) applyTx(ctx context.Context, events []tasktype.Event) (int, error) {
	st, err := p.prepared(ctx)
	if err != nil {
		return 0, err
	}
	tx, err := p.db.DB.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if p.pg {
		// The row the next statement locks must exist: FOR UPDATE locks
		// no row that is not there, and two first batches would both go
		// on. Of two inserting it at once, the second waits for the
		// first to commit and then does nothing.
		if _, err := tx.StmtContext(ctx, st.ensureOffset).ExecContext(ctx, Name); err != nil {
			return 0, fmt.Errorf("read position: %w", err)
		}
	}
	var done uint64
	// On PostgreSQL the position is read FOR UPDATE: of several
	// processes projecting into one database, one holds the row lock
	// through its batch; another waits for that commit (one batch, not a
	// retry loop), then reads the position it stored, skips the events
	// already applied and writes nothing. So each event is applied once,
	// and no batch is based on rows another is changing (no lost
	// update), and as the lock is one row taken once per batch there is
	// no lock storm. A lease electing one projector was not chosen: it
	// would add a failover delay to every web process's reads, where
	// this costs a waiting process one batch. On SQLite, BEGIN IMMEDIATE
	// (the DSN's _txlock) serialises the same way with the write lock.
	err = tx.StmtContext(ctx, st.offset).QueryRowContext(ctx, Name).Scan(&done)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("read position: %w", err)
	}
	if done < p.position() {
		// Someone reset the stored position (a rebuild) under this
		// follower: start again from there rather than skip ahead.
		return 0, errReset
	}
	tail, top := 0, done
	for _, e := range events {
		if e.Seq <= done {
			tail = 0 // a follower's batches are in order: only a tail is new
			continue
		}
		tail++
		top = max(top, e.Seq)
	}
	if top == done {
		return 0, nil
	}
	// The statements of a batch are short and run under the write lock
	// BEGIN took (honouring ctx); a context without cancel spares the
	// driver a watcher goroutine for each of them.
	sctx := context.WithoutCancel(ctx)
	b := &batch{tx: tx, st: st, rows: make(map[string]*batchRow), log: p.log, dialect: p.dialect}
	if err := b.load(sctx, events, done); err != nil {
		return 0, err
	}
	for _, e := range events {
		if e.Seq > done {
			b.apply(e)
		}
	}
	ctx = sctx
	if err := b.flush(ctx); err != nil {
		return 0, err
	}
	_, err = tx.StmtContext(ctx, st.setOffset).ExecContext(ctx, Name, int64(top))
	if err != nil {
		return 0, fmt.Errorf("store position: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	return tail, nil
}

// from lists the states each kind of event may move a task out of. An
// event arriving in any other state would be an impossible step (a
// completed task starting again) and leaves the row as it is.
var from = map[tasktype.EventKind][]tasktype.Status{
	tasktype.EventStarted:   {tasktype.StatusPending, tasktype.StatusRetrying},
	tasktype.EventSucceeded: {tasktype.StatusRunning},
	tasktype.EventRetrying:  {tasktype.StatusRunning},
	tasktype.EventFailed:    {tasktype.StatusPending, tasktype.StatusRunning, tasktype.StatusRetrying},
	tasktype.EventCancelled: {tasktype.StatusPending, tasktype.StatusRunning, tasktype.StatusRetrying},
	tasktype.EventRetried:   {tasktype.StatusFailed, tasktype.StatusCancelled},
	tasktype.EventReleased:  {tasktype.StatusRunning},
	tasktype.EventProgress:  {tasktype.StatusRunning},
}

// applyTo moves row through e, if e is a legal next step for it, and
// reports whether it did. It is the projection's whole state machine.
func applyTo(row *taskRow, e tasktype.Event) bool {
	if implied, ok := impliedStart(row, e); ok {
		// The attempt ended before its first heartbeat, so its start is
		// on record only in its outcome: take both steps, or neither.
		next := *row
		next.Status = tasktype.StatusRunning
		startRow(&next, implied)
		if applyTo(&next, e) {
			*row = next
			return true
		}
		return false
	}
	states, known := from[e.Kind]
	if !known || row.LastSeq >= e.Seq || !slices.Contains(states, row.Status) {
		// Unknown kinds (a newer process's events, or a message that is
		// no event at all) are skipped, so an older process never stalls.
		return false
	}
	if foreignResult(row, e) {
		return false
	}
	row.Status = tasktype.StatusAfter(e.Kind)
	row.UpdatedAt = e.Time
	row.FixHref, row.FixLabel = "", "" // only the failure that carries it keeps it
	row.LastSeq = e.Seq
	switch e.Kind {
	case tasktype.EventStarted:
		startRow(row, e)
	case tasktype.EventProgress:
		row.ProgressPercent, row.ProgressMessage = e.Percent, e.Message
	case tasktype.EventSucceeded:
		row.ResultData, row.Error, row.UserMessage, row.CompletedAt = e.Summary, "", "", e.Time
		if r := e.Result; r != nil {
			row.ResultPath, row.ResultName, row.ResultType = r.Object, r.Name, r.ContentType
			row.ResultSize, row.Digest = int64(r.Size), r.Digest
		}
	case tasktype.EventRetrying:
		row.Attempts, row.MaxAttempts = e.Attempt, e.MaxAttempts
		row.Error, row.UserMessage, row.NextAttemptAt = e.Error, e.Message, e.RetryAt
	case tasktype.EventFailed:
		row.Error, row.UserMessage, row.CompletedAt, row.NextAttemptAt = e.Error, e.Message, e.Time, time.Time{}
		if f := e.Fix; f != nil {
			row.FixHref, row.FixLabel = f.Href, f.Label
		}
		if e.Attempt > 0 {
			row.Attempts = e.Attempt
		}
		if e.MaxAttempts > 0 {
			row.MaxAttempts = e.MaxAttempts
		}
	case tasktype.EventCancelled:
		row.CompletedAt, row.NextAttemptAt, row.ChangedBy = e.Time, time.Time{}, e.By
	case tasktype.EventRetried:
		row.Error, row.UserMessage, row.CompletedAt, row.ChangedBy = "", "", time.Time{}, e.By
	case tasktype.EventReleased:
		row.Worker = ""
	}
	return true
}

// startRow records on row the start of e's attempt.
func startRow(row *taskRow, e tasktype.Event) {
	row.Attempts, row.MaxAttempts = e.Attempt, e.MaxAttempts
	row.StartedAt, row.Worker = e.Time, e.Worker
	row.LeaseMS = e.Lease.Milliseconds()
	row.NextAttemptAt = time.Time{}
	row.ProgressPercent, row.ProgressMessage = 0, ""
}

// impliedStart is the started event an outcome stands for when the row
// has not seen its attempt start: an outcome that carries its start
// (StartedAt) arriving while the task waits for a worker.
func impliedStart(row *taskRow, e tasktype.Event) (tasktype.Event, bool) {
	if e.StartedAt.IsZero() || e.Attempt == 0 || row.LastSeq >= e.Seq {
		return tasktype.Event{}, false
	}
	switch e.Kind {
	case tasktype.EventSucceeded, tasktype.EventRetrying, tasktype.EventFailed, tasktype.EventReleased:
	default:
		return tasktype.Event{}, false
	}
	if row.Status != tasktype.StatusPending && row.Status != tasktype.StatusRetrying {
		return tasktype.Event{}, false
	}
	return tasktype.ImpliedStart(e), true
}

// newTask is the row a job's enqueued event makes: its first, which
// only a task without a row takes.
func newTask(e tasktype.Event) *taskRow {
	return &taskRow{
		ID: e.JobID, UserID: e.UserID, TaskType: e.JobType, Status: tasktype.StatusPending,
		CreatedAt: e.Time, UpdatedAt: e.Time, LastSeq: e.Seq,
	}
}

// task is the row as readers see it.
func (r *taskRow) task() tasktype.Task {
	return tasktype.Task{
		ID: r.ID, UserID: r.UserID, TaskType: r.TaskType, Status: r.Status,
		ResultData: r.ResultData, ResultPath: r.ResultPath, Error: r.Error, UserMessage: r.UserMessage,
		CreatedAt: r.CreatedAt, CompletedAt: r.CompletedAt, StartedAt: r.StartedAt, UpdatedAt: r.UpdatedAt,
		Attempts: r.Attempts, MaxAttempts: r.MaxAttempts, Worker: r.Worker,
		ResultName: r.ResultName, ResultType: r.ResultType, ResultSize: r.ResultSize, Digest: r.Digest,
		LastSeq: r.LastSeq, NextAttemptAt: r.NextAttemptAt, ChangedBy: r.ChangedBy,
		ProgressPercent: r.ProgressPercent, ProgressMessage: r.ProgressMessage,
		Lease: time.Duration(r.LeaseMS) * time.Millisecond,
		Fix:   r.fix(),
	}
}

// fix is the row's Fix, or nil.
func (r *taskRow) fix() *tasktype.Fix {
	if r.FixHref == "" {
		return nil
	}
	return &tasktype.Fix{Href: r.FixHref, Label: r.FixLabel}
}

// The projection's statements, by hand rather than through bun's query
// builder: they run for every task of every batch.
const (
	selectOffset = `SELECT seq FROM projection_offset WHERE name = ?`
	insertOffset = `INSERT INTO projection_offset (name, seq) VALUES (?, 0) ON CONFLICT (name) DO NOTHING`
	upsertOffset = `INSERT INTO projection_offset (name, seq) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET seq = excluded.seq`
	upsertStream = `INSERT INTO projection_offset (name, seq, stream_created) VALUES (?, 0, ?)
		ON CONFLICT (name) DO UPDATE SET stream_created = excluded.stream_created`
	taskColumns = `id, user_id, task_type, status, result_data, result_path, error_message,
		created_at, completed_at, started_at, updated_at, attempts, max_attempts, worker,
		result_name, result_content_type, result_size, result_digest, last_seq,
		next_attempt_at, changed_by, progress_percent, progress_message, user_message, lease_ms, fix_href, fix_label`
	selectTask  = `SELECT ` + taskColumns + ` FROM task_result WHERE id = ?`
	selectTasks = `SELECT ` + taskColumns + ` FROM task_result WHERE id IN (`
	upsertTask  = `INSERT INTO task_result (` + taskColumns + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET status = excluded.status,
			result_data = excluded.result_data, result_path = excluded.result_path,
			error_message = excluded.error_message, completed_at = excluded.completed_at,
			started_at = excluded.started_at, updated_at = excluded.updated_at,
			attempts = excluded.attempts, max_attempts = excluded.max_attempts,
			worker = excluded.worker, result_name = excluded.result_name,
			result_content_type = excluded.result_content_type,
			result_size = excluded.result_size, result_digest = excluded.result_digest,
			last_seq = excluded.last_seq, next_attempt_at = excluded.next_attempt_at,
			changed_by = excluded.changed_by, progress_percent = excluded.progress_percent,
			progress_message = excluded.progress_message, user_message = excluded.user_message,
			lease_ms = excluded.lease_ms, fix_href = excluded.fix_href, fix_label = excluded.fix_label`
)

// batch is the task rows one transaction has read or changed.
type batch struct {
	log     *slog.Logger
	dialect database.Dialect
	tx      *sql.Tx
	st      *statements
	rows    map[string]*batchRow
	dirty   []*batchRow // in the order first changed
}

type batchRow struct {
	row   *taskRow // nil: the task has no row
	dirty bool
}

// load reads, in one query, the rows of the tasks of the events past
// done. A task whose first such event is its enqueued event has no row
// to read: that event is a job's first, and every event a projection has
// applied is at or below done, which is stored with the rows in each
// transaction.
func (b *batch) load(ctx context.Context, events []tasktype.Event, done uint64) error {
	var ids []any
	for _, e := range events {
		if _, seen := b.rows[e.JobID]; seen || e.JobID == "" || e.Seq <= done {
			continue
		}
		b.rows[e.JobID] = &batchRow{}
		if e.Kind != tasktype.EventEnqueued {
			ids = append(ids, e.JobID)
		}
	}
	for len(ids) > 0 {
		n := min(len(ids), maxLookup)
		var rows *sql.Rows
		var err error
		if n == 1 {
			rows, err = b.tx.StmtContext(ctx, b.st.task).QueryContext(ctx, ids[0])
		} else {
			q := selectTasks + strings.Repeat("?, ", n-1) + "?)"
			rows, err = b.tx.QueryContext(ctx, b.dialect.Rebind(q), ids[:n]...)
		}
		if err != nil {
			return fmt.Errorf("read tasks: %w", err)
		}
		if err := b.scan(rows); err != nil {
			return fmt.Errorf("read tasks: %w", err)
		}
		ids = ids[n:]
	}
	return nil
}

// maxLookup bounds the ids of one lookup query, well under SQLite's
// limit on parameters.
const maxLookup = 500

func (b *batch) scan(rows *sql.Rows) error {
	defer rows.Close()
	for rows.Next() {
		row := new(taskRow)
		var (
			data, path, errMsg, name, ctype, digest, message, fixHref, fixLabel sql.NullString
			completed, started, next                                            sql.NullTime
			size                                                                sql.NullInt64
		)
		err := rows.Scan(&row.ID, &row.UserID, &row.TaskType, &row.Status,
			&data, &path, &errMsg, &row.CreatedAt, &completed, &started, &row.UpdatedAt,
			&row.Attempts, &row.MaxAttempts, &row.Worker, &name, &ctype, &size, &digest,
			&row.LastSeq, &next, &row.ChangedBy, &row.ProgressPercent, &row.ProgressMessage, &message, &row.LeaseMS, &fixHref, &fixLabel)
		if err != nil {
			return err
		}
		row.ResultData, row.ResultPath, row.Error = data.String, path.String, errMsg.String
		row.ResultName, row.ResultType, row.Digest = name.String, ctype.String, digest.String
		row.CompletedAt, row.StartedAt, row.NextAttemptAt = completed.Time, started.Time, next.Time
		row.ResultSize, row.UserMessage = size.Int64, message.String
		row.FixHref, row.FixLabel = fixHref.String, fixLabel.String
		if r := b.rows[row.ID]; r != nil {
			r.row = row
		}
	}
	return rows.Err()
}

// foreignResult reports whether e is an outcome naming a result that is
// not its own job's, or not of the attempt the task's row is running.
// Only a forged or corrupt event does; applied, the web would serve that
// file to this task's owner, so the row stays as it was.
func foreignResult(row *taskRow, e tasktype.Event) bool {
	return e.Kind == tasktype.EventSucceeded && e.Result != nil &&
		(!tasktype.OwnsResult(e.JobID, e.Attempt, e.Result.Object) || e.Attempt != row.Attempts)
}

// apply applies e to its task's row, read by load.
func (b *batch) apply(e tasktype.Event) {
	r := b.rows[e.JobID]
	if r == nil {
		return // no job id: not an event this version can read
	}
	changed := false
	if e.Kind == tasktype.EventEnqueued {
		if r.row == nil {
			r.row, changed = newTask(e), true
		}
	} else if r.row != nil {
		if changed = applyTo(r.row, e); !changed && foreignResult(r.row, e) {
			b.log.Warn("refused an outcome whose result is not its own job's",
				"job_id", e.JobID, "user_id", e.UserID, "attempt", e.Attempt, "task_attempt", r.row.Attempts,
				"object", e.Result.Object, "seq", e.Seq)
		}
	}
	if changed && !r.dirty {
		r.dirty = true
		b.dirty = append(b.dirty, r)
	}
}

// flush writes every changed row.
func (b *batch) flush(ctx context.Context) error {
	if len(b.dirty) == 0 {
		return nil
	}
	st := b.tx.StmtContext(ctx, b.st.upsert)
	for _, d := range b.dirty {
		r := d.row
		_, err := st.ExecContext(ctx, r.ID, r.UserID, r.TaskType, string(r.Status),
			nullString(r.ResultData), nullString(r.ResultPath), nullString(r.Error),
			b.timestamp(r.CreatedAt), b.nullTime(r.CompletedAt), b.nullTime(r.StartedAt), b.timestamp(r.UpdatedAt),
			r.Attempts, r.MaxAttempts, r.Worker,
			nullString(r.ResultName), nullString(r.ResultType), sql.NullInt64{Int64: r.ResultSize, Valid: r.ResultSize != 0},
			nullString(r.Digest), int64(r.LastSeq), b.nullTime(r.NextAttemptAt),
			r.ChangedBy, r.ProgressPercent, r.ProgressMessage, nullString(r.UserMessage), r.LeaseMS,
			nullString(r.FixHref), nullString(r.FixLabel))
		if err != nil {
			return fmt.Errorf("write task %s: %w", r.ID, err)
		}
	}
	return nil
}

// timestampLayout is how bun writes times to SQLite, so that rows written
// here read back, sort and compare exactly as rows written through bun.
const timestampLayout = "2006-01-02 15:04:05.999999-07:00"

// timestamp is t as the dialect stores it: SQLite's text as bun writes
// it, PostgreSQL's timestamptz from the time itself. Both keep
// microseconds, as bun does.
func (b *batch) timestamp(t time.Time) any {
	if b.dialect == database.Postgres {
		return t.UTC()
	}
	return t.UTC().Format(timestampLayout)
}

func (b *batch) nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return b.timestamp(t)
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// Rebuild empties task_result and the stored position; a running or the
// next Run then replays the whole stream into it.
func (p *Projection) Rebuild(ctx context.Context) error {
	return p.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewDelete().Model((*taskRow)(nil)).Where("1 = 1").Exec(ctx); err != nil {
			return fmt.Errorf("rebuild: clear task_result: %w", err)
		}
		if _, err := tx.NewDelete().Table("projection_offset").Where("name = ?", Name).Exec(ctx); err != nil {
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
	_, err := p.CatchUpCount(ctx)
	return err
}

// CatchUpCount is CatchUp, returning how many events it read from the
// stream: after a Rebuild, what the replay went through.
func (p *Projection) CatchUpCount(ctx context.Context) (int64, error) {
	if _, err := p.checkStream(ctx); err != nil {
		return 0, fmt.Errorf("catch up: %w", err)
	}
	// The newest event may have been purged (an erased user's): waiting
	// for it would never end.
	target, err := p.stream.LastStoredSeq(ctx)
	if err != nil {
		return 0, fmt.Errorf("catch up: %w", err)
	}
	from, err := p.Offset(ctx)
	if err != nil {
		return 0, fmt.Errorf("catch up: %w", err)
	}
	if from >= target {
		return 0, nil
	}
	p.restart(from)
	errDone := errors.New("caught up")
	var read int64
	err = p.stream.Follow(ctx, max(from, p.floor), func(events []tasktype.Event) error {
		read += int64(len(events))
		if err := p.ApplyBatch(ctx, events); err != nil {
			return err
		}
		if events[len(events)-1].Seq >= target {
			return errDone
		}
		return nil
	})
	if errors.Is(err, errDone) {
		return read, nil
	}
	return read, fmt.Errorf("catch up to %d: %w", target, err)
}

func (p *Projection) position() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pos
}

// restart sets the position a follower starts from, which may be lower
// than before after a rebuild, or higher, when another process applied
// events meanwhile: readers waiting for those may then go on.
func (p *Projection) restart(seq uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	raised := seq > p.pos
	p.pos = seq
	if raised {
		close(p.advanced)
		p.advanced = make(chan struct{})
	}
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
