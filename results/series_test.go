package results

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

var t0 = time.Date(2025, 3, 4, 5, 6, 7, 123_000_000, time.UTC)

// latencies returns n deterministic, roughly log-normal values in nanoseconds.
func latencies(seed uint64, n int) []int64 {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(math.Exp(rng.NormFloat64()*0.6 + math.Log(5000)))
	}
	return out
}

func TestSeriesRecordRange(t *testing.T) {
	tests := []struct {
		name           string
		values         []int64
		wantCount      uint64
		wantOutOfRange uint64
	}{
		{"in range", []int64{1, 2, 1000, 4_200, MaxValue}, 5, 0},
		{"zero", []int64{0}, 0, 1},
		{"negative", []int64{-1, math.MinInt64}, 0, 2},
		{"above range", []int64{MaxValue + 1, math.MaxInt64}, 0, 2},
		{"mixed", []int64{-5, 0, 3, MaxValue, MaxValue + 1}, 2, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSeries("rtt", HostSender, SourceUser, "all", t0)
			for _, v := range tt.values {
				s.Record(v)
			}
			if got := s.Count(); got != tt.wantCount {
				t.Errorf("unexpected Count: got %d, want %d", got, tt.wantCount)
			}
			if got := s.OutOfRange(); got != tt.wantOutOfRange {
				t.Errorf("unexpected OutOfRange: got %d, want %d", got, tt.wantOutOfRange)
			}
			if got := uint64(s.Total().TotalCount()); got != tt.wantCount {
				t.Errorf("unexpected total histogram count: got %d, want %d", got, tt.wantCount)
			}
		})
	}
}

func TestSeriesRecordValues(t *testing.T) {
	s := NewSeries("rtt", HostSender, SourceUser, "all", t0)
	for v := int64(1); v <= 1000; v++ {
		s.Record(v * 1000) // 1 µs .. 1 ms
	}
	total := s.Total()
	checks := []struct {
		percentile float64
		want       int64
	}{{50, 500_000}, {90, 900_000}, {99, 990_000}, {100, 1_000_000}}
	for _, c := range checks {
		got := total.ValueAtPercentile(c.percentile)
		// 3 significant digits: within 0.1 %.
		if math.Abs(float64(got-c.want)) > float64(c.want)/1000 {
			t.Errorf("p%v: got %d, want %d ± 0.1 %%", c.percentile, got, c.want)
		}
	}
	sum := Summarize(s)
	if sum.Count != 1000 || sum.Min != 1000 || math.Abs(float64(sum.Max-1_000_000)) > 1000 {
		t.Errorf("unexpected summary: %+v", sum)
	}
	if sum.Name != "rtt" || sum.Host != HostSender || sum.Source != SourceUser || sum.Layer != "all" {
		t.Errorf("summary lost the series identity: %+v", sum)
	}
	if empty := Summarize(NewSeries("x", HostSender, SourceSW, "", t0)); empty.Count != 0 || empty.P50 != 0 || empty.Max != 0 {
		t.Errorf("unexpected summary of an empty series: %+v", empty)
	}
}

func TestSeriesRotate(t *testing.T) {
	s := NewSeries("tx.user_to_sched", HostSender, SourceSW, "socket+protocol", t0)
	s.Record(100)
	s.Record(200)
	s.Rotate(t0.Add(time.Second))
	// An interval without values is not kept.
	s.Rotate(t0.Add(2 * time.Second))
	s.Record(300)
	s.Rotate(t0.Add(3100 * time.Millisecond))
	s.Record(400) // stays in the open interval

	got := s.Intervals()
	want := []struct {
		start, end time.Time
		count      int64
	}{
		{t0, t0.Add(time.Second), 2},
		{t0.Add(2 * time.Second), t0.Add(3100 * time.Millisecond), 1},
	}
	if len(got) != len(want) {
		t.Fatalf("unexpected number of intervals: got %d, want %d", len(got), len(want))
	}
	for i, w := range want {
		h, err := got[i].Histogram()
		if err != nil {
			t.Fatalf("interval %d: %v", i, err)
		}
		if !got[i].Start.Equal(w.start) || !got[i].End.Equal(w.end) || h.TotalCount() != w.count {
			t.Errorf("interval %d: got %v..%v with %d values, want %v..%v with %d",
				i, got[i].Start, got[i].End, h.TotalCount(), w.start, w.end, w.count)
		}
	}
	if s.Count() != 4 {
		t.Errorf("unexpected Count: got %d, want 4", s.Count())
	}
	open, ok, err := s.openInterval(t0.Add(4 * time.Second))
	if err != nil || !ok {
		t.Fatalf("open interval: ok=%v err=%v", ok, err)
	}
	if !open.Start.Equal(t0.Add(3100 * time.Millisecond)) {
		t.Errorf("open interval starts at %v, want %v", open.Start, t0.Add(3100*time.Millisecond))
	}
}

func TestSeriesJSONRoundTrip(t *testing.T) {
	orig := NewSeries("rtt", HostReflector, SourceMixed, "socket+protocol+device", t0)
	values := latencies(1, 30_000)
	for i, v := range values {
		orig.Record(v)
		if i%10_000 == 9_999 {
			orig.Rotate(t0.Add(time.Duration(i/10_000+1) * time.Second))
		}
	}
	orig.Record(123_456) // open interval
	orig.Record(0)       // out of range

	// As the control channel would carry it: inside another message.
	data, err := json.Marshal(map[string][]*Series{"series": {orig}})
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var msg map[string][]*Series
	if err := json.Unmarshal(data, &msg); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	got := msg["series"][0]

	if got.Name != orig.Name || got.Host != orig.Host || got.Source != orig.Source || got.Layer != orig.Layer {
		t.Errorf("identity changed: got %q %q %q %q", got.Name, got.Host, got.Source, got.Layer)
	}
	if got.Count() != orig.Count() || got.OutOfRange() != orig.OutOfRange() {
		t.Errorf("counts changed: got %d/%d, want %d/%d", got.Count(), got.OutOfRange(), orig.Count(), orig.OutOfRange())
	}
	if !got.Total().Equals(orig.Total()) {
		t.Errorf("total histogram changed")
	}
	if want, have := Summarize(orig), Summarize(got); want != have {
		t.Errorf("unexpected summary after round trip (-want +got):\n-%+v\n+%+v", want, have)
	}
	for _, p := range []float64{0, 50, 90, 99, 99.9, 99.99, 100} {
		if a, b := orig.Total().ValueAtPercentile(p), got.Total().ValueAtPercentile(p); a != b {
			t.Errorf("p%v: got %d, want %d", p, b, a)
		}
	}
	oi, gi := orig.Intervals(), got.Intervals()
	if len(gi) != len(oi) || len(gi) != 3 {
		t.Fatalf("unexpected intervals: got %d, want %d (3)", len(gi), len(oi))
	}
	for i := range oi {
		if !gi[i].Start.Equal(oi[i].Start) || !gi[i].End.Equal(oi[i].End) || gi[i].Encoded != oi[i].Encoded {
			t.Errorf("interval %d changed", i)
		}
	}
	// The open interval goes on where it was.
	end := t0.Add(4 * time.Second)
	orig.Rotate(end)
	got.Rotate(end)
	oi, gi = orig.Intervals(), got.Intervals()
	if len(gi) != 4 || !gi[3].Start.Equal(oi[3].Start) || gi[3].Encoded != oi[3].Encoded {
		t.Errorf("open interval not restored: got %+v, want %+v", gi[len(gi)-1], oi[len(oi)-1])
	}
}

func TestSeriesUnmarshalErrors(t *testing.T) {
	other := hdrhistogram.New(1, 1_000_000, 2)
	if err := other.RecordValue(42); err != nil {
		t.Fatal(err)
	}
	otherEnc, err := other.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, json, wantErr string
	}{
		{"wrong type", `{"name":5}`, "unmarshal series"},
		{"bad histogram", `{"name":"rtt","host":"sender","intervals":[{"start":"2025-01-01T00:00:00Z","histogram":"bm9wZQ=="}]}`, "interval 0"},
		{"no histogram", `{"name":"rtt","host":"sender","intervals":[{"start":"2025-01-01T00:00:00Z"}]}`, "no histogram"},
		{"other geometry", `{"name":"rtt","host":"sender","open":{"start":"2025-01-01T00:00:00Z","histogram":"` + string(otherEnc) + `"}}`, "geometry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Series
			err := json.Unmarshal([]byte(tt.json), &s)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("unexpected error: got %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestSeriesRecordDoesNotAllocate(t *testing.T) {
	s := NewSeries("rtt", HostSender, SourceUser, "all", t0)
	values := latencies(2, 1024)
	values = append(values, 0, -1, MaxValue+1)
	i := 0
	allocs := testing.AllocsPerRun(10_000, func() {
		s.Record(values[i%len(values)])
		i++
	})
	if allocs != 0 {
		t.Fatalf("Record allocates: %v allocations per call", allocs)
	}
}

func BenchmarkSeriesRecord(b *testing.B) {
	s := NewSeries("rtt", HostSender, SourceUser, "all", t0)
	values := latencies(3, 4096)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.Record(values[i&4095])
		i++
	}
}

// BenchmarkSeriesRotate closes 1-second intervals of 10,000 values each,
// spread over many buckets ("wide") or a few ("narrow").
func BenchmarkSeriesRotate(b *testing.B) {
	narrow := make([]int64, 10_000)
	for i := range narrow {
		narrow[i] = 4_000 + int64(i%64)
	}
	for _, bc := range []struct {
		name   string
		values []int64
	}{{"wide", latencies(4, 10_000)}, {"narrow", narrow}} {
		b.Run(bc.name, func(b *testing.B) {
			s := NewSeries("rtt", HostSender, SourceUser, "all", t0)
			b.ReportAllocs()
			now := t0
			for b.Loop() {
				b.StopTimer()
				for _, v := range bc.values {
					s.Record(v)
				}
				now = now.Add(time.Second)
				b.StartTimer()
				s.Rotate(now)
			}
		})
	}
}
