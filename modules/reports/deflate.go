package reports

import (
	"bytes"
	"errors"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
)

// deflateBlock is how much of its input a parallelDeflate compresses as
// one piece: large enough that starting each afresh costs a fraction of
// a percent of the output, small enough that the pieces in flight are a
// few megabytes.
const deflateBlock = 1 << 20

// parallelDeflate is a deflate writer (at klauspost/compress's level 1)
// that compresses blocks of its input on workers goroutines at once, as
// pigz does: each block a deflate stream of its own, ended with a sync
// flush but the last, so that their concatenation is one stream any
// inflater reads. The output comes in the input's order.
//
// Input of a block or less is compressed in the caller's goroutine
// alone. The workers start with the second block; Close (or abort, on a
// failure before it) ends them. At most workers+1 blocks are in flight,
// their buffers reused.
type parallelDeflate struct {
	out     io.Writer
	workers int

	cur     *deflateJob   // the block being filled
	pending []*deflateJob // submitted, oldest first, their output not yet written
	free    []*deflateJob
	work    chan *deflateJob // to the workers; nil until they start
	wg      sync.WaitGroup
	err     error // the first error; the writer is done after it
	closed  bool
}

// deflateJob is one block: its input, its compressed output, done
// closed once out is complete.
type deflateJob struct {
	in    []byte
	out   bytes.Buffer
	final bool
	err   error
	done  chan struct{}
}

func newParallelDeflate(out io.Writer, workers int) *parallelDeflate {
	return &parallelDeflate{out: out, workers: max(1, workers)}
}

func (d *parallelDeflate) Write(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	if d.closed {
		return 0, errors.New("deflate: write after close")
	}
	n := len(p)
	for len(p) > 0 {
		if d.cur == nil {
			d.cur = d.job()
		}
		k := min(len(p), deflateBlock-len(d.cur.in))
		d.cur.in = append(d.cur.in, p[:k]...)
		p = p[k:]
		if len(d.cur.in) == deflateBlock {
			if err := d.submit(false); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

// Close compresses what is left as the last block, writes every block's
// output in order and ends the workers.
func (d *parallelDeflate) Close() error {
	if d.closed {
		return d.err
	}
	if d.err == nil {
		if d.cur == nil {
			d.cur = d.job()
		}
		if err := d.submit(true); err == nil {
			for len(d.pending) > 0 && d.err == nil {
				d.writeOldest()
			}
		}
	}
	d.abort()
	return d.err
}

// abort ends the workers, if they started, and waits for them; what
// was in flight is dropped. It is Close's end, and what a caller that
// gives up before Close calls.
func (d *parallelDeflate) abort() {
	d.closed = true
	if d.work != nil {
		close(d.work)
		d.work = nil
	}
	d.wg.Wait()
}

// job is an empty block, a reused one if there is one.
func (d *parallelDeflate) job() *deflateJob {
	if k := len(d.free); k > 0 {
		j := d.free[k-1]
		d.free = d.free[:k-1]
		j.in, j.final, j.err = j.in[:0], false, nil
		j.out.Reset()
		return j
	}
	return &deflateJob{in: make([]byte, 0, deflateBlock)}
}

// submit hands the current block on: compressed here if it is the last
// and no block went before, to the workers otherwise; first writing the
// oldest block's output if as many as workers+1 are in flight.
func (d *parallelDeflate) submit(final bool) error {
	j := d.cur
	d.cur, j.final, j.done = nil, final, make(chan struct{})
	if final && len(d.pending) == 0 && d.work == nil {
		compressBlock(nil, j)
		d.pending = append(d.pending, j)
		return nil
	}
	if d.work == nil {
		d.work = make(chan *deflateJob, d.workers+1)
		for range d.workers {
			d.wg.Add(1)
			go func(work <-chan *deflateJob) {
				defer d.wg.Done()
				var fw *flate.Writer
				for j := range work {
					fw = compressBlock(fw, j)
				}
			}(d.work)
		}
	}
	for len(d.pending) > d.workers && d.err == nil {
		d.writeOldest()
	}
	if d.err != nil {
		return d.err
	}
	d.pending = append(d.pending, j)
	d.work <- j // never blocks: at most workers+1 in flight
	return nil
}

// writeOldest waits for the oldest block in flight and writes its
// output.
func (d *parallelDeflate) writeOldest() {
	j := d.pending[0]
	d.pending = d.pending[1:]
	<-j.done
	if j.err != nil {
		d.err = j.err
		return
	}
	if _, err := j.out.WriteTo(d.out); err != nil {
		d.err = err
		return
	}
	d.free = append(d.free, j)
}

// compressBlock compresses j.in into j.out with fw (a new writer if nil),
// ends it with a sync flush, or as the stream's end if j is the last
// block, and closes j.done. It returns the writer, for the next block.
func compressBlock(fw *flate.Writer, j *deflateJob) *flate.Writer {
	defer close(j.done)
	if fw == nil {
		if fw, j.err = flate.NewWriter(&j.out, flate.BestSpeed); j.err != nil {
			return nil
		}
	} else {
		fw.Reset(&j.out)
	}
	if _, j.err = fw.Write(j.in); j.err != nil {
		return fw
	}
	if j.final {
		j.err = fw.Close()
	} else {
		j.err = fw.Flush()
	}
	return fw
}
