package kernelpath

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stackgap/stackgap/bench"
)

// probeStream builds probes of the given sizes back to back.
func probeStream(sizes ...int) (stream []byte, probes [][]byte) {
	for i, size := range sizes {
		p := make([]byte, size)
		bench.MarshalProbe(p, 0xabcd, uint64(i))
		probes = append(probes, p)
		stream = append(stream, p...)
	}
	return stream, probes
}

// feed pushes stream into f in chunks of the given sizes (cycled) and returns
// every probe it yields, stopping at the first error.
func feed(f *streamFramer, stream []byte, chunks []int) (got [][]byte, err error) {
	for i := 0; len(stream) > 0; i++ {
		room := f.space()
		n := min(chunks[i%len(chunks)], len(stream), len(room))
		if n <= 0 {
			n = min(1, len(stream), len(room))
		}
		f.commit(copy(room, stream[:n]))
		stream = stream[n:]
		for {
			size, err := f.whole()
			if err != nil {
				return got, err
			}
			if size == 0 {
				break
			}
			got = append(got, bytes.Clone(f.head(size)))
			f.consume(size)
		}
	}
	return got, nil
}

func TestFramerSplitsAnywhere(t *testing.T) {
	stream, probes := probeStream(bench.HeaderSize, 64, bench.InBandSize, 1500, bench.HeaderSize, bench.MaxProbeSize, 100)
	for _, chunk := range []int{1, 2, 7, 17, 18, 19, 64, 1000, 4096, 65000, len(stream)} {
		f := newStreamFramer(framerBufferSize)
		got, err := feed(f, stream, []int{chunk})
		if err != nil {
			t.Fatalf("chunks of %d: %v", chunk, err)
		}
		if len(got) != len(probes) {
			t.Fatalf("chunks of %d: got %d probes, want %d", chunk, len(got), len(probes))
		}
		for i := range probes {
			if !bytes.Equal(got[i], probes[i]) {
				t.Fatalf("chunks of %d: probe %d differs", chunk, i)
			}
		}
		if f.buffered() != 0 {
			t.Errorf("chunks of %d: %d bytes left over", chunk, f.buffered())
		}
	}
}

func TestFramerRejectsBadHeaders(t *testing.T) {
	good, _ := probeStream(64)
	corrupt := func(edit func(b []byte)) []byte {
		b := bytes.Clone(good)
		edit(b)
		return b
	}
	tests := []struct {
		name   string
		stream []byte
		want   error
	}{
		{"bad magic", corrupt(func(b []byte) { b[0] = 'X' }), bench.ErrBadMagic},
		{"bad version", corrupt(func(b []byte) { b[2] = 9 }), bench.ErrBadVersion},
		{"length below header", corrupt(func(b []byte) { b[16], b[17] = 0, 5 }), bench.ErrBadLength},
		{"length above maximum", corrupt(func(b []byte) { b[16], b[17] = 0xff, 0xff }), bench.ErrBadLength},
		{"garbage after a good probe", append(bytes.Clone(good), "GET / HTTP/1.1\r\nHost: x\r\n"...), bench.ErrBadMagic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newStreamFramer(framerBufferSize)
			_, err := feed(f, tt.stream, []int{5})
			if !errors.Is(err, ErrCorruptStream) || !errors.Is(err, tt.want) {
				t.Fatalf("got error %v, want ErrCorruptStream wrapping %v", err, tt.want)
			}
			if _, again := f.whole(); again != err {
				t.Errorf("error not sticky: second call gave %v", again)
			}
		})
	}
}

func TestFramerWaitsForWholeProbe(t *testing.T) {
	stream, _ := probeStream(100)
	f := newStreamFramer(framerBufferSize)
	for i := range len(stream) - 1 {
		f.commit(copy(f.space(), stream[i:i+1]))
		if n, err := f.whole(); n != 0 || err != nil {
			t.Fatalf("after %d of %d bytes: whole() = %d, %v; want 0, nil", i+1, len(stream), n, err)
		}
	}
	f.commit(copy(f.space(), stream[len(stream)-1:]))
	if n, err := f.whole(); n != len(stream) || err != nil {
		t.Fatalf("with the whole probe: whole() = %d, %v; want %d, nil", n, err, len(stream))
	}
}

// FuzzFramer checks that any byte stream, cut anywhere, yields only probes
// whose header declares their length (the rest of the header is bench's to
// check), never panics, and that a stream of valid
// probes comes back intact however it is cut.
func FuzzFramer(f *testing.F) {
	valid, _ := probeStream(18, 26, 64)
	f.Add(valid, []byte{1, 5, 200})
	f.Add([]byte("SG\x01\x00"), []byte{3})
	f.Add(append(bytes.Clone(valid), 0x53, 0x47, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfd, 0xe8), []byte{7})
	f.Fuzz(func(t *testing.T, stream []byte, cuts []byte) {
		chunks := []int{1}
		if len(cuts) > 0 {
			chunks = chunks[:0]
			for _, c := range cuts {
				chunks = append(chunks, int(c)+1)
			}
		}
		fr := newStreamFramer(framerBufferSize)
		got, err := feed(fr, stream, chunks)
		total := 0
		for _, p := range got {
			if n, perr := bench.ProbeLength(p); perr != nil || n != len(p) {
				t.Fatalf("framer returned %d bytes with a bad header (declares %d, %v)", len(p), n, perr)
			}
			total += len(p)
		}
		if total > len(stream) || !bytes.Equal(bytes.Join(got, nil), stream[:total]) {
			t.Fatal("probes returned are not a prefix of the stream")
		}
		if err != nil && !errors.Is(err, ErrCorruptStream) {
			t.Fatalf("unexpected error %v", err)
		}
		// Rebuild a valid stream from the probes found: it must frame back
		// identically with the same cuts.
		again, err := feed(newStreamFramer(framerBufferSize), bytes.Join(got, nil), chunks)
		if err != nil || len(again) != len(got) {
			t.Fatalf("valid stream reframed into %d probes (err %v), want %d", len(again), err, len(got))
		}
	})
}
