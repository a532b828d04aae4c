package utcp

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/stackgap/stackgap/xdp/frame"
)

const (
	flagFIN = frame.TCPFin
	flagSYN = frame.TCPSyn
	flagRST = frame.TCPRst
	flagPSH = frame.TCPPsh
	flagACK = frame.TCPAck
)

// Sequence-number comparisons modulo 2³² (RFC 9293 3.4).
func seqLT(a, b uint32) bool { return int32(a-b) < 0 }
func seqLE(a, b uint32) bool { return int32(a-b) <= 0 }
func seqGT(a, b uint32) bool { return int32(a-b) > 0 }
func seqGE(a, b uint32) bool { return int32(a-b) >= 0 }

// rstReply is a RST owed to a segment that belongs to no connection.
type rstReply struct {
	dst      netip.AddrPort
	seq, ack uint32
	flags    uint8
}

// maxPendingRSTs bounds the RSTs queued between two Output calls; more are
// dropped and counted (a flood of stray segments must not grow memory).
const maxPendingRSTs = 8

// Endpoint is one TCP connection: a state machine fed by Input, Send, Read,
// Close and Abort that emits segments from Output. See the package comment.
type Endpoint struct {
	cfg    Config
	server bool
	state  State
	err    error
	local  netip.AddrPort
	remote netip.AddrPort

	// send side (RFC 9293 names); sndMax is the highest sequence sent, which
	// go-back-N retransmission keeps while it rewinds sndNxt.
	iss, sndUna, sndNxt, sndMax uint32
	sndWnd                      uint32 // peer window in bytes (scaled)
	sndWL1, sndWL2              uint32
	sndScale                    uint8
	sndMSS                      uint32 // payload bytes per segment
	sndBuf                      []byte // bytes from sndUna on (SYN excluded)
	finQueued                   bool
	finSeq                      uint32 // sequence number of our FIN when finQueued

	// receive side
	irs, rcvNxt uint32
	rcvScale    uint8
	rcvBuf      []byte // delivered, unread bytes; cap is the receive buffer
	rcvRight    uint32 // right edge of the last advertised window
	lastAck     uint32 // RCV.NXT of the last ACK sent (Linux rcv_wup)
	rcvMSS      uint32 // largest segment payload seen (Linux rcv_mss)
	finReceived bool

	// options
	tsOK, sackOK, wsOK bool
	tsOffset, tsRecent uint32

	// retransmission (ns)
	rto, srtt, rttvar int64
	hasRTT            bool
	timeouts          int // consecutive
	timing            bool
	timedSeq          uint32
	timedAt           int64
	dupAcks           int
	probeOne          bool

	// timers: absolute ns, 0 when off
	rtoAt, delackAt, persistAt, timeWaitAt, finWait2At int64

	// ACK policy
	ackNow, handshakeAck, dupAckPending, delackFired bool
	ato                                              int64
	quick                                            int
	pingpong                                         bool
	lastRecv                                         int64

	// RSTs to send
	abortPending bool
	abort        rstReply
	rsts         [maxPendingRSTs]rstReply
	nrst         int

	opt   [frame.MaxTCPOptionsLen]byte
	stats Stats
}

// NewClient returns an endpoint that opens a connection to cfg.Remote: its
// first Output emits the SYN.
func NewClient(cfg Config) (*Endpoint, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(true); err != nil {
		return nil, fmt.Errorf("new tcp client: %w", err)
	}
	e := newEndpoint(cfg)
	e.remote = cfg.Remote
	e.newISN()
	e.state = StateSynSent
	return e, nil
}

// NewServer returns an endpoint listening on cfg.Local: it accepts the first
// SYN from any remote and serves that one connection.
func NewServer(cfg Config) (*Endpoint, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(false); err != nil {
		return nil, fmt.Errorf("new tcp server: %w", err)
	}
	e := newEndpoint(cfg)
	e.server = true
	e.state = StateListen
	return e, nil
}

func newEndpoint(cfg Config) *Endpoint {
	return &Endpoint{
		cfg:    cfg,
		local:  cfg.Local,
		sndBuf: make([]byte, 0, cfg.SendBuffer),
		rcvBuf: make([]byte, 0, cfg.RecvWindow),
		rto:    int64(cfg.InitialRTO),
		rcvMSS: min(defaultPeerMSS, uint32(cfg.MSS)),
	}
}

// newISN draws a random initial sequence number and timestamp offset.
func (e *Endpoint) newISN() {
	var b [8]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	e.iss = binary.NativeEndian.Uint32(b[0:])
	e.tsOffset = binary.NativeEndian.Uint32(b[4:])
	e.sndUna, e.sndNxt, e.sndMax = e.iss, e.iss, e.iss
}

// State is the connection state.
func (e *Endpoint) State() State { return e.state }

// Err says why the connection ended (ErrReset, ErrRefused, ErrTimeout,
// ErrAborted), or nil while it is open or after an orderly close.
func (e *Endpoint) Err() error { return e.err }

// Stats returns the counters.
func (e *Endpoint) Stats() Stats { return e.stats }

// Local is the endpoint's address; Remote the peer's (zero for a server
// before its first SYN).
func (e *Endpoint) Local() netip.AddrPort  { return e.local }
func (e *Endpoint) Remote() netip.AddrPort { return e.remote }

// Established reports whether data can flow in both directions or the peer
// has closed its side (ESTABLISHED or CLOSE_WAIT).
func (e *Endpoint) Established() bool {
	return e.state == StateEstablished || e.state == StateCloseWait
}

// PeerClosed reports whether the peer's FIN has arrived: no more bytes follow
// those Read returns.
func (e *Endpoint) PeerClosed() bool { return e.finReceived }

// Send queues data (copied) for sending; Output sends it in segments of at
// most the negotiated MSS as the peer's window allows. It queues all of data
// or nothing: ErrBufferFull when it does not fit, ErrClosed after Close, or
// the error that ended the connection.
func (e *Endpoint) Send(data []byte) error {
	switch {
	case e.finQueued:
		return ErrClosed
	case e.state == StateClosed || e.state > StateCloseWait:
		if e.err != nil {
			return e.err
		}
		return ErrClosed
	case len(data) > cap(e.sndBuf)-len(e.sndBuf):
		return ErrBufferFull
	}
	e.sndBuf = append(e.sndBuf, data...)
	return nil
}

// Read copies received in-order bytes into p, removes them from the
// receive buffer and returns how many. The window it frees is advertised
// by the next Output.
func (e *Endpoint) Read(p []byte) int {
	n := copy(p, e.rcvBuf)
	if n == 0 {
		return 0
	}
	rest := copy(e.rcvBuf, e.rcvBuf[n:])
	e.rcvBuf = e.rcvBuf[:rest]
	// Window update when the window grew from small to at least twice
	// its size (Linux tcp_cleanup_rbuf).
	if e.state >= StateEstablished && !e.finReceived {
		cur := uint32(0)
		if seqGT(e.rcvRight, e.rcvNxt) {
			cur = e.rcvRight - e.rcvNxt
		}
		free := e.freeSpace() &^ (1<<e.rcvScale - 1)
		if 2*cur <= uint32(cap(e.rcvBuf)) && free > 0 && free >= 2*cur {
			e.ackNow = true
		}
	}
	return n
}

// Peek returns the received bytes Read would return, without consuming them
// (for framing: bench.ProbeLength). The slice is valid until the next Input or Read.
func (e *Endpoint) Peek() []byte { return e.rcvBuf }

// Close starts an orderly close: a FIN follows the queued data. A client
// still in SYN_SENT and a listening server just close; a connection in
// SYN_RECEIVED is reset.
func (e *Endpoint) Close() {
	switch e.state {
	case StateListen, StateSynSent:
		e.close(nil)
	case StateSynReceived:
		e.Abort()
	case StateEstablished, StateCloseWait:
		e.finQueued = true
		e.finSeq = e.sndUna + uint32(len(e.sndBuf))
		if e.state == StateEstablished {
			e.state = StateFinWait1
		} else {
			e.state = StateLastAck
		}
	}
}

// Abort resets the connection: the next Output sends RST and the endpoint
// is CLOSED with ErrAborted.
func (e *Endpoint) Abort() {
	if e.state >= StateSynReceived && e.state != StateTimeWait {
		e.abortPending = true
		e.abort = rstReply{dst: e.remote, seq: e.sndNxt, ack: e.rcvNxt, flags: flagRST | flagACK}
	}
	if e.state != StateClosed {
		e.close(ErrAborted)
	}
}

// close ends the connection with err (nil for an orderly close).
func (e *Endpoint) close(err error) {
	e.state = StateClosed
	e.err = err
	e.rtoAt, e.delackAt, e.persistAt, e.timeWaitAt, e.finWait2At = 0, 0, 0, 0, 0
	e.ackNow, e.handshakeAck = false, false
}

// NextTimer returns when Output must be called next although nothing
// arrives (retransmission, delayed ACK, zero-window probe, TIME_WAIT and
// FIN_WAIT_2 expiry), in the ns of the clock passed to Output, or 0 when no
// timer runs. Output must also be called after Input, Send, Read, Close and Abort.
func (e *Endpoint) NextTimer() int64 {
	next := int64(0)
	for _, t := range [...]int64{e.rtoAt, e.delackAt, e.persistAt, e.timeWaitAt, e.finWait2At} {
		if t != 0 && (next == 0 || t < next) {
			next = t
		}
	}
	return next
}

// freeSpace is the receive buffer space left.
func (e *Endpoint) freeSpace() uint32 { return uint32(cap(e.rcvBuf) - len(e.rcvBuf)) }

// tsNow is the TSval for time now: a millisecond clock plus the random offset.
func (e *Endpoint) tsNow(now int64) uint32 { return uint32(now/1e6) + e.tsOffset }

// baseRTO is the RTO without backoff (RFC 6298 2.2-2.4).
func (e *Endpoint) baseRTO() int64 {
	if !e.hasRTT {
		return int64(e.cfg.InitialRTO)
	}
	return min(max(e.srtt+4*e.rttvar, int64(e.cfg.MinRTO)), int64(maxRTO))
}

// sampleRTT updates SRTT and RTTVAR with one measurement (RFC 6298 2.2-2.3).
func (e *Endpoint) sampleRTT(r int64) {
	if r < 0 {
		return
	}
	if !e.hasRTT {
		e.srtt, e.rttvar, e.hasRTT = r, r/2, true
		return
	}
	d := e.srtt - r
	if d < 0 {
		d = -d
	}
	e.rttvar = (3*e.rttvar + d) / 4
	e.srtt = (7*e.srtt + r) / 8
}

// SRTT is the smoothed round-trip time in ns (0 before the first sample);
// RTO the current retransmission timeout in ns, backoff included.
func (e *Endpoint) SRTT() int64 { return e.srtt }
func (e *Endpoint) RTO() int64  { return e.rto }
