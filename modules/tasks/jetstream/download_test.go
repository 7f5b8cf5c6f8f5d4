package jetstream_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"strconv"
	"testing"
	"testing/iotest"
	"time"

	"github.com/otjhelper/otj/modules/tasks/jetstream"
	"github.com/otjhelper/otj/modules/tasks/jetstream/jetstreamtest"
	"github.com/otjhelper/otj/platform/testsupport"
)

// A download that lasts longer than one request's deadline, because
// its reader takes the file slowly (a phone on a poor line), arrives
// whole: the request deadline bounds each call to the server, not the
// reading of a result. nats.go's object Get, given a context with no
// deadline, would cut the whole download off at its default timeout.
func TestSlowReadOfResultOutlastsRequestTimeout(t *testing.T) {
	srv := testsupport.NATS(t)
	const requestTimeout = 300 * time.Millisecond
	b := jetstreamtest.BrokerWith(t, testsupport.Connect(t, srv, "app"), jetstream.Config{RequestTimeout: requestTimeout})
	ctx := testsupport.Context(t)
	file := bytes.Repeat([]byte("2026-03-05,1.5,Shadowed the site manager\n"), 16<<10) // about 650 KiB
	if _, err := b.Put(ctx, "job1-a1", "r.csv", "text/csv", bytes.NewReader(file)); err != nil {
		t.Fatal(err)
	}
	res, err := b.Open(ctx, "job1-a1")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	// About 1.2 s of reading: four request deadlines.
	h := sha256.New()
	buf := make([]byte, 32<<10)
	start := time.Now()
	for {
		n, err := res.Read(buf)
		h.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read after %s: %v", time.Since(start).Round(time.Millisecond), err)
		}
		time.Sleep(60 * time.Millisecond)
	}
	if got, want := h.Sum(nil), sha256.Sum256(file); !bytes.Equal(got, want[:]) {
		t.Fatalf("downloaded file differs from the stored one")
	}
	if d := time.Since(start); d < 4*requestTimeout {
		t.Fatalf("read took %s, not long enough to test anything", d)
	}
}

// A result reads back whole, byte for byte, whatever its size against
// the bucket's chunks (128 KiB) and the download's read-ahead.
func TestResultReadsBackWhole(t *testing.T) {
	b := jetstreamtest.Broker(t, testsupport.Connect(t, testsupport.NATS(t), "sizes"))
	ctx := testsupport.Context(t)
	for _, size := range []int{0, 1, 128 << 10, 128<<10 + 1, 5<<20 + 3} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			want := make([]byte, size)
			for i := range want {
				want[i] = byte(i * 7 % 251)
			}
			object := "sizes" + strconv.Itoa(size) + "-a1"
			if _, err := b.Put(ctx, object, "r.bin", "application/octet-stream", bytes.NewReader(want)); err != nil {
				t.Fatal(err)
			}
			r, err := b.Open(ctx, object)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := io.ReadAll(iotest.OneByteReader(io.LimitReader(r, 1<<10))) // a slow start
			if err != nil {
				t.Fatal(err)
			}
			rest, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if got = append(got, rest...); !bytes.Equal(got, want) || r.Size != uint64(size) {
				t.Fatalf("read %d bytes (size %d), want the %d stored", len(got), r.Size, size)
			}
		})
	}
}
