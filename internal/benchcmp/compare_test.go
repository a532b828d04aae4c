package benchcmp

import (
	"strings"
	"testing"
	"time"
)

func TestComparisonVerdicts(t *testing.T) {
	tests := []struct {
		name                       string
		sockperfP50, stackgapP50   time.Duration
		sockperfP99, stackgapP99   time.Duration
		wantP50Ratio, wantP99Ratio float64
		wantPass                   bool
	}{
		{"faster", 10 * time.Microsecond, 9 * time.Microsecond, 20 * time.Microsecond, 20 * time.Microsecond, 0.9, 1.0, true},
		{"p50 equal when rounded", 10000, 10040, 20000, 20000, 1.004, 1.0, true},
		{"p50 slower", 10000, 10100, 20000, 20000, 1.01, 1.0, false},
		{"p99 at limit", 10000, 10000, 20000, 21000, 1.0, 1.05, true},
		{"p99 over limit", 10000, 10000, 20000, 21200, 1.0, 1.06, false},
		{"no sockperf data", 0, 10000, 0, 20000, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Comparison{
				Sockperf: Stats{P50: tt.sockperfP50, P99: tt.sockperfP99},
				Stackgap: Stats{P50: tt.stackgapP50, P99: tt.stackgapP99},
			}
			if got := c.P50Ratio(); !near(got, tt.wantP50Ratio) {
				t.Errorf("p50 ratio %v, want %v", got, tt.wantP50Ratio)
			}
			if got := c.P99Ratio(); !near(got, tt.wantP99Ratio) {
				t.Errorf("p99 ratio %v, want %v", got, tt.wantP99Ratio)
			}
			if got := c.Pass(); got != tt.wantPass {
				t.Errorf("pass %v, want %v", got, tt.wantPass)
			}
		})
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestSummarize(t *testing.T) {
	h := NewHistogram()
	for v := int64(1); v <= 1000; v++ {
		if err := h.RecordValue(v * 1000); err != nil {
			t.Fatal(err)
		}
	}
	s := Summarize(h)
	if s.Count != 1000 {
		t.Errorf("count %d, want 1000", s.Count)
	}
	for _, c := range []struct {
		name      string
		got, want time.Duration
	}{{"p50", s.P50, 500 * time.Microsecond}, {"p90", s.P90, 900 * time.Microsecond},
		{"p99", s.P99, 990 * time.Microsecond}, {"p99.9", s.P999, 999 * time.Microsecond},
		{"max", s.Max, 1000 * time.Microsecond}} {
		if d := c.got - c.want; d < 0 || d > c.want/1000 {
			t.Errorf("%s %v, want %v (+0.1 %%)", c.name, c.got, c.want)
		}
	}
	if got := Summarize(NewHistogram()); got != (Stats{}) {
		t.Errorf("empty histogram summarised as %+v", got)
	}
}

func TestWriteTable(t *testing.T) {
	sp := Stats{Count: 100, P50: 10 * time.Microsecond, P90: 12 * time.Microsecond, P99: 20 * time.Microsecond,
		P999: 30 * time.Microsecond, Max: 40 * time.Microsecond}
	sg := sp
	sg.P50 = 11 * time.Microsecond
	cs := []Comparison{{Wait: "spin", Transport: "udp", Sockperf: sp, Stackgap: sg, Rounds: []Round{{sp, sg}}}}
	var b strings.Builder
	if err := WriteTable(&b, cs); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"udp spin: round trip, µs",
		"p50 1.10 (target ≤ 1.00: MISS)  p99 1.00 (target ≤ 1.05: PASS)",
		"udp-spin",
		"11.00",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if got := strings.Count(out, "stackgap"); got < 3 {
		t.Errorf("want a stackgap row per round and for the merge:\n%s", out)
	}
}
