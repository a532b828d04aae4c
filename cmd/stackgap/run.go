package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/stackgap/stackgap/bench"
	"github.com/stackgap/stackgap/internal/caps"
	"github.com/stackgap/stackgap/internal/cli"
	"github.com/stackgap/stackgap/internal/cpu"
	"github.com/stackgap/stackgap/internal/paths"
	"github.com/stackgap/stackgap/internal/version"
	"github.com/stackgap/stackgap/results"
	"github.com/stackgap/stackgap/xdp"
)

func runCmd(args []string) error {
	fs := flag.NewFlagSet("stackgap run", flag.ContinueOnError)
	peer := fs.String("peer", "", "reflector `HOST[:PORT]` (control port, default 7878)")
	local := fs.String("local", "", "source `address` (optional)")
	pathList := fs.String("path", "kernel", "comma-separated `paths` to measure, alternating in this order")
	transports := fs.String("transport", "udp,tcp", "comma-separated `transports`: udp, tcp")
	rounds := fs.Int("rounds", 1, "repeat the path × transport sequence this many times")
	size := fs.Int("size", 64, "probe payload size in `bytes` (at least 18)")
	duration := fs.Duration("duration", 0, "measured time per phase after warm-up (default 5s unless --count)")
	count := fs.Uint64("count", 0, "measured probes per phase (instead of --duration)")
	inflight := fs.Int("inflight", 1, "probes in flight (closed loop)")
	warmup := fs.Uint64("warmup", 1000, "warm-up probes per phase, left out of the histograms (at most 2s; 0: none)")
	timeout := fs.Duration("timeout", time.Second, "a probe unanswered this long counts as lost")
	wait := fs.String("wait", "block", "wait strategy on both hosts: block (kernel: blocking recvmsg; AF_XDP: need_wakeup + poll) or spin")
	busyPoll := fs.Duration("busy-poll", 0, "set SO_BUSY_POLL to this time on both hosts (needs CAP_NET_ADMIN)")
	cpuID := fs.Int("cpu", -1, "pin the measuring thread to this `cpu` (-1: no pinning)")
	reflectorCPU := fs.Int("reflector-cpu", -1, "ask the reflector to pin its session thread to this `cpu`")
	secretFile := fs.String("secret-file", "", "shared secret `file` for the control channel (mode 0600)")
	stampEvery := fs.Int("stamp-every", 2, "take TX stamps on both hosts for every `N`th probe; the round trip (rtt) is measured on the others (1: stamp every probe)")
	noTimestamps := fs.Bool("no-timestamps", false, "turn kernel timestamping off (to measure what it costs)")
	echo := fs.Bool("echo", false, "the peer is a plain UDP or TCP echo endpoint (an RFC 862 echo service, dpdk-testpmd in 5tswap mode), not stackgap-reflect; its port defaults to 7")
	xdpPass := fs.Bool("kernel-with-xdp-pass", false, "measure the kernel path behind an XDP program that passes every packet, on both hosts")
	var xf paths.XDPFlags
	xf.Register(fs)
	out := fs.String("out", "", "run `directory` for the results (default stackgap-results/run-TIME)")
	quiet := fs.Bool("quiet", false, "print only the run directory")
	if err := cli.ParseFlags(fs, args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q", fs.Arg(0))
	}
	if *peer == "" {
		return usageError("--peer HOST[:PORT] is required")
	}
	o := bench.RunOptions{
		Paths: splitList(*pathList), Transports: splitList(*transports), Rounds: *rounds,
		Size: *size, Duration: *duration, Count: *count, Inflight: *inflight, Warmup: *warmup, NoWarmup: *warmup == 0,
		Timeout: *timeout, Wait: bench.WaitStrategy(*wait), BusyPoll: *busyPoll, CPU: *cpuID, ReflectorCPU: *reflectorCPU,
		NoTimestamps: *noTimestamps, StampEvery: *stampEvery, KernelWithXDPPass: *xdpPass, Build: version.String(),
	}
	// Zero means "default" to RunOptions; on the command line it is a mistake.
	switch {
	case *duration < 0:
		return usageError("invalid duration %v: must be positive", *duration)
	case *inflight < 1:
		return usageError("invalid inflight %d: must be in [1, %d]", *inflight, bench.MaxInflight)
	case *rounds < 1:
		return usageError("invalid rounds %d: must be at least 1", *rounds)
	case *timeout <= 0:
		return usageError("invalid timeout %v: must be positive", *timeout)
	case *stampEvery < 1:
		return usageError("invalid stamp-every %d: must be at least 1", *stampEvery)
	}
	if err := bench.ValidProbeSize(*size); err != nil {
		return usageError("%v", err)
	}
	for _, c := range []struct {
		flag string
		cpu  int
	}{{"--cpu", *cpuID}} {
		if err := cpu.Check(c.cpu); err != nil {
			return usageError("%s: %v", c.flag, err)
		}
	}
	var err error
	o.Echo = *echo
	defPort := uint16(bench.DefaultPort)
	if o.Echo {
		defPort = 7
		if !isFlagSet(fs, "transport") {
			o.Transports = []string{"udp"}
		}
	}
	if o.Peer, err = cli.ParseHostPort(*peer, defPort); err != nil {
		return usageError("--peer: %v", err)
	}
	if *local != "" {
		if o.Local, err = netip.ParseAddr(*local); err != nil {
			return usageError("--local: invalid address %q", *local)
		}
		if paths.InterfaceOf(o.Local) == "" {
			return usageError("--local: no interface has address %v", o.Local)
		}
	}
	xdpOpts, err := xf.Options()
	if err != nil {
		return usageError("%v", err)
	}
	all := paths.Available(xdpOpts)
	o.Defaults()
	if err := o.Validate(all); err != nil {
		return usageError("%v", err)
	}
	if o.BusyPoll > 0 {
		if err := caps.Require("--busy-poll", caps.NetAdmin); err != nil {
			return err
		}
	}
	if slices.Contains(o.Paths, "xdp") || o.KernelWithXDPPass {
		if err := caps.Require("the AF_XDP path (XDP programs and AF_XDP sockets)", caps.NetAdmin, caps.NetRaw, caps.BPF); err != nil {
			return err
		}
	}
	if o.Secret, err = cli.ReadSecret(*secretFile); err != nil {
		return usageError("%v", err)
	}
	dir := *out
	if dir == "" {
		dir = filepath.Join("stackgap-results", "run-"+time.Now().Format("20060102-150405"))
	}
	_, statErr := os.Stat(dir)
	if err := prepareOutDir(dir); err != nil {
		return err
	}
	createdDir := os.IsNotExist(statErr)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	progress := func(s string) {
		if !*quiet {
			fmt.Fprintln(os.Stderr, s)
		}
	}
	started := time.Now()
	rd, runErr := bench.Run(ctx, o, all, progress)
	if rd == nil || (len(rd.Phases) == 0 && runErr != nil) {
		// Nothing was measured: leave no empty result behind.
		if createdDir {
			os.Remove(dir)
		}
		return runErr
	}
	res, series := buildResult(o, xdpOpts, rd, started, dir)
	gaps, err := results.ComputeGaps(res, series, "kernel")
	if err != nil {
		return errors.Join(runErr, err)
	}
	res.Gaps = gaps
	if err := results.WriteRun(dir, res, series); err != nil {
		return errors.Join(runErr, err)
	}
	if !*quiet {
		results.PrintTable(os.Stdout, res)
	}
	fmt.Println("results:", dir)
	if runErr != nil {
		return runErr
	}
	if rd.Interrupted {
		return exitError{code: 130, err: errors.New("interrupted; partial results written")}
	}
	return nil
}

func isFlagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// prepareOutDir makes sure the run directory can be written before anything is measured.
func prepareOutDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("output directory %s: %w", dir, unwrapPathError(err))
	}
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return fmt.Errorf("output directory %s is not writable: %w", dir, unwrapPathError(err))
	}
	f.Close()
	return os.Remove(f.Name())
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// buildResult turns the measured data into the result model.
func buildResult(o bench.RunOptions, xdpOpts xdp.PathOptions, rd *bench.RunData, started time.Time, dir string) (*results.Result, map[int][]*results.Series) {
	env, err := results.CollectEnvironment(paths.InterfaceOf(rd.Local))
	if err != nil {
		env.Notes = append(env.Notes, err.Error())
	}
	env.Reflector = rd.Reflector
	res := &results.Result{
		Schema: results.SchemaVersion, Tool: "stackgap", Version: version.Version, Commit: version.Commit,
		Started: started, Finished: time.Now(), Command: os.Args, Options: effectiveOptions(o, xdpOpts, rd, dir),
		Environment: env,
	}
	series := map[int][]*results.Series{}
	for _, pd := range rd.Phases {
		p := pd.Phase
		res.Phases = append(res.Phases, p)
		series[p.Index] = pd.Series
	}
	return res, series
}

// effectiveOptions records every option the run used, defaults included,
// so the run can be reproduced from its output.
func effectiveOptions(o bench.RunOptions, xdpOpts xdp.PathOptions, rd *bench.RunData, dir string) map[string]any {
	m := map[string]any{
		"peer": o.Peer.String(), "local": rd.Local.String(), "paths": o.Paths, "transports": o.Transports,
		"rounds": o.Rounds, "size": o.Size, "duration": o.Duration.String(), "count": o.Count,
		"inflight": o.Inflight, "warmup": o.Warmup, "max_warmup_time": bench.MaxWarmupTime.String(),
		"timeout": o.Timeout.String(), "wait": string(o.Wait), "busy_poll": o.BusyPoll.String(),
		"cpu": o.CPU, "reflector_cpu": o.ReflectorCPU, "authenticated": o.Secret != nil,
		"timestamping": !o.NoTimestamps, "stamp_every": o.StampEvery, "out": dir, "clock": "CLOCK_REALTIME",
		"control_version": bench.ControlVersion, "probe_version": bench.ProbeVersion,
		"kernel_with_xdp_pass": o.KernelWithXDPPass, "xdp": xdpOpts, "echo": o.Echo,
	}
	if o.Count > 0 {
		m["duration"] = ""
	}
	return m
}
