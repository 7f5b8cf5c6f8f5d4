// Package codec writes and reads job events as JSON by hand: every job
// passes through a handful of encodings and decodings, so the wire
// format, exactly the JSON of tasktype.Event's struct tags, is not left
// to encoding/json's reflection.
package codec

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/otjhelper/otj/modules/tasks/tasktype"
)

// Every job passes through a handful of event encodings and decodings
// (the broker's copy, the worker's, the projection's), so they are done
// by hand here instead of by encoding/json's reflection. The wire format
// is exactly the JSON of Event's struct tags: either side may be
// encoding/json, and FuzzDecodeEvent holds the two to the same results.

// AppendEvent appends e's JSON to b. Seq is not part of it.
func AppendEvent(b []byte, e *tasktype.Event) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"kind":`...)
	b = appendString(b, string(e.Kind))
	b = append(b, `,"job_id":`...)
	b = appendString(b, e.JobID)
	b = append(b, `,"job_type":`...)
	b = appendString(b, e.JobType)
	b = append(b, `,"user_id":`...)
	b = strconv.AppendInt(b, e.UserID, 10)
	b = append(b, `,"time":`...)
	b = appendTime(b, e.Time)
	if e.Attempt != 0 {
		b = append(b, `,"attempt":`...)
		b = strconv.AppendInt(b, int64(e.Attempt), 10)
	}
	if e.MaxAttempts != 0 {
		b = append(b, `,"max_attempts":`...)
		b = strconv.AppendInt(b, int64(e.MaxAttempts), 10)
	}
	b = appendField(b, "worker", e.Worker)
	if e.Lease != 0 {
		b = append(b, `,"lease":`...)
		b = strconv.AppendInt(b, int64(e.Lease), 10)
	}
	if !e.StartedAt.IsZero() {
		b = append(b, `,"started_at":`...)
		b = appendTime(b, e.StartedAt)
	}
	if len(e.Payload) > 0 {
		b = append(b, `,"payload":`...)
		b = append(b, e.Payload...)
	}
	if !e.EnqueuedAt.IsZero() {
		b = append(b, `,"enqueued_at":`...)
		b = appendTime(b, e.EnqueuedAt)
	}
	b = appendField(b, "error", e.Error)
	if !e.RetryAt.IsZero() {
		b = append(b, `,"retry_at":`...)
		b = appendTime(b, e.RetryAt)
	}
	b = appendField(b, "by", e.By)
	b = appendField(b, "operator", e.Operator)
	if r := e.Result; r != nil {
		b = append(b, `,"result":{"object":`...)
		b = appendString(b, r.Object)
		b = append(b, `,"name":`...)
		b = appendString(b, r.Name)
		b = append(b, `,"content_type":`...)
		b = appendString(b, r.ContentType)
		b = append(b, `,"size":`...)
		b = strconv.AppendUint(b, r.Size, 10)
		b = append(b, `,"digest":`...)
		b = appendString(b, r.Digest)
		b = append(b, '}')
	}
	b = appendField(b, "summary", e.Summary)
	if e.Percent != 0 {
		b = append(b, `,"percent":`...)
		b = strconv.AppendInt(b, int64(e.Percent), 10)
	}
	b = appendField(b, "message", e.Message)
	if f := e.Fix; f != nil {
		b = append(b, `,"fix":{"href":`...)
		b = appendString(b, f.Href)
		b = append(b, `,"label":`...)
		b = appendString(b, f.Label)
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendField appends a string field that is omitted when empty.
func appendField(b []byte, name, s string) []byte {
	if s == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, s)
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaped as encoding/json
// does apart from <, > and & (this JSON is never inlined in HTML):
// invalid UTF-8 becomes U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// DecodeEvent reads an event's JSON into e, as json.Unmarshal would. It
// reads the JSON this package writes directly, and hands anything less
// plain (escaped strings, nulls, fractions) to encoding/json.
func DecodeEvent(data []byte, e *tasktype.Event) error {
	*e = tasktype.Event{}
	d := decoder{data: data}
	if d.event(e) {
		return nil
	}
	*e = tasktype.Event{}
	return json.Unmarshal(data, e)
}

// decoder reads the plain subset of JSON: every method reports false
// where the input leaves that subset, and the caller falls back.
type decoder struct {
	data  []byte
	i     int
	depth int
}

func (d *decoder) space() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) consume(c byte) bool {
	d.space()
	if d.i < len(d.data) && d.data[d.i] == c {
		d.i++
		return true
	}
	return false
}

// object calls field for each member of an object, with the key.
func (d *decoder) object(field func(key []byte) bool) bool {
	if !d.consume('{') {
		return false
	}
	if d.consume('}') {
		return true
	}
	for {
		key, ok := d.rawString()
		if !ok || !d.consume(':') || !field(key) {
			return false
		}
		if d.consume(',') {
			continue
		}
		return d.consume('}')
	}
}

func (d *decoder) event(e *tasktype.Event) bool {
	ok := d.object(func(key []byte) bool {
		switch string(key) {
		case "id":
			return d.str(&e.ID)
		case "kind":
			var k string
			ok := d.str(&k)
			e.Kind = tasktype.EventKind(k)
			return ok
		case "job_id":
			return d.str(&e.JobID)
		case "job_type":
			return d.str(&e.JobType)
		case "user_id":
			return d.int(&e.UserID)
		case "time":
			return d.time(&e.Time)
		case "attempt":
			return d.smallInt(&e.Attempt)
		case "max_attempts":
			return d.smallInt(&e.MaxAttempts)
		case "worker":
			return d.str(&e.Worker)
		case "started_at":
			return d.time(&e.StartedAt)
		case "payload":
			raw, ok := d.value()
			e.Payload = append(json.RawMessage(nil), raw...)
			// encoding/json keeps a null as the four bytes; left to it.
			return ok && !bytes.Equal(raw, []byte("null"))
		case "enqueued_at":
			return d.time(&e.EnqueuedAt)
		case "error":
			return d.str(&e.Error)
		case "retry_at":
			return d.time(&e.RetryAt)
		case "by":
			return d.str(&e.By)
		case "operator":
			return d.str(&e.Operator)
		case "result":
			if e.Result == nil {
				e.Result = new(tasktype.ResultRef)
			}
			return d.result(e.Result)
		case "summary":
			return d.str(&e.Summary)
		case "lease":
			var n int64
			ok := d.int(&n)
			e.Lease = time.Duration(n)
			return ok
		case "percent":
			return d.smallInt(&e.Percent)
		case "message":
			return d.str(&e.Message)
		case "fix":
			if e.Fix == nil {
				e.Fix = new(tasktype.Fix)
			}
			return d.fix(e.Fix)
		}
		// encoding/json matches keys without regard to case; only an
		// exact match is read here.
		if bytes.ContainsFunc(key, func(r rune) bool { return r >= 'A' && r <= 'Z' || r >= utf8.RuneSelf }) {
			return false
		}
		_, ok := d.value()
		return ok
	})
	d.space()
	return ok && d.i == len(d.data)
}

func (d *decoder) fix(f *tasktype.Fix) bool {
	return d.object(func(key []byte) bool {
		switch string(key) {
		case "href":
			return d.str(&f.Href)
		case "label":
			return d.str(&f.Label)
		}
		if bytes.ContainsFunc(key, func(r rune) bool { return r >= 'A' && r <= 'Z' || r >= utf8.RuneSelf }) {
			return false
		}
		_, ok := d.value()
		return ok
	})
}

func (d *decoder) result(r *tasktype.ResultRef) bool {
	return d.object(func(key []byte) bool {
		switch string(key) {
		case "object":
			return d.str(&r.Object)
		case "name":
			return d.str(&r.Name)
		case "content_type":
			return d.str(&r.ContentType)
		case "size":
			var n int64
			ok := d.int(&n)
			r.Size = uint64(n)
			return ok && n >= 0
		case "digest":
			return d.str(&r.Digest)
		}
		if bytes.ContainsFunc(key, func(r rune) bool { return r >= 'A' && r <= 'Z' || r >= utf8.RuneSelf }) {
			return false
		}
		_, ok := d.value()
		return ok
	})
}

// rawString reads a string with no escapes, of valid UTF-8 and no
// control characters, and returns its bytes without the quotes.
func (d *decoder) rawString() ([]byte, bool) {
	if !d.consume('"') {
		return nil, false
	}
	start := d.i
	ascii := true
	for d.i < len(d.data) {
		c := d.data[d.i]
		switch {
		case c == '"':
			s := d.data[start:d.i]
			d.i++
			return s, ascii || utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		d.i++
	}
	return nil, false
}

func (d *decoder) str(dst *string) bool {
	s, ok := d.rawString()
	*dst = string(s)
	return ok
}

func (d *decoder) time(dst *time.Time) bool {
	d.space()
	start := d.i
	if _, ok := d.rawString(); !ok {
		return false
	}
	// time.Time's own parser, quotes included: the same strict RFC 3339
	// as encoding/json's.
	return dst.UnmarshalJSON(d.data[start:d.i]) == nil
}

// number returns the token of an integer: digits with an optional minus,
// no fraction or exponent.
func (d *decoder) number() ([]byte, bool) {
	d.space()
	start := d.i
	if d.i < len(d.data) && d.data[d.i] == '-' {
		d.i++
	}
	digits := d.i
	for d.i < len(d.data) && d.data[d.i] >= '0' && d.data[d.i] <= '9' {
		d.i++
	}
	n := d.i - digits
	if n == 0 || n > 1 && d.data[digits] == '0' {
		return nil, false
	}
	if d.i < len(d.data) {
		switch d.data[d.i] {
		case '.', 'e', 'E':
			return nil, false
		}
	}
	return d.data[start:d.i], true
}

func (d *decoder) int(dst *int64) bool {
	tok, ok := d.number()
	if !ok {
		return false
	}
	n, err := strconv.ParseInt(string(tok), 10, 64)
	*dst = n
	return err == nil
}

func (d *decoder) smallInt(dst *int) bool {
	var n int64
	ok := d.int(&n)
	*dst = int(n)
	return ok && int64(*dst) == n
}

// maxDepth bounds the nesting value follows; deeper goes to
// encoding/json, which has its own limit.
const maxDepth = 32

// value skips one value of the plain subset and returns its bytes.
func (d *decoder) value() ([]byte, bool) {
	d.space()
	if d.i >= len(d.data) || d.depth >= maxDepth {
		return nil, false
	}
	d.depth++
	defer func() { d.depth-- }()
	start := d.i
	var ok bool
	switch c := d.data[d.i]; {
	case c == '"':
		_, ok = d.rawString()
	case c == '{':
		ok = d.object(func([]byte) bool { _, ok := d.value(); return ok })
	case c == '[':
		d.i++
		if ok = d.consume(']'); ok {
			break
		}
		for {
			if _, ok = d.value(); !ok || !d.consume(',') {
				ok = ok && d.consume(']')
				break
			}
		}
	case c == '-' || c >= '0' && c <= '9':
		_, ok = d.number()
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if bytes.HasPrefix(d.data[d.i:], []byte(lit)) {
				d.i += len(lit)
				ok = true
				break
			}
		}
	}
	return d.data[start:d.i], ok
}
