package benchcmp

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Targets of the AF_XDP reflector comparison, stackgap-reflect's AF_XDP session against
// dpdk-testpmd's 5tswap forwarding on a net_af_xdp port, driven by the same sender: stackgap's
// round trip p50 must be no higher than testpmd's, and its highest reflected packet rate no lower.
const (
	TargetReflectorRTTRatio = 1.00 // stackgap/testpmd round-trip p50, at most
	TargetReflectorPPSRatio = 1.00 // stackgap/testpmd highest reflected packets per second, at least
)

// Names of the two AF_XDP reflectors, and of testpmd's second run of a round (the control).
const (
	ReflectorStackgap     = "stackgap-reflect"
	ReflectorTestpmd      = "testpmd"
	ReflectorTestpmdAgain = "testpmd again"
)

// PathRound is one alternation of the kernel path and the AF_XDP path.
type PathRound struct {
	Kernel, XDP Stats
}

// PathComparison is the sender's round trip through kernel sockets and through AF_XDP for one
// transport, both hosts spinning, over every round and merged.
type PathComparison struct {
	Transport   string
	Kernel, XDP Stats
	Rounds      []PathRound
	// Err says why the comparison has no data (the run failed); empty when it has.
	Err string
}

// Name is "<transport>-kernel-vs-xdp", the prefix of the benchmark's metrics.
func (c PathComparison) Name() string { return c.Transport + "-kernel-vs-xdp" }

// XDPRatio is AF_XDP's merged figure p divided by the kernel's (0 when the kernel has no data).
func (c PathComparison) XDPRatio(p Percentile) float64 { return ratio(p.Of(c.XDP), p.Of(c.Kernel)) }

// Percentile picks one figure of a Stats.
type Percentile int

// The figures of a Stats, in table order.
const (
	P50 Percentile = iota
	P90
	P99
	P999
	PMax
)

// Percentiles lists every Percentile in table order.
func Percentiles() []Percentile { return []Percentile{P50, P90, P99, P999, PMax} }

// Of returns the figure p of s.
func (p Percentile) Of(s Stats) time.Duration {
	switch p {
	case P50:
		return s.P50
	case P90:
		return s.P90
	case P99:
		return s.P99
	case P999:
		return s.P999
	case PMax:
		return s.Max
	}
	return 0
}

// String is the figure's column name ("p50", …, "max").
func (p Percentile) String() string {
	switch p {
	case P50:
		return "p50"
	case P90:
		return "p90"
	case P99:
		return "p99"
	case P999:
		return "p99.9"
	case PMax:
		return "max"
	}
	return fmt.Sprintf("Percentile(%d)", int(p))
}

// WritePathTable prints, for every transport, the kernel's and AF_XDP's round-trip percentiles
// per round and over the merged rounds (µs), then the ratios xdp/kernel and the gaps
// kernel − xdp per percentile. There is no target: the figures describe the machine.
func WritePathTable(w io.Writer, cs []PathComparison) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t") }
	for _, c := range cs {
		fmt.Fprintf(tw, "\n%s, kernel vs AF_XDP, spin: round trip, µs\n", c.Transport)
		if c.Err != "" {
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(w, "no data: %s\n", c.Err)
			continue
		}
		row("path", "round", "count", "p50", "p90", "p99", "p99.9", "max")
		for i, r := range c.Rounds {
			round := fmt.Sprint(i + 1)
			row(statsCells("kernel", round, r.Kernel)...)
			row(statsCells("xdp", round, r.XDP)...)
		}
		row(statsCells("kernel", "all", c.Kernel)...)
		row(statsCells("xdp", "all", c.XDP)...)
		gap := []string{"gap kernel−xdp", "all", ""}
		ratios := []string{"ratio xdp/kernel", "all", ""}
		for _, p := range Percentiles() {
			gap = append(gap, micros(p.Of(c.Kernel)-p.Of(c.XDP)))
			ratios = append(ratios, fmt.Sprintf("%.2f", c.XDPRatio(p)))
		}
		row(gap...)
		row(ratios...)
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return tw.Flush()
}

// ReflectorRound is one alternation of the reflectors, one round-trip phase each: testpmd,
// stackgap-reflect in plain mode (--no-timestamps on both hosts, like testpmd's run: judged)
// and stamped (--stamp-every 2: what observing the layers costs), and with the control testpmd
// again.
type ReflectorRound struct {
	Stackgap, Stamped, Testpmd Stats
	// Control is testpmd's second run of the round (zero without the control).
	Control Stats
}

// ReflectorComparison is the sender's AF_XDP round trip (UDP, one probe in flight) against
// stackgap-reflect's AF_XDP session (plain and stamped) and against testpmd (twice with the
// control), per round and merged.
type ReflectorComparison struct {
	Stackgap, Stamped, Testpmd, Control Stats
	Rounds                              []ReflectorRound
}

// ControlRatio is testpmd's second runs' merged figure p divided by its first runs': testpmd
// against itself (0 without the control).
func (c ReflectorComparison) ControlRatio(p Percentile) float64 {
	return ratio(p.Of(c.Control), p.Of(c.Testpmd))
}

// StampedRatio is stackgap's stamped figure p divided by testpmd's (0 without data).
func (c ReflectorComparison) StampedRatio(p Percentile) float64 {
	return ratio(p.Of(c.Stamped), p.Of(c.Testpmd))
}

// Ratio is stackgap's merged figure p divided by testpmd's (0 without testpmd data).
func (c ReflectorComparison) Ratio(p Percentile) float64 {
	return ratio(p.Of(c.Stackgap), p.Of(c.Testpmd))
}

// Pass tells whether stackgap's round-trip p50 meets TargetReflectorRTTRatio.
func (c ReflectorComparison) Pass() bool { return meets(c.Ratio(P50), TargetReflectorRTTRatio) }

// RateRun is one throughput phase: the sender keeps Inflight probes of minimum size in flight
// against one reflector for Duration.
type RateRun struct {
	Reflector string
	Round     int
	Inflight  int
	Duration  time.Duration
	// Sent, Received and Lost are the sender's counters of the measured window.
	Sent, Received, Lost uint64
	// Reflected counts the measured window's probes the reflector sent back: stackgap-reflect's
	// own "reflected" counter less its warm-up, or for testpmd (which the sender cannot ask)
	// the sender's Received.
	Reflected uint64
	// OwnPPS is the reflector's own figure where it has one: testpmd's highest periodic Tx-pps
	// (0 otherwise).
	OwnPPS float64
	// RTTP50 is the median round trip at this load.
	RTTP50 time.Duration
	// SenderCPU and ReflectorCPU say where the two CPUs' time went during the window.
	SenderCPU, ReflectorCPU CPUShare
	// Note carries reflector-specific evidence (e.g. testpmd's share of empty polls).
	Note string
}

// PPS is the reflected packets per second of the measured window.
func (r RateRun) PPS() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Reflected) / r.Duration.Seconds()
}

// RateComparison holds the throughput runs of both reflectors, and of testpmd's second run
// of each round (Reflector ReflectorTestpmdAgain) with the control.
type RateComparison struct {
	Runs []RateRun
}

// MedianPPS is the median packet rate of reflector's runs with inflight probes in flight, over
// the rounds (n runs; 0, 0 when there are none). A closed loop on a shared machine varies by
// tens of percent from one run to the next, so single runs are not compared.
func (c RateComparison) MedianPPS(reflector string, inflight int) (pps float64, n int) {
	var all []float64
	for _, r := range c.Runs {
		if r.Reflector == reflector && r.Inflight == inflight {
			all = append(all, r.PPS())
		}
	}
	if len(all) == 0 {
		return 0, 0
	}
	return median(all), len(all)
}

// Best returns the in-flight count at which reflector's median packet rate is highest, and that
// rate (ok false when it has no runs).
func (c RateComparison) Best(reflector string) (inflight int, pps float64, ok bool) {
	for _, r := range c.Runs {
		if r.Reflector != reflector {
			continue
		}
		if m, _ := c.MedianPPS(reflector, r.Inflight); !ok || m > pps {
			inflight, pps, ok = r.Inflight, m, true
		}
	}
	return inflight, pps, ok
}

// PPSRatio is stackgap-reflect's highest median packet rate divided by testpmd's (0 without
// data).
func (c RateComparison) PPSRatio() float64 { return c.bestRatio(ReflectorStackgap, ReflectorTestpmd) }

// ControlPPSRatio is the highest median packet rate of testpmd's second runs divided by that
// of its first runs: testpmd against itself (0 without the control).
func (c RateComparison) ControlPPSRatio() float64 {
	return c.bestRatio(ReflectorTestpmdAgain, ReflectorTestpmd)
}

// bestRatio is reflector num's highest median packet rate divided by reflector den's (0 when
// either has no runs or den reflected nothing).
func (c RateComparison) bestRatio(num, den string) float64 {
	_, n, okN := c.Best(num)
	_, d, okD := c.Best(den)
	if !okN || !okD || d <= 0 {
		return 0
	}
	return n / d
}

// Pass tells whether the packet-rate ratio meets TargetReflectorPPSRatio.
func (c RateComparison) Pass() bool { return atLeast(c.PPSRatio(), TargetReflectorPPSRatio) }

// atLeast compares a ratio printed with two decimals with a lower bound the way a reader does.
func atLeast(r, target float64) bool { return r > 0 && r >= target-0.005 }

func verdictAtLeast(r, target float64) string {
	if atLeast(r, target) {
		return "PASS"
	}
	return "MISS"
}

// WriteReflectorTable prints the round trips of both reflectors per round and merged (µs) with
// the ratios stackgap/testpmd and the verdict on p50, then every throughput run (packets per
// second, loss, median round trip, where each CPU's time went) and the verdict on the highest
// rates.
func WriteReflectorTable(w io.Writer, rtt ReflectorComparison, rate RateComparison) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t") }
	fmt.Fprintf(tw, "\nAF_XDP reflectors, udp, spin, 1 probe in flight: round trip, µs\n")
	row("reflector", "round", "count", "p50", "p90", "p99", "p99.9", "max")
	plain, stamped := ReflectorStackgap+" plain", ReflectorStackgap+" stamped"
	control := rtt.Control.Count > 0
	for i, r := range rtt.Rounds {
		round := fmt.Sprint(i + 1)
		row(statsCells(ReflectorTestpmd, round, r.Testpmd)...)
		if control {
			row(statsCells(ReflectorTestpmdAgain, round, r.Control)...)
		}
		row(statsCells(plain, round, r.Stackgap)...)
		row(statsCells(stamped, round, r.Stamped)...)
	}
	row(statsCells(ReflectorTestpmd, "all", rtt.Testpmd)...)
	if control {
		row(statsCells(ReflectorTestpmdAgain, "all", rtt.Control)...)
	}
	row(statsCells(plain, "all", rtt.Stackgap)...)
	row(statsCells(stamped, "all", rtt.Stamped)...)
	ratios := []string{"ratio plain/testpmd", "all", ""}
	stampedRatios := []string{"ratio stamped/testpmd", "all", ""}
	controlRatios := []string{"ratio again/testpmd", "all", ""}
	for _, p := range Percentiles() {
		ratios = append(ratios, fmt.Sprintf("%.2f", rtt.Ratio(p)))
		stampedRatios = append(stampedRatios, fmt.Sprintf("%.2f", rtt.StampedRatio(p)))
		controlRatios = append(controlRatios, fmt.Sprintf("%.2f", rtt.ControlRatio(p)))
	}
	row(ratios...)
	row(stampedRatios...)
	if control {
		row(controlRatios...)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "stackgap plain/testpmd round trip: p50 %.2f (target ≤ %.2f: %s)\n",
		rtt.Ratio(P50), TargetReflectorRTTRatio, verdict(rtt.Ratio(P50), TargetReflectorRTTRatio))
	fmt.Fprintf(w, "stackgap stamped/testpmd round trip: p50 %.2f p99 %.2f (what observing the layers costs; no target)\n",
		rtt.StampedRatio(P50), rtt.StampedRatio(P99))
	fmt.Fprintf(w, "stackgap plain/testpmd round trip round by round: p50 %v, p99 %v\n", rtt.RoundSpread(P50), rtt.RoundSpread(P99))
	if control {
		fmt.Fprintf(w, "control, testpmd again/testpmd round trip: p50 %.2f (%s) (the same reflector twice: the verdict the target gives noise alone)\n",
			rtt.ControlRatio(P50), verdict(rtt.ControlRatio(P50), TargetReflectorRTTRatio))
		fmt.Fprintf(w, "control round by round: p50 %v, p99 %v\n", rtt.ControlSpread(P50), rtt.ControlSpread(P99))
	}

	fmt.Fprintf(tw, "\nAF_XDP reflectors, udp, spin, 64-byte frames: reflected packets per second\n")
	row("reflector", "round", "inflight", "sent", "lost", "reflected", "pps", "own pps", "rtt p50 µs", "sender CPU", "reflector CPU")
	for _, r := range rate.Runs {
		own := "-"
		if r.OwnPPS > 0 {
			own = fmt.Sprintf("%.0f", r.OwnPPS)
		}
		row(r.Reflector, fmt.Sprint(r.Round), fmt.Sprint(r.Inflight), fmt.Sprint(r.Sent), fmt.Sprint(r.Lost), fmt.Sprint(r.Reflected),
			fmt.Sprintf("%.0f", r.PPS()), own, micros(r.RTTP50), r.SenderCPU.String(), r.ReflectorCPU.String())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rate.Runs {
		if r.Note != "" {
			fmt.Fprintf(w, "%s round %d inflight %d: %s\n", r.Reflector, r.Round, r.Inflight, r.Note)
		}
	}
	rateControl := rate.ControlPPSRatio() > 0
	for _, inflight := range rate.Inflights() {
		fmt.Fprintf(w, "stackgap/testpmd packet rate round by round, inflight %d: %v\n", inflight, rate.RoundSpread(inflight))
		if rateControl {
			fmt.Fprintf(w, "control, testpmd again/testpmd packet rate round by round, inflight %d: %v\n", inflight, rate.ControlSpread(inflight))
		}
	}
	si, s, _ := rate.Best(ReflectorStackgap)
	ti, t, _ := rate.Best(ReflectorTestpmd)
	fmt.Fprintf(w, "highest median rate: %s %.0f pps (inflight %d), %s %.0f pps (inflight %d); stackgap/testpmd %.2f (target ≥ %.2f: %s)\n",
		ReflectorStackgap, s, si, ReflectorTestpmd, t, ti,
		rate.PPSRatio(), TargetReflectorPPSRatio, verdictAtLeast(rate.PPSRatio(), TargetReflectorPPSRatio))
	if rateControl {
		ai, a, _ := rate.Best(ReflectorTestpmdAgain)
		fmt.Fprintf(w, "control: %s %.0f pps (inflight %d); testpmd again/testpmd %.2f (%s) (the same reflector twice: the verdict the target gives noise alone)\n",
			ReflectorTestpmdAgain, a, ai, rate.ControlPPSRatio(), verdictAtLeast(rate.ControlPPSRatio(), TargetReflectorPPSRatio))
	}
	return nil
}
