package utcp

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Defaults of Config.
const (
	DefaultMSS4        = 1460 // 1500-byte MTU minus IPv4 and TCP headers
	DefaultMSS6        = 1440 // 1500-byte MTU minus IPv6 and TCP headers
	DefaultRecvWindow  = 65536
	DefaultSendBuffer  = 256 << 10
	DefaultWindowScale = 7 // Linux with the default tcp_rmem[2] of 6 MiB
	DefaultMinRTO      = 200 * time.Millisecond
	DefaultInitialRTO  = time.Second
	DefaultDelayedAck  = 40 * time.Millisecond
	DefaultTimeWait    = time.Second
)

// Fixed protocol limits (Linux values).
const (
	maxRTO          = 120 * time.Second // TCP_RTO_MAX
	maxDelayedAck   = 200 * time.Millisecond
	finWait2Timeout = 60 * time.Second // net.ipv4.tcp_fin_timeout
	synRetries      = 6                // net.ipv4.tcp_syn_retries
	dataRetries     = 15               // net.ipv4.tcp_retries2
	maxQuickAcks    = 16               // TCP_MAX_QUICKACKS
	defaultPeerMSS  = 536              // RFC 9293 default without an MSS option
	maxWindowScale  = 14
)

// Config configures an Endpoint. Zero fields take the documented defaults.
type Config struct {
	// Local is the endpoint's address and port (required): the source of
	// every segment sent, and the destination Input accepts.
	Local netip.AddrPort
	// Remote is the peer a client connects to (required for NewClient, must
	// be zero for NewServer).
	Remote netip.AddrPort
	// MSS is the maximum segment size announced in the SYN and the most
	// bytes (option bytes included) one segment carries. Default 1460 for
	// IPv4, 1440 for IPv6.
	MSS uint16
	// RecvWindow is the receive buffer in bytes, and so the largest window
	// advertised. Default 65536; at most 65535 << WindowScale.
	RecvWindow uint32
	// SendBuffer is how many bytes Send can queue (unsent plus unacknowledged).
	// Default 256 KiB.
	SendBuffer uint32
	// WindowScale is the shift announced in the window scale option, 1 to 14.
	// Default 7 (Linux with tcp_rmem[2] = 6 MiB; a kernel computes it from
	// max(tcp_rmem[2], rmem_max)).
	WindowScale uint8
	// NoWindowScale, NoTimestamps and NoSACKPermitted leave the option out of
	// the SYN (optional, default false: every option offered, like Linux).
	NoWindowScale, NoTimestamps, NoSACKPermitted bool
	// MinRTO is the lower bound of the retransmission timeout. Default 200 ms.
	MinRTO time.Duration
	// InitialRTO is the retransmission timeout before an RTT sample. Default 1 s.
	InitialRTO time.Duration
	// DelayedAck is the minimum delayed-ACK timeout (ato). Default 40 ms.
	DelayedAck time.Duration
	// TimeWait is how long TIME_WAIT lasts; negative skips it. Default 1 s.
	TimeWait time.Duration
}

func (c Config) withDefaults() Config {
	c.Local = unmapAddrPort(c.Local)
	c.Remote = unmapAddrPort(c.Remote)
	if c.MSS == 0 {
		c.MSS = DefaultMSS4
		if c.Local.Addr().Is6() {
			c.MSS = DefaultMSS6
		}
	}
	if c.RecvWindow == 0 {
		c.RecvWindow = DefaultRecvWindow
	}
	if c.SendBuffer == 0 {
		c.SendBuffer = DefaultSendBuffer
	}
	if c.WindowScale == 0 {
		c.WindowScale = DefaultWindowScale
	}
	if c.MinRTO == 0 {
		c.MinRTO = DefaultMinRTO
	}
	if c.InitialRTO == 0 {
		c.InitialRTO = DefaultInitialRTO
	}
	if c.DelayedAck == 0 {
		c.DelayedAck = DefaultDelayedAck
	}
	if c.TimeWait == 0 {
		c.TimeWait = DefaultTimeWait
	}
	return c
}

func (c Config) validate(client bool) error {
	if !c.Local.IsValid() || c.Local.Port() == 0 || c.Local.Addr().IsUnspecified() {
		return fmt.Errorf("invalid local address %v: want an address and a non-zero port", c.Local)
	}
	if client {
		if !c.Remote.IsValid() || c.Remote.Port() == 0 || c.Remote.Addr().IsUnspecified() {
			return fmt.Errorf("invalid remote address %v: want an address and a non-zero port", c.Remote)
		}
		if c.Remote.Addr().Is4() != c.Local.Addr().Is4() {
			return fmt.Errorf("invalid remote address %v: not the same IP version as local %v", c.Remote, c.Local)
		}
	} else if c.Remote.IsValid() {
		return fmt.Errorf("invalid remote address %v: a server accepts any remote, leave it zero", c.Remote)
	}
	if c.MSS < 64 {
		return fmt.Errorf("invalid mss %d: at least 64", c.MSS)
	}
	if c.WindowScale > maxWindowScale {
		return fmt.Errorf("invalid window scale %d: at most %d", c.WindowScale, maxWindowScale)
	}
	scale := c.WindowScale
	if c.NoWindowScale {
		scale = 0
	}
	if max := uint64(0xffff) << scale; uint64(c.RecvWindow) > max {
		return fmt.Errorf("invalid receive window %d: at most %d with window scale %d", c.RecvWindow, max, scale)
	}
	if c.SendBuffer > 1<<30 {
		return fmt.Errorf("invalid send buffer %d: at most %d", c.SendBuffer, 1<<30)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"min rto", c.MinRTO}, {"initial rto", c.InitialRTO}, {"delayed ack", c.DelayedAck}} {
		if d.v < 0 || d.v > maxRTO {
			return fmt.Errorf("invalid %s %v: want 0 to %v", d.name, d.v, maxRTO)
		}
	}
	return nil
}

func unmapAddrPort(a netip.AddrPort) netip.AddrPort {
	if !a.IsValid() {
		return a
	}
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// State is a TCP connection state (RFC 9293).
type State uint8

// Connection states.
const (
	StateClosed State = iota
	StateListen
	StateSynSent
	StateSynReceived
	StateEstablished
	StateFinWait1
	StateFinWait2
	StateCloseWait
	StateClosing
	StateLastAck
	StateTimeWait
)

var stateNames = [...]string{"CLOSED", "LISTEN", "SYN_SENT", "SYN_RECEIVED", "ESTABLISHED",
	"FIN_WAIT_1", "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Errors reported by Err (why the connection ended) and by Send and Input.
var (
	ErrReset      = errors.New("connection reset by peer")
	ErrRefused    = errors.New("connection refused")
	ErrTimeout    = errors.New("connection timed out")
	ErrAborted    = errors.New("connection aborted")
	ErrClosed     = errors.New("connection closed for sending")
	ErrBufferFull = errors.New("send buffer full")
	// ErrNotLocal is returned by Input for a segment to another address or port.
	ErrNotLocal = errors.New("segment not addressed to this endpoint")
)

// Stats counts what an endpoint did. Segment counts include retransmissions.
type Stats struct {
	SegmentsReceived uint64
	SegmentsSent     uint64
	// DataSegmentsSent carry payload; PureAcksSent carry only an ACK (no
	// payload, SYN, FIN or RST).
	DataSegmentsSent uint64
	PureAcksSent     uint64
	// BytesSent is new payload sent (retransmissions excluded); BytesDelivered
	// is payload received in order and handed to Read.
	BytesSent      uint64
	BytesDelivered uint64
	// Retransmits are segments (SYN, data, FIN) sent again; Timeouts are
	// retransmission timer expirations; FastRetransmits are go-back-N
	// resends after three duplicate ACKs.
	Retransmits     uint64
	Timeouts        uint64
	FastRetransmits uint64
	// DelayedAcks are ACKs sent because the delayed-ACK timer fired.
	DelayedAcks uint64
	// DupAcksSent are immediate ACKs for out-of-order, duplicate or
	// unacceptable segments; DupAcksReceived are RFC 5681 duplicate ACKs.
	DupAcksSent     uint64
	DupAcksReceived uint64
	// OutOfOrderDropped are data segments that started beyond RCV.NXT;
	// DuplicatesDropped lay entirely below it. TrimmedBytes did not fit the
	// receive buffer.
	OutOfOrderDropped uint64
	DuplicatesDropped uint64
	TrimmedBytes      uint64
	// Unacceptable segments failed the sequence check (RFC 9293 3.10.7.4);
	// PAWSDropped had an old timestamp (RFC 7323); AcksOfUnsent acknowledged
	// data never sent; ChallengeAcks answered an in-window RST or SYN.
	Unacceptable  uint64
	PAWSDropped   uint64
	AcksOfUnsent  uint64
	ChallengeAcks uint64
	// WindowProbes are one-byte sends into a zero window.
	WindowProbes uint64
	RSTsSent     uint64
	RSTsReceived uint64
	// RSTsSuppressed were not sent because too many were already pending.
	RSTsSuppressed uint64
}
