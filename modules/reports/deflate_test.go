package reports

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
)

// parallelDeflate's output inflates (with the standard library) to its
// input exactly, at every size about a block's bounds and written in
// pieces of any size.
func TestParallelDeflateRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// Sheet-like text: repetitive, with some noise.
	var src bytes.Buffer
	for src.Len() < 5*deflateBlock+deflateBlock/2 {
		fmt.Fprintf(&src, `<row r="%d"><c r="B%d" t="inlineStr"><is><t>%x</t></is></c></row>`, src.Len(), rng.IntN(1e6), rng.Uint64())
	}
	all := src.Bytes()
	for _, size := range []int{0, 1, deflateBlock - 1, deflateBlock, deflateBlock + 1, 2 * deflateBlock, len(all)} {
		for _, piece := range []int{1 << 10, 32 << 10, 3 * deflateBlock} {
			if piece == 1<<10 && size > 2*deflateBlock {
				continue // small pieces of the largest input: the others cover it
			}
			t.Run(fmt.Sprint(size, "/", piece), func(t *testing.T) {
				var out bytes.Buffer
				d := newParallelDeflate(&out, 2)
				for in := all[:size]; len(in) > 0; {
					k := min(piece, len(in))
					if n, err := d.Write(in[:k]); n != k || err != nil {
						t.Fatalf("Write = %d, %v", n, err)
					}
					in = in[k:]
				}
				if err := d.Close(); err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(flate.NewReader(&out))
				if err != nil || !bytes.Equal(got, all[:size]) {
					t.Fatalf("inflated %d bytes (%v), want the %d written", len(got), err, size)
				}
			})
		}
	}
}

// failingWriter fails every write.
type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

// A destination that fails fails the writes or the Close after, with its
// error, and the workers end.
func TestParallelDeflateWriteFails(t *testing.T) {
	broken := errors.New("disk full")
	d := newParallelDeflate(failingWriter{broken}, 2)
	var err error
	for range 8 {
		if _, err = d.Write(make([]byte, deflateBlock)); err != nil {
			break
		}
	}
	if cerr := d.Close(); !errors.Is(err, broken) || !errors.Is(cerr, broken) {
		t.Fatalf("Write: %v, Close: %v; want %v", err, cerr, broken)
	}
	if d.work != nil {
		t.Fatal("the workers' channel is still open")
	}
}
