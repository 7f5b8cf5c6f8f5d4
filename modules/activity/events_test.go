package activity

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/uptrace/bun"

	"github.com/otjhelper/otj/platform/testsupport"
)

// eventStream starts an embedded JetStream server with the ACTIVITY
// stream and returns a JetStream client of it.
func eventStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(testsupport.Connect(t, testsupport.NATS(t), "activity-test"))
	if err != nil {
		t.Fatal(err)
	}
	if err := EnsureStream(t.Context(), js, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	return js
}

// streamed returns the events stored on subjects matching filter, in order.
func streamed(t *testing.T, js jetstream.JetStream, filter string) ([]string, []Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, Stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	var events []Event
	for range info.NumPending {
		m, err := c.Next(jetstream.FetchMaxWait(2 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var e Event
		if err := json.Unmarshal(m.Data(), &e); err != nil {
			t.Fatal(err)
		}
		subjects, events = append(subjects, m.Subject()), append(events, e)
	}
	return subjects, events
}

func startRelay(t *testing.T, db *bun.DB, js jetstream.JetStream) {
	t.Helper()
	r, err := NewRelay(RelayConfig{DB: db, JS: js, Interval: 20 * time.Millisecond, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	testsupport.Go(t, func(ctx context.Context) {
		if err := r.Run(ctx); err != nil {
			t.Errorf("relay: %v", err)
		}
	})
}

// A create, an edit and a delete land on the user's subjects of the
// ACTIVITY stream, in order, through the outbox and a running relay,
// which empties the outbox.
func TestChangesAreEventsOnTheStream(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, db *bun.DB) {
		js := eventStream(t)
		startRelay(t, db, js)
		s := NewStore(db)
		alice, _ := withSpec(t, db, "alice@example.org", "ST0787")
		bob, _ := withSpec(t, db, "bob@example.org", "ST0787")
		in := Input{Title: "t", Date: time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC), Hours: 1, Type: "other"}
		id, err := s.CreateActivity(t.Context(), alice, in)
		if err != nil {
			t.Fatal(err)
		}
		in.Title = "t2"
		if err := s.UpdateActivity(t.Context(), alice, id, in); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteActivity(t.Context(), alice, id); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateActivity(t.Context(), bob, in); err != nil {
			t.Fatal(err)
		}
		testsupport.Eventually(t, 10*time.Second, "outbox never emptied", func() bool {
			return count(t, db, `SELECT count(*) FROM activity_outbox`) == 0
		})
		subjects, events := streamed(t, js, fmt.Sprintf("activity.%d.>", alice))
		kinds := []EventKind{EventCreated, EventEdited, EventDeleted}
		if len(subjects) != len(kinds) {
			t.Fatalf("alice's subjects %v, want her 3 events only", subjects)
		}
		for i, k := range kinds {
			want := fmt.Sprintf("activity.%d.%d.%s", alice, id, k)
			if subjects[i] != want {
				t.Errorf("event %d on %s, want %s", i, subjects[i], want)
			}
			if e := events[i]; e.UserID != alice || e.ActivityID != id || e.Kind != k || time.Since(e.Time) > time.Minute {
				t.Errorf("event %d: %+v", i, e)
			}
		}
		if all, _ := streamed(t, js, StreamSubjects); len(all) != 4 {
			t.Errorf("stream holds %v, want 4 events", all)
		}
	})
}

// An event relayed twice (the relay stopped after the stream's ack and
// before deleting the row) is stored once: Nats-Msg-Id dedupes it.
func TestRelayedTwiceIsStoredOnce(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	js := eventStream(t)
	r, err := NewRelay(RelayConfig{DB: db, JS: js, Logger: testsupport.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	row := func() {
		mustExec(t, db, `INSERT INTO activity_outbox (msg_id, subject, payload) VALUES ('activity-fixed', 'activity.1.2.created', '{"user_id":1}')`)
	}
	row()
	if n, err := r.pass(t.Context()); err != nil || n != 1 {
		t.Fatalf("first pass: %d, %v", n, err)
	}
	row() // as if the delete had never happened
	if n, err := r.pass(t.Context()); err != nil || n != 1 {
		t.Fatalf("second pass: %d, %v", n, err)
	}
	if got, _ := streamed(t, js, StreamSubjects); len(got) != 1 {
		t.Fatalf("stream holds %v, want the event once", got)
	}
	if n := count(t, db, `SELECT count(*) FROM activity_outbox`); n != 0 {
		t.Errorf("outbox holds %d", n)
	}
}

// With the broker away the events wait in the outbox, and a relay that
// starts later sends them all.
func TestEventsWaitForTheRelay(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	s := NewStore(db)
	alice, _ := withSpec(t, db, "alice@example.org", "ST0787")
	for i := range 3 {
		if _, err := s.CreateActivity(t.Context(), alice, Input{Title: fmt.Sprint(i), Date: time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC), Hours: 1, Type: "other"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, db, `SELECT count(*) FROM activity_outbox`); n != 3 {
		t.Fatalf("outbox holds %d, want 3", n)
	}
	js := eventStream(t)
	startRelay(t, db, js)
	testsupport.Eventually(t, 10*time.Second, "outbox never emptied", func() bool {
		return count(t, db, `SELECT count(*) FROM activity_outbox`) == 0
	})
	if got, _ := streamed(t, js, StreamSubjects); len(got) != 3 {
		t.Fatalf("stream holds %v, want 3 events", got)
	}
}
