package results

import (
	"bytes"
	"sync"
	"testing"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// decodeOrFail decodes an encoding with hdrhistogram-go's own decoder.
func decodeOrFail(t *testing.T, enc string) *hdrhistogram.Histogram {
	t.Helper()
	h, err := hdrhistogram.Decode([]byte(enc))
	if err != nil {
		t.Fatalf("hdrhistogram.Decode: %v", err)
	}
	return h
}

func TestEncodeHistogramRoundTrip(t *testing.T) {
	cases := map[string]func(h *hdrhistogram.Histogram){
		"latencies": func(h *hdrhistogram.Histogram) {
			for _, v := range latencies(7, 50000) {
				h.RecordValue(v)
			}
		},
		// The lowest and highest buckets, and one zero between two counts
		// (written as 0, not as a run).
		"edges": func(h *hdrhistogram.Histogram) {
			h.RecordValue(MinValue)
			h.RecordValue(3)
			h.RecordValue(5)
			h.RecordValue(MaxValue)
		},
		// A count that needs the ninth, 8-bit byte of the ZigZag form.
		"huge count": func(h *hdrhistogram.Histogram) {
			h.RecordValues(5000, 1<<60)
			h.RecordValue(7000)
		},
		"one value": func(h *hdrhistogram.Histogram) { h.RecordValue(123456) },
		"empty":     func(*hdrhistogram.Histogram) {},
	}
	for name, fill := range cases {
		t.Run(name, func(t *testing.T) {
			h := newHistogram()
			fill(h)
			enc, err := encodeHistogram(h)
			if err != nil {
				t.Fatal(err)
			}
			got := decodeOrFail(t, enc)
			if !got.Equals(h) {
				t.Fatalf("decoded histogram differs: count %d max %d, want %d and %d", got.TotalCount(), got.Max(), h.TotalCount(), h.Max())
			}
			// The library's own encoding decodes to the same histogram.
			lib, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
			if err != nil {
				t.Fatal(err)
			}
			if !decodeOrFail(t, string(lib)).Equals(got) {
				t.Fatal("hdrhistogram-go's encoding decodes to another histogram")
			}
		})
	}
}

func TestAppendZigZag(t *testing.T) {
	for _, c := range []struct {
		v    int64
		want []byte
	}{
		{0, []byte{0x00}},
		{-1, []byte{0x01}},
		{1, []byte{0x02}},
		{63, []byte{0x7e}},
		{-64, []byte{0x7f}},
		{64, []byte{0x80, 0x01}},
		{-300, []byte{0xd7, 0x04}},
		// 2^62 ZigZags to 2^63: eight 7-bit groups, then the 8-bit ninth byte.
		{1 << 62, []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80}},
		{-1 << 63, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
	} {
		if got := appendZigZag(nil, c.v); !bytes.Equal(got, c.want) {
			t.Errorf("appendZigZag(%d) = % x, want % x", c.v, got, c.want)
		}
	}
}

// Series rotate in their own goroutines, so encodings run concurrently and
// share the pooled zlib writers.
func TestEncodeHistogramConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				h := newHistogram()
				for _, v := range latencies(uint64(g*100+i), 2000) {
					h.RecordValue(v)
				}
				enc, err := encodeHistogram(h)
				if err != nil {
					t.Error(err)
					return
				}
				if got, err := hdrhistogram.Decode([]byte(enc)); err != nil || !got.Equals(h) {
					t.Errorf("goroutine %d, histogram %d: decoded differently (err %v)", g, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// A new Series leaves an idle writer ready, and encoding reuses it rather
// than building another.
func TestPrepareEncoderKeepsAWriter(t *testing.T) {
	NewSeries("rtt", HostSender, SourceUser, "test", t0)
	encoders.mu.Lock()
	idle := len(encoders.free)
	encoders.mu.Unlock()
	if idle == 0 {
		t.Fatal("no idle writer after NewSeries")
	}
	z := getEncoder()
	putEncoder(z)
	again := getEncoder()
	defer putEncoder(again)
	if again != z {
		t.Fatal("getEncoder built a new writer although one was idle")
	}
}

// BenchmarkEncodeHistogram compares this encoder with hdrhistogram-go's Encode
// on a second's worth of round trips (go test -bench EncodeHistogram ./results/).
func BenchmarkEncodeHistogram(b *testing.B) {
	h := newHistogram()
	for _, v := range latencies(3, 170000) {
		h.RecordValue(v)
	}
	b.Run("stackgap", func(b *testing.B) {
		for b.Loop() {
			if _, err := encodeHistogram(h); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hdrhistogram-go", func(b *testing.B) {
		for b.Loop() {
			if _, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase); err != nil {
				b.Fatal(err)
			}
		}
	})
}
