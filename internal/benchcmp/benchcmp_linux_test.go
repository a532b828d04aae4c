//go:build linux

package benchcmp

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/stackgap/stackgap/internal/testbed"
	"github.com/stackgap/stackgap/internal/testutil"
	"github.com/stackgap/stackgap/results"
)

// benchPrefix names this package's testbeds (and is checked for leaks in TestMain).
const benchPrefix = "sgbench"

// Flags of BenchmarkStackgapVsSockperf (after -args).
var (
	flagDuration = flag.Duration("duration", 2*time.Second,
		"sockperf's -t, rounded to whole seconds (at least 1 s); stackgap measures for sockperf's measured window of the same round")
	flagRounds     = flag.Int("rounds", 9, "alternations [sockperf, stackgap plain, stackgap stamped, sockperf again] per wait strategy and transport")
	flagControl    = flag.Bool("control", true, "run the reference tool (sockperf, testpmd) a second time in every round, as a control: its ratio to the first run is what noise alone does to a ratio")
	flagSize       = flag.Int("size", 64, "UDP payload / TCP message size in bytes, for both tools")
	flagWarmup     = flag.Uint("warmup", 10000, "stackgap warm-up probes (sockperf warms up for 400 ms of its own)")
	flagWaits      = flag.String("waits", "block,spin", "wait strategies to compare")
	flagTransports = flag.String("transports", "udp,tcp", "transports to compare")
	flagSenderCPU  = flag.Int("sender-cpu", 0, "CPU of the sender / sockperf client (whole process)")
	flagReflCPU    = flag.Int("reflector-cpu", 1, "CPU of the reflector / sockperf server (whole process)")
	flagExtra      = flag.String("stackgap-flags", "", "extra flags for both modes of stackgap run, space-separated, after the mode's own (e.g. --inflight 1)")
	flagKeep       = flag.String("keep", "", "keep every raw output (sockperf logs, stackgap run directories) under this directory")
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testutil.CheckNoLeaks(m, benchPrefix))
}

// Wait-strategy mapping, established with `strace -f` of sockperf 3.7 (Debian) between two
// namespaces on Linux 6.18:
//
//   - sockperf's default with one socket prints "using recvfrom() to block on socket(s)": the
//     client does sendto + blocking recvfrom(fd, buf, 64, MSG_NOSIGNAL) per message and the
//     server blocking recvfrom + sendto, one of each per round trip, no EAGAIN, no poll. That is
//     stackgap --wait block (one blocking recvmsg per probe on both ends).
//   - --nonblocked sets O_NONBLOCK with fcntl and then loops recvfrom until it stops returning
//     EAGAIN, with no sleep, poll or yield in between (strace -c: 446649 of 499859 server
//     recvfrom calls failed with EAGAIN). That is stackgap --wait spin (recvmsg with
//     MSG_DONTWAIT in a loop). The TCP server also polls its non-blocking listening socket
//     with accept (EAGAIN) on every turn of that loop.
//   - -F epoll / -F poll / -F select (which need a feed file, -f) add an epoll_wait/poll call
//     with a 10 ms timeout before each recvfrom: blocking in the multiplexer, a third syscall
//     per round trip that stackgap does not make, so they match neither strategy.
//
// sockperf's -m is the whole UDP payload / TCP message including its own 14-byte header;
// stackgap's --size is the whole payload including its 18-byte header. tcpdump in the sender's
// namespace shows "UDP, length 64" and TCP segments of "length 64" for both tools with 64, so
// the bytes on the wire are the same. Both set TCP_NODELAY.
func sockperfWaitFlags(wait string) ([]string, error) {
	switch wait {
	case "block":
		return nil, nil
	case "spin":
		return []string{"--nonblocked"}, nil
	}
	return nil, fmt.Errorf("unknown wait strategy %q (want block or spin)", wait)
}

func sockperfTransportFlags(transport string) ([]string, error) {
	switch transport {
	case "udp":
		return nil, nil
	case "tcp":
		return []string{"--tcp"}, nil
	}
	return nil, fmt.Errorf("unknown transport %q (want udp or tcp)", transport)
}

// stackgapMode is one way BenchmarkStackgapVsSockperf runs stackgap.
type stackgapMode struct {
	name  string   // "plain" or "stamped"
	flags []string // stackgap run flags of the mode
}

var (
	// plainMode is the harness alone: no kernel timestamping, so receives carry no control
	// data. The targets judge this mode.
	plainMode = stackgapMode{"plain", []string{"--no-timestamps"}}
	// stampedMode is stackgap's default: TX stamps on every 2nd probe, RX stamps on all, rtt
	// from the unstamped probes. Its ratios show what observing the layers costs.
	stampedMode = stackgapMode{"stamped", []string{"--stamp-every", "2"}}
)

// BenchmarkStackgapVsSockperf runs sockperf ping-pong --full-rtt and stackgap's kernel path in
// two modes (plain: --no-timestamps; stamped: --stamp-every 2) alternately between the two
// namespaces of one testbed, with the same payload size, CPU placement and wait strategy, and
// prints the three round-trip distributions and the ratios stackgap/sockperf. It reports the
// plain ratios, which the targets judge, as metrics "<transport>-<wait>-p50-ratio" and
// "…-p99-ratio", the stamped ones as "<transport>-<wait>-stamped-p50-ratio" and
// "…-stamped-p99-ratio", and with -control (the default) sockperf's second run of each round
// over its first as "<transport>-<wait>-control-p50-ratio" and "…-control-p99-ratio". b.N is
// ignored: one iteration is the whole comparison (use -benchtime 1x).
func BenchmarkStackgapVsSockperf(b *testing.B) {
	testutil.RequireRoot(b)
	testutil.RequireTool(b, "sockperf")
	testutil.RequireTool(b, "taskset")
	testutil.RequireTool(b, "go")
	waits, transports := strings.Split(*flagWaits, ","), strings.Split(*flagTransports, ",")
	for _, w := range waits {
		if _, err := sockperfWaitFlags(w); err != nil {
			b.Fatal(err)
		}
	}
	for _, t := range transports {
		if _, err := sockperfTransportFlags(t); err != nil {
			b.Fatal(err)
		}
	}
	if *flagRounds < 1 {
		b.Fatalf("invalid -rounds %d", *flagRounds)
	}

	h := newHarness(b)
	h.printHeader(os.Stdout)
	var cs []Comparison
	for b.Loop() {
		cs = cs[:0]
		for _, wait := range waits {
			for _, transport := range transports {
				c, err := h.compare(wait, transport)
				if err != nil {
					b.Fatal(err)
				}
				cs = append(cs, c)
			}
		}
	}
	if err := WriteTable(os.Stdout, cs); err != nil {
		b.Fatal(err)
	}
	if err := WritePlacement(os.Stdout, h.placements, h.gate.threshold()); err != nil {
		b.Fatal(err)
	}
	for _, c := range cs {
		b.ReportMetric(c.P50Ratio(), c.Name()+"-p50-ratio")
		b.ReportMetric(c.P99Ratio(), c.Name()+"-p99-ratio")
		b.ReportMetric(c.StampedP50Ratio(), c.Name()+"-stamped-p50-ratio")
		b.ReportMetric(c.StampedP99Ratio(), c.Name()+"-stamped-p99-ratio")
		if *flagControl {
			b.ReportMetric(c.ControlRatio(P50), c.Name()+"-control-p50-ratio")
			b.ReportMetric(c.ControlRatio(P99), c.Name()+"-control-p99-ratio")
		}
	}
	b.ReportMetric(0, "ns/op")
}

// harness holds one testbed with a running stackgap reflector in B.
type harness struct {
	tb             *testbed.Testbed
	binDir, outDir string
	reflector      netip.AddrPort
	seconds        int // sockperf -t
	nextPort       int
	// gate says which CPU placements are near; placements lists every run's.
	gate       placementGate
	placements []Placement
	// logf prints progress lines; failures are returned as errors.
	logf func(format string, args ...any)
}

func newHarness(b *testing.B) *harness {
	b.Helper()
	h := &harness{binDir: b.TempDir(), outDir: *flagKeep, nextPort: 11111, logf: b.Logf}
	if h.outDir == "" {
		h.outDir = b.TempDir()
	} else if err := os.MkdirAll(h.outDir, 0o755); err != nil {
		b.Fatal(err)
	}
	h.seconds = max(1, int(math.Round(flagDuration.Seconds())))
	if err := h.calibratePlacement(); err != nil {
		b.Fatal(err)
	}

	// Build the binaries from this tree, so the comparison measures the code under test.
	build := exec.Command("go", "build", "-o", h.binDir+"/", "./cmd/stackgap", "./cmd/stackgap-reflect")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build stackgap: %v\n%s", err, out)
	}

	tb, err := testbed.New(testbed.Options{Prefix: benchPrefix})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := tb.Close(); err != nil {
			b.Error(err)
		}
	})
	h.tb = tb
	h.reflector = netip.AddrPortFrom(tb.AddrB4, 7878)

	reflect := h.pinned(*flagReflCPU, filepath.Join(h.binDir, "stackgap-reflect"),
		"--listen", h.reflector.String(), "--cpu", strconv.Itoa(*flagReflCPU), "--quiet")
	stop, err := h.startAndWaitFor(testbed.B, reflect, "listening", filepath.Join(h.outDir, "stackgap-reflect.log"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := stop(); err != nil {
			b.Errorf("stop stackgap-reflect: %v", err)
		}
	})
	return h
}

// pinned returns a command that runs name with args with every thread on cpu.
func (h *harness) pinned(cpu int, name string, args ...string) *exec.Cmd {
	return exec.Command("taskset", append([]string{"-c", strconv.Itoa(cpu), name}, args...)...)
}

func (h *harness) printHeader(w io.Writer) {
	env, err := results.CollectEnvironment("")
	if err != nil {
		fmt.Fprintf(w, "machine: %v\n", err)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	version, _ := exec.Command("sockperf", "--version").CombinedOutput()
	fmt.Fprintf(w, "machine: kernel %s, %s, %d CPUs, clocksource %s, load %s\n",
		env.Kernel, env.CPUModel, env.CPUs, env.ClockSource, strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Fprintf(w, "sockperf: %s\n", strings.TrimSpace(strings.SplitN(string(version), "\n", 2)[0]))
	fmt.Fprintf(w, "testbed: %s (%s) <-veth-> %s (%s)\n", h.tb.NamespaceA, h.tb.AddrA4, h.tb.NamespaceB, h.tb.AddrB4)
	fmt.Fprintf(w, "placement: sender = sockperf client / stackgap on CPU %d, reflector = sockperf server / stackgap-reflect on CPU %d\n",
		*flagSenderCPU, *flagReflCPU)
	fmt.Fprintf(w, "  (whole processes pinned with taskset -c; stackgap also pins its measuring threads with --cpu/--reflector-cpu)\n")
	fmt.Fprintf(w, "  (so the Go runtime's monitor thread wakes on each measuring CPU 80 to 100 times a second during spin runs, which sockperf\n")
	fmt.Fprintf(w, "   has no counterpart of; stackgap gives it a 10 ms timer slack, so it wakes at the scheduler tick and not with a timer\n")
	fmt.Fprintf(w, "   interrupt of its own; it is most of stackgap's spin p99 gap: BENCHMARKS.md, \"The runtime's monitor is the spin p99 gap\")\n")
	h.printPlacementHeader(w)
	fmt.Fprintf(w, "wait: block = sockperf default (blocking recvfrom) vs stackgap --wait block (blocking recvmsg);\n")
	fmt.Fprintf(w, "      spin  = sockperf --nonblocked (recvfrom loop on EAGAIN) vs stackgap --wait spin (recvmsg MSG_DONTWAIT loop); both ends alike\n")
	fmt.Fprintf(w, "payload: %d bytes (sockperf -m / stackgap --size: UDP payload, TCP message); sockperf -t %d s, stackgap --duration = sockperf's measured window, --warmup %d\n",
		*flagSize, h.seconds, *flagWarmup)
	fmt.Fprintf(w, "stackgap modes: plain = %s (the harness alone; judged against the targets), stamped = %s (rtt of the unstamped probes; what observing the layers costs, no target)\n",
		strings.Join(plainMode.flags, " "), strings.Join(stampedMode.flags, " "))
	if *flagExtra != "" {
		fmt.Fprintf(w, "stackgap extra flags (both modes): %s\n", *flagExtra)
	}
	runs := "sockperf, stackgap plain, stackgap stamped"
	if *flagControl {
		runs += ", sockperf again"
	}
	fmt.Fprintf(w, "rounds: %d x [%s] per wait strategy and transport, the order rotating by one each round; percentiles from HDR histograms (3 digits) of every sample\n", *flagRounds, runs)
	if *flagControl {
		fmt.Fprintf(w, "control: sockperf again/sockperf, the same tool twice in every round: what the machine's noise alone does to the ratios, and to their verdicts\n")
	}
}

// runsPerRound is how many runs a round-trip round has: the reference tool (sockperf or
// testpmd), stackgap plain and stackgap stamped, and with -control the reference again.
func runsPerRound() int {
	if *flagControl {
		return 4
	}
	return 3
}

// compare runs the rounds of one wait strategy and transport. The runs of a round take turns at
// going first (roundOrder), so none of them always comes first.
func (h *harness) compare(wait, transport string) (Comparison, error) {
	c := Comparison{Wait: wait, Transport: transport}
	allSockperf, allPlain, allStamped, allControl := NewHistogram(), NewHistogram(), NewHistogram(), NewHistogram()
	var window time.Duration // sockperf's measured window, the length of stackgap's runs
	for round := 1; round <= *flagRounds; round++ {
		var sp, plain, stamped, control *hdrhistogram.Histogram
		for _, run := range roundOrder(round, runsPerRound()) {
			var err error
			switch run {
			case runReference:
				sp, window, err = h.runSockperf("sockperf", wait, transport, fmt.Sprint(round))
			case runControl:
				control, _, err = h.runSockperf(controlTool, wait, transport, fmt.Sprintf("%d-again", round))
			case runPlain:
				plain, err = h.runStackgap(plainMode, wait, transport, round, window)
			case runStamped:
				stamped, err = h.runStackgap(stampedMode, wait, transport, round, window)
			}
			if err != nil {
				return c, fmt.Errorf("%s %s round %d: %w", transport, wait, round, err)
			}
		}
		allSockperf.Merge(sp)
		allPlain.Merge(plain)
		allStamped.Merge(stamped)
		r := Round{Sockperf: Summarize(sp), Plain: Summarize(plain), Stamped: Summarize(stamped)}
		if control != nil {
			allControl.Merge(control)
			r.Control = Summarize(control)
		}
		h.logf("%s %s round %d: p50 sockperf %v plain %v stamped %v again %v, p99 sockperf %v plain %v stamped %v again %v",
			transport, wait, round, r.Sockperf.P50, r.Plain.P50, r.Stamped.P50, r.Control.P50,
			r.Sockperf.P99, r.Plain.P99, r.Stamped.P99, r.Control.P99)
		c.Rounds = append(c.Rounds, r)
	}
	c.Sockperf, c.Plain, c.Stamped = Summarize(allSockperf), Summarize(allPlain), Summarize(allStamped)
	c.Control = Summarize(allControl)
	return c, nil
}

// runSockperf runs one sockperf server in B and one ping-pong client in A and returns the
// round trips of the client's measured window and that window's length. tool names the run in
// the placement table ("sockperf", controlTool), run in the names of its files ("3", "3-again").
func (h *harness) runSockperf(tool, wait, transport, run string) (*hdrhistogram.Histogram, time.Duration, error) {
	waitFlags, _ := sockperfWaitFlags(wait)
	transportFlags, _ := sockperfTransportFlags(transport)
	port := strconv.Itoa(h.nextPort)
	h.nextPort++
	name := fmt.Sprintf("sockperf-%s-%s-%s", transport, wait, run)
	placed, err := h.awaitNear(tool, name)
	if err != nil {
		return nil, 0, err
	}

	serverArgs := append([]string{"server", "-i", h.tb.AddrB4.String(), "-p", port}, transportFlags...)
	serverArgs = append(serverArgs, waitFlags...)
	server := h.pinned(*flagReflCPU, "sockperf", serverArgs...)
	stop, err := h.startAndWaitFor(testbed.B, server, "using ", filepath.Join(h.outDir, name+"-server.log"))
	if err != nil {
		return nil, 0, err
	}
	logPath := filepath.Join(h.outDir, name+".csv")
	clientArgs := append([]string{"ping-pong", "-i", h.tb.AddrB4.String(), "-p", port,
		"-m", strconv.Itoa(*flagSize), "-t", strconv.Itoa(h.seconds), "--full-rtt", "--full-log", logPath},
		transportFlags...)
	clientArgs = append(clientArgs, waitFlags...)
	client := h.pinned(*flagSenderCPU, "sockperf", clientArgs...)
	out, runErr := h.output(testbed.A, client)
	stopErr := stop()
	if err := h.placedAfter(placed); err != nil {
		return nil, 0, err
	}
	if err := os.WriteFile(filepath.Join(h.outDir, name+"-client.log"), out, 0o644); err != nil {
		return nil, 0, err
	}
	if runErr != nil {
		return nil, 0, fmt.Errorf("sockperf client: %w\n%s", runErr, out)
	}
	if stopErr != nil {
		return nil, 0, fmt.Errorf("sockperf server: %w", stopErr)
	}
	sum, err := ParseSockperfOutput(strings.NewReader(string(out)))
	if err != nil {
		return nil, 0, err
	}
	if !sum.FullRTT {
		return nil, 0, errors.New("sockperf printed half round trips despite --full-rtt")
	}
	if sum.Dropped+sum.Duplicated+sum.OutOfOrder != 0 || sum.Sent != sum.Received {
		return nil, 0, fmt.Errorf("sockperf: sent %d received %d dropped %d duplicated %d out of order %d",
			sum.Sent, sum.Received, sum.Dropped, sum.Duplicated, sum.OutOfOrder)
	}
	f, err := os.Open(logPath)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	full, err := ReadFullLog(f)
	if err != nil {
		return nil, 0, err
	}
	if got := uint64(full.RTT.TotalCount()); got != sum.Observations {
		return nil, 0, fmt.Errorf("sockperf full log has %d samples, its summary %d observations", got, sum.Observations)
	}
	return full.RTT, sum.ValidRunTime, nil
}

// runStackgap runs one stackgap kernel-path phase in mode against the reflector and returns
// its sender round-trip histogram (user send → user receive).
func (h *harness) runStackgap(mode stackgapMode, wait, transport string, round int, duration time.Duration) (*hdrhistogram.Histogram, error) {
	dir := filepath.Join(h.outDir, fmt.Sprintf("stackgap-%s-%s-%s-%d", mode.name, transport, wait, round))
	cmd := h.pinned(*flagSenderCPU, filepath.Join(h.binDir, "stackgap"), "run",
		"--peer", h.reflector.String(), "--path", "kernel", "--transport", transport,
		"--size", strconv.Itoa(*flagSize), "--duration", duration.Round(time.Millisecond).String(),
		"--warmup", strconv.FormatUint(uint64(*flagWarmup), 10), "--wait", wait,
		"--cpu", strconv.Itoa(*flagSenderCPU), "--reflector-cpu", strconv.Itoa(*flagReflCPU),
		"--out", dir, "--quiet")
	cmd.Args = append(cmd.Args, mode.flags...)
	cmd.Args = append(cmd.Args, strings.Fields(*flagExtra)...)
	placed, err := h.awaitNear("stackgap "+mode.name, filepath.Base(dir))
	if err != nil {
		return nil, err
	}
	out, runErr := h.output(testbed.A, cmd)
	if err := h.placedAfter(placed); err != nil {
		return nil, err
	}
	if runErr != nil {
		return nil, fmt.Errorf("stackgap run: %w\n%s", runErr, out)
	}
	r, err := results.Load(dir)
	if err != nil {
		return nil, err
	}
	if len(r.Phases) != 1 {
		return nil, fmt.Errorf("stackgap run wrote %d phases, want 1", len(r.Phases))
	}
	phase := r.Phases[0]
	if phase.Transport != transport || phase.Path != "kernel" {
		return nil, fmt.Errorf("stackgap ran a %s %s phase, want kernel %s", phase.Path, phase.Transport, transport)
	}
	if n := phase.Counters.Lost + phase.Counters.Duplicated + phase.Counters.Reordered; n != 0 {
		return nil, fmt.Errorf("stackgap: %d probes lost, duplicated or reordered: %+v", n, phase.Counters)
	}
	hists, err := results.LoadHlog(dir)
	if err != nil {
		return nil, err
	}
	return senderRTT(dir, hists, phase)
}

// senderRTT returns the sender's round-trip histogram of phase from hists, the interval
// histograms of run directory dir (results.LoadHlog), checked against result.json's count.
func senderRTT(dir string, hists map[string]*hdrhistogram.Histogram, phase results.Phase) (*hdrhistogram.Histogram, error) {
	var rtt *results.Summary
	for i, s := range phase.Histograms {
		if s.Host == results.HostSender && s.Name == "rtt" {
			rtt = &phase.Histograms[i]
		}
	}
	if rtt == nil {
		return nil, fmt.Errorf("%s: phase %d: no sender rtt histogram", dir, phase.Index)
	}
	tag := results.PhasePrefix(phase) + "." + results.HostSender + ".rtt"
	hist, ok := hists[tag]
	if !ok {
		return nil, fmt.Errorf("%s: no interval histograms tagged %q", dir, tag)
	}
	if uint64(hist.TotalCount()) != rtt.Count {
		return nil, fmt.Errorf("%s: %q holds %d values, result.json %d", dir, tag, hist.TotalCount(), rtt.Count)
	}
	return hist, nil
}

// output runs cmd in side's namespace and returns its standard output and error, combined.
func (h *harness) output(side testbed.Side, cmd *exec.Cmd) ([]byte, error) {
	var buf strings.Builder
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := h.tb.Run(side, cmd)
	return []byte(buf.String()), err
}

// startAndWaitFor starts cmd in side's namespace, copies its output to logPath and waits until
// a line contains ready. The returned stop function sends SIGINT, waits for the process (kills
// it after 5 s) and returns an error only when the process had to be killed.
func (h *harness) startAndWaitFor(side testbed.Side, cmd *exec.Cmd, ready, logPath string) (stop func() error, err error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := h.tb.Start(side, cmd); err != nil {
		pr.Close()
		pw.Close()
		logFile.Close()
		return nil, err
	}
	pw.Close()
	readyCh := make(chan struct{})
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		seen := false
		for sc.Scan() {
			fmt.Fprintln(logFile, sc.Text())
			if !seen && strings.Contains(sc.Text(), ready) {
				seen = true
				close(readyCh)
			}
		}
		io.Copy(io.Discard, pr)
	}()
	exited := make(chan error, 1)
	go func() {
		<-copied
		exited <- cmd.Wait()
	}()
	stop = func() error {
		defer logFile.Close()
		defer pr.Close()
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
			return nil
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("%s did not end within 5 s of SIGINT; killed", cmd)
		}
	}
	select {
	case <-readyCh:
		return stop, nil
	case <-copied:
		stop()
		out, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("%s ended before it was ready:\n%s", cmd, out)
	case <-time.After(10 * time.Second):
		stop()
		return nil, fmt.Errorf("%s not ready (no line with %q) within 10 s", cmd, ready)
	}
}

// calibratePlacement measures the CPU placement of the sender's and the reflector's CPU every
// placementPoll for placementCalibration, to learn the near round trip before the first run.
func (h *harness) calibratePlacement() error {
	for end := time.Now().Add(placementCalibration); time.Now().Before(end); time.Sleep(placementPoll) {
		rt, err := CacheLineRoundTrip(*flagSenderCPU, *flagReflCPU, placementSample)
		if err != nil {
			return err
		}
		h.gate.observe(rt)
	}
	return nil
}

func (h *harness) printPlacementHeader(w io.Writer) {
	fmt.Fprintf(w, "CPU placement: a cache line bounced between CPU %d and CPU %d came back in %v to %v over %d samples in %v; each run starts\n",
		*flagSenderCPU, *flagReflCPU, h.gate.lowest, h.gate.highest, h.gate.samples, placementCalibration)
	fmt.Fprintf(w, "  once it takes at most %.1f times the lowest seen (near: the host runs both vCPUs on one L3 cache), waiting at most %v\n",
		nearFactor, placementMaxWait)
}

// awaitNear waits, at most placementMaxWait, until the two CPUs are near, and returns the run's
// placement record, for placedAfter to complete.
func (h *harness) awaitNear(tool, run string) (Placement, error) {
	p := Placement{Tool: tool, Run: run}
	start := time.Now()
	for {
		rt, err := CacheLineRoundTrip(*flagSenderCPU, *flagReflCPU, placementSample)
		if err != nil {
			return p, err
		}
		p.Before, p.NearBefore = rt, h.gate.near(rt)
		if p.NearBefore || time.Since(start) >= placementMaxWait {
			p.Waited = time.Since(start)
			return p, nil
		}
		time.Sleep(placementPoll)
	}
}

// placedAfter measures the placement right after p's run and keeps p.
func (h *harness) placedAfter(p Placement) error {
	rt, err := CacheLineRoundTrip(*flagSenderCPU, *flagReflCPU, placementSample)
	if err != nil {
		return err
	}
	p.After, p.NearAfter = rt, h.gate.near(rt)
	h.placements = append(h.placements, p)
	h.logf("%s: CPUs %d and %d: cache line back in %v before (waited %v), %v after",
		p.Run, *flagSenderCPU, *flagReflCPU, p.Before, p.Waited.Round(10*time.Millisecond), p.After)
	return nil
}
