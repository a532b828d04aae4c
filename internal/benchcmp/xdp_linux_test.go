//go:build linux

package benchcmp

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/vishvananda/netlink"

	"github.com/stackgap/stackgap/internal/testbed"
	"github.com/stackgap/stackgap/internal/testutil"
	"github.com/stackgap/stackgap/results"
)

// Flags of BenchmarkXDPReflectorVsTestpmd (after -args); -duration, -rounds, -size, -warmup,
// -transports, -sender-cpu, -reflector-cpu, -stackgap-flags and -keep are shared with
// BenchmarkStackgapVsSockperf. Run one comparison alone with -bench, e.g.
// `-bench KernelVsXDP` or `-bench XDPReflectorVsTestpmd`.
var flagInflights = flag.String("inflights", "64,256",
	"probes in flight of the throughput runs against each AF_XDP reflector (64-byte frames)")

// rateSize is the probe payload of the throughput runs: 18 bytes of UDP payload make a
// minimum-size Ethernet frame over IPv4 (64 bytes with the FCS).
const rateSize = 18

// testpmdPort is where the echo sender sends; testpmd's 5tswap answers on any port.
const testpmdPort = 7

// BenchmarkKernelVsXDP runs `stackgap run --path kernel,xdp --wait spin` against
// stackgap-reflect, one run per transport with -rounds alternations kernel → xdp, sender and
// reflector each on their own CPU, and prints both round-trip distributions per round and merged,
// the ratios xdp/kernel and the gaps kernel − xdp. It reports the metrics
// "<transport>-kernel-vs-xdp-p50-ratio" and "…-p99-ratio" (xdp/kernel). A transport whose run
// fails is shown without data and fails the benchmark; the others are still measured.
func BenchmarkKernelVsXDP(b *testing.B) {
	testutil.RequireRoot(b)
	testutil.RequireTool(b, "taskset")
	testutil.RequireTool(b, "go")
	transports := strings.Split(*flagTransports, ",")
	for _, t := range transports {
		if t != "udp" && t != "tcp" {
			b.Fatalf("unknown transport %q (want udp or tcp)", t)
		}
	}
	if *flagRounds < 1 {
		b.Fatalf("invalid -rounds %d", *flagRounds)
	}
	h := newHarness(b)
	h.printXDPHeader(os.Stdout, "kernel vs AF_XDP round trip, stackgap-reflect on both paths")
	var cs []PathComparison
	for b.Loop() {
		cs = cs[:0]
		for _, t := range transports {
			cs = append(cs, h.comparePaths(t))
		}
	}
	if err := WritePathTable(os.Stdout, cs); err != nil {
		b.Fatal(err)
	}
	if err := WritePlacement(os.Stdout, h.placements, h.gate.threshold()); err != nil {
		b.Fatal(err)
	}
	for _, c := range cs {
		if c.Err != "" {
			b.Errorf("%s: %s", c.Name(), c.Err)
			continue
		}
		b.ReportMetric(c.XDPRatio(P50), c.Name()+"-p50-ratio")
		b.ReportMetric(c.XDPRatio(P99), c.Name()+"-p99-ratio")
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkXDPReflectorVsTestpmd compares stackgap-reflect's AF_XDP session with an independent
// AF_XDP reflector on the same veth end and CPU: DPDK's dpdk-testpmd with a net_af_xdp vdev in
// 5tswap forwarding mode. The sender is the same stackgap AF_XDP sender (UDP, --wait spin, same
// CPU and flags); against testpmd it runs with --echo, as testpmd has no control channel. The
// two reflectors alternate and are never attached at the same time.
//
// First -rounds round-trip phases each with one probe in flight (testpmd, stackgap plain and
// stamped, and with -control testpmd again, the order rotating by one each round; target:
// stackgap plain/testpmd p50 ≤ 1.00), then -rounds rounds of throughput phases of 64-byte
// frames at every -inflights value (testpmd, stackgap-reflect, and with -control testpmd again,
// rotating likewise; target: the highest median reflected packet rate of stackgap-reflect at
// least testpmd's). Metrics: "reflector-rtt-p50-ratio", "reflector-rtt-p99-ratio",
// "reflector-pps-ratio", "stackgap-pps" and "testpmd-pps", and with -control testpmd's second
// runs over its first as "control-rtt-p50-ratio" and "control-pps-ratio". A MISS is printed,
// not failed: the figures are what the issue asks for.
func BenchmarkXDPReflectorVsTestpmd(b *testing.B) {
	testutil.RequireRoot(b)
	testutil.RequireTool(b, "taskset")
	testutil.RequireTool(b, "go")
	testutil.RequireTool(b, "dpdk-testpmd")
	testutil.RequireTool(b, "stdbuf")
	if *flagRounds < 1 {
		b.Fatalf("invalid -rounds %d", *flagRounds)
	}
	inflights, err := parseInflights(*flagInflights)
	if err != nil {
		b.Fatal(err)
	}
	h := newHarness(b)
	h.printXDPHeader(os.Stdout, "AF_XDP reflectors: stackgap-reflect (xdp session) vs dpdk-testpmd 5tswap on net_af_xdp")
	version, _ := exec.Command("dpkg-query", "-W", "-f", "${Package} ${Version}", "dpdk-dev").Output()
	fmt.Printf("testpmd: %s, %s\n", strings.TrimSpace(string(version)),
		strings.Join(TestpmdArgs(h.tb.IfaceB, *flagReflCPU, "PREFIX", 0), " "))
	fmt.Printf("  throughput runs add --stats-period 1 --record-burst-stats --record-core-cycles; whole process under taskset -c %d stdbuf -oL\n", *flagReflCPU)
	fmt.Printf("sender: stackgap run --path xdp --transport udp --wait spin --cpu %d, against stackgap-reflect (--reflector-cpu %d) or with --echo --peer %s:%d against testpmd\n",
		*flagSenderCPU, *flagReflCPU, h.tb.AddrB4, testpmdPort)
	fmt.Printf("modes: plain = --no-timestamps (no TX stamps on either host, as testpmd takes none; testpmd's runs and every throughput run too; judged),\n")
	fmt.Printf("       stamped = --stamp-every 2 (rtt of the unstamped probes; what observing the layers costs, no target)\n")
	if *flagControl {
		fmt.Printf("control: testpmd again/testpmd, the same reflector twice in every round (round trips and throughput): what the machine's\n")
		fmt.Printf("  noise alone does to the ratios, and to their verdicts\n")
	}
	if _, ok := readPageReporting(); ok {
		fmt.Printf("after each testpmd run: wait until the VM's free page reporting of testpmd's memory is over (at least %v, then %v without a\n", pageReportingDelay, pageReportingQuiet)
		fmt.Printf("  reporting interrupt, at most %v), or its host-side discard stalls the next run for tens of milliseconds\n", pageReportingMaxWait)
	}

	var rtt ReflectorComparison
	var rate RateComparison
	for b.Loop() {
		rtt, rate, err = h.compareReflectors(inflights)
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := WriteReflectorTable(os.Stdout, rtt, rate); err != nil {
		b.Fatal(err)
	}
	if err := WritePlacement(os.Stdout, h.placements, h.gate.threshold()); err != nil {
		b.Fatal(err)
	}
	_, s, _ := rate.Best(ReflectorStackgap)
	_, t, _ := rate.Best(ReflectorTestpmd)
	b.ReportMetric(rtt.Ratio(P50), "reflector-rtt-p50-ratio")
	b.ReportMetric(rtt.Ratio(P99), "reflector-rtt-p99-ratio")
	b.ReportMetric(rate.PPSRatio(), "reflector-pps-ratio")
	b.ReportMetric(s, "stackgap-pps")
	b.ReportMetric(t, "testpmd-pps")
	if *flagControl {
		b.ReportMetric(rtt.ControlRatio(P50), "control-rtt-p50-ratio")
		b.ReportMetric(rate.ControlPPSRatio(), "control-pps-ratio")
	}
	b.ReportMetric(0, "ns/op")
}

func parseInflights(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1024 {
			return nil, fmt.Errorf("invalid -inflights value %q: want 1 to 1024", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func (h *harness) printXDPHeader(w io.Writer, what string) {
	env, err := results.CollectEnvironment("")
	if err != nil {
		fmt.Fprintf(w, "machine: %v\n", err)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(w, "%s\n", what)
	fmt.Fprintf(w, "machine: kernel %s, %s, %d CPUs, clocksource %s, load %s\n",
		env.Kernel, env.CPUModel, env.CPUs, env.ClockSource, strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Fprintf(w, "testbed: %s (%s, %s) <-veth-> %s (%s, %s); AF_XDP in copy mode (veth has no zero-copy)\n",
		h.tb.NamespaceA, h.tb.IfaceA, h.tb.AddrA4, h.tb.NamespaceB, h.tb.IfaceB, h.tb.AddrB4)
	fmt.Fprintf(w, "placement: sender on CPU %d, reflector on CPU %d (whole processes under taskset -c, measuring threads pinned too)\n",
		*flagSenderCPU, *flagReflCPU)
	h.printPlacementHeader(w)
	fmt.Fprintf(w, "wait: spin on both hosts; round trips: payload %d bytes, 1 probe in flight, --duration %v per phase, --warmup %d, %d rounds\n",
		*flagSize, *flagDuration, *flagWarmup, *flagRounds)
	fmt.Fprintf(w, "  (rtt = sender user send → user receive, on the probes without TX stamps: --stamp-every 2 stamps every 2nd probe)\n")
	if *flagExtra != "" {
		fmt.Fprintf(w, "stackgap extra flags: %s\n", *flagExtra)
	}
}

// comparePaths runs the kernel and AF_XDP paths of one transport alternately in one stackgap run.
func (h *harness) comparePaths(transport string) PathComparison {
	c := PathComparison{Transport: transport}
	dir := filepath.Join(h.outDir, "kernel-vs-xdp-"+transport)
	cmd := h.pinned(*flagSenderCPU, filepath.Join(h.binDir, "stackgap"), "run",
		"--peer", h.reflector.String(), "--path", "kernel,xdp", "--transport", transport,
		"--rounds", strconv.Itoa(*flagRounds), "--size", strconv.Itoa(*flagSize),
		"--duration", flagDuration.String(), "--warmup", strconv.FormatUint(uint64(*flagWarmup), 10),
		"--wait", "spin", "--cpu", strconv.Itoa(*flagSenderCPU), "--reflector-cpu", strconv.Itoa(*flagReflCPU),
		"--out", dir, "--quiet")
	cmd.Args = append(cmd.Args, strings.Fields(*flagExtra)...)
	placed, err := h.awaitNear("stackgap kernel,xdp", filepath.Base(dir))
	if err != nil {
		c.Err = err.Error()
		return c
	}
	out, runErr := h.output(testbed.A, cmd)
	if err := h.placedAfter(placed); err != nil {
		c.Err = err.Error()
		return c
	}
	if runErr != nil {
		c.Err = fmt.Sprintf("stackgap run: %v: %s", runErr, lastLines(string(out), 5))
		return c
	}
	r, err := results.Load(dir)
	if err != nil {
		c.Err = err.Error()
		return c
	}
	hists, err := results.LoadHlog(dir)
	if err != nil {
		c.Err = err.Error()
		return c
	}
	if len(r.Phases) != 2**flagRounds {
		c.Err = fmt.Sprintf("%s: %d phases, want %d", dir, len(r.Phases), 2**flagRounds)
		return c
	}
	allKernel, allXDP := NewHistogram(), NewHistogram()
	for i := 0; i < len(r.Phases); i += 2 {
		var round PathRound
		for j, want := range []string{"kernel", "xdp"} {
			phase := r.Phases[i+j]
			if phase.Path != want || phase.Transport != transport {
				c.Err = fmt.Sprintf("%s: phase %d is %s %s, want %s %s", dir, phase.Index, phase.Path, phase.Transport, want, transport)
				return c
			}
			if n := phase.Counters.Lost + phase.Counters.Duplicated + phase.Counters.Reordered; n != 0 {
				h.logf("%s: phase %d (%s %s): %d probes lost, duplicated or reordered: %+v",
					dir, phase.Index, phase.Path, transport, n, phase.Counters)
			}
			hist, err := senderRTT(dir, hists, phase)
			if err != nil {
				c.Err = err.Error()
				return c
			}
			if want == "kernel" {
				allKernel.Merge(hist)
				round.Kernel = Summarize(hist)
			} else {
				allXDP.Merge(hist)
				round.XDP = Summarize(hist)
			}
		}
		h.logf("%s round %d: p50 kernel %v xdp %v, p99 kernel %v xdp %v",
			transport, len(c.Rounds)+1, round.Kernel.P50, round.XDP.P50, round.Kernel.P99, round.XDP.P99)
		c.Rounds = append(c.Rounds, round)
	}
	c.Kernel, c.XDP = Summarize(allKernel), Summarize(allXDP)
	return c
}

// compareReflectors runs the round-trip rounds (their runs in roundOrder) and then the
// throughput runs of both reflectors, and with -control of testpmd a second time (the order
// rotating by one each round).
func (h *harness) compareReflectors(inflights []int) (ReflectorComparison, RateComparison, error) {
	var rtt ReflectorComparison
	var rate RateComparison
	allStackgap, allStamped, allTestpmd, allControl := NewHistogram(), NewHistogram(), NewHistogram(), NewHistogram()
	for round := 1; round <= *flagRounds; round++ {
		var r ReflectorRound
		runs := [...]struct {
			reflector string
			name      string // in the names of the run's files
			tool      string // in the placement table
			stamped   bool
			all       *hdrhistogram.Histogram
			stats     *Stats
		}{
			runReference: {ReflectorTestpmd, ReflectorTestpmd, ReflectorTestpmd, false, allTestpmd, &r.Testpmd},
			runPlain:     {ReflectorStackgap, ReflectorStackgap, ReflectorStackgap + " plain", false, allStackgap, &r.Stackgap},
			runStamped:   {ReflectorStackgap, ReflectorStackgap + "-stamped", ReflectorStackgap + " stamped", true, allStamped, &r.Stamped},
			runControl:   {ReflectorTestpmd, ReflectorTestpmd + "-again", ReflectorTestpmdAgain, false, allControl, &r.Control},
		}
		for _, i := range roundOrder(round, runsPerRound()) {
			run := runs[i]
			name := fmt.Sprintf("rtt-%s-%d", run.name, round)
			res, err := h.runAgainst(run.reflector, run.tool, name, *flagSize, 1, false, run.stamped)
			if err != nil {
				return rtt, rate, fmt.Errorf("round %d: %w", round, err)
			}
			if n := res.phase.Counters.Lost + res.phase.Counters.Duplicated + res.phase.Counters.Reordered; n != 0 {
				h.logf("%s: %d probes lost, duplicated or reordered: %+v", name, n, res.phase.Counters)
			}
			run.all.Merge(res.rtt)
			*run.stats = Summarize(res.rtt)
		}
		h.logf("reflectors round %d: p50 testpmd %v stackgap plain %v stamped %v testpmd again %v, p99 testpmd %v stackgap plain %v stamped %v testpmd again %v",
			round, r.Testpmd.P50, r.Stackgap.P50, r.Stamped.P50, r.Control.P50, r.Testpmd.P99, r.Stackgap.P99, r.Stamped.P99, r.Control.P99)
		rtt.Rounds = append(rtt.Rounds, r)
	}
	rtt.Stackgap, rtt.Stamped, rtt.Testpmd = Summarize(allStackgap), Summarize(allStamped), Summarize(allTestpmd)
	rtt.Control = Summarize(allControl)

	rateRuns := []string{ReflectorTestpmd, ReflectorStackgap}
	if *flagControl {
		rateRuns = append(rateRuns, ReflectorTestpmdAgain)
	}
	for round := 1; round <= *flagRounds; round++ {
		for _, inflight := range inflights {
			for _, i := range roundOrder(round, len(rateRuns)) {
				label := rateRuns[i]
				reflector := label
				if label == ReflectorTestpmdAgain {
					reflector = ReflectorTestpmd
				}
				name := fmt.Sprintf("rate-%s-%d-%d", strings.ReplaceAll(label, " ", "-"), inflight, round)
				res, err := h.runAgainst(reflector, label+", rate", name, rateSize, inflight, true, false)
				if err != nil {
					return rtt, rate, fmt.Errorf("inflight %d: %w", inflight, err)
				}
				run, err := res.rateRun(reflector, inflight, *flagDuration)
				if err != nil {
					return rtt, rate, fmt.Errorf("%s: %w", name, err)
				}
				run.Reflector, run.Round = label, round
				h.logf("%s: %.0f pps", name, run.PPS())
				rate.Runs = append(rate.Runs, run)
			}
		}
	}
	return rtt, rate, nil
}

// reflectorRun is one stackgap AF_XDP phase against one reflector.
type reflectorRun struct {
	phase   results.Phase
	rtt     *hdrhistogram.Histogram
	cpu     map[int]CPUShare // where each CPU's time went in the middle of the phase (nil if unknown)
	testpmd *TestpmdStats    // testpmd's statistics when it was the reflector
}

// rateRun turns a throughput phase into a RateRun.
func (r reflectorRun) rateRun(reflector string, inflight int, d time.Duration) (RateRun, error) {
	c := r.phase.Counters
	run := RateRun{Reflector: reflector, Inflight: inflight, Duration: d,
		Sent: c.Sent, Received: c.Received, Lost: c.Lost, RTTP50: Summarize(r.rtt).P50,
		SenderCPU: r.cpu[*flagSenderCPU], ReflectorCPU: r.cpu[*flagReflCPU]}
	switch reflector {
	case ReflectorStackgap:
		reflected, ok := c.Reflector["reflected"]
		if !ok {
			return run, fmt.Errorf("stackgap-reflect reported no reflected counter: %v", c.Reflector)
		}
		run.Reflected = reflected - min(reflected, c.Reflector["warmup"])
		if frames, kicks := c.Reflector["tx_frames"], c.Reflector["xsk_tx_kicks"]; kicks > 0 {
			run.Note = fmt.Sprintf("reflector sent %d frames with %d TX kicks (%.2f frames per sendto) and found its RX ring empty on %s of its receives; sender %d frames per %d kicks",
				frames, kicks, float64(frames)/float64(kicks), share(c.Reflector["rx_waits"], c.Reflector["rx_frames"]),
				c.Other["tx_frames"], c.Other["xsk_tx_kicks"])
		}
	case ReflectorTestpmd:
		run.Reflected = c.Received
		if t := r.testpmd; t != nil {
			run.OwnPPS = float64(t.MaxTXPPS())
			run.Note = fmt.Sprintf("testpmd forwarded %d of %d received (sender sent %d incl. warm-up); %d%% of %d receive polls empty; %d TX bursts; %.0f cycles/packet",
				t.TXPackets, t.RXPackets, c.Sent+c.WarmupSent, t.RXEmptyPercent, t.RXBursts, t.TXBursts, t.CyclesPerPacket)
		}
	}
	// A sender that (almost) never finds its RX ring empty always has a reply to handle:
	// it, not the reflector, sets the rate.
	run.Note += fmt.Sprintf("; the sender found its RX ring empty on %s of its receives", share(c.Other["rx_waits"], c.Other["rx_frames"]))
	return run, nil
}

// share formats part/whole as a percentage ("-" without a whole).
func share(part, whole uint64) string {
	if whole == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(part)/float64(whole))
}

// runAgainst runs one stackgap AF_XDP UDP phase (spin) against reflector: stackgap-reflect
// through its control channel, or testpmd (started for this phase only) with --echo. With
// throughput set, testpmd prints periodic and burst statistics. Without stamped the run is
// plain (--no-timestamps: no TX stamps on either host, as testpmd takes none); with it, the
// default --stamp-every 2.
func (h *harness) runAgainst(reflector, tool, name string, size, inflight int, throughput, stamped bool) (reflectorRun, error) {
	var res reflectorRun
	placed, err := h.awaitNear(tool, name)
	if err != nil {
		return res, err
	}
	if prog, err := h.xdpProgram(testbed.B); err != nil {
		return res, err
	} else if prog != 0 {
		return res, fmt.Errorf("before %s: XDP program %d is still attached to %s", name, prog, h.tb.IfaceB)
	}
	dir := filepath.Join(h.outDir, name)
	args := []string{"run", "--path", "xdp", "--transport", "udp", "--size", strconv.Itoa(size),
		"--inflight", strconv.Itoa(inflight), "--duration", flagDuration.String(),
		"--warmup", strconv.FormatUint(uint64(*flagWarmup), 10), "--wait", "spin",
		"--cpu", strconv.Itoa(*flagSenderCPU), "--out", dir, "--quiet"}
	if !stamped {
		args = append(args, "--no-timestamps")
	}
	var stopTestpmd func() (TestpmdStats, error)
	switch reflector {
	case ReflectorStackgap:
		args = append(args, "--peer", h.reflector.String(), "--reflector-cpu", strconv.Itoa(*flagReflCPU))
	case ReflectorTestpmd:
		period := 0
		if throughput {
			period = 1
		}
		stop, err := h.startTestpmd(name, period)
		if err != nil {
			return res, err
		}
		stopTestpmd = stop
		args = append(args, "--echo", "--peer", netip.AddrPortFrom(h.tb.AddrB4, testpmdPort).String())
	default:
		return res, fmt.Errorf("unknown reflector %q", reflector)
	}
	cmd := h.pinned(*flagSenderCPU, filepath.Join(h.binDir, "stackgap"), append(args, strings.Fields(*flagExtra)...)...)
	out, samples, runErr := h.outputWithCPU(testbed.A, cmd)
	if stopTestpmd != nil {
		stats, err := stopTestpmd()
		if err != nil {
			return res, errors.Join(err, runErr)
		}
		res.testpmd = &stats
	}
	if err := h.placedAfter(placed); err != nil {
		return res, err
	}
	if stopTestpmd != nil {
		if waited := settlePageReporting(time.Now()); waited > 0 {
			h.logf("%s: waited %v for free page reporting after testpmd exited", name, waited.Round(100*time.Millisecond))
		}
	}
	if runErr != nil {
		return res, fmt.Errorf("stackgap run against %s: %w: %s", reflector, runErr, lastLines(string(out), 5))
	}
	r, err := results.Load(dir)
	if err != nil {
		return res, err
	}
	if len(r.Phases) != 1 || r.Phases[0].Path != "xdp" || r.Phases[0].Transport != "udp" {
		return res, fmt.Errorf("%s: want one xdp udp phase, got %d phases", dir, len(r.Phases))
	}
	res.phase = r.Phases[0]
	res.cpu = measuredShares(samples, res.phase.Started, *flagDuration)
	hists, err := results.LoadHlog(dir)
	if err != nil {
		return res, err
	}
	if res.rtt, err = senderRTT(dir, hists, res.phase); err != nil {
		return res, err
	}
	return res, nil
}

// outputWithCPU runs cmd in side's namespace like output and reads /proc/stat every 100 ms
// while it runs.
func (h *harness) outputWithCPU(side testbed.Side, cmd *exec.Cmd) ([]byte, []cpuSample, error) {
	var buf strings.Builder
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := h.tb.Start(side, cmd); err != nil {
		return nil, nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var samples []cpuSample
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return []byte(buf.String()), samples, err
		case <-tick.C:
			if t, err := readProcStat(); err == nil {
				samples = append(samples, cpuSample{at: time.Now(), times: t})
			}
		}
	}
}

func readProcStat() (map[int]CPUTimes, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseProcStat(f)
}

// startTestpmd starts dpdk-testpmd on B's veth end, pinned to the reflector CPU, waits until it
// forwards and checks that its XDP program is attached. The returned stop function stops it
// with SIGINT, removes its runtime directory, checks that its XDP program is gone (detaching a
// left-over one and reporting it) and returns its parsed statistics.
func (h *harness) startTestpmd(name string, statsPeriod int) (stop func() (TestpmdStats, error), err error) {
	var token [4]byte
	if _, err := rand.Read(token[:]); err != nil {
		return nil, err
	}
	prefix := fmt.Sprintf("%s-%d-%s", benchPrefix, os.Getpid(), hex.EncodeToString(token[:]))
	runtimeDir := filepath.Join("/var/run/dpdk", prefix)
	// DPDK creates /var/run/dpdk too when there is none; remove it again then (if empty).
	removeRuntimeDir := func() error { return os.RemoveAll(runtimeDir) }
	if _, err := os.Stat(filepath.Dir(runtimeDir)); errors.Is(err, fs.ErrNotExist) {
		removeRuntimeDir = func() error {
			err := os.RemoveAll(runtimeDir)
			os.Remove(filepath.Dir(runtimeDir)) // fails, harmlessly, when something else is in it
			return err
		}
	}
	logPath := filepath.Join(h.outDir, name+"-testpmd.log")
	// testpmd writes its standard output through stdio: into a pipe that is block-buffered, and
	// the ready line would only arrive when it exits. stdbuf -oL makes it line-buffered.
	cmd := h.pinned(*flagReflCPU, "stdbuf", append([]string{"-oL", "dpdk-testpmd"},
		TestpmdArgs(h.tb.IfaceB, *flagReflCPU, prefix, statsPeriod)...)...)
	// Without --stats-period testpmd waits for a line on standard input: keep it open.
	stdin, stdinW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdin = stdin
	stopProcess, err := h.startAndWaitFor(testbed.B, cmd, TestpmdReadyLine, logPath)
	stdin.Close()
	if err != nil {
		stdinW.Close()
		return nil, errors.Join(err, removeRuntimeDir(), h.detachLeftover("testpmd"))
	}
	stop = func() (TestpmdStats, error) {
		errs := []error{stopProcess()}
		stdinW.Close()
		errs = append(errs, removeRuntimeDir(), h.detachLeftover("testpmd"))
		if err := errors.Join(errs...); err != nil {
			return TestpmdStats{}, err
		}
		f, err := os.Open(logPath)
		if err != nil {
			return TestpmdStats{}, err
		}
		defer f.Close()
		stats, err := ParseTestpmdOutput(f)
		if err != nil {
			return stats, fmt.Errorf("%s: %w", logPath, err)
		}
		return stats, nil
	}
	if prog, err := h.xdpProgram(testbed.B); err != nil || prog == 0 {
		_, stopErr := stop()
		return nil, errors.Join(fmt.Errorf("testpmd is forwarding but no XDP program is attached to %s", h.tb.IfaceB), err, stopErr)
	}
	return stop, nil
}

// xdpProgram returns the id of the XDP program attached to side's veth end (0: none).
func (h *harness) xdpProgram(side testbed.Side) (uint32, error) {
	var id uint32
	err := h.tb.Do(side, func() error {
		link, err := netlink.LinkByName(h.tb.Iface(side))
		if err != nil {
			return fmt.Errorf("look up %s: %w", h.tb.Iface(side), err)
		}
		if x := link.Attrs().Xdp; x != nil && x.Attached {
			id = x.ProgId
		}
		return nil
	})
	return id, err
}

// detachLeftover removes an XDP program that owner left attached to B's veth end (testpmd
// attaches through netlink, not a bpf_link, so a killed testpmd leaves it) and reports it.
func (h *harness) detachLeftover(owner string) error {
	prog, err := h.xdpProgram(testbed.B)
	if err != nil || prog == 0 {
		return err
	}
	detachErr := h.tb.Do(testbed.B, func() error {
		link, err := netlink.LinkByName(h.tb.IfaceB)
		if err != nil {
			return err
		}
		return netlink.LinkSetXdpFd(link, -1)
	})
	return errors.Join(fmt.Errorf("%s left XDP program %d attached to %s (detached)", owner, prog, h.tb.IfaceB), detachErr)
}

// lastLines returns the last n lines of s, for error messages.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// readPageReporting reads the free page reporting interrupts of /proc/interrupts
// (PageReportingInterrupts); ok is false without them.
func readPageReporting() (total uint64, ok bool) {
	f, err := os.Open("/proc/interrupts")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	return PageReportingInterrupts(f)
}

// settlePageReporting waits, after a process that freed much memory exited at exited, until
// the VM's free page reporting is over (pageReportingSettled), and returns how long after
// exited it returned. On a machine without free page reporting it returns 0 at once.
func settlePageReporting(exited time.Time) time.Duration {
	last, ok := readPageReporting()
	if !ok {
		return 0
	}
	lastChange := exited
	for {
		now := time.Now()
		if pageReportingSettled(exited, lastChange, now) {
			return now.Sub(exited)
		}
		time.Sleep(100 * time.Millisecond)
		if n, _ := readPageReporting(); n != last {
			last, lastChange = n, time.Now()
		}
	}
}
