package xdp

import (
	"encoding/binary"
	"fmt"
	"syscall"
	"time"
	"unsafe"

	"github.com/stackgap/stackgap/bpf"
)

// Steering modes accepted by SteerOptions.Mode and reported by Steering.Mode.
const (
	// SteerModeAuto tries driver mode and falls back to generic mode, saying why.
	SteerModeAuto = "auto"
	// SteerModeDriver runs the program in the driver's receive path (native XDP).
	SteerModeDriver = "driver"
	// SteerModeGeneric runs the program on the skb after the driver (SKB mode).
	SteerModeGeneric = "generic"
)

// SteerOptions configure AttachSteering.
type SteerOptions struct {
	// Ifindex is the interface to attach to (required).
	Ifindex int
	// Mode is SteerModeAuto, SteerModeDriver or SteerModeGeneric (optional,
	// default SteerModeAuto).
	Mode string
	// HardwareRX loads the device-bound program variant that reads the NIC's
	// RX timestamp with the bpf_xdp_metadata_rx_timestamp kfunc (optional,
	// default false). It needs driver mode: with SteerModeGeneric it is an
	// error, with SteerModeAuto a fallback to generic mode drops it and
	// Fallback says so.
	HardwareRX bool
}

// Flow names one live probe flow the steering program redirects: packets of
// this IP version and L4 protocol to this destination port. UDP packets must
// also start their payload with the probe magic and version (bench.ProbeMagic,
// bench.ProbeVersion); TCP segments match on the flow alone, so a userspace
// TCP endpoint sees SYN, ACK and FIN segments too.
type Flow struct {
	IPv6 bool
	// Proto is syscall.IPPROTO_UDP or syscall.IPPROTO_TCP.
	Proto   uint8
	DstPort uint16
}

// FlowOptions tune what the steering program does with a flow's frames.
type FlowOptions struct {
	// NoMetadata leaves out the metadata (Meta) in front of the flow's
	// redirected frames, and with it the XDP-hook clock read, for sessions
	// that take no stamps: that read alone costs tens of nanoseconds per
	// frame on the path being measured.
	NoMetadata bool
}

func (f Flow) String() string {
	ip, proto := "ipv4", "proto "+fmt.Sprint(f.Proto)
	if f.IPv6 {
		ip = "ipv6"
	}
	switch f.Proto {
	case syscall.IPPROTO_UDP:
		proto = "udp"
	case syscall.IPPROTO_TCP:
		proto = "tcp"
	}
	return fmt.Sprintf("%s/%s dst port %d", ip, proto, f.DstPort)
}

func (f Flow) validate() error {
	if f.Proto != syscall.IPPROTO_UDP && f.Proto != syscall.IPPROTO_TCP {
		return fmt.Errorf("invalid flow %v: protocol must be UDP (17) or TCP (6)", f)
	}
	if f.DstPort == 0 {
		return fmt.Errorf("invalid flow %v: destination port 0", f)
	}
	return nil
}

// Layout of the program's flows map (see flow_lookup in bpf/steer.c).
const (
	flowBits     = uint32(bpf.SteerFlowFlagsFLOW_BITS)
	flowsPerWord = uint32(bpf.SteerFlowFlagsFLOWS_PER_WORD)
	flowMask     = uint64(1)<<flowBits - 1
)

// slot returns the word of the program's flows map that holds the flow's
// flags, and their bit offset in it.
func (f Flow) slot() (word uint32, shift uint32) {
	slot := uint32(f.DstPort)
	if f.Proto == syscall.IPPROTO_TCP {
		slot |= 1 << 16
	}
	if f.IPv6 {
		slot |= 2 << 16
	}
	return slot / flowsPerWord, slot % flowsPerWord * flowBits
}

// SteerStats are the steering program's counters, summed over CPUs since the
// program was loaded. Every frame the program sees is counted once in
// Redirected, Passed or Dropped; NoSocket and NotProbe break Passed down
// further, and MetaFailed is a subset of Redirected.
type SteerStats struct {
	// Redirected frames got XDP_REDIRECT toward the AF_XDP socket registered
	// for their RX queue. The socket can still drop them (RX ring full, FILL
	// ring empty, socket bound to another queue): the socket's XDP_STATISTICS
	// and the xdp:xdp_redirect_err tracepoint count those, the program cannot.
	Redirected uint64
	// Passed frames went to the kernel stack (XDP_PASS).
	Passed uint64
	// NoSocket probe-flow frames were passed because no socket was
	// registered for their RX queue.
	NoSocket uint64
	// NotProbe frames belonged to a live UDP flow but did not start with the
	// probe magic and version; they were passed.
	NotProbe uint64
	// MetaFailed frames were redirected without metadata because
	// bpf_xdp_adjust_meta failed (driver without metadata support, or no
	// headroom).
	MetaFailed uint64
	// Dropped live probe-flow frames got XDP_DROP on purpose: the share
	// Steering.SetDropPercent asked for, to emulate loss.
	Dropped uint64
	// Runs and RunTime are the kernel's run-time statistics of the program:
	// how many frames it ran for and the time it took, RunTime/Runs its mean
	// cost per frame at the XDP hook. The kernel keeps them only while they
	// are enabled (sysctl kernel.bpf_stats_enabled=1, or BPF_ENABLE_STATS),
	// which costs two clock reads per run, so stackgap never enables them
	// itself; otherwise they stay 0.
	Runs    uint64
	RunTime time.Duration
}

// validDropPercent checks a drop share for SetDropPercent.
func validDropPercent(p int) error {
	if p < 0 || p > 100 {
		return fmt.Errorf("invalid drop percentage %d: want 0 to 100", p)
	}
	return nil
}

// Metadata the steering program writes in front of every redirected frame:
// the SteerMetaSize bytes just before the frame's first byte (in the UMEM,
// desc.Addr-SteerMetaSize .. desc.Addr). The kernel neither clears that area
// nor says whether it was written, so SteerMetaMagic marks valid metadata,
// and a consumer must call ClearSteerMeta before it returns the chunk to the
// FILL ring: otherwise a frame redirected without metadata (MetaFailed)
// would show the stale metadata of an earlier frame.
const (
	SteerMetaSize  = 24
	SteerMetaMagic = 0x53474d31 // "SGM1"
)

// SteerMeta is the decoded metadata of one redirected frame
// (struct meta in bpf/steer.c).
type SteerMeta struct {
	// XDPTAI is bpf_ktime_get_tai_ns() when the program matched the frame:
	// nanoseconds of CLOCK_TAI, the BPF clock closest to the engine's
	// CLOCK_REALTIME (there is no bpf_ktime_get_real_ns). Convert it with
	// TAIToRealtime.
	XDPTAI int64
	// Hardware is the NIC's RX timestamp in nanoseconds of its PTP hardware
	// clock, 0 when there is none (veth returns HardwareErr 0 with 0).
	Hardware uint64
	// HardwareErr is the kfunc's result: 0, ENODATA (no stamp for this
	// frame, or stamping not enabled), EOPNOTSUPP (driver without the
	// kfunc, or the generic program variant).
	HardwareErr syscall.Errno
}

// The decoder below relies on bpf.SteerMeta's layout; these fail to compile if
// bpf2go ever generates a different one.
var (
	_ [SteerMetaSize - unsafe.Sizeof(bpf.SteerMeta{})]struct{}
	_ [unsafe.Sizeof(bpf.SteerMeta{}) - SteerMetaSize]struct{}
	_ [16 - unsafe.Offsetof(bpf.SteerMeta{}.HwErr)]struct{}
	_ [unsafe.Offsetof(bpf.SteerMeta{}.HwErr) - 16]struct{}
)

// ParseSteerMeta decodes the metadata in the SteerMetaSize bytes before a
// frame. ok is false when b is too short or holds no valid metadata.
func ParseSteerMeta(b []byte) (m SteerMeta, ok bool) {
	if len(b) < SteerMetaSize {
		return SteerMeta{}, false
	}
	b = b[len(b)-SteerMetaSize:]
	if binary.NativeEndian.Uint32(b[20:24]) != SteerMetaMagic {
		return SteerMeta{}, false
	}
	m.XDPTAI = int64(binary.NativeEndian.Uint64(b[0:8]))
	m.Hardware = binary.NativeEndian.Uint64(b[8:16])
	if e := int32(binary.NativeEndian.Uint32(b[16:20])); e < 0 {
		m.HardwareErr = syscall.Errno(-e)
	}
	return m, true
}

// ClearSteerMeta invalidates the metadata in the SteerMetaSize bytes before a
// frame (see SteerMetaMagic).
func ClearSteerMeta(b []byte) {
	if len(b) < SteerMetaSize {
		return
	}
	clear(b[len(b)-4:])
}

// TAIToRealtime converts a CLOCK_TAI stamp in nanoseconds (the XDP program's
// stamp, AF_XDP copy-mode TX completion stamps) to CLOCK_REALTIME with an
// offset from MeasureTAIOffset. Zero stays zero ("not taken").
func TAIToRealtime(taiNs int64, taiOffset time.Duration) int64 {
	if taiNs == 0 {
		return 0
	}
	return taiNs - int64(taiOffset)
}
