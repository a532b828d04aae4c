package benchcmp

import (
	"strings"
	"testing"
	"time"
)

func TestComparisonVerdicts(t *testing.T) {
	// The stamped mode is 20 % slower than plain in every case: it has ratios but never
	// decides the verdict.
	tests := []struct {
		name                       string
		sockperfP50, plainP50      time.Duration
		sockperfP99, plainP99      time.Duration
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
				Plain:    Stats{P50: tt.plainP50, P99: tt.plainP99},
				Stamped:  Stats{P50: tt.plainP50 * 6 / 5, P99: tt.plainP99 * 6 / 5},
			}
			if got := c.P50Ratio(); !near(got, tt.wantP50Ratio) {
				t.Errorf("p50 ratio %v, want %v", got, tt.wantP50Ratio)
			}
			if got := c.P99Ratio(); !near(got, tt.wantP99Ratio) {
				t.Errorf("p99 ratio %v, want %v", got, tt.wantP99Ratio)
			}
			if got, want := c.StampedP50Ratio(), tt.wantP50Ratio*1.2; !near(got, want) {
				t.Errorf("stamped p50 ratio %v, want %v", got, want)
			}
			if got, want := c.StampedP99Ratio(), tt.wantP99Ratio*1.2; !near(got, want) {
				t.Errorf("stamped p99 ratio %v, want %v", got, want)
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
	plain, stamped := sp, sp
	plain.P50 = 11 * time.Microsecond
	stamped.P50, stamped.P99 = 12*time.Microsecond, 25*time.Microsecond
	round := Round{Sockperf: sp, Plain: plain, Stamped: stamped}
	cs := []Comparison{{Wait: "spin", Transport: "udp", Sockperf: sp, Plain: plain, Stamped: stamped,
		Rounds: []Round{round, round}}}
	var b strings.Builder
	if err := WriteTable(&b, cs); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"udp spin: round trip, µs",
		"stackgap plain/sockperf: p50 1.10 (target ≤ 1.00: MISS)  p99 1.00 (target ≤ 1.05: PASS)",
		"stackgap stamped/sockperf: p50 1.20  p99 1.25 (what observing the layers costs; no target)",
		"stackgap plain/sockperf round by round: p50 median 1.10 (95 % CI 1.10–1.10, 2 rounds), p99 median 1.00 (95 % CI 1.00–1.00, 2 rounds)",
		"11.00",
		"12.00",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// A row per round and for the merge, for each mode.
	for _, tool := range []string{"stackgap plain ", "stackgap stamped "} {
		if got := countLines(out, func(l string) bool { return strings.Contains(l, tool) && !strings.Contains(l, "/sockperf") }); got != 3 {
			t.Errorf("%d %q rows, want 3 (2 rounds and the merge):\n%s", got, tool, out)
		}
	}
	_, summary, ok := strings.Cut(out, "summary")
	if !ok {
		t.Fatalf("no summary:\n%s", out)
	}
	plainLine := summaryLine(summary, "plain")
	if !strings.Contains(plainLine, "1.10") || !strings.Contains(plainLine, "MISS") || !strings.Contains(plainLine, "PASS") {
		t.Errorf("summary plain line %q, want ratios 1.10 MISS and 1.00 PASS", plainLine)
	}
	stampedLine := summaryLine(summary, "stamped")
	if !strings.Contains(stampedLine, "1.20") || !strings.Contains(stampedLine, "1.25") ||
		strings.Contains(stampedLine, "PASS") || strings.Contains(stampedLine, "MISS") {
		t.Errorf("summary stamped line %q, want ratios 1.20 and 1.25 without a verdict", stampedLine)
	}
	if strings.Contains(out, controlTool) || summaryLine(summary, "control") != "" {
		t.Errorf("a comparison without a control printed one:\n%s", out)
	}
}

func TestWriteTableControl(t *testing.T) {
	sp := Stats{Count: 100, P50: 10 * time.Microsecond, P90: 12 * time.Microsecond, P99: 20 * time.Microsecond,
		P999: 30 * time.Microsecond, Max: 40 * time.Microsecond}
	again := sp
	again.P50, again.P99 = 9*time.Microsecond, 22*time.Microsecond
	round := Round{Sockperf: sp, Plain: sp, Stamped: sp, Control: again}
	cs := []Comparison{{Wait: "spin", Transport: "udp", Sockperf: sp, Plain: sp, Stamped: sp, Control: again,
		Rounds: []Round{round, round, round}}}
	var b strings.Builder
	if err := WriteTable(&b, cs); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		// The same targets judge the control, whose p99 misses its own by 10 %.
		"control, sockperf again/sockperf: p50 0.90 (PASS)  p99 1.10 (MISS)",
		"control round by round: p50 median 0.90 (95 % CI 0.90–0.90, 3 rounds), p99 median 1.10 (95 % CI 1.10–1.10, 3 rounds)",
		// stackgap's verdicts stay against sockperf's first runs.
		"stackgap plain/sockperf: p50 1.00 (target ≤ 1.00: PASS)  p99 1.00 (target ≤ 1.05: PASS)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if got := countLines(out, func(l string) bool { return strings.HasPrefix(strings.TrimSpace(l), controlTool) }); got != 4 {
		t.Errorf("%d %q rows, want 4 (3 rounds and the merge):\n%s", got, controlTool, out)
	}
	_, summary, _ := strings.Cut(out, "summary")
	line := summaryLine(summary, "control")
	if !strings.Contains(line, "0.90") || !strings.Contains(line, "(PASS)") || !strings.Contains(line, "1.10") || !strings.Contains(line, "(MISS)") {
		t.Errorf("summary control line %q, want 0.90 (PASS) and 1.10 (MISS)", line)
	}
}

func countLines(s string, match func(string) bool) int {
	n := 0
	for l := range strings.Lines(s) {
		if match(l) {
			n++
		}
	}
	return n
}

// summaryLine returns the summary's line for mode of the udp-spin comparison.
func summaryLine(summary, mode string) string {
	for l := range strings.Lines(summary) {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "udp-spin" && f[1] == mode {
			return l
		}
	}
	return ""
}
