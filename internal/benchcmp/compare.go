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

// Round is one alternation: a sockperf run, stackgap plain and stackgap stamped, in the order
// roundOrder gives.
type Round struct {
	Sockperf, Plain, Stamped Stats
}

// Comparison is one wait strategy and transport: every round, and the merge of all rounds.
//
// stackgap runs in two modes. Plain (--no-timestamps) is the harness alone: it is what the
// targets judge, since the harness must add no latency of its own. Stamped (the default
// --stamp-every 2, round trip of the unstamped probes, every receive still carrying its RX
// stamp) is reported with its ratios as what observing the layers costs, against no target.
type Comparison struct {
	// Wait is the wait strategy ("block" or "spin") and Transport "udp" or "tcp".
	Wait, Transport string
	// Sockperf, Plain and Stamped summarise the merged histograms of all rounds.
	Sockperf, Plain, Stamped Stats
	Rounds                   []Round
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

// Row names of stackgap's two modes in WriteTable's output.
const (
	plainTool   = "stackgap plain"
	stampedTool = "stackgap stamped"
)

// WriteTable prints, for every comparison, sockperf's and both stackgap modes' percentiles per
// round and over the merged rounds (µs), then the ratios stackgap/sockperf of the merged p50
// and p99 for both modes, with PASS or MISS against the targets for the plain mode only, the
// plain ratios round by round (RoundSpread), and finally a summary with a line per comparison
// and mode.
func WriteTable(w io.Writer, cs []Comparison) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t") }
	for _, c := range cs {
		fmt.Fprintf(tw, "\n%s %s: round trip, µs\n", c.Transport, c.Wait)
		row("tool", "round", "count", "p50", "p90", "p99", "p99.9", "max")
		for i, r := range c.Rounds {
			round := fmt.Sprint(i + 1)
			row(statsCells("sockperf", round, r.Sockperf)...)
			row(statsCells(plainTool, round, r.Plain)...)
			row(statsCells(stampedTool, round, r.Stamped)...)
		}
		row(statsCells("sockperf", "all", c.Sockperf)...)
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
	}
	fmt.Fprintln(w, "\nsummary, stackgap/sockperf over merged rounds (targets judge plain only):")
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
	}
	return tw.Flush()
}

func statsCells(tool, round string, s Stats) []string {
	return []string{tool, round, fmt.Sprint(s.Count), micros(s.P50), micros(s.P90), micros(s.P99), micros(s.P999), micros(s.Max)}
}

func micros(d time.Duration) string {
	return fmt.Sprintf("%.2f", float64(d)/float64(time.Microsecond))
}

// A roundRun is one of the three runs of a round: the tool stackgap is compared with (sockperf,
// testpmd), then stackgap plain and stackgap stamped.
type roundRun int

const (
	runReference roundRun = iota
	runPlain
	runStamped
)

// roundOrder is the order of the runs of round (from 1): the first round starts with the
// reference (sockperf's measured window sets the length of stackgap's runs), and each round
// after it rotates the order by one, so over every three rounds each run goes first, second and
// third once and none always follows the same other one.
func roundOrder(round int) [3]roundRun {
	var order [3]roundRun
	for i := range order {
		order[i] = roundRun((i + round - 1) % 3)
	}
	return order
}
