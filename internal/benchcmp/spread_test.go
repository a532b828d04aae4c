package benchcmp

import (
	"math"
	"slices"
	"testing"
	"time"
)

func TestSpreadOf(t *testing.T) {
	// One round, or rounds that all agree: nothing to resample, the interval is the value.
	for _, xs := range [][]float64{{1.03}, {0.97, 0.97, 0.97, 0.97}} {
		s := spreadOf(xs)
		if s.Rounds != len(xs) || s.Median != xs[0] || s.Low != xs[0] || s.High != xs[0] {
			t.Errorf("spreadOf(%v) = %+v, want median and interval %v", xs, s, xs[0])
		}
	}
	// Rounds without data (ratio 0) are left out.
	if s := spreadOf([]float64{0, 1.1, 0, 0.9}); s.Rounds != 2 || math.Abs(s.Median-1.0) > 1e-12 {
		t.Errorf("spreadOf with empty rounds = %+v, want 2 rounds, median 1.00", s)
	}
	if s := spreadOf(nil); s.Rounds != 0 || s.String() != "no rounds" {
		t.Errorf("spreadOf(nil) = %+v %q", s, s)
	}

	// Nine noisy rounds around 1.04: the interval holds the median and lies within the data.
	noisy := []float64{1.18, 0.87, 1.04, 1.09, 0.98, 1.27, 1.03, 1.05, 0.99}
	s := spreadOf(append([]float64(nil), noisy...))
	if s.Median != 1.04 {
		t.Errorf("median %.3f, want 1.04", s.Median)
	}
	if !(0.87 <= s.Low && s.Low < s.Median && s.Median < s.High && s.High <= 1.27) {
		t.Errorf("interval %.3f–%.3f around %.3f, want 0.87 ≤ low < median < high ≤ 1.27", s.Low, s.High, s.Median)
	}
	if s.Low > 1.00 {
		t.Errorf("interval %.3f–%.3f excludes 1.00: this noise cannot tell 1.04 from 1.00", s.Low, s.High)
	}
	// The same rounds five times over: the same median, a narrower interval.
	var many []float64
	for range 5 {
		many = append(many, noisy...)
	}
	m := spreadOf(many)
	if m.Median != s.Median || m.High-m.Low >= s.High-s.Low {
		t.Errorf("45 rounds give %v, 9 rounds %v: want the same median and a narrower interval", m, s)
	}
	// Deterministic: the same rounds always print the same interval.
	if again := spreadOf(append([]float64(nil), noisy...)); again != s {
		t.Errorf("second spreadOf = %+v, first %+v", again, s)
	}
	if got, want := s.String(), "median 1.04 (95 % CI"; got[:len(want)] != want {
		t.Errorf("String() = %q, want prefix %q", got, want)
	}
}

func TestComparisonRoundSpread(t *testing.T) {
	us := func(p50, p99 int) Stats {
		return Stats{Count: 1, P50: time.Duration(p50) * time.Microsecond, P99: time.Duration(p99) * time.Microsecond}
	}
	c := Comparison{Rounds: []Round{
		{Sockperf: us(10, 20), Plain: us(11, 20)},
		{Sockperf: us(10, 20), Plain: us(9, 22)},
		{Sockperf: us(10, 20), Plain: us(10, 21)},
		{Sockperf: Stats{}, Plain: us(50, 50)}, // sockperf gave nothing: left out
	}}
	if s := c.RoundSpread(P50); s.Rounds != 3 || math.Abs(s.Median-1.0) > 1e-12 {
		t.Errorf("p50 spread %+v, want median 1.00 over 3 rounds", s)
	}
	if s := c.RoundSpread(P99); s.Rounds != 3 || math.Abs(s.Median-1.05) > 1e-12 {
		t.Errorf("p99 spread %+v, want median 1.05 over 3 rounds", s)
	}
	// The control is sockperf's second run over its first, whatever stackgap did.
	c.Rounds[0].Control, c.Rounds[1].Control, c.Rounds[2].Control = us(12, 20), us(10, 30), us(8, 20)
	if s := c.ControlSpread(P50); s.Rounds != 3 || math.Abs(s.Median-1.0) > 1e-12 || s.Low != 0.8 || s.High != 1.2 {
		t.Errorf("control p50 spread %+v, want median 1.00 over 3 rounds, interval 0.80–1.20", s)
	}
	if s := c.ControlSpread(P99); s.Rounds != 3 || s.Median != 1 {
		t.Errorf("control p99 spread %+v, want median 1.00 over 3 rounds", s)
	}
	if s := (Comparison{Rounds: []Round{{Sockperf: us(10, 20), Plain: us(10, 20)}}}).ControlSpread(P50); s.Rounds != 0 {
		t.Errorf("control spread without a control %+v, want no rounds", s)
	}
	r := ReflectorComparison{Rounds: []ReflectorRound{{Testpmd: us(4, 8), Stackgap: us(5, 8), Stamped: us(9, 9), Control: us(3, 16)}}}
	if s := r.RoundSpread(P50); s.Rounds != 1 || s.Median != 1.25 {
		t.Errorf("reflector p50 spread %+v, want 1.25 (plain, not stamped)", s)
	}
	if s := r.ControlSpread(P99); s.Rounds != 1 || s.Median != 2 {
		t.Errorf("reflector control p99 spread %+v, want 2.00 (testpmd again over testpmd)", s)
	}
}

func TestRateRoundSpread(t *testing.T) {
	run := func(reflector string, round, inflight int, reflected uint64) RateRun {
		return RateRun{Reflector: reflector, Round: round, Inflight: inflight, Duration: time.Second, Reflected: reflected}
	}
	c := RateComparison{Runs: []RateRun{
		run(ReflectorTestpmd, 1, 64, 100), run(ReflectorStackgap, 1, 64, 90),
		run(ReflectorTestpmd, 1, 256, 100), run(ReflectorStackgap, 1, 256, 300),
		// Round 2 runs stackgap first: pairs are matched by round, not by order.
		run(ReflectorStackgap, 2, 64, 120), run(ReflectorTestpmd, 2, 64, 100),
		run(ReflectorStackgap, 3, 64, 110), run(ReflectorTestpmd, 3, 64, 100),
		// testpmd reflected nothing in round 4: no ratio.
		run(ReflectorStackgap, 4, 64, 500), run(ReflectorTestpmd, 4, 64, 0),
	}}
	if got := c.Inflights(); !slices.Equal(got, []int{64, 256}) {
		t.Errorf("inflights %v, want [64 256]", got)
	}
	if s := c.RoundSpread(64); s.Rounds != 3 || math.Abs(s.Median-1.1) > 1e-12 || s.Low != 0.9 || s.High != 1.2 {
		t.Errorf("inflight 64 spread %+v, want median 1.10 over 3 rounds, interval 0.90–1.20", s)
	}
	if s := c.RoundSpread(256); s.Rounds != 1 || s.Median != 3 {
		t.Errorf("inflight 256 spread %+v, want 3.00 over 1 round", s)
	}
	if s := c.RoundSpread(1); s.Rounds != 0 {
		t.Errorf("spread without runs %+v, want no rounds", s)
	}
	if s := c.ControlSpread(64); s.Rounds != 0 {
		t.Errorf("control spread without control runs %+v, want no rounds", s)
	}
	// The control pairs testpmd's second run of a round with its first, leaving stackgap out.
	c.Runs = append(c.Runs, run(ReflectorTestpmdAgain, 1, 64, 80), run(ReflectorTestpmdAgain, 2, 64, 130),
		run(ReflectorTestpmdAgain, 3, 64, 100))
	if s := c.ControlSpread(64); s.Rounds != 3 || s.Median != 1 || s.Low != 0.8 || s.High != 1.3 {
		t.Errorf("inflight 64 control spread %+v, want median 1.00 over 3 rounds, interval 0.80–1.30", s)
	}
	if s := c.RoundSpread(64); s.Rounds != 3 || math.Abs(s.Median-1.1) > 1e-12 {
		t.Errorf("inflight 64 spread with control runs %+v, want the same median 1.10 over 3 rounds", s)
	}
}

func TestRoundOrder(t *testing.T) {
	for _, n := range []int{3, 4} {
		if got := roundOrder(1, n); got[0] != runReference {
			t.Errorf("%d runs, round 1 runs %v: the reference must go first, its window sets stackgap's", n, got)
		}
		// Over any n consecutive rounds each run takes each place once.
		for first := 1; first <= 7; first++ {
			seen := map[[2]int]int{} // {run, place}
			for round := first; round < first+n; round++ {
				order := roundOrder(round, n)
				inRound := map[roundRun]bool{}
				for place, run := range order {
					seen[[2]int{int(run), place}]++
					inRound[run] = true
				}
				if len(order) != n || len(inRound) != n || !inRound[runReference] || !inRound[runPlain] ||
					!inRound[runStamped] || (n == 4) != inRound[runControl] {
					t.Fatalf("%d runs, round %d runs %v: not each run once", n, round, order)
				}
			}
			for run := range n {
				for place := range n {
					if got := seen[[2]int{run, place}]; got != 1 {
						t.Errorf("%d runs, rounds %d–%d: run %d in place %d %d times, want once", n, first, first+n-1, run, place, got)
					}
				}
			}
		}
	}
}
