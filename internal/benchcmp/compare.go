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

// Round is one alternation: a sockperf run followed by a stackgap run.
type Round struct {
	Sockperf, Stackgap Stats
}

// Comparison is one wait strategy and transport: every round, and the merge of all rounds.
type Comparison struct {
	// Wait is the wait strategy ("block" or "spin") and Transport "udp" or "tcp".
	Wait, Transport string
	// Sockperf and Stackgap summarise the merged histograms of all rounds.
	Sockperf, Stackgap Stats
	Rounds             []Round
}

// Name is "<transport>-<wait>", e.g. "udp-block", the prefix of the benchmark's metrics.
func (c Comparison) Name() string { return c.Transport + "-" + c.Wait }

// P50Ratio is stackgap's merged p50 divided by sockperf's (0 when sockperf has no data).
func (c Comparison) P50Ratio() float64 { return ratio(c.Stackgap.P50, c.Sockperf.P50) }

// P99Ratio is stackgap's merged p99 divided by sockperf's (0 when sockperf has no data).
func (c Comparison) P99Ratio() float64 { return ratio(c.Stackgap.P99, c.Sockperf.P99) }

// Pass tells whether both ratios meet their targets.
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

// WriteTable prints, for every comparison, each tool's percentiles per round and over the merged
// rounds (µs), then the ratios stackgap/sockperf of the merged p50 and p99 with PASS or MISS
// against the targets, and finally a one-line-per-comparison summary.
func WriteTable(w io.Writer, cs []Comparison) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t") }
	for _, c := range cs {
		fmt.Fprintf(tw, "\n%s %s: round trip, µs\n", c.Transport, c.Wait)
		row("tool", "round", "count", "p50", "p90", "p99", "p99.9", "max")
		for i, r := range c.Rounds {
			round := fmt.Sprint(i + 1)
			row(statsCells("sockperf", round, r.Sockperf)...)
			row(statsCells("stackgap", round, r.Stackgap)...)
		}
		row(statsCells("sockperf", "all", c.Sockperf)...)
		row(statsCells("stackgap", "all", c.Stackgap)...)
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(w, "stackgap/sockperf: p50 %.2f (target ≤ %.2f: %s)  p99 %.2f (target ≤ %.2f: %s)\n",
			c.P50Ratio(), TargetP50Ratio, verdict(c.P50Ratio(), TargetP50Ratio),
			c.P99Ratio(), TargetP99Ratio, verdict(c.P99Ratio(), TargetP99Ratio))
	}
	fmt.Fprintln(w, "\nsummary, stackgap/sockperf over merged rounds:")
	row("comparison", "sockperf p50", "stackgap p50", "p50 ratio", "", "sockperf p99", "stackgap p99", "p99 ratio", "")
	for _, c := range cs {
		row(c.Name(), micros(c.Sockperf.P50), micros(c.Stackgap.P50),
			fmt.Sprintf("%.2f", c.P50Ratio()), verdict(c.P50Ratio(), TargetP50Ratio),
			micros(c.Sockperf.P99), micros(c.Stackgap.P99),
			fmt.Sprintf("%.2f", c.P99Ratio()), verdict(c.P99Ratio(), TargetP99Ratio))
	}
	return tw.Flush()
}

func statsCells(tool, round string, s Stats) []string {
	return []string{tool, round, fmt.Sprint(s.Count), micros(s.P50), micros(s.P90), micros(s.P99), micros(s.P999), micros(s.Max)}
}

func micros(d time.Duration) string {
	return fmt.Sprintf("%.2f", float64(d)/float64(time.Microsecond))
}
