package bench

import (
	"errors"
	"net/netip"
	"time"

	"github.com/stackgap/stackgap/internal/clock"
)

// Every stamp handled by the engine is in nanoseconds of one clock per host:
// CLOCK_REALTIME, the clock SO_TIMESTAMPING software stamps use. Hardware stamps
// are converted to it before they reach the engine. Zero means "not taken".

// ErrTimeout is returned by Conn.Recv when the deadline passes with no probe.
var ErrTimeout = errors.New("receive deadline passed")

// TxStampKind names the layer boundary a transmit stamp marks.
type TxStampKind uint8

const (
	// TxSched: the packet entered the device layer, before the qdisc (SO_TIMESTAMPING TX_SCHED).
	TxSched TxStampKind = iota + 1
	// TxSoftware: the driver handed the packet to the device (skb_tx_timestamp, TX_SOFTWARE).
	TxSoftware
	// TxHardware: the NIC put the packet on the wire (TX_HARDWARE, converted from the PHC).
	TxHardware
	// TxCompletion: AF_XDP copy mode's software completion stamp (not a wire time).
	TxCompletion
)

func (k TxStampKind) String() string {
	switch k {
	case TxSched:
		return "tx_sched"
	case TxSoftware:
		return "tx_software"
	case TxHardware:
		return "tx_hardware"
	case TxCompletion:
		return "tx_completion"
	}
	return "tx_unknown"
}

// RxStamps are the receive-side stamps of one probe.
type RxStamps struct {
	// User is the clock read right after the receive call returned the probe.
	User int64
	// Software is SO_TIMESTAMPING RX_SOFTWARE: the device layer handed the packet to the stack.
	Software int64
	// Hardware is the NIC's RX stamp converted to the host clock.
	Hardware int64
	// XDPHook is the stamp taken by the XDP program (AF_XDP path).
	XDPHook int64
}

// WaitStrategy is how a Conn waits for the next probe.
type WaitStrategy string

const (
	// WaitBlock sleeps in the kernel until a probe arrives (kernel path: blocking recvmsg).
	WaitBlock WaitStrategy = "block"
	// WaitSpin polls without sleeping (kernel path: non-blocking recvmsg in a loop).
	WaitSpin WaitStrategy = "spin"
	// WaitPoll uses need_wakeup and poll(2) (AF_XDP path).
	WaitPoll WaitStrategy = "poll"
)

// Conn is one session's probe channel on one path and transport, as seen by
// one host. A Conn is used by one goroutine, locked to its OS thread.
type Conn interface {
	// Send transmits one probe payload and returns the clock read just before
	// the transmit call (the user-space TX stamp).
	Send(probe []byte) (userTx int64, err error)
	// Recv waits, by the Conn's wait strategy, for one whole probe and copies it
	// into buf. It returns ErrTimeout once deadline has passed without one.
	Recv(buf []byte, deadline time.Time) (n int, rx RxStamps, err error)
	// TxStamps reports, without blocking, the transmit stamps that became
	// available since the last call. index is the 0-based number of the Send
	// call the stamp belongs to.
	TxStamps(report func(index uint64, kind TxStampKind, ts int64)) error
	// Close releases everything the Conn holds.
	Close() error
}

// Path opens Conns for one way of moving probes (kernel sockets, AF_XDP). The
// engine drives every path alike through this interface; cmd/ registers the
// available paths by name.
type Path interface {
	// Name is the path's name on the command line and in results ("kernel", "xdp").
	Name() string
	// Dial opens the sender's end towards the reflector's probe endpoint.
	Dial(spec DialSpec) (Conn, error)
	// Listen opens the reflector's probe endpoint for one session.
	Listen(spec ListenSpec) (Listener, error)
}

// Listener is the reflector's probe endpoint of one session.
type Listener interface {
	// Port is the probe port the sender must send to.
	Port() uint16
	// Accept returns the session's Conn: at once for datagram transports,
	// after the sender connected for stream transports.
	Accept(deadline time.Time) (Conn, error)
	Close() error
}

// ConnSpec holds what both ends of a session choose alike.
type ConnSpec struct {
	Transport string // "udp" or "tcp"
	Wait      WaitStrategy
	// BusyPoll sets SO_BUSY_POLL (and prefers busy polling) when > 0 (optional).
	BusyPoll time.Duration
	// Timestamping asks for the kernel's software (and, where present, hardware) stamps.
	Timestamping bool
	// Size is the probe payload size of the session.
	Size int
	// Inflight is the most probes the sender keeps in flight, 0 when
	// unknown. A path may size its receive buffers to it: the AF_XDP path
	// keeps its FILL ring just deep enough (xdp.FillFramesFor).
	Inflight int
	// XDPPass asks a path that does not use XDP to run behind an XDP program
	// that passes every packet, to measure what XDP alone costs (optional).
	XDPPass bool
}

// DialSpec is the sender's end of a session.
type DialSpec struct {
	ConnSpec
	Local  netip.Addr     // optional source address
	Remote netip.AddrPort // the reflector's probe endpoint
}

// ListenSpec is the reflector's end of a session.
type ListenSpec struct {
	ConnSpec
	Local netip.AddrPort // address (port 0: any free port) to receive probes on
}

// Reporter is implemented by Conns that have more to say than stamps: the
// engine adds their counters (prefixed with the path's name) and notes to the
// phase's results, so nothing a path saw is lost silently.
type Reporter interface {
	// Counters returns the Conn's own counters, by name; zero ones may be left out.
	Counters() map[string]uint64
	// Notes returns facts about the Conn the report must show (e.g. busy
	// polling that was asked for but cannot work on this device).
	Notes() []string
}

// RxStampKind names a receive-side stamp, from the wire towards the user.
type RxStampKind uint8

const (
	// RxHardware: the NIC took the packet off the wire (converted to the host clock).
	RxHardware RxStampKind = iota + 1
	// RxXDP: the XDP program saw the frame (driver layer).
	RxXDP
	// RxSoftware: the device layer handed the packet to the stack (RX_SOFTWARE).
	RxSoftware
)

func (k RxStampKind) String() string {
	switch k {
	case RxHardware:
		return "rx_hardware"
	case RxXDP:
		return "rx_xdp"
	case RxSoftware:
		return "rx_software"
	}
	return "rx_unknown"
}

// of returns the stamp of kind k in rx.
func (rx *RxStamps) of(k RxStampKind) int64 {
	switch k {
	case RxHardware:
		return rx.Hardware
	case RxXDP:
		return rx.XDPHook
	case RxSoftware:
		return rx.Software
	}
	return 0
}

// StampSet lists the stamps a Conn takes besides the user-space ones, each in
// the order a packet passes them: Tx from the user towards the wire, Rx from
// the wire towards the user. The engine records one histogram per pair of
// neighbouring boundaries and counts every declared stamp that does not come.
type StampSet struct {
	Tx []TxStampKind
	Rx []RxStampKind
}

// StampDeclarer is implemented by Conns that say which stamps they take.
// A Conn that does not is taken to provide the kernel's software stamps when
// its session asked for timestamping.
type StampDeclarer interface {
	Stamps() StampSet
}

// declaredStamps returns what conn provides.
func declaredStamps(conn Conn, timestamping bool) StampSet {
	if d, ok := conn.(StampDeclarer); ok {
		return d.Stamps()
	}
	if !timestamping {
		return StampSet{}
	}
	return StampSet{Tx: []TxStampKind{TxSched, TxSoftware}, Rx: []RxStampKind{RxSoftware}}
}

// SelectiveStamper is implemented by Conns that can take transmit stamps for
// chosen sends only. Taking a stamp costs the sending thread work (the kernel
// clones the packet onto the error queue, the Conn reads it back), so the
// engine stamps only some probes and measures the round trip of the others
// untouched. Send is SendStamped with stamp set.
type SelectiveStamper interface {
	SendStamped(probe []byte, stamp bool) (userTx int64, err error)
}

// ClockSharer is implemented by Conns that take user stamps: Clock returns
// the clock they read them with (a copy, the same base and scale). The engine
// adopts it for its own stamps, so that a difference between one of its
// stamps and one of the Conn's (the reflector's residence: the Conn's receive
// stamp to the engine's residence end) carries no error from two clocks
// anchored apart.
type ClockSharer interface {
	Clock() clock.Wall
}

// StampedReplier is implemented by Conns to which a reflector hands the
// reply's user-space TX stamp: its clock read taken when it was done with the
// probe, which also ends the residence time. The Conn then reads no clock of
// its own before the transmit call, so a reflection costs one clock read for
// the probe's arrival and one for the reply. The kernel path and the AF_XDP
// path's TCP Conn implement it.
type StampedReplier interface {
	// ReplyStamped transmits probe like SendStamped, with userTx as its
	// user-space TX stamp.
	ReplyStamped(probe []byte, stamp bool, userTx int64) error
}

// InPlaceConn is implemented by Conns that can hand a reflector the received
// probe where it lies and send it back from there, as a forwarding engine
// does: no copy out, no copy back, no new buffer. The AF_XDP path's UDP Conn
// implements it; the reflector uses it when present.
type InPlaceConn interface {
	Conn
	// RecvInPlace waits like Recv for one probe and returns its bytes in the
	// Conn's own memory. They stay valid, and may be changed, until the
	// next call on the Conn; a probe not sent back by ReplyInPlace is
	// released by the next receive.
	RecvInPlace(deadline time.Time) ([]byte, RxStamps, error)
	// ReplyInPlace sends the probe RecvInPlace returned, as changed, back to
	// its source, asking for TX stamps when stamp is set. userTx is the
	// caller's clock read taken when it was done with the probe: the reply's
	// user-space TX stamp (the Conn reads no clock of its own; rewriting the
	// headers and the transmit call come after it).
	ReplyInPlace(stamp bool, userTx int64) error
}

// BatchConn is implemented by Conns that can hold sends back and tell that
// received probes wait, so a sender with many probes in flight takes every
// waiting reply first and then sends the new probes with one kernel call per
// batch instead of one per probe. The AF_XDP path's UDP Conn implements it;
// with one probe in flight it changes nothing.
type BatchConn interface {
	Conn
	// SendDeferred is SendStamped without the kernel call: the probe waits
	// in the Conn until the next Send, SendStamped or Flush sends it along.
	// Its user TX stamp is taken when it is queued.
	SendDeferred(probe []byte, stamp bool) (userTx int64, err error)
	// Flush sends what SendDeferred held back.
	Flush() error
	// Pending reports whether received frames wait, so Recv returns at once.
	Pending() bool
}

// BurstReflector is implemented by Conns that can reflect every probe
// waiting on their receive ring at once, as a forwarding engine does: one
// ring read and one clock read for the burst, each reply made where its
// request lies by swapping the addresses, and one kernel call to send them
// all. The reflector uses it for sessions without timestamping, where no
// probe needs stamps of its own. The AF_XDP path's UDP Conn implements it.
type BurstReflector interface {
	Conn
	// ReflectBurst waits, by the Conn's wait strategy, until probes arrive
	// or deadline passes (ErrTimeout), then hands each probe of the burst to
	// reply in the Conn's own memory, with rxUser, the clock read right
	// after the burst was taken off the ring. reply may change the probe
	// but not its length, and reports whether to send it back; the bytes are
	// not valid after it returns. It returns how many probes went to reply;
	// an error with n > 0 means their replies were queued but the kernel
	// call that sends them failed.
	ReflectBurst(deadline time.Time, reply func(probe []byte, rxUser int64) bool) (int, error)
}
