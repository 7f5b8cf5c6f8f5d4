package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/otjhelper/otj/modules/tasks"
	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
	"github.com/otjhelper/otj/modules/web"
	"github.com/otjhelper/otj/platform/testsupport"
)

// sseStream is an open /tasks/events response.
type sseStream struct{ *testsupport.SSEStream }

type sseFrame = testsupport.SSEFrame

// openStream opens the user's event stream, resuming after lastID when
// it is set.
func openStream(t *testing.T, f *fixture, c *http.Client, query, lastID string) *sseStream {
	t.Helper()
	return &sseStream{testsupport.SSE(t, c, f.srv.URL+"/tasks/events"+query, lastID)}
}

func (s *sseStream) close() { s.Close() }

// liveEvent is a task event's data.
type liveEvent struct {
	Task, Type, Kind string
	Status           tasktype.Status
}

// next returns the stream's next task event (skipping comments and the
// retry frame), failing the test after wait.
func (s *sseStream) next(t *testing.T, wait time.Duration) (sseFrame, liveEvent) {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case fr := <-s.Frames:
			if fr.Event != "task" {
				continue
			}
			var e liveEvent
			if err := json.Unmarshal([]byte(fr.Data), &e); err != nil {
				t.Fatalf("event %s: data %q: %v", fr.ID, fr.Data, err)
			}
			return fr, e
		case err := <-s.Done:
			t.Fatalf("stream ended: %v", err)
		case <-timeout:
			t.Fatalf("no task event within %s", wait)
		}
	}
}

// until reads task events until each of tasks ids has succeeded, and
// returns them all.
func (s *sseStream) until(t *testing.T, ids ...string) ([]sseFrame, []liveEvent) {
	t.Helper()
	waiting := make(map[string]bool, len(ids))
	for _, id := range ids {
		waiting[id] = true
	}
	var frs []sseFrame
	var evs []liveEvent
	for {
		fr, e := s.next(t, 20*time.Second)
		frs, evs = append(frs, fr), append(evs, e)
		if e.Kind == string(tasktype.EventSucceeded) {
			delete(waiting, e.Task)
		}
		if len(waiting) == 0 {
			return frs, evs
		}
	}
}

// liveEvents is a live fixture whose web serves the event stream.
func liveEvents(t *testing.T, o liveOptions) *fixture {
	t.Helper()
	if o.register == nil {
		o.register = func(r *tasks.Registry) error { return r.Register(reportType, reportFor(), tasktype.Policy{}) }
	}
	if o.concurrency == 0 {
		o.concurrency = 2
	}
	web := o.web
	o.web = func(c *webConfig) {
		c.Events = c.Tasks.(*tasks.Client)
		if web != nil {
			web(c)
		}
	}
	return liveFixtureWith(t, o)
}

type webConfig = web.Config

// Bob's stream carries his own events and none of Alice's, though hers
// are stored between his.
func TestEventStreamCarriesOnlyOwnEvents(t *testing.T) {
	t.Parallel()
	f := liveEvents(t, liveOptions{})
	alice, bob := f.client(t, f.alice), f.client(t, f.bob)
	bobs := openStream(t, f, bob, "?after=0", "")
	alices := openStream(t, f, alice, "?after=0", "")

	mine := map[string]bool{startReport(t, f, bob): true}
	var hers []string
	for range 3 {
		hers = append(hers, startReport(t, f, alice))
	}
	for _, id := range hers {
		if _, err := f.proj.WaitOutcome(testsupport.Context(t), f.alice.ID, id); err != nil {
			t.Fatal(err)
		}
	}
	last := startReport(t, f, bob) // stored after all of Alice's events
	mine[last] = true
	_, evs := bobs.until(t, last)
	for _, e := range evs {
		if !mine[e.Task] {
			t.Errorf("bob's stream carried task %s (%s), not his", e.Task, e.Kind)
		}
	}
	// Alice's stream has hers, all of them.
	_, aevs := alices.until(t, hers[len(hers)-1])
	seen := map[string]bool{}
	for _, e := range aevs {
		if mine[e.Task] {
			t.Errorf("alice's stream carried bob's task %s", e.Task)
		}
		seen[e.Task] = true
	}
	for _, id := range hers {
		if !seen[id] {
			t.Errorf("alice's stream missed her task %s", id)
		}
	}
}

// A dropped connection that reconnects with Last-Event-ID gets every
// event stored in between, none twice: the stream's ids are the user's
// events' sequences, all of them.
func TestEventStreamResumesAfterLastEventID(t *testing.T) {
	t.Parallel()
	f := liveEvents(t, liveOptions{})
	c := f.client(t, f.alice)
	s := openStream(t, f, c, "?after=0", "")
	first := startReport(t, f, c)
	frs, _ := s.until(t, first)
	s.close() // the connection drops

	var ids []string
	for range 3 {
		ids = append(ids, startReport(t, f, c))
	}
	for _, id := range ids {
		if _, err := f.proj.WaitOutcome(testsupport.Context(t), f.alice.ID, id); err != nil {
			t.Fatal(err)
		}
	}
	s2 := openStream(t, f, c, "?after=0", frs[len(frs)-1].ID) // Last-Event-ID wins over after
	more, _ := s2.until(t, ids...)                            // the jobs may end in any order

	var got []uint64
	for _, fr := range append(frs, more...) {
		n, err := strconv.ParseUint(fr.ID, 10, 64)
		if err != nil {
			t.Fatalf("event id %q is not a sequence", fr.ID)
		}
		got = append(got, n)
	}
	var want []uint64
	for _, id := range append([]string{first}, ids...) {
		h, err := f.proj.History(testsupport.Context(t), f.alice.ID, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range h {
			if !e.Implied {
				want = append(want, e.Seq)
			}
		}
	}
	sortU(want)
	if !equalU(got, want) {
		t.Fatalf("events across the reconnect: %v, want exactly the stored %v", got, want)
	}
}

func sortU(s []uint64) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func equalU(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// An idle stream sends heartbeat comments.
func TestEventStreamHeartbeat(t *testing.T) {
	t.Parallel()
	f := liveEvents(t, liveOptions{web: func(c *web.Config) { c.LiveHeartbeat = 100 * time.Millisecond }})
	s := openStream(t, f, f.client(t, f.alice), "", "")
	pings := 0
	timeout := time.After(5 * time.Second)
	for pings < 3 {
		select {
		case fr := <-s.Frames:
			if fr.Comment == "ping" {
				pings++
			}
		case err := <-s.Done:
			t.Fatalf("stream ended: %v", err)
		case <-timeout:
			t.Fatalf("%d heartbeats in 5s at one per 100ms", pings)
		}
	}
}

// Shutting the server down ends open streams, so that Shutdown returns
// at once rather than at its deadline.
func TestEventStreamEndsAtShutdown(t *testing.T) {
	t.Parallel()
	f := liveEvents(t, liveOptions{})
	s := openStream(t, f, f.client(t, f.alice), "", "")
	ctx, cancel := context.WithTimeout(testsupport.Context(t), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := f.hs.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a stream open: %v after %s", err, time.Since(start))
	}
	select {
	case err := <-s.Done:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("stream ended with %v, want the server's clean end", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream still open after shutdown")
	}
}

// Each open stream costs one server-side consumer, and none is left once
// their clients have gone.
func TestEventStreamConsumersGoWithClients(t *testing.T) {
	t.Parallel()
	f := liveEvents(t, liveOptions{})
	js, err := natsjs.New(testsupport.Connect(t, f.nats, "probe"))
	if err != nil {
		t.Fatal(err)
	}
	// Only the consumers of a user's own subjects: the fixture's worker
	// and projection make and drop consumers of their own meanwhile.
	mine := map[string]bool{jetstream.UserFilter(f.alice.ID): true, jetstream.UserFilter(f.bob.ID): true}
	consumers := func() int {
		st, err := js.Stream(testsupport.Context(t), jetstream.StreamName)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		infos := st.ListConsumers(testsupport.Context(t))
		for info := range infos.Info() {
			// One filter may come back in either field.
			if fs := append([]string{info.Config.FilterSubject}, info.Config.FilterSubjects...); mine[fs[0]] || (len(fs) == 2 && mine[fs[1]]) {
				n++
			}
		}
		if err := infos.Err(); err != nil {
			t.Fatal(err)
		}
		return n
	}
	base := 0
	const n = 10
	var ss []*sseStream
	for i := range n {
		u := f.alice
		if i%2 == 1 {
			u = f.bob
		}
		ss = append(ss, openStream(t, f, f.client(t, u), "", ""))
	}
	testsupport.Eventually(t, 30*time.Second, "streams' consumers never all there", func() bool { return consumers() == base+n })
	for _, s := range ss {
		s.close()
	}
	testsupport.Eventually(t, 30*time.Second, "consumers outlived their clients", func() bool { return consumers() == base })
}

// A malformed Last-Event-ID is a 400 with a sentence; without Events
// there is no stream and the pages load no script.
func TestEventStreamBadRequestsAndAbsence(t *testing.T) {
	t.Parallel()
	f := liveEvents(t, liveOptions{})
	c := f.client(t, f.alice)
	for _, q := range []string{"?after=x", "?after=-1"} {
		code, body := getBody(t, c, f.srv.URL+"/tasks/events"+q)
		if code != http.StatusBadRequest || !strings.Contains(body, "must be a whole number") {
			t.Errorf("GET /tasks/events%s = %d:\n%s", q, code, body)
		}
	}
	_, page := getBody(t, c, f.srv.URL+"/tasks/")
	if !strings.Contains(page, `<script src="/static/live.js" defer></script>`) || !strings.Contains(page, `data-events="/tasks/events?after=`) {
		t.Errorf("list page does not load the live script:\n%s", page)
	}
	if code, js := getBody(t, c, f.srv.URL+"/static/live.js"); code != http.StatusOK || !strings.Contains(js, "EventSource") {
		t.Errorf("GET /static/live.js = %d", code)
	}

	plain := liveFixture(t, 1, func(r *tasks.Registry) error { return r.Register(reportType, reportFor(), tasktype.Policy{}) })
	pc := plain.client(t, plain.alice)
	if code, _ := getBody(t, pc, plain.srv.URL+"/tasks/events"); code != http.StatusNotFound {
		t.Errorf("without Events, GET /tasks/events = %d, want 404", code)
	}
	if _, page := getBody(t, pc, plain.srv.URL+"/tasks/"); strings.Contains(page, "live.js") {
		t.Errorf("without Events the page loads live.js")
	}
}
