package benchcmp

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Targets of the comparison, as ratios stackgap/sockperf: stackgap's round trip p50 must be no
// higher than sockperf's, and its p99 within 5 %.
const (
	TargetP50Ratio = 1.00
	TargetP99Ratio = 1.05
)

// Stats digests one round-trip distribution.
type Stats struct {
	Count                    int64
	P50, P90, P99, P999, Max time.Duration
}

// Summarize digests h, whose values are nanoseconds. Both tools are summarised here, from HDR
// histograms of the same geometry (see NewHistogram), so their percentiles are comparable.
func Summarize(h *hdrhistogram.Histogram) Stats {
	if h.TotalCount() == 0 {
		return Stats{}
	}
	q := h.ValueAtPercentiles([]float64{50, 90, 99, 99.9})
	return Stats{
		Count: h.TotalCount(),
		P50:   time.Duration(q[50]),
		P90:   time.Duration(q[90]),
		P99:   time.Duration(q[99]),
		P999:  time.Duration(q[99.9]),
		Max:   time.Duration(h.Max()),
	}
}

// Round is one alternation: a sockperf run, stackgap plain and stackgap stamped, and with the
// control a second sockperf run, in the order roundOrder gives.
type Round struct {
	Sockperf, Plain, Stamped Stats
	// Control is sockperf's second run of the round (zero without the control).
	Control Stats
}

// Comparison is one wait strategy and transport: every round, and the merge of all rounds.
//
// stackgap runs in two modes. Plain (--no-timestamps) is the harness alone: it is what the
// targets judge, since the harness must add no latency of its own. Stamped (the default
// --stamp-every 2, round trip of the unstamped probes, every receive still carrying its RX
// stamp) is reported with its ratios as what observing the layers costs, against no target.
//
// The control is sockperf run a second time in every round. Its ratio to the first run is what
// the machine's noise alone does to a ratio of two identical tools, and its verdicts say how
// often the same tool passes the targets against itself.
type Comparison struct {
	// Wait is the wait strategy ("block" or "spin") and Transport "udp" or "tcp".
	Wait, Transport string
	// Sockperf, Plain, Stamped and Control summarise the merged histograms of all rounds
	// (Control is zero without the control).
	Sockperf, Plain, Stamped, Control Stats
	Rounds                            []Round
}

// Name is "<transport>-<wait>", e.g. "udp-block", the prefix of the benchmark's metrics.
func (c Comparison) Name() string { return c.Transport + "-" + c.Wait }

// P50Ratio is stackgap plain's merged p50 divided by sockperf's (0 when sockperf has no data).
func (c Comparison) P50Ratio() float64 { return ratio(c.Plain.P50, c.Sockperf.P50) }

// P99Ratio is stackgap plain's merged p99 divided by sockperf's (0 when sockperf has no data).
func (c Comparison) P99Ratio() float64 { return ratio(c.Plain.P99, c.Sockperf.P99) }

// StampedP50Ratio is stackgap stamped's merged p50 divided by sockperf's (0 when sockperf has
// no data).
func (c Comparison) StampedP50Ratio() float64 { return ratio(c.Stamped.P50, c.Sockperf.P50) }

// StampedP99Ratio is stackgap stamped's merged p99 divided by sockperf's (0 when sockperf has
// no data).
func (c Comparison) StampedP99Ratio() float64 { return ratio(c.Stamped.P99, c.Sockperf.P99) }

// ControlRatio is the control's merged figure p divided by sockperf's: sockperf against itself
// (0 without the control).
func (c Comparison) ControlRatio(p Percentile) float64 {
	return ratio(p.Of(c.Control), p.Of(c.Sockperf))
}

// Pass tells whether both ratios of the plain mode meet their targets.
func (c Comparison) Pass() bool {
	return meets(c.P50Ratio(), TargetP50Ratio) && meets(c.P99Ratio(), TargetP99Ratio)
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// meets compares a ratio printed with two decimals with its target the way a reader does: a
// ratio shown as "1.00" meets a target of 1.00.
func meets(r, target float64) bool {
	return r > 0 && r < target+0.005
}

func verdict(r, target float64) string {
	if meets(r, target) {
		return "PASS"
	}
	return "MISS"
}

// Row names of stackgap's two modes and of the control in WriteTable's output.
const (
	plainTool   = "stackgap plain"
	stampedTool = "stackgap stamped"
	controlTool = "sockperf again"
)

// WriteTable prints, for every comparison, sockperf's and both stackgap modes' percentiles per
// round and over the merged rounds (µs), then the ratios stackgap/sockperf of the merged p50
// and p99 for both modes, with PASS or MISS against the targets for the plain mode only, the
// plain ratios round by round (RoundSpread), the control's ratios with the verdicts the same
// targets would give them, and finally a summary with a line per comparison and mode.
func WriteTable(w io.Writer, cs []Comparison) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t") }
	for _, c := range cs {
		control := c.Control.Count > 0
		fmt.Fprintf(tw, "\n%s %s: round trip, µs\n", c.Transport, c.Wait)
		row("tool", "round", "count", "p50", "p90", "p99", "p99.9", "max")
		for i, r := range c.Rounds {
			round := fmt.Sprint(i + 1)
			row(statsCells("sockperf", round, r.Sockperf)...)
			if control {
				row(statsCells(controlTool, round, r.Control)...)
			}
			row(statsCells(plainTool, round, r.Plain)...)
			row(statsCells(stampedTool, round, r.Stamped)...)
		}
		row(statsCells("sockperf", "all", c.Sockperf)...)
		if control {
			row(statsCells(controlTool, "all", c.Control)...)
		}
		row(statsCells(plainTool, "all", c.Plain)...)
		row(statsCells(stampedTool, "all", c.Stamped)...)
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(w, "%s/sockperf: p50 %.2f (target ≤ %.2f: %s)  p99 %.2f (target ≤ %.2f: %s)\n", plainTool,
			c.P50Ratio(), TargetP50Ratio, verdict(c.P50Ratio(), TargetP50Ratio),
			c.P99Ratio(), TargetP99Ratio, verdict(c.P99Ratio(), TargetP99Ratio))
		fmt.Fprintf(w, "%s/sockperf: p50 %.2f  p99 %.2f (what observing the layers costs; no target)\n", stampedTool,
			c.StampedP50Ratio(), c.StampedP99Ratio())
		fmt.Fprintf(w, "%s/sockperf round by round: p50 %v, p99 %v\n", plainTool, c.RoundSpread(P50), c.RoundSpread(P99))
		if control {
			fmt.Fprintf(w, "control, %s/sockperf: p50 %.2f (%s)  p99 %.2f (%s) (the same tool twice: the verdicts the targets give noise alone)\n",
				controlTool, c.ControlRatio(P50), verdict(c.ControlRatio(P50), TargetP50Ratio),
				c.ControlRatio(P99), verdict(c.ControlRatio(P99), TargetP99Ratio))
			fmt.Fprintf(w, "control round by round: p50 %v, p99 %v\n", c.ControlSpread(P50), c.ControlSpread(P99))
		}
	}
	fmt.Fprintln(w, "\nsummary, stackgap/sockperf over merged rounds (targets judge plain only; control = sockperf/sockperf):")
	row("comparison", "mode", "sockperf p50", "stackgap p50", "p50 ratio", "", "sockperf p99", "stackgap p99", "p99 ratio", "")
	for _, c := range cs {
		row(c.Name(), "plain", micros(c.Sockperf.P50), micros(c.Plain.P50),
			fmt.Sprintf("%.2f", c.P50Ratio()), verdict(c.P50Ratio(), TargetP50Ratio),
			micros(c.Sockperf.P99), micros(c.Plain.P99),
			fmt.Sprintf("%.2f", c.P99Ratio()), verdict(c.P99Ratio(), TargetP99Ratio))
		row(c.Name(), "stamped", micros(c.Sockperf.P50), micros(c.Stamped.P50),
			fmt.Sprintf("%.2f", c.StampedP50Ratio()), "-",
			micros(c.Sockperf.P99), micros(c.Stamped.P99),
			fmt.Sprintf("%.2f", c.StampedP99Ratio()), "-")
		if c.Control.Count > 0 {
			row(c.Name(), "control", micros(c.Sockperf.P50), micros(c.Control.P50),
				fmt.Sprintf("%.2f", c.ControlRatio(P50)), "("+verdict(c.ControlRatio(P50), TargetP50Ratio)+")",
				micros(c.Sockperf.P99), micros(c.Control.P99),
				fmt.Sprintf("%.2f", c.ControlRatio(P99)), "("+verdict(c.ControlRatio(P99), TargetP99Ratio)+")")
		}
	}
	return tw.Flush()
}

func statsCells(tool, round string, s Stats) []string {
	return []string{tool, round, fmt.Sprint(s.Count), micros(s.P50), micros(s.P90), micros(s.P99), micros(s.P999), micros(s.Max)}
}

func micros(d time.Duration) string {
	return fmt.Sprintf("%.2f", float64(d)/float64(time.Microsecond))
}

// A roundRun is one of the runs of a round: the tool stackgap is compared with (sockperf,
// testpmd), stackgap plain, stackgap stamped and, with the control, the reference tool again.
type roundRun int

const (
	runReference roundRun = iota
	runPlain
	runStamped
	runControl
)

// roundOrder is the order of the first n runs (3, or 4 with the control) of round (from 1):
// the first round starts with the reference (sockperf's measured window sets the length of
// stackgap's runs), and each round after it rotates the order by one, so over every n rounds
// each run takes each place once.
func roundOrder(round, n int) []roundRun {
	order := make([]roundRun, n)
	for i := range order {
		order[i] = roundRun((i + round - 1) % n)
	}
	return order
}
