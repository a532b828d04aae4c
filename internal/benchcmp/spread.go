package benchcmp

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// RoundSpread says how far a ratio can be trusted on a noisy machine: the ratio taken round by
// round (each round's two runs are minutes apart at most, so slow drift of the machine cancels
// in it), their median, and a 95 % bootstrap confidence interval of that median. A target
// outside the interval is missed (or met) beyond what the round-to-round noise explains.
type RoundSpread struct {
	Rounds            int
	Median, Low, High float64
}

// bootstrapResamples is how many resamples spreadOf draws; 2000 puts the 2.5th and 97.5th
// percentiles of the resampled medians within a few thousandths of where more would.
const bootstrapResamples = 2000

// spreadOf returns the median of ratios (zeros, from rounds without data, left out) and its
// percentile-bootstrap 95 % interval. The generator has a fixed seed, so the same rounds
// always give the same interval.
func spreadOf(ratios []float64) RoundSpread {
	var xs []float64
	for _, r := range ratios {
		if r > 0 {
			xs = append(xs, r)
		}
	}
	s := RoundSpread{Rounds: len(xs)}
	if len(xs) == 0 {
		return s
	}
	s.Median = median(xs)
	rng := rand.New(rand.NewPCG(1, 2))
	medians := make([]float64, bootstrapResamples)
	sample := make([]float64, len(xs))
	for i := range medians {
		for j := range sample {
			sample[j] = xs[rng.IntN(len(xs))]
		}
		medians[i] = median(sample)
	}
	slices.Sort(medians)
	s.Low = medians[int(0.025*float64(len(medians)))]
	s.High = medians[int(0.975*float64(len(medians)))-1]
	return s
}

// median sorts xs (not empty) in place and returns its median.
func median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// String prints the spread as "median 1.02 (95 % CI 0.98–1.05, 9 rounds)".
func (s RoundSpread) String() string {
	if s.Rounds == 0 {
		return "no rounds"
	}
	rounds := "rounds"
	if s.Rounds == 1 {
		rounds = "round"
	}
	return fmt.Sprintf("median %.2f (95 %% CI %.2f–%.2f, %d %s)", s.Median, s.Low, s.High, s.Rounds, rounds)
}

// roundRatios returns num/den of every round, 0 where den is missing.
func roundRatios[R any](rounds []R, num, den func(R) Stats, p Percentile) []float64 {
	out := make([]float64, len(rounds))
	for i, r := range rounds {
		out[i] = ratio(p.Of(num(r)), p.Of(den(r)))
	}
	return out
}

// RoundSpread is stackgap plain's percentile p over sockperf's, round by round.
func (c Comparison) RoundSpread(p Percentile) RoundSpread {
	return spreadOf(roundRatios(c.Rounds, func(r Round) Stats { return r.Plain }, func(r Round) Stats { return r.Sockperf }, p))
}

// ControlSpread is the control's percentile p over sockperf's, round by round: sockperf
// against itself.
func (c Comparison) ControlSpread(p Percentile) RoundSpread {
	return spreadOf(roundRatios(c.Rounds, func(r Round) Stats { return r.Control }, func(r Round) Stats { return r.Sockperf }, p))
}

// RoundSpread is stackgap plain's percentile p over testpmd's, round by round.
func (c ReflectorComparison) RoundSpread(p Percentile) RoundSpread {
	return spreadOf(roundRatios(c.Rounds, func(r ReflectorRound) Stats { return r.Stackgap }, func(r ReflectorRound) Stats { return r.Testpmd }, p))
}

// ControlSpread is testpmd's second run's percentile p over its first's, round by round.
func (c ReflectorComparison) ControlSpread(p Percentile) RoundSpread {
	return spreadOf(roundRatios(c.Rounds, func(r ReflectorRound) Stats { return r.Control }, func(r ReflectorRound) Stats { return r.Testpmd }, p))
}

// RoundSpread is stackgap-reflect's packet rate over testpmd's at inflight probes in flight,
// round by round (rounds where either has no run are left out).
func (c RateComparison) RoundSpread(inflight int) RoundSpread {
	return c.spread(ReflectorStackgap, ReflectorTestpmd, inflight)
}

// ControlSpread is testpmd's second runs' packet rate over its first runs' at inflight probes
// in flight, round by round: testpmd against itself.
func (c RateComparison) ControlSpread(inflight int) RoundSpread {
	return c.spread(ReflectorTestpmdAgain, ReflectorTestpmd, inflight)
}

// spread is the packet rate of reflector num over that of reflector den at inflight probes in
// flight, round by round (rounds where either has no run, or den reflected nothing, are left
// out).
func (c RateComparison) spread(num, den string, inflight int) RoundSpread {
	type pair struct{ num, den float64 }
	byRound := map[int]*pair{}
	var rounds []int
	for _, r := range c.Runs {
		if r.Inflight != inflight || (r.Reflector != num && r.Reflector != den) {
			continue
		}
		p := byRound[r.Round]
		if p == nil {
			p = &pair{}
			byRound[r.Round] = p
			rounds = append(rounds, r.Round)
		}
		if r.Reflector == num {
			p.num = r.PPS()
		} else {
			p.den = r.PPS()
		}
	}
	ratios := make([]float64, 0, len(rounds))
	for _, round := range rounds {
		if p := byRound[round]; p.den > 0 {
			ratios = append(ratios, p.num/p.den)
		}
	}
	return spreadOf(ratios)
}

// Inflights lists the in-flight counts of the runs, in the order they first appear.
func (c RateComparison) Inflights() []int {
	var out []int
	for _, r := range c.Runs {
		if !slices.Contains(out, r.Inflight) {
			out = append(out, r.Inflight)
		}
	}
	return out
}
