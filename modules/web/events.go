package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// TaskEvents feeds the live task pages (tasks.Client). Optional: without
// it there is no /tasks/events, and the pages refresh themselves while a
// task is active.
type TaskEvents interface {
	// FollowUser calls fn with each of the user's events stored after
	// sequence after, in order, until ctx ends or fn fails; only that
	// user's events are read (tasks.Client.FollowUser).
	FollowUser(ctx context.Context, userID int64, after uint64, fn func(tasktype.Event) error) error
	// Offset is the stream sequence the projection has applied up to: a
	// page read after it follows the events after it.
	Offset(ctx context.Context) (uint64, error)
}

// DefaultLiveHeartbeat is how often an open event stream sends a comment
// when nothing happens, so that proxies do not close it as idle.
const DefaultLiveHeartbeat = 15 * time.Second

// eventProjectionWait bounds how long an event waits for the projection to
// apply it before it is sent anyway: a page that re-fetches then
// normally sees the new state, and a lagging projection does not hold
// the stream up.
const eventProjectionWait = 3 * time.Second

// liveEvent is the data of one event on /tasks/events: enough for a page
// to tell whether it shows the task.
type liveEvent struct {
	Task   string          `json:"task"`
	Type   string          `json:"type"`
	Kind   string          `json:"kind"`
	Status tasktype.Status `json:"status"`
}

// liveURL is the event stream a page read now follows, starting after
// the projection's position read before the page's data: no event the
// page does not show is missed. "" when there is no stream, or the
// position cannot be read (the page then keeps its meta refresh alone).
func (s *server) liveURL(ctx context.Context) string {
	if s.cfg.Events == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.EnqueueTimeout)
	defer cancel()
	seq, err := s.cfg.Events.Offset(ctx)
	if err != nil {
		s.log.WarnContext(ctx, "pages will not update live: projection offset", "err", err)
		return ""
	}
	return "/tasks/events?after=" + strconv.FormatUint(seq, 10)
}

// startAfter is where a stream request starts: after the Last-Event-ID
// its browser resumes from, else after its after parameter, else after
// the projection's position now. ok is false for a malformed one.
func (s *server) startAfter(r *http.Request) (seq uint64, ok bool, err error) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("after")
	}
	if v == "" {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.EnqueueTimeout)
		defer cancel()
		seq, err := s.cfg.Events.Offset(ctx)
		return seq, true, err
	}
	seq, perr := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
	return seq, perr == nil, nil
}

// taskEvents streams the signed-in user's job events as Server-Sent
// Events (GET /tasks/events): one "task" event per stored event, its
// id the stream sequence, so that a browser that reconnects resumes
// with Last-Event-ID and misses nothing. It ends when the client goes
// or the server shuts down.
func (s *server) taskEvents(w http.ResponseWriter, r *http.Request) {
	after, ok, err := s.startAfter(r)
	switch {
	case !ok:
		s.fail(w, r, http.StatusBadRequest, "Bad request", "The last event seen (Last-Event-ID or after) must be a whole number.")
		return
	case err != nil:
		s.serverError(w, r, fmt.Errorf("task events: projection offset: %w", err))
		return
	}
	u := currentUser(r)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		// Shutdown does not cancel a request's context: end it here.
		select {
		case <-s.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: pass each event on at once
	rc := http.NewResponseController(w)
	send := func(text string) error {
		if err := deadline(rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))); err != nil {
			return fmt.Errorf("move write deadline: %w", err)
		}
		if _, err := w.Write([]byte(text)); err != nil {
			return err
		}
		return deadline(rc.Flush())
	}
	// How long a browser waits before reconnecting, and headers out at
	// once so that EventSource opens.
	if err := send("retry: 2000\n\n"); err != nil {
		return
	}

	events := make(chan tasktype.Event)
	followed := make(chan error, 1)
	go func() {
		followed <- s.cfg.Events.FollowUser(ctx, u.ID, after, func(e tasktype.Event) error {
			select {
			case events <- e:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	defer func() { cancel(); <-followed }()

	beat := time.NewTicker(s.cfg.LiveHeartbeat)
	defer beat.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case err = <-followed:
			followed <- err // for the deferred wait
			if ctx.Err() == nil {
				s.log.WarnContext(ctx, "task event stream ended", "user_id", u.ID, "err", err)
			}
			return
		case <-beat.C:
			err = send(": ping\n\n")
		case e := <-events:
			err = s.sendEvent(ctx, send, e)
			beat.Reset(s.cfg.LiveHeartbeat)
		}
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
				s.log.DebugContext(ctx, "task event stream: client gone", "user_id", u.ID, "err", err)
			}
			return
		}
	}
}

// sendEvent writes one event once the projection has applied it, or
// eventProjectionWait has passed.
func (s *server) sendEvent(ctx context.Context, send func(string) error, e tasktype.Event) error {
	if s.cfg.Projection != nil {
		wctx, cancel := context.WithTimeout(ctx, eventProjectionWait)
		err := s.cfg.Projection.WaitFor(wctx, e.Seq)
		cancel()
		if err != nil && ctx.Err() == nil {
			s.log.DebugContext(ctx, "sending an event the projection has not applied yet", "seq", e.Seq, "err", err)
		}
	}
	id := strconv.FormatUint(e.Seq, 10)
	if e.JobID == "" { // unreadable: move the browser's position past it
		return send("id: " + id + "\n\n")
	}
	data, err := json.Marshal(liveEvent{Task: e.JobID, Type: e.JobType, Kind: string(e.Kind), Status: tasktype.StatusAfter(e.Kind)})
	if err != nil {
		return fmt.Errorf("encode event %d: %w", e.Seq, err)
	}
	return send("id: " + id + "\nevent: task\ndata: " + string(data) + "\n\n")
}

// stop ends every open event stream: http.Server.Shutdown waits for
// active requests, and a stream would never end on its own.
func (s *server) stop() { s.stopOnce.Do(func() { close(s.stopping) }) }
