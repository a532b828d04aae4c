package bench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/stackgap/stackgap/internal/clock"
	"github.com/stackgap/stackgap/results"
)

// RunOptions is a sender's whole measurement. Zero values take the defaults
// set by Defaults; Validate rejects what makes no sense.
type RunOptions struct {
	// Peer is the reflector's control endpoint (required).
	Peer netip.AddrPort
	// Local is the source address (optional; the kernel picks one by route).
	Local netip.Addr
	// Paths are the paths to measure, in phase order (default ["kernel"]).
	Paths []string
	// Transports are the transports to measure, in phase order (default ["udp", "tcp"]).
	Transports []string
	// Rounds repeats the whole path × transport sequence so slow drift of the
	// machine affects every path alike (default 1).
	Rounds int
	// Size is the probe payload size in bytes (default 64).
	Size int
	// Duration is the measured time of each phase after warm-up (default 5 s),
	// unless Count is set.
	Duration time.Duration
	// Count is the number of measured probes per phase (optional; replaces Duration).
	Count uint64
	// Inflight is the number of probes in flight, closed loop (default 1, at most MaxInflight).
	Inflight int
	// Warmup is the number of probes sent first and left out of the histograms;
	// the warm-up also ends after MaxWarmupTime (default 1000, set NoWarmup for none).
	Warmup uint64
	// NoWarmup turns the warm-up off.
	NoWarmup bool
	// Timeout is how long a probe may go unanswered before it counts as lost (default 1 s).
	Timeout time.Duration
	// Wait is the wait strategy on both hosts (default block).
	Wait WaitStrategy
	// BusyPoll sets SO_BUSY_POLL on both hosts when > 0 (optional).
	BusyPoll time.Duration
	// CPU pins the sender's measuring thread (-1: not pinned).
	CPU int
	// ReflectorCPU asks the reflector to pin its session thread (-1: reflector's choice).
	ReflectorCPU int
	// Secret is the shared secret of the control channel (optional).
	Secret []byte
	// NoTimestamps turns off kernel timestamping, to measure what it costs.
	NoTimestamps bool
	// StampEvery takes transmit stamps on both hosts for every Nth probe
	// only (default 2; 1: every probe). The round trip ("rtt") is measured on
	// the other probes, untouched by stamping; stamped probes have their own
	// round-trip histogram ("rtt.stamped"), so the difference is the cost of
	// observing.
	StampEvery int
	// KernelWithXDPPass measures paths that do not use XDP (the kernel path)
	// behind an XDP program that passes every packet, on both hosts.
	KernelWithXDPPass bool
	// Echo sends to a plain echo endpoint at Peer instead of a stackgap
	// reflector: over UDP one that returns each datagram with addresses and
	// ports swapped (an RFC 862 echo service, dpdk-testpmd in 5tswap mode),
	// over TCP one that writes back the bytes it reads. No control channel,
	// no reflector stamps, and replies need not carry the reply flag.
	Echo bool
	// ConnectTimeout bounds connecting to the reflector (default 5 s).
	ConnectTimeout time.Duration
	// Build names the software build in the hello message (optional).
	Build string
}

// controlTimeout bounds one control request and its answer.
const controlTimeout = 15 * time.Second

// MaxInflight bounds RunOptions.Inflight; the per-probe rings hold a multiple of it.
const MaxInflight = 1024

// Defaults fills in unset options.
func (o *RunOptions) Defaults() {
	if len(o.Paths) == 0 {
		o.Paths = []string{"kernel"}
	}
	if len(o.Transports) == 0 {
		o.Transports = []string{"udp", "tcp"}
	}
	if o.Rounds == 0 {
		o.Rounds = 1
	}
	if o.Size == 0 {
		o.Size = 64
	}
	if o.Duration == 0 && o.Count == 0 {
		o.Duration = 5 * time.Second
	}
	if o.Inflight == 0 {
		o.Inflight = 1
	}
	if o.Timeout == 0 {
		o.Timeout = time.Second
	}
	if o.StampEvery == 0 {
		o.StampEvery = 2
	}
	if o.Warmup == 0 && !o.NoWarmup {
		o.Warmup = 1000
	}
	if o.Wait == "" {
		o.Wait = WaitBlock
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 5 * time.Second
	}
}

// Validate checks the options after Defaults, naming the first bad value.
func (o *RunOptions) Validate(paths map[string]Path) error {
	switch {
	case !o.Peer.IsValid():
		return errors.New("no peer given: --peer HOST[:PORT] is required")
	case o.Peer.Port() == 0:
		return fmt.Errorf("invalid peer port 0 in %v", o.Peer)
	case o.Local.IsValid() && o.Local.Is4() != o.Peer.Addr().Unmap().Is4():
		return fmt.Errorf("local address %v and peer %v are of different IP families", o.Local, o.Peer.Addr())
	case o.Rounds < 1:
		return fmt.Errorf("invalid rounds %d: must be at least 1", o.Rounds)
	case o.Duration < 0:
		return fmt.Errorf("invalid duration %v: must be positive", o.Duration)
	case o.Duration > 0 && o.Count > 0:
		return errors.New("--duration and --count exclude each other")
	case o.Inflight < 1 || o.Inflight > MaxInflight:
		return fmt.Errorf("invalid inflight %d: must be in [1, %d]", o.Inflight, MaxInflight)
	case o.Timeout <= 0:
		return fmt.Errorf("invalid timeout %v: must be positive", o.Timeout)
	case o.Timeout > time.Minute:
		return fmt.Errorf("invalid timeout %v: at most 1m", o.Timeout)
	case o.StampEvery < 1:
		return fmt.Errorf("invalid stamp-every %d: must be at least 1", o.StampEvery)
	case o.BusyPoll < 0:
		return fmt.Errorf("invalid busy-poll %v: must not be negative", o.BusyPoll)
	case o.ConnectTimeout <= 0:
		return fmt.Errorf("invalid connect timeout %v", o.ConnectTimeout)
	}
	if err := ValidProbeSize(o.Size); err != nil {
		return err
	}
	if o.Wait != WaitBlock && o.Wait != WaitSpin && o.Wait != WaitPoll {
		return fmt.Errorf("unknown wait strategy %q (block, spin or poll)", o.Wait)
	}
	for _, p := range o.Paths {
		if _, ok := paths[p]; !ok {
			return fmt.Errorf("unknown path %q (available: %s)", p, strings.Join(slices.Sorted(maps.Keys(paths)), ", "))
		}
	}
	for _, t := range o.Transports {
		if t != "udp" && t != "tcp" {
			return fmt.Errorf("unknown transport %q (udp or tcp)", t)
		}
	}
	if o.Echo && o.Secret != nil {
		return errors.New("an echo peer has no control channel to authenticate")
	}
	return nil
}

// PhaseData is one measured phase: its summary fields and every series behind them.
type PhaseData struct {
	Phase  results.Phase
	Series []*results.Series
}

// RunData is everything a run measured, ready to be written by results.WriteRun.
type RunData struct {
	Phases []PhaseData
	// Local is the sender's address on the control connection; its interface
	// is the one the probes leave through.
	Local netip.Addr
	// Reflector describes the reflector's host, as it reported it.
	Reflector *results.Environment
	// Interrupted is set when ctx ended the run early.
	Interrupted bool
}

// Run connects to the reflector and measures every phase. When ctx ends it
// stops the current phase within a few tens of milliseconds and returns what
// was measured so far with Interrupted set.
func Run(ctx context.Context, o RunOptions, paths map[string]Path, progress func(string)) (*RunData, error) {
	o.Defaults()
	if err := o.Validate(paths); err != nil {
		return nil, err
	}
	if progress == nil {
		progress = func(string) {}
	}
	if o.NoTimestamps {
		clock.Calibrate() // before the first phase starts its clock
	}
	var ctl sessionControl
	var local netip.Addr
	if o.Echo {
		e, err := newEchoControl(o)
		if err != nil {
			return nil, err
		}
		ctl, local = e, e.local
	} else {
		cl, err := Dial(ctx, o.Peer, ClientOptions{Local: o.Local, Secret: o.Secret, Timeout: o.ConnectTimeout, Build: o.Build})
		if err != nil {
			return nil, err
		}
		defer cl.Close()
		ctl, local = cl, cl.LocalAddr()
	}
	rd := &RunData{Local: local}
	family := "ipv4"
	if !o.Peer.Addr().Unmap().Is4() {
		family = "ipv6"
	}
	index := 0
	// Paths alternate innermost (kernel, xdp, kernel, xdp …) so slow drift of
	// the machine affects every path alike.
	for round := 0; round < o.Rounds; round++ {
		for _, transport := range o.Transports {
			for _, pathName := range o.Paths {
				progress(fmt.Sprintf("phase %d: %s %s %s", index, pathName, transport, family))
				pd, env, err := runPhase(ctx, ctl, o, paths[pathName], transport, index, rd.Local)
				if env != nil {
					rd.Reflector = env
				}
				if pd != nil {
					pd.Phase.Family = family
					rd.Phases = append(rd.Phases, *pd)
				}
				if ctx.Err() != nil {
					rd.Interrupted = true
					return rd, nil
				}
				if err != nil {
					return rd, fmt.Errorf("phase %d (%s %s): %w", index, pathName, transport, err)
				}
				index++
			}
		}
	}
	return rd, nil
}

func unwrapOpError(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

func newToken() (uint32, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("random session token: %w", err)
	}
	return binary.BigEndian.Uint32(b[:]), nil
}

// runPhase opens one session, runs the probe loop and closes the session.
func runPhase(ctx context.Context, cl sessionControl, o RunOptions, path Path, transport string, index int, local netip.Addr) (*PhaseData, *results.Environment, error) {
	token, err := newToken()
	if err != nil {
		return nil, nil, err
	}
	duration := o.Duration
	if o.Count > 0 {
		// The reflector needs an upper bound; a count-based phase gets one
		// generous enough for a probe every timeout.
		duration = min(time.Duration(o.Count)*o.Timeout/time.Duration(o.Inflight)+MaxWarmupTime, 5*time.Minute)
	}
	params := SessionParams{
		Path: path.Name(), Transport: transport, Size: o.Size, Duration: duration + o.Timeout,
		Token: token, Wait: o.Wait, CPU: o.ReflectorCPU, BusyPoll: o.BusyPoll, Timestamping: !o.NoTimestamps,
		XDPPass: o.KernelWithXDPPass, Inflight: o.Inflight,
	}
	port, env, err := cl.Open(params)
	if err != nil {
		return nil, nil, err
	}
	spec := DialSpec{
		ConnSpec: ConnSpec{Transport: transport, Wait: o.Wait, BusyPoll: o.BusyPoll, Timestamping: !o.NoTimestamps, Size: o.Size,
			Inflight: o.Inflight, XDPPass: o.KernelWithXDPPass},
		Local:  local,
		Remote: netip.AddrPortFrom(o.Peer.Addr().Unmap(), port),
	}
	started := time.Now()
	sl := newSendLoop(o, token, started)
	loopErr := make(chan error, 1)
	var stop, reflectorEnded atomic.Bool
	stopLoop := context.AfterFunc(ctx, func() { stop.Store(true) })
	stopWatch := cl.watch(func() {
		reflectorEnded.Store(true)
		stop.Store(true)
	})
	go func() {
		loopErr <- sl.runOnThread(path, spec, o.CPU, &stop)
	}()
	err = <-loopErr
	stopLoop()
	lostErr := stopWatch()
	if sl.tx == nil {
		// The Conn never opened: no segment histograms, only the round trip's.
		sl.useStamps(StampSet{})
	}
	if lostErr != nil {
		// No report can come: keep what the sender measured.
		pd := sl.result(index, path.Name(), transport, started, &ReflectorReport{CPU: -1})
		pd.Phase.Notes = append(pd.Phase.Notes, "phase cut short: "+lostErr.Error())
		return pd, env, errors.Join(err, lostErr)
	}
	// Close the session even after a failure, so the reflector's report (and
	// its reason for ending) reaches the user.
	rep, cerr := cl.CloseSession()
	if cerr != nil {
		return nil, env, errors.Join(err, cerr)
	}
	pd := sl.result(index, path.Name(), transport, started, rep)
	switch {
	case reflectorEnded.Load():
		pd.Phase.Notes = append(pd.Phase.Notes, "phase cut short: the reflector ended the session")
	case stop.Load():
		pd.Phase.Notes = append(pd.Phase.Notes, "interrupted: the phase was stopped early")
	}
	return pd, env, err
}
