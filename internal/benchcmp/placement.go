package benchcmp

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// On a VM the guest's CPU numbers say nothing about where the host runs them, and the host moves
// them. On the AMD EPYC test VMs the two vCPUs share an L3 cache for some seconds and sit on
// different L3 caches (core complexes) for the next: a cache line bounced between the sender's
// and the reflector's CPU (CacheLineRoundTrip) comes back in 50–75 ns in the first placement and
// in 330–430 ns in the second. Every round trip through the kernel moves dozens of shared lines (socket, skb,
// queues) from one CPU to the other, so a UDP spin round trip took 7.3–7.7 µs in the near
// placement and 8.6–9.1 µs in the far one, for sockperf and stackgap alike. Two runs of the same
// tool in different placements differ by more than the 5 % the targets allow. The issue asks for
// both tools to run "with the same CPU placement": the harness therefore measures the placement
// (CacheLineRoundTrip) before every run, waits until the two CPUs are near before starting it,
// and measures again after it, so every run says where it ran.
const (
	// placementSample is how long one measurement bounces the line.
	placementSample = 20 * time.Millisecond
	// placementPoll is the pause between measurements while waiting.
	placementPoll = 100 * time.Millisecond
	// placementMaxWait bounds the wait before a run; a run that starts after it is marked far.
	placementMaxWait = 10 * time.Second
	// placementCalibration is how long the harness samples the placement when it starts, to
	// learn the near round trip: longer than the far spells seen (up to about 5 s).
	placementCalibration = 8 * time.Second
	// nearFactor: a round trip up to nearFactor times the lowest seen is near. The two
	// placements are 4.5 to 8 times apart on the test VMs; on a machine with one L3 cache every
	// measurement is near.
	nearFactor = 2.0
)

// Placement is what the harness learnt about the CPU placement around one run.
type Placement struct {
	// Tool names the run's kind ("sockperf", "stackgap plain", …) and Run the run.
	Tool, Run string
	// Before and After are the cache-line round trips between the two CPUs right before and
	// right after the run.
	Before, After time.Duration
	// Waited is how long the run waited for a near placement.
	Waited time.Duration
	// NearBefore and NearAfter classify Before and After against the threshold of the time.
	NearBefore, NearAfter bool
}

// placementGate keeps the lowest cache-line round trip seen, which sets what counts as near.
type placementGate struct {
	lowest, highest time.Duration
	samples         int
}

// observe takes one measurement into account.
func (g *placementGate) observe(rt time.Duration) {
	if g.samples == 0 || rt < g.lowest {
		g.lowest = rt
	}
	g.highest = max(g.highest, rt)
	g.samples++
}

// threshold is the highest round trip that counts as near (0 before any measurement).
func (g *placementGate) threshold() time.Duration {
	return time.Duration(float64(g.lowest) * nearFactor)
}

// near tells whether rt counts as near, after observing it.
func (g *placementGate) near(rt time.Duration) bool {
	g.observe(rt)
	return rt <= g.threshold()
}

// WritePlacement prints, per tool, how many runs started and ended with the two CPUs near, and
// how long the runs waited for it.
func WritePlacement(w io.Writer, ps []Placement, threshold time.Duration) error {
	if len(ps) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nCPU placement per run (cache-line round trip between the two CPUs; near ≤ %v):\n", threshold.Round(time.Nanosecond))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t") }
	row("tool", "runs", "near before", "near after", "median before", "median after", "median wait", "longest wait")
	var tools []string
	for _, p := range ps {
		if !slices.Contains(tools, p.Tool) {
			tools = append(tools, p.Tool)
		}
	}
	for _, tool := range tools {
		var before, after, waited []float64
		nearBefore, nearAfter := 0, 0
		for _, p := range ps {
			if p.Tool != tool {
				continue
			}
			before = append(before, float64(p.Before))
			after = append(after, float64(p.After))
			waited = append(waited, float64(p.Waited))
			if p.NearBefore {
				nearBefore++
			}
			if p.NearAfter {
				nearAfter++
			}
		}
		longest := slices.Max(waited)
		row(tool, fmt.Sprint(len(before)), fmt.Sprint(nearBefore), fmt.Sprint(nearAfter),
			fmt.Sprintf("%.0f ns", median(before)), fmt.Sprintf("%.0f ns", median(after)),
			time.Duration(median(waited)).Round(10*time.Millisecond).String(),
			time.Duration(longest).Round(10*time.Millisecond).String())
	}
	return tw.Flush()
}
