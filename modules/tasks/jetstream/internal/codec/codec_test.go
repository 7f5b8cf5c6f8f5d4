package codec_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/otjhelper/otj/modules/tasks/jetstream/internal/codec"
	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// codecEvents are events with every field set in turn, and strings that
// need escaping.
func codecEvents() []tasktype.Event {
	at := time.Date(2026, 11, 27, 10, 30, 0, 123456789, time.UTC)
	return []tasktype.Event{
		{ID: "e1", Kind: tasktype.EventEnqueued, JobID: "j1", JobType: "full_report", UserID: 42, Time: at, Payload: json.RawMessage(`{"from":"2026-01-01","n":[1,2,{"x":null}]}`)},
		{ID: "e2", Kind: tasktype.EventStarted, JobID: "j1", JobType: "full_report", UserID: 42, Time: at, Attempt: 2, MaxAttempts: 3, Worker: "host:1", Lease: 5 * time.Second},
		{ID: "e3", Kind: tasktype.EventRetrying, JobID: "j1", JobType: "t", UserID: 1, Time: at, Attempt: 1, MaxAttempts: 3,
			Payload: json.RawMessage(`"s"`), EnqueuedAt: at.Add(-time.Hour), Error: "boom: \"quoted\"\n\ttab \\ back", RetryAt: at.Add(time.Minute)},
		{ID: "e4", Kind: tasktype.EventSucceeded, JobID: "j1", JobType: "t", UserID: 1, Time: at.In(time.FixedZone("x", 3600)), Attempt: 1,
			Result:  &tasktype.ResultRef{Object: "j1-a1", Name: "report é.csv", ContentType: "text/csv; charset=utf-8", Size: 1 << 40, Digest: "SHA-256=abc="},
			Summary: "1,000 activities"},
		{ID: "e5", Kind: tasktype.EventCancelled, JobID: "j1", JobType: "t", UserID: 1, Time: at, By: "operator"},
		{ID: "e5o", Kind: tasktype.EventResultRead, JobID: "j1", JobType: "t", UserID: 1, Time: at, By: "operator", Operator: "ops@example.org"},
		{ID: "e6", Kind: tasktype.EventProgress, JobID: "j1", JobType: "t", UserID: 1, Time: at, Percent: 57, Message: "ctl \x01 \u2028 <b>&amp;</b> 😀", Worker: "w"},
		{ID: "e7", Kind: "future_kind", JobID: "j1", JobType: "t", UserID: -3, Time: time.Time{}},
		// A failure's sentence for its owner travels in the progress
		// line's field; events from before it decode without one (e3).
		{ID: "e8", Kind: tasktype.EventFailed, JobID: "j1", JobType: "t", UserID: 1, Time: at, Attempt: 3, MaxAttempts: 3,
			Error: "store result: nats: API error: code=503 err_code=10077 description=maximum bytes exceeded", Message: "There is no room \"now\"."},
		// A refused input's fix travels with its failure.
		{ID: "e9", Kind: tasktype.EventFailed, JobID: "j1", JobType: "t", UserID: 1, Time: at, Attempt: 1, MaxAttempts: 3,
			Error: "bad rows", Message: "Line 2: \"x\".", Fix: &tasktype.Fix{Href: "/activities/import", Label: "Upload a corrected file"}},
	}
}

func TestEventCodecRoundTrip(t *testing.T) {
	for _, e := range codecEvents() {
		data := codec.AppendEvent(nil, &e)
		if !json.Valid(data) {
			t.Fatalf("%s: invalid JSON %s", e.ID, data)
		}
		var viaStd, viaOurs tasktype.Event
		if err := json.Unmarshal(data, &viaStd); err != nil {
			t.Fatal(err)
		}
		if err := codec.DecodeEvent(data, &viaOurs); err != nil {
			t.Fatal(err)
		}
		std, _ := json.Marshal(&e)
		var fromStd tasktype.Event
		if err := codec.DecodeEvent(std, &fromStd); err != nil {
			t.Fatal(err)
		}
		for name, got := range map[string]tasktype.Event{"encoding/json reading ours": viaStd, "ours reading ours": viaOurs, "ours reading encoding/json": fromStd} {
			if !sameEvent(got, e) {
				t.Errorf("%s: %s:\ngot  %+v\nwant %+v", e.ID, name, got, e)
			}
		}
	}
}

// sameEvent compares as the wire sees events: instants, not locations.
func sameEvent(a, b tasktype.Event) bool {
	if !a.Time.Equal(b.Time) || !a.EnqueuedAt.Equal(b.EnqueuedAt) || !a.RetryAt.Equal(b.RetryAt) {
		return false
	}
	a.Time, a.EnqueuedAt, a.RetryAt = b.Time, b.EnqueuedAt, b.RetryAt
	return reflect.DeepEqual(a, b)
}

// FuzzDecodeEvent holds DecodeEvent to json.Unmarshal: the same error or
// not, and the same event.
func FuzzDecodeEvent(f *testing.F) {
	for _, e := range codecEvents() {
		f.Add(codec.AppendEvent(nil, &e))
		std, _ := json.Marshal(&e)
		f.Add(std)
	}
	for _, s := range []string{`{"ID":"x"}`, `{"payload":null}`, `{"result":null}`, `{"result":{"object":"a"},"result":{"name":"b"}}`,
		`{"user_id":1.0}`, `{"attempt":01}`, `{"time":"2026-11-27T10:30:00+24:00"}`, `{"id":"\u0041"}`, `{"x":[1,[2,{}],"s"]} `,
		`{"size":-1}`, `{"result":{"size":18446744073709551615}}`, `[]`, `{"id":"a"}x`, `{"payload":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want, got tasktype.Event
		werr := json.Unmarshal(data, &want)
		gerr := codec.DecodeEvent(data, &got)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("%q: encoding/json says %v, DecodeEvent %v", data, werr, gerr)
		}
		if werr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\ngot  %+v\nwant %+v", data, got, want)
		}
	})
}

// BenchmarkEventCodec compares the event codec with encoding/json on a
// started event, the commonest kind.
//
//	go test -run XXX -bench EventCodec -benchmem ./modules/tasks
func BenchmarkEventCodec(b *testing.B) {
	e := codecEvents()[1]
	data := codec.AppendEvent(nil, &e)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for b.Loop() {
			buf = codec.AppendEvent(buf[:0], &e)
		}
	})
	b.Run("encode/encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(&e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		var got tasktype.Event
		for b.Loop() {
			if err := codec.DecodeEvent(data, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var got tasktype.Event
			if err := json.Unmarshal(data, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
}
