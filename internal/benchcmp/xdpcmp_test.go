package benchcmp

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestPercentileOf(t *testing.T) {
	s := Stats{P50: 1, P90: 2, P99: 3, P999: 4, Max: 5}
	for i, p := range Percentiles() {
		if got := p.Of(s); got != time.Duration(i+1) {
			t.Errorf("%v.Of = %d, want %d", p, got, i+1)
		}
	}
	var names []string
	for _, p := range Percentiles() {
		names = append(names, p.String())
	}
	if got, want := strings.Join(names, " "), "p50 p90 p99 p99.9 max"; got != want {
		t.Errorf("names %q, want %q", got, want)
	}
}

func TestReflectorVerdicts(t *testing.T) {
	tests := []struct {
		name                    string
		stackgapP50, testpmdP50 time.Duration
		wantRatio               float64
		wantPass                bool
	}{
		{"faster", 4000, 5000, 0.8, true},
		{"equal when rounded", 5020, 5000, 1.004, true},
		{"slower", 5100, 5000, 1.02, false},
		{"no testpmd data", 5000, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ReflectorComparison{Stackgap: Stats{P50: tt.stackgapP50}, Testpmd: Stats{P50: tt.testpmdP50}}
			if got := c.Ratio(P50); !near(got, tt.wantRatio) {
				t.Errorf("ratio %v, want %v", got, tt.wantRatio)
			}
			if got := c.Pass(); got != tt.wantPass {
				t.Errorf("pass %v, want %v", got, tt.wantPass)
			}
		})
	}
}

func TestRateComparison(t *testing.T) {
	run := func(reflector string, inflight int, reflected uint64) RateRun {
		return RateRun{Reflector: reflector, Inflight: inflight, Duration: 2 * time.Second, Reflected: reflected}
	}
	tests := []struct {
		name      string
		runs      []RateRun
		wantRatio float64
		wantPass  bool
	}{
		{"stackgap faster", []RateRun{run(ReflectorStackgap, 64, 400), run(ReflectorTestpmd, 64, 300),
			run(ReflectorStackgap, 256, 500), run(ReflectorTestpmd, 256, 400)}, 1.25, true},
		{"best of each at different inflight", []RateRun{run(ReflectorStackgap, 64, 600), run(ReflectorTestpmd, 64, 300),
			run(ReflectorStackgap, 256, 500), run(ReflectorTestpmd, 256, 601)}, 600.0 / 601, true},
		{"slower", []RateRun{run(ReflectorStackgap, 64, 90), run(ReflectorTestpmd, 64, 100)}, 0.9, false},
		{"testpmd missing", []RateRun{run(ReflectorStackgap, 64, 90)}, 0, false},
		{"medians over rounds, not the best run", []RateRun{run(ReflectorStackgap, 64, 100), run(ReflectorStackgap, 64, 120),
			run(ReflectorStackgap, 64, 110), run(ReflectorTestpmd, 64, 200), run(ReflectorTestpmd, 64, 100),
			run(ReflectorTestpmd, 64, 105)}, 110.0 / 105, true},
		{"median of an even count", []RateRun{run(ReflectorStackgap, 64, 100), run(ReflectorStackgap, 64, 120),
			run(ReflectorTestpmd, 64, 100)}, 1.1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := RateComparison{Runs: tt.runs}
			if got := c.PPSRatio(); !near(got, tt.wantRatio) {
				t.Errorf("ratio %v, want %v", got, tt.wantRatio)
			}
			if got := c.Pass(); got != tt.wantPass {
				t.Errorf("pass %v, want %v", got, tt.wantPass)
			}
		})
	}
	if got := run(ReflectorTestpmd, 1, 1000).PPS(); got != 500 {
		t.Errorf("PPS %v, want 500", got)
	}
	if got := (RateRun{Reflected: 10}).PPS(); got != 0 {
		t.Errorf("PPS without a duration %v, want 0", got)
	}
}

func TestWritePathTable(t *testing.T) {
	kernel := Stats{Count: 100, P50: 8 * time.Microsecond, P90: 9 * time.Microsecond, P99: 20 * time.Microsecond, P999: 80 * time.Microsecond, Max: 4 * time.Millisecond}
	xdp := Stats{Count: 120, P50: 6 * time.Microsecond, P90: 7 * time.Microsecond, P99: 16 * time.Microsecond, P999: 100 * time.Microsecond, Max: 2 * time.Millisecond}
	var out strings.Builder
	err := WritePathTable(&out, []PathComparison{
		{Transport: "udp", Kernel: kernel, XDP: xdp, Rounds: []PathRound{{kernel, xdp}}},
		{Transport: "tcp", Err: "stackgap run: exit status 1: connection refused"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"udp, kernel vs AF_XDP, spin: round trip, µs",
		"kernel      1    100   8.00   9.00  20.00   80.00  4000.00",
		"gap kernel−xdp    all           2.00   2.00   4.00  -20.00  2000.00",
		"ratio xdp/kernel    all           0.75   0.78   0.80    1.25     0.50",
		"tcp, kernel vs AF_XDP, spin: round trip, µs\nno data: stackgap run: exit status 1: connection refused",
	} {
		if !strings.Contains(squeeze(out.String()), squeeze(want)) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestWriteReflectorTable(t *testing.T) {
	sg := Stats{Count: 100, P50: 6 * time.Microsecond, P90: 8 * time.Microsecond, P99: 20 * time.Microsecond, P999: 40 * time.Microsecond, Max: time.Millisecond}
	tp := Stats{Count: 110, P50: 5 * time.Microsecond, P90: 6 * time.Microsecond, P99: 12 * time.Microsecond, P999: 30 * time.Microsecond, Max: time.Millisecond}
	rate := RateComparison{Runs: []RateRun{
		{Reflector: ReflectorStackgap, Round: 1, Inflight: 64, Duration: time.Second, Sent: 250000, Reflected: 250000, RTTP50: 250 * time.Microsecond,
			SenderCPU: CPUShare{User: 60, System: 30, SoftIRQ: 10}, ReflectorCPU: CPUShare{User: 50, System: 50}},
		{Reflector: ReflectorTestpmd, Round: 1, Inflight: 64, Duration: time.Second, Sent: 260000, Reflected: 260000, OwnPPS: 261000,
			RTTP50: 240 * time.Microsecond, Note: "92% of receive polls empty"},
		{Reflector: ReflectorTestpmd, Round: 1, Inflight: 256, Duration: time.Second, Sent: 10, Lost: 10},
		// The medians, not the single best runs, are compared.
		{Reflector: ReflectorStackgap, Round: 2, Inflight: 64, Duration: time.Second, Reflected: 300000},
		{Reflector: ReflectorStackgap, Round: 3, Inflight: 64, Duration: time.Second, Reflected: 270000},
		{Reflector: ReflectorTestpmd, Round: 2, Inflight: 64, Duration: time.Second, Reflected: 400000},
		{Reflector: ReflectorTestpmd, Round: 3, Inflight: 64, Duration: time.Second, Reflected: 250000},
	}}
	st := Stats{Count: 90, P50: 7 * time.Microsecond, P90: 9 * time.Microsecond, P99: 24 * time.Microsecond, P999: 45 * time.Microsecond, Max: 2 * time.Millisecond}
	var out strings.Builder
	rtt := ReflectorComparison{Stackgap: sg, Stamped: st, Testpmd: tp, Rounds: []ReflectorRound{{Stackgap: sg, Stamped: st, Testpmd: tp}}}
	if err := WriteReflectorTable(&out, rtt, rate); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"testpmd 1 110 5.00 6.00 12.00 30.00 1000.00",
		"stackgap-reflect plain 1 100 6.00 8.00 20.00 40.00 1000.00",
		"stackgap-reflect stamped 1 90 7.00 9.00 24.00 45.00 2000.00",
		"ratio plain/testpmd all 1.20 1.33 1.67 1.33 1.00",
		"ratio stamped/testpmd all 1.40 1.50 2.00 1.50 2.00",
		"stackgap plain/testpmd round trip: p50 1.20 (target ≤ 1.00: MISS)",
		"stackgap stamped/testpmd round trip: p50 1.40 p99 2.00 (what observing the layers costs; no target)",
		"stackgap plain/testpmd round trip round by round: p50 median 1.20 (95 % CI 1.20–1.20, 1 round), p99 median 1.67 (95 % CI 1.67–1.67, 1 round)",
		"stackgap-reflect 1 64 250000 0 250000 250000 - 250.00 user 60% sys 30% softirq 10% idle 0% user 50% sys 50% softirq 0% idle 0%",
		"testpmd 1 64 260000 0 260000 260000 261000 240.00 - -",
		"testpmd 1 256 10 10 0 0 - 0.00 - -",
		"testpmd round 1 inflight 64: 92% of receive polls empty",
		"stackgap/testpmd packet rate round by round, inflight 64: median 0.96 (95 % CI 0.75–1.08, 3 rounds)",
		"stackgap/testpmd packet rate round by round, inflight 256: no rounds",
		"highest median rate: stackgap-reflect 270000 pps (inflight 64), testpmd 260000 pps (inflight 64); stackgap/testpmd 1.04 (target ≥ 1.00: PASS)",
	} {
		if !strings.Contains(squeeze(out.String()), squeeze(want)) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "again") || strings.Contains(out.String(), "control") {
		t.Errorf("a comparison without a control printed one:\n%s", out.String())
	}

	// With the control: testpmd's second runs, judged by the same targets against its first.
	again := tp
	again.P50, again.P99 = 4500*time.Nanosecond, 15*time.Microsecond
	rtt.Control, rtt.Rounds[0].Control = again, again
	rate.Runs = append(rate.Runs,
		RateRun{Reflector: ReflectorTestpmdAgain, Round: 1, Inflight: 64, Duration: time.Second, Sent: 234000, Reflected: 234000},
		RateRun{Reflector: ReflectorTestpmdAgain, Round: 2, Inflight: 64, Duration: time.Second, Reflected: 300000},
		RateRun{Reflector: ReflectorTestpmdAgain, Round: 3, Inflight: 64, Duration: time.Second, Reflected: 200000})
	if got := rate.ControlPPSRatio(); math.Abs(got-0.9) > 1e-12 {
		t.Errorf("control packet-rate ratio %v, want 0.90 (234000/260000)", got)
	}
	if got := rate.PPSRatio(); math.Abs(got-270000.0/260000) > 1e-12 {
		t.Errorf("packet-rate ratio with control runs %v, want stackgap's over testpmd's first runs", got)
	}
	out.Reset()
	if err := WriteReflectorTable(&out, rtt, rate); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"testpmd again 1 110 4.50 6.00 15.00 30.00 1000.00",
		"ratio again/testpmd all 0.90 1.00 1.25 1.00 1.00",
		"control, testpmd again/testpmd round trip: p50 0.90 (PASS)",
		"control round by round: p50 median 0.90 (95 % CI 0.90–0.90, 1 round), p99 median 1.25 (95 % CI 1.25–1.25, 1 round)",
		"testpmd again 1 64 234000 0 234000 234000 - 0.00 - -",
		"control, testpmd again/testpmd packet rate round by round, inflight 64: median 0.80 (95 % CI 0.75–0.90, 3 rounds)",
		"control: testpmd again 234000 pps (inflight 64); testpmd again/testpmd 0.90 (MISS)",
		"stackgap plain/testpmd round trip: p50 1.20 (target ≤ 1.00: MISS)",
	} {
		if !strings.Contains(squeeze(out.String()), squeeze(want)) {
			t.Errorf("table with control lacks %q:\n%s", want, out.String())
		}
	}
}

// squeeze collapses runs of spaces, so expectations do not depend on column widths.
func squeeze(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}
