package kernelpath

import (
	"errors"
	"fmt"

	"github.com/stackgap/stackgap/bench"
)

// ErrCorruptStream is wrapped by the error a TCP Conn returns once the byte
// stream no longer starts with a valid probe header. The connection cannot
// recover from it: every later Recv returns the same error.
var ErrCorruptStream = errors.New("corrupt probe stream")

// framerBufferSize holds one largest probe plus room for the next ones, so a
// single read can complete any probe.
const framerBufferSize = 2 * bench.MaxProbeSize

// streamFramer cuts a TCP byte stream into whole probes using the length field
// of the probe header (bench.ProbeLength). The caller reads into space(),
// reports the bytes with commit, then takes whole probes with whole/consume.
type streamFramer struct {
	buf        []byte
	start, end int    // buffered, not yet consumed bytes: buf[start:end]
	consumed   uint64 // stream offset of buf[start]
	err        error  // sticky once the stream is corrupt
}

func newStreamFramer(size int) *streamFramer {
	return &streamFramer{buf: make([]byte, size)}
}

// whole returns the length of the probe at the head of the buffer when all of
// it is buffered, 0 when more bytes are needed, or an error when the header is
// invalid.
func (f *streamFramer) whole() (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	avail := f.end - f.start
	if avail < bench.HeaderSize {
		return 0, nil
	}
	n, err := bench.ProbeLength(f.buf[f.start:f.end])
	if err == nil && n > bench.MaxProbeSize {
		err = fmt.Errorf("%w: declares %d bytes, more than %d", bench.ErrBadLength, n, bench.MaxProbeSize)
	}
	if err != nil {
		f.err = fmt.Errorf("%w at byte %d: %w", ErrCorruptStream, f.consumed, err)
		return 0, f.err
	}
	if avail < n {
		return 0, nil
	}
	return n, nil
}

// head returns the first n buffered bytes; n must come from whole.
func (f *streamFramer) head(n int) []byte { return f.buf[f.start : f.start+n] }

// consume drops the first n buffered bytes.
func (f *streamFramer) consume(n int) {
	f.start += n
	f.consumed += uint64(n)
	if f.start == f.end {
		f.start, f.end = 0, 0
	}
}

// buffered is the number of bytes received but not consumed.
func (f *streamFramer) buffered() int { return f.end - f.start }

// space returns the free room after the buffered bytes, first moving a partial
// probe to the front so that the room can always complete it.
func (f *streamFramer) space() []byte {
	if f.start > 0 {
		f.end = copy(f.buf, f.buf[f.start:f.end])
		f.start = 0
	}
	return f.buf[f.end:]
}

// commit records that n bytes were written into the slice space returned.
func (f *streamFramer) commit(n int) { f.end += n }
