package results

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"sync"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// encodeHistogram writes h in HdrHistogram's V2 compressed encoding, base64
// (the form of an .hlog line), which hdrhistogram.Decode and every other
// HdrHistogram implementation read.
//
// hdrhistogram-go's own Encode produces the same format but builds a new zlib
// writer at best compression for every call: 0.6–1.4 ms on the test VMs, most
// of a second's interval rotation. A series rotates while its measurement
// runs, and in a process confined to the measuring CPU that work takes the
// measuring thread's turn (one probe a second on the reflector waited up to
// 2 ms for it). Here the zlib writers are reused and compress for speed:
// compressing takes about 20 µs, the whole encoding of a second's interval a
// quarter of the library's time (BenchmarkEncodeHistogram), and the output
// is a few per cent larger.
func encodeHistogram(h *hdrhistogram.Histogram) (string, error) {
	snap := h.Export()
	payload := v2Payload(snap)

	z := getEncoder()
	defer putEncoder(z)
	z.out.Reset()
	z.w.Reset(&z.out)
	if _, err := z.w.Write(payload); err != nil {
		return "", fmt.Errorf("encode histogram: %w", err)
	}
	if err := z.w.Close(); err != nil {
		return "", fmt.Errorf("encode histogram: %w", err)
	}
	framed := make([]byte, 8+z.out.Len())
	binary.BigEndian.PutUint32(framed[0:], uint32(v2CompressedCookie))
	binary.BigEndian.PutUint32(framed[4:], uint32(z.out.Len()))
	copy(framed[8:], z.out.Bytes())
	return base64.StdEncoding.EncodeToString(framed), nil
}

// The V2 encoding's cookies with the word-size nibble (0x10) that every
// implementation writes.
const (
	v2Cookie           = hdrhistogram.V2EncodingCookieBase | 0x10
	v2CompressedCookie = hdrhistogram.V2CompressedEncodingCookieBase | 0x10
	v2HeaderLen        = 40
)

// A zlibWriter is a reusable compressor and its output buffer.
type zlibWriter struct {
	out bytes.Buffer
	w   *zlib.Writer
}

// encoders keeps idle zlibWriters. Unlike a sync.Pool it keeps them across
// garbage collections, so that building one (a few hundred kilobytes) stays
// out of the measurements once prepareEncoder has run.
var encoders struct {
	mu   sync.Mutex
	free []*zlibWriter
}

// maxIdleEncoders bounds the idle writers kept: one per series that rotates
// at the same moment is plenty.
const maxIdleEncoders = 8

func getEncoder() *zlibWriter {
	encoders.mu.Lock()
	if n := len(encoders.free); n > 0 {
		z := encoders.free[n-1]
		encoders.free = encoders.free[:n-1]
		encoders.mu.Unlock()
		return z
	}
	encoders.mu.Unlock()
	z := &zlibWriter{}
	z.w, _ = zlib.NewWriterLevel(&z.out, zlib.BestSpeed) // a valid level: no error
	return z
}

func putEncoder(z *zlibWriter) {
	encoders.mu.Lock()
	if len(encoders.free) < maxIdleEncoders {
		encoders.free = append(encoders.free, z)
	}
	encoders.mu.Unlock()
}

// prepareEncoder makes sure an idle writer is ready before a series starts
// measuring, so its first rotation does not build one.
func prepareEncoder() { putEncoder(getEncoder()) }

// v2Payload is the uncompressed V2 encoding of snap: a 40-byte big-endian
// header (cookie, payload length, normalizing index offset 0, significant
// digits, lowest and highest trackable value, integer-to-double ratio 1) and
// the counts up to the last non-zero one, each a ZigZag LEB128 number, with a
// run of zero counts written as one negative number.
func v2Payload(snap *hdrhistogram.Snapshot) []byte {
	last := len(snap.Counts) - 1
	for last >= 0 && snap.Counts[last] == 0 {
		last--
	}
	out := make([]byte, v2HeaderLen, v2HeaderLen+256)
	for i := 0; i <= last; {
		if c := snap.Counts[i]; c != 0 {
			out = appendZigZag(out, c)
			i++
			continue
		}
		run := 0
		for i <= last && snap.Counts[i] == 0 {
			run++
			i++
		}
		if run == 1 {
			out = appendZigZag(out, 0)
		} else {
			out = appendZigZag(out, -int64(run))
		}
	}
	binary.BigEndian.PutUint32(out[0:], uint32(v2Cookie))
	binary.BigEndian.PutUint32(out[4:], uint32(len(out)-v2HeaderLen))
	binary.BigEndian.PutUint32(out[8:], 0)
	binary.BigEndian.PutUint32(out[12:], uint32(snap.SignificantFigures))
	binary.BigEndian.PutUint64(out[16:], uint64(snap.LowestTrackableValue))
	binary.BigEndian.PutUint64(out[24:], uint64(snap.HighestTrackableValue))
	binary.BigEndian.PutUint64(out[32:], math.Float64bits(1))
	return out
}

// appendZigZag appends v in HdrHistogram's ZigZag LEB128 form: 7 bits a byte,
// low bits first, at most 9 bytes, the ninth carrying 8 bits.
func appendZigZag(b []byte, v int64) []byte {
	u := uint64(v<<1) ^ uint64(v>>63)
	for i := 0; i < 8; i++ {
		if u < 0x80 {
			return append(b, byte(u))
		}
		b = append(b, byte(u)|0x80)
		u >>= 7
	}
	return append(b, byte(u))
}
