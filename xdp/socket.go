package xdp

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"time"
)

// ErrNotSupported is wrapped by every error that reports a feature the
// device, driver, kernel or platform lacks (for example zero-copy on veth).
var ErrNotSupported = errors.New("not supported")

// ErrNoTxMetadata is returned by Transmit when a TX timestamp is requested
// on a socket whose UMEM was registered without TX metadata.
var ErrNoTxMetadata = errors.New("tx metadata not enabled on this umem")

// Mode selects how the socket moves frames between the driver and the UMEM.
type Mode string

const (
	// ModeAuto tries zero-copy and falls back to copy mode.
	ModeAuto Mode = "auto"
	// ModeCopy copies every frame between the driver and the UMEM (XDP_COPY).
	ModeCopy Mode = "copy"
	// ModeZeroCopy makes the driver DMA into the UMEM (XDP_ZEROCOPY) and
	// fails when the driver cannot.
	ModeZeroCopy Mode = "zerocopy"
)

// ParseMode parses "auto", "copy" or "zerocopy".
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeAuto, ModeCopy, ModeZeroCopy:
		return m, nil
	}
	return "", fmt.Errorf("invalid af_xdp mode %q: want auto, copy or zerocopy", s)
}

// WaitStrategy is how WaitReceive waits for received frames.
type WaitStrategy string

const (
	// WaitPoll sleeps in poll(2) until the RX ring is non-empty.
	WaitPoll WaitStrategy = "poll"
	// WaitSpin re-reads the RX ring producer index without sleeping.
	WaitSpin WaitStrategy = "spin"
)

// BusyPollState says whether socket busy polling is in effect.
type BusyPollState string

const (
	// BusyPollOff: not requested.
	BusyPollOff BusyPollState = "off"
	// BusyPollActive: requested, and the socket has a NAPI id to poll.
	BusyPollActive BusyPollState = "active"
	// BusyPollInert: requested and accepted, but the queue has no NAPI id
	// (SO_INCOMING_NAPI_ID is 0, as on veth), so the kernel never busy polls.
	BusyPollInert BusyPollState = "inert"
)

// BusyPoll holds the socket busy-poll options; the zero value disables them.
type BusyPoll struct {
	// Prefer sets SO_PREFER_BUSY_POLL (needs CAP_NET_ADMIN). Default false.
	Prefer bool
	// Timeout sets SO_BUSY_POLL in whole microseconds. Default 0 (unset).
	Timeout time.Duration
	// Budget sets SO_BUSY_POLL_BUDGET, at most 65535 (raising it needs
	// CAP_NET_ADMIN). Default 0 (unset: the kernel's 8).
	Budget uint32
}

func (b BusyPoll) requested() bool { return b.Prefer || b.Timeout > 0 || b.Budget > 0 }

// Defaults of Options.
const (
	DefaultNumFrames = 4096
	DefaultFrameSize = 4096
	DefaultRingSize  = 2048
)

// Options configures Open. Zero fields take the documented defaults.
type Options struct {
	// Interface is the network device name, in the calling thread's network
	// namespace. Required.
	Interface string
	// QueueID is the device RX/TX queue to bind. Default 0.
	QueueID uint32
	// Mode is the requested data path. Default ModeAuto.
	Mode Mode
	// NumFrames is the number of UMEM frames (chunks). Default 4096.
	NumFrames uint32
	// FrameSize is the UMEM chunk size: a power of two from 2048 to the
	// page size. Default 4096.
	FrameSize uint32
	// Headroom is the UMEM headroom reserved before every received frame,
	// after the kernel's own 256-byte XDP_PACKET_HEADROOM; the XDP program's
	// RX metadata lives in XDP_PACKET_HEADROOM, so it rarely needs to be set.
	// Must leave room for a frame: Headroom < FrameSize-256. Default 0.
	Headroom uint32
	// FillRingSize, CompletionRingSize, RxRingSize and TxRingSize are ring
	// sizes in descriptors, powers of two. Default 2048 each.
	FillRingSize       uint32
	CompletionRingSize uint32
	RxRingSize         uint32
	TxRingSize         uint32
	// FillFrames is how many frames the FILL ring holds: Open puts them
	// there and Refill keeps it at that depth. The kernel takes FILL ring
	// frames in order, so every one of them passes through the caches once
	// per turn of the ring: a depth just above what can arrive between two
	// refills keeps the frames in use few and warm (see FillFramesFor).
	// At most FillRingSize and NumFrames/2; default the smaller of the two.
	FillFrames uint32
	// AlignedChunks registers the UMEM in aligned-chunk mode. By default it
	// is registered with XDP_UMEM_UNALIGNED_CHUNK_FLAG, one frame per chunk
	// all the same: for every frame it receives, the kernel then takes a
	// buffer head from a stack of recently used ones, where aligned mode
	// uses the head fixed to the frame's chunk, one per UMEM frame, whose
	// cache lines go cold as the frames take turns in the FILL ring (xp_alloc,
	// net/xdp/xsk_buff_pool.c). A kernel that refuses the flag (before 5.4)
	// gets aligned mode. Default false.
	AlignedChunks bool
	// NoTxMetadata registers the UMEM without the 24-byte TX metadata area,
	// which disables TX timestamps. Default false (metadata requested).
	NoTxMetadata bool
	// BusyPoll sets socket busy-poll options before bind (optional).
	BusyPoll BusyPoll
	// RxMetadata says the caller reads the XDP program's metadata in front
	// of received frames (MetadataBefore): Receive then prefetches that
	// cache line of the next frame too. Default false.
	RxMetadata bool
	// ReuseUMEM makes Close keep the UMEM's memory mapped (up to a few
	// mappings per process) for the next Open with ReuseUMEM and the same
	// UMEM size, which gets it zeroed, instead of unmapping it; ReleaseUMEMs
	// unmaps what is kept. On a VM with free page reporting, memory a
	// process unmaps is handed back to the host about two seconds later,
	// and the host's discarding of it paused the whole VM for 5–26 ms
	// during the next session. For a process that opens socket after
	// socket (stackgap-reflect). Default false.
	ReuseUMEM bool
}

func (o Options) withDefaults() Options {
	if o.Mode == "" {
		o.Mode = ModeAuto
	}
	if o.NumFrames == 0 {
		o.NumFrames = DefaultNumFrames
	}
	if o.FrameSize == 0 {
		o.FrameSize = DefaultFrameSize
	}
	for _, n := range []*uint32{&o.FillRingSize, &o.CompletionRingSize, &o.RxRingSize, &o.TxRingSize} {
		if *n == 0 {
			*n = DefaultRingSize
		}
	}
	if o.FillFrames == 0 {
		o.FillFrames = min(o.FillRingSize, o.NumFrames/2)
	}
	return o
}

// FillFramesFor is a FILL ring depth for a peer that keeps at most inflight
// probes in flight: four frames each (a TCP probe may arrive as several
// segments, with acknowledgements; UDP probes late after a timeout come on
// top of the window) plus two receive bursts, so the ring never runs dry
// between two refills. 0 (unknown) keeps Open's default.
func FillFramesFor(inflight int) uint32 {
	if inflight <= 0 {
		return 0
	}
	return uint32(min(4*inflight+64, 1<<24))
}

// validate checks options that already have their defaults.
func (o Options) validate() error {
	if o.Interface == "" {
		return errors.New("invalid options: interface name is empty")
	}
	if _, err := ParseMode(string(o.Mode)); err != nil {
		return err
	}
	page := uint32(os.Getpagesize())
	if o.FrameSize < 2048 || o.FrameSize > page || bits.OnesCount32(o.FrameSize) != 1 {
		return fmt.Errorf("invalid frame size %d: want a power of two from 2048 to %d (page size)", o.FrameSize, page)
	}
	if o.Headroom >= o.FrameSize-packetHeadroom {
		return fmt.Errorf("invalid headroom %d: must be below frame size %d minus %d (XDP_PACKET_HEADROOM)",
			o.Headroom, o.FrameSize, packetHeadroom)
	}
	if o.NumFrames > 1<<26 {
		return fmt.Errorf("invalid frame count %d: at most %d", o.NumFrames, 1<<26)
	}
	rings := []struct {
		name string
		size uint32
	}{{"fill", o.FillRingSize}, {"completion", o.CompletionRingSize}, {"rx", o.RxRingSize}, {"tx", o.TxRingSize}}
	for _, r := range rings {
		if bits.OnesCount32(r.size) != 1 || r.size > 1<<24 {
			return fmt.Errorf("invalid %s ring size %d: want a power of two up to %d", r.name, r.size, 1<<24)
		}
	}
	if o.FillFrames > o.FillRingSize || o.FillFrames > o.NumFrames/2 {
		return fmt.Errorf("invalid fill depth %d frames: at most the fill ring size %d and half the %d frames", o.FillFrames, o.FillRingSize, o.NumFrames)
	}
	if o.BusyPoll.Timeout < 0 || o.BusyPoll.Timeout > time.Duration(1<<31-1)*time.Microsecond {
		return fmt.Errorf("invalid busy-poll timeout %v: want 0 to %v", o.BusyPoll.Timeout, time.Duration(1<<31-1)*time.Microsecond)
	}
	if o.BusyPoll.Budget > 1<<16-1 {
		return fmt.Errorf("invalid busy-poll budget %d: at most 65535", o.BusyPoll.Budget)
	}
	return nil
}

// Info describes an open socket: the effective options and what the kernel
// granted. Record it with the results of a run.
type Info struct {
	Interface string
	Ifindex   int
	Driver    string // ethtool driver name, "" when unknown
	QueueID   uint32
	RxQueues  int // active RX queues (ethtool channels), else allocated ones

	Mode       Mode   // ModeCopy or ModeZeroCopy: the mode in use
	BindFlags  uint16 // sockaddr_xdp flags of the successful bind
	XDPOptions uint32 // getsockopt(XDP_OPTIONS) after bind
	BindTries  int    // bind attempts, > 1 after EBUSY retries
	// ZeroCopyNote is why zero-copy was not used in ModeAuto ("" otherwise).
	ZeroCopyNote string

	NumFrames uint32
	FrameSize uint32
	Headroom  uint32
	// FrameCapacity is the largest frame that fits at a frame address.
	FrameCapacity uint32

	FillRingSize, CompletionRingSize, RxRingSize, TxRingSize uint32
	// FillFrames is the depth the FILL ring is kept at (Options.FillFrames).
	FillFrames uint32

	// UnalignedChunks says the UMEM was registered with
	// XDP_UMEM_UNALIGNED_CHUNK_FLAG (Options.AlignedChunks).
	UnalignedChunks bool

	// TxMetadataLen is 24 when the UMEM has TX metadata, 0 otherwise.
	TxMetadataLen uint32
	// TxMetadataNote says how TX metadata was registered: "flag"
	// (XDP_UMEM_TX_METADATA_LEN), "legacy" (tx_metadata_len without the flag,
	// kernels 6.8-6.10), "disabled" (Options.NoTxMetadata) or the reason the
	// kernel refused it.
	TxMetadataNote string

	// NAPIID is SO_INCOMING_NAPI_ID after bind: 0 when the queue has no NAPI.
	NAPIID   uint32
	BusyPoll BusyPollState
}

// Completion is one drained completion ring entry.
type Completion struct {
	// Addr is the frame address that was passed to Transmit.
	Addr uint64
	// Timestamp is the TX metadata completion timestamp in nanoseconds, or 0
	// when none was requested or the driver wrote none. In copy mode it is
	// the kernel's software completion stamp (CLOCK_TAI, taken when the TX
	// skb is freed, not a wire time); in zero-copy mode it is the NIC's
	// hardware clock, as the driver reports it.
	Timestamp uint64
	// Stamped says whether Transmit asked for a timestamp for this frame.
	Stamped bool
}
