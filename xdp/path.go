package xdp

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/stackgap/stackgap/bench"
	"github.com/stackgap/stackgap/xdp/frame"
)

// PathName is the AF_XDP path's name on the command line and in results.
const PathName = "xdp"

// ErrSessionBusy is wrapped by the error Dial and Listen return when this
// process already runs an AF_XDP session on the same interface and queue.
var ErrSessionBusy = errors.New("an AF_XDP session is already running")

// PathOptions configure the AF_XDP path. The zero value is valid.
type PathOptions struct {
	// Queue is the device queue the AF_XDP socket binds to (optional,
	// default 0). Only probe frames the device receives on this queue reach
	// the session: on a multi-queue NIC steer the flow there (ethtool -N) or
	// use a single queue.
	Queue int
	// Mode is the socket's data path: ModeAuto (default: zero-copy when the
	// driver can, else copy), ModeCopy or ModeZeroCopy (fails when the
	// driver cannot).
	Mode Mode
	// SteerMode is how the steering program attaches: SteerModeAuto
	// (default: driver mode, else generic), SteerModeDriver or
	// SteerModeGeneric.
	SteerMode string
	// HardwareRX loads the device-bound steering program that reads the
	// NIC's RX timestamp (optional, default false; needs driver mode). NIC
	// RX stamping itself (SIOCSHWTSTAMP) must already be on.
	HardwareRX bool
	// NumFrames and FrameSize size the UMEM (optional, defaults
	// DefaultNumFrames and DefaultFrameSize). Up to half of the frames wait
	// in the FILL ring for received frames (when the session's spec says how
	// many probes the sender keeps in flight, just enough for them:
	// FillFramesFor); the others are for sending.
	NumFrames, FrameSize uint32
	// DropPercent makes the steering program of the session's interface
	// drop this share (0 to 100) of the frames of live probe flows before
	// they reach any AF_XDP socket, to emulate loss (optional, default 0:
	// off; see Steering.SetDropPercent). It is set when a session opens and
	// applies to every session on the interface until the program detaches
	// with the last of them; 0 leaves the program's share as it is.
	DropPercent int
	// ReuseUMEM keeps the UMEM memory of a session that closes for the next
	// one (Options.ReuseUMEM; optional, default false). A reflector, which
	// opens session after session, sets it and calls ReleaseUMEMs when done.
	ReuseUMEM bool
}

func (o PathOptions) withDefaults() PathOptions {
	if o.Mode == "" {
		o.Mode = ModeAuto
	}
	if o.SteerMode == "" {
		o.SteerMode = SteerModeAuto
	}
	return o
}

// validate checks options that already have their defaults. Frame geometry
// is checked by Open, which knows the page size.
func (o PathOptions) validate() error {
	if o.Queue < 0 || o.Queue >= 1<<16 {
		return fmt.Errorf("invalid af_xdp queue %d: want 0 to 65535", o.Queue)
	}
	if _, err := ParseMode(string(o.Mode)); err != nil {
		return err
	}
	switch o.SteerMode {
	case SteerModeAuto, SteerModeDriver, SteerModeGeneric:
	default:
		return fmt.Errorf("invalid steering mode %q: want %s, %s or %s", o.SteerMode, SteerModeAuto, SteerModeDriver, SteerModeGeneric)
	}
	if err := validDropPercent(o.DropPercent); err != nil {
		return fmt.Errorf("invalid path options: %w", err)
	}
	if o.HardwareRX && o.SteerMode == SteerModeGeneric {
		return errors.New("invalid path options: hardware RX timestamps need the steering program in driver mode, not generic")
	}
	return nil
}

// Path is the AF_XDP bypass path as the engine sees it (bench.Path). Each
// Dial or Listen opens one session: an AF_XDP socket on the interface that
// holds the local address, the steering program on that interface
// redirecting the session's UDP or TCP port to the socket, and an ordinary
// kernel socket of the same protocol that keeps the port reserved for the
// session's lifetime.
//
// The probe frames are built in user space and match the kernel path's:
// Ethernet II, IPv4 (DF, TTL 64) or IPv6 (hop limit 64, a flow label), UDP
// or TCP with its checksum computed. TCP sessions run a userspace TCP
// endpoint (package utcp) whose segments have the kernel's sizes and option
// layout.
//
// Dial and Listen work in the network namespace of the calling thread.
type Path struct {
	opts PathOptions
}

var _ bench.Path = (*Path)(nil)

// NewPath returns the AF_XDP path. Options are checked by Dial and Listen.
func NewPath(o PathOptions) *Path { return &Path{opts: o.withDefaults()} }

// Name returns PathName.
func (*Path) Name() string { return PathName }

// Options returns the path's effective options.
func (p *Path) Options() PathOptions { return p.opts }

// checkTransport accepts UDP and TCP; "" means UDP.
func checkTransport(t string) error {
	switch t {
	case "udp", "", "tcp":
		return nil
	}
	return fmt.Errorf("transport %q not supported by the af_xdp path (want udp or tcp)", t)
}

// waitStrategyOf maps the engine's wait strategy to the socket's. The
// engine holds kernel "block" and AF_XDP "poll" equal (both sleep in the
// kernel until a frame arrives), so block is an alias of poll.
func waitStrategyOf(w bench.WaitStrategy) (WaitStrategy, error) {
	switch w {
	case bench.WaitPoll, bench.WaitBlock, "":
		return WaitPoll, nil
	case bench.WaitSpin:
		return WaitSpin, nil
	}
	return "", fmt.Errorf("wait strategy %q not supported by the af_xdp path (want %s, %s or %s)",
		w, bench.WaitPoll, bench.WaitSpin, bench.WaitBlock)
}

// udpHeaderBytes is what IP and UDP add to a probe payload.
func udpHeaderBytes(addr netip.Addr) int {
	if addr.Is4() {
		return frame.IPv4HeaderLen + frame.UDPHeaderLen
	}
	return frame.IPv6HeaderLen + frame.UDPHeaderLen
}

// tcpMSS is the MSS a TCP session announces: what fits in one IP packet
// within the interface MTU (as the kernel computes it) and in one UMEM frame.
func tcpMSS(addr netip.Addr, mtu int, frameCapacity uint32) int {
	packet := min(mtu, int(frameCapacity)-frame.EthernetHeaderLen)
	if addr.Is4() {
		return packet - frame.IPv4HeaderLen - frame.TCPHeaderLen
	}
	return packet - frame.IPv6HeaderLen - frame.TCPHeaderLen
}

// checkProbeFits checks that a UDP probe payload of size bytes fits in one
// IP packet within the interface MTU and in one UMEM frame. A TCP probe of
// any valid size fits: the stream spreads it over segments of at most the
// MSS, which only has to leave room for the TCP options.
func checkProbeFits(size int, tcp bool, addr netip.Addr, ifname string, mtu int, frameCapacity uint32) error {
	if tcp {
		if mss := tcpMSS(addr, mtu, frameCapacity); mss < minTCPMSS {
			return fmt.Errorf("tcp needs an MSS of at least %d bytes: MTU %d of %s and AF_XDP frame capacity %d leave %d", minTCPMSS, mtu, ifname, frameCapacity, mss)
		}
		return nil
	}
	if size <= 0 {
		return nil // the engine always sets a size; without one Send checks each probe
	}
	packet := size + udpHeaderBytes(addr)
	ethernet := packet + frame.EthernetHeaderLen
	if packet > mtu || ethernet > int(frameCapacity) {
		return fmt.Errorf("probe size %d does not fit: %d-byte IP packet (%d-byte Ethernet frame) with MTU %d of %s and AF_XDP frame capacity %d",
			size, packet, ethernet, mtu, ifname, frameCapacity)
	}
	return nil
}

// minTCPMSS is the smallest MSS a TCP session accepts (utcp's lower bound).
const minTCPMSS = 64

// pathCounters are a session's own counters, besides the socket's and the
// steering program's.
type pathCounters struct {
	RxFrames         uint64 // frames taken off the RX ring
	RxProbes         uint64 // probes returned by Recv
	RxBadFrames      uint64 // frames that do not parse (truncated, malformed, bad IPv4 header checksum)
	RxForeignFrames  uint64 // frames that parse but are not of the session's protocol, address and port
	RxBadChecksum    uint64 // probes whose UDP checksum does not verify (accepted: see Recv; ReflectBurst: only those left to an offload)
	RxMissingMeta    uint64 // frames without valid steering metadata (no XDP hook stamp)
	RxHardwareStamps uint64 // frames with a NIC RX stamp, converted to CLOCK_REALTIME
	// RxHardwareUnconverted and TxHardwareUnconverted count NIC stamps left
	// out because the NIC's PTP clock could not be read (see the notes).
	RxHardwareUnconverted uint64
	TxHardwareUnconverted uint64
	RxTooLong             uint64 // probes longer than the caller's buffer
	// RxWaits counts the receives that found the RX ring empty and waited:
	// compared with RxFrames, how often the Conn had nothing to do (a
	// saturated one never waits).
	RxWaits uint64
	// RxBursts counts ReflectBurst's bursts (each sent with one kick):
	// RxFrames per RxBursts is a burst reflector's mean burst size.
	RxBursts uint64
	// RxJoined counts frames that arrived while a burst was handled and
	// joined it.
	RxJoined        uint64
	TxFrames        uint64 // frames put on the TX ring
	TxCompletions   uint64 // frames back from the completion ring
	TxMissingStamps uint64 // completions without a TX timestamp
	TxUnmatched     uint64 // completions of frames no Send index belongs to
	TxStampsDropped uint64 // TX stamps dropped because TxStamps was not called for too long
	TxNoFrame       uint64 // Send found no free UMEM frame
	TxErrors        uint64 // Send failures after a frame was built
}

// counterMap merges a session's counters into the map Reporter.Counters
// returns, leaving zero counters out.
func counterMap(c pathCounters, s Stats, st SteerStats, steerOK bool) map[string]uint64 {
	m := map[string]uint64{}
	add := func(name string, v uint64) {
		if v != 0 {
			m[name] = v
		}
	}
	add("rx_frames", c.RxFrames)
	add("rx_probes", c.RxProbes)
	add("rx_bad_frames", c.RxBadFrames)
	add("rx_foreign_frames", c.RxForeignFrames)
	add("rx_bad_checksum", c.RxBadChecksum)
	add("rx_missing_metadata", c.RxMissingMeta)
	add("rx_hardware_stamps", c.RxHardwareStamps)
	add("rx_hardware_unconverted", c.RxHardwareUnconverted)
	add("tx_hardware_unconverted", c.TxHardwareUnconverted)
	add("rx_too_long", c.RxTooLong)
	add("rx_waits", c.RxWaits)
	add("rx_bursts", c.RxBursts)
	add("rx_joined", c.RxJoined)
	add("tx_frames", c.TxFrames)
	add("tx_completions", c.TxCompletions)
	add("tx_missing_stamps", c.TxMissingStamps)
	add("tx_unmatched_completions", c.TxUnmatched)
	add("tx_stamps_dropped", c.TxStampsDropped)
	add("tx_no_frame", c.TxNoFrame)
	add("tx_errors", c.TxErrors)
	add("xsk_rx_dropped", s.RxDropped)
	add("xsk_rx_invalid_descs", s.RxInvalidDescs)
	add("xsk_tx_invalid_descs", s.TxInvalidDescs)
	add("xsk_rx_ring_full", s.RxRingFull)
	add("xsk_rx_fill_ring_empty", s.RxFillRingEmptyDescs)
	add("xsk_tx_ring_empty", s.TxRingEmptyDescs)
	add("xsk_tx_kicks", s.TxKicks)
	add("xsk_tx_kick_retries", s.TxKickRetries)
	add("xsk_rx_kicks", s.RxKicks)
	add("xsk_polls", s.Polls)
	if steerOK {
		add("steer_redirected", st.Redirected)
		add("steer_passed", st.Passed)
		add("steer_no_socket", st.NoSocket)
		add("steer_not_probe", st.NotProbe)
		add("steer_meta_failed", st.MetaFailed)
		add("steer_dropped", st.Dropped)
		add("steer_prog_runs", st.Runs)
		add("steer_prog_run_ns", uint64(st.RunTime))
	}
	return m
}

// sessionNotes describes a session for the report: what the socket, the
// steering program and the timestamp sources turned out to be.
type sessionNotes struct {
	info            Info
	steerMode       string
	steerFallback   string
	steerShared     bool // the steering program was attached by an earlier session
	hardwareRX      bool // the device-bound program variant is attached
	hardwareAsked   bool
	busyPollAsked   bool
	dropPercent     int // the steering program's emulated loss, percent
	counters        pathCounters
	lastHardwareErr error  // last non-nil bpf_xdp_metadata_rx_timestamp error
	hardwareClock   string // how NIC stamps are converted to CLOCK_REALTIME ("": none asked for)
	noTimestamps    bool   // the session takes no stamps
}

func (n sessionNotes) lines() []string {
	var out []string
	driver := n.info.Driver
	if driver == "" {
		driver = "unknown driver"
	}
	switch {
	case n.info.Mode == ModeZeroCopy:
		out = append(out, "af_xdp socket in zero-copy mode")
	case n.info.ZeroCopyNote != "":
		out = append(out, fmt.Sprintf("af_xdp socket in copy mode: %s", n.info.ZeroCopyNote))
	default:
		out = append(out, "af_xdp socket in copy mode (requested)")
	}
	chunks := "aligned"
	if n.info.UnalignedChunks {
		chunks = "unaligned"
	}
	out = append(out, fmt.Sprintf("af_xdp socket on %s (driver %s) queue %d, UMEM in %s-chunk mode; FILL ring kept at %d of the %d UMEM frames",
		n.info.Interface, driver, n.info.QueueID, chunks, n.info.FillFrames, n.info.NumFrames))
	steer := fmt.Sprintf("steering program attached in %s mode", n.steerMode)
	if n.steerShared {
		steer += " (shared with an earlier session on this interface; its mode and counters are the interface's)"
	}
	out = append(out, steer)
	if n.steerFallback != "" {
		out = append(out, "steering fell back to generic mode: "+n.steerFallback)
	}
	if n.dropPercent > 0 {
		out = append(out, fmt.Sprintf("emulated loss: the steering program on %s drops %d%% of the probe flows' frames (counter steer_dropped)", n.info.Interface, n.dropPercent))
	}
	switch n.info.BusyPoll {
	case BusyPollActive:
		out = append(out, "busy polling active (the queue has a NAPI id)")
	case BusyPollInert:
		out = append(out, fmt.Sprintf("busy polling requested but inert: %s queue %d has no NAPI id (%s does not link queues to NAPI instances)", n.info.Interface, n.info.QueueID, driver))
	default:
		if n.busyPollAsked {
			out = append(out, "busy polling requested but not set")
		}
	}
	switch {
	case !n.hardwareAsked:
		out = append(out, "NIC RX hardware stamps not requested (PathOptions.HardwareRX)")
	case !n.hardwareRX:
		out = append(out, "NIC RX hardware stamps requested but unavailable: the device-bound steering program is not attached")
	case n.counters.RxProbes > 0 && n.counters.RxHardwareStamps == 0 && n.counters.RxHardwareUnconverted == 0:
		why := "returns no stamp"
		if n.lastHardwareErr != nil {
			why = "fails: " + n.lastHardwareErr.Error()
		}
		out = append(out, fmt.Sprintf("NIC RX hardware stamps unavailable: %s: bpf_xdp_metadata_rx_timestamp %s", driver, why))
	case n.counters.RxHardwareStamps > 0:
		out = append(out, "NIC RX hardware stamps present")
	case n.counters.RxHardwareUnconverted > 0:
		out = append(out, fmt.Sprintf("NIC RX hardware stamps present but left out: %d could not be converted to CLOCK_REALTIME", n.counters.RxHardwareUnconverted))
	}
	switch {
	case n.noTimestamps:
	case n.info.TxMetadataLen == 0:
		out = append(out, "tx stamp: none (the kernel refused UMEM TX metadata: "+n.info.TxMetadataNote+")")
	case n.info.Mode == ModeZeroCopy:
		out = append(out, "tx stamp: driver completion stamp (zero-copy), reported as tx_hardware, converted from the NIC's PTP clock")
	default:
		out = append(out, "tx stamp: sw_completion (copy mode): the kernel's software completion stamp, not a wire time")
	}
	if n.hardwareClock != "" {
		out = append(out, n.hardwareClock)
	}
	if n.noTimestamps {
		out = append(out, "timestamping off: no TX completion stamps requested, the steering program's RX metadata (XDP hook stamp) not read")
	}
	return out
}
