package xdp

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/stackgap/stackgap/bench"
	"github.com/stackgap/stackgap/internal/clock"
	"github.com/stackgap/stackgap/xdp/frame"
	"github.com/stackgap/stackgap/xdp/utcp"
)

var (
	_ bench.Conn           = (*tcpConn)(nil)
	_ bench.Reporter       = (*tcpConn)(nil)
	_ bench.StampDeclarer  = (*tcpConn)(nil)
	_ bench.ClockSharer    = (*tcpConn)(nil)
	_ bench.StampedReplier = (*tcpConn)(nil)
	_ bench.Listener       = (*tcpListener)(nil)
)

const (
	// tcpHandshakeTimeout bounds Dial's three-way handshake.
	tcpHandshakeTimeout = 5 * time.Second
	// tcpCloseLinger bounds how long Close drives the FIN exchange before it
	// resets the connection. TIME_WAIT is not waited for: the session's
	// port stays reserved until Close returns, and a new connection uses a
	// new ISN.
	tcpCloseLinger = time.Second
	// tcpWindowScale is the window scale a TCP session announces (Linux
	// with the default tcp_rmem).
	tcpWindowScale = 7
	// tcpRetryOutput is how soon Output runs again after it stopped for
	// lack of a free UMEM frame.
	tcpRetryOutput = time.Millisecond
	// tcpTxBatch is how many frames one Output call queues before the TX
	// ring write (one kick for a whole multi-segment probe).
	tcpTxBatch = 64
	// tcpClockBase keeps the endpoint's clock away from 0, which it reads
	// as "timer off".
	tcpClockBase = time.Second
)

// errNoFrame stops an Output call that found no free UMEM frame; the
// segments still due go out on a later call.
var errNoFrame = errors.New("no free umem frame")

// probeEnd is a sent probe whose last byte has not been transmitted yet.
type probeEnd struct {
	end   uint64 // stream offset just past the probe's last byte
	index uint64 // the Send index
}

// tcpCounters are what a TCP Conn counts besides the session and endpoint.
type tcpCounters struct {
	TxUnstamped   uint64 // probes whose last byte shared a frame with another probe's (one stamp per frame)
	TxUntracked   uint64 // probes sent while too many were waiting for transmission to track them
	TxUnroutable  uint64 // segments to a remote whose MAC address is unknown (RSTs to strangers), not sent
	RxBeforeClose uint64 // probe bytes received but never read when the Conn closed
}

// tcpConn is one TCP probe channel over an AF_XDP session (bench.Conn): a
// userspace TCP endpoint (package utcp) fed with the session's received
// frames, whose segments are built into UMEM frames and transmitted. The
// probe stream is cut into probes with bench.ProbeLength. A sender's Conn
// is the client of the connection Dial opened; a reflector's is the server
// its Listener accepted.
//
// It is not safe for concurrent use: one goroutine, locked to its OS
// thread, drives it. Nothing on the probe path allocates.
type tcpConn struct {
	s *session
	e *utcp.Endpoint
	// cfg is the endpoint's configuration (a listener renews a server
	// endpoint whose handshake failed).
	cfg utcp.Config

	hdr      frame.Header // MAC addresses, IPv4 ID and flow label of every frame
	srcMAC   [6]byte
	dstMAC   [6]byte // destination of the frame being built
	peerMAC  [6]byte
	remote   netip.AddrPort
	havePeer bool
	// lastSrc and lastMAC are the source of the last segment received, so
	// the RST owed to a stranger can be addressed.
	lastSrc netip.AddrPort
	lastMAC [6]byte

	epoch time.Time // zero of the endpoint's monotonic clock
	emit  func(utcp.Segment) error

	// Send side: stream offsets of the bytes handed to the endpoint.
	streamBase uint32 // sequence number of the first data byte (ISS+1)
	baseKnown  bool
	queued     uint64     // bytes passed to the endpoint
	sentHigh   uint64     // stream offset past the highest byte transmitted
	ends       []probeEnd // ring of probes not yet fully transmitted
	endHead    int
	endCount   int

	// TX batch of the current Output call.
	batch      [tcpTxBatch]Desc
	nbatch     int
	wantUserTx bool
	userTx     int64
	retryAt    int64 // endpoint clock when Output must run again (it found no free frame), 0: none

	lastRx   bench.RxStamps // stamps of the last frame that delivered stream bytes
	counters tcpCounters
	closed   bool
}

// newTCPConn makes the TCP Conn of a session around a fresh endpoint.
func newTCPConn(s *session, remote netip.AddrPort) (*tcpConn, error) {
	c := &tcpConn{s: s, remote: remote, epoch: time.Now(), ends: make([]probeEnd, bench.MaxInflight)}
	c.cfg = utcp.Config{
		Local:       s.local,
		Remote:      remote,
		MSS:         uint16(tcpMSS(s.local.Addr(), s.mtu, s.info.FrameCapacity)),
		WindowScale: tcpWindowScale,
		// The receive buffer holds the largest probe whole (bench.MaxProbeSize).
		RecvWindow: utcp.DefaultRecvWindow,
	}
	var err error
	if remote.IsValid() {
		c.e, err = utcp.NewClient(c.cfg)
	} else {
		c.e, err = utcp.NewServer(c.cfg)
	}
	if err != nil {
		return nil, err
	}
	copy(c.srcMAC[:], s.srcMAC)
	c.hdr = frame.Header{SrcMAC: c.srcMAC[:], DstMAC: c.dstMAC[:]}
	// Linux seeds a connected socket's IPv4 ID counter randomly and labels
	// IPv6 flows with a hash of the flow (auto_flowlabels).
	c.hdr.IPv4ID = uint16(rand.Uint32())
	if s.local.Addr().Is6() {
		c.hdr.FlowLabel = 1 + rand.Uint32N(0xfffff)
	}
	c.emit = c.emitSegment
	return c, nil
}

// dialTCP connects a sender's session to remote (next hop peerMAC) and
// returns its Conn once the handshake is done. On error it closes the
// session.
func dialTCP(s *session, remote netip.AddrPort, peerMAC net.HardwareAddr) (_ *tcpConn, err error) {
	c, err := newTCPConn(s, remote)
	if err != nil {
		return nil, errors.Join(err, s.close())
	}
	copy(c.peerMAC[:], peerMAC)
	c.havePeer = true
	if err := c.handshake(tcpHandshakeTimeout); err != nil {
		c.e.Abort()
		c.output(time.Now())
		return nil, errors.Join(err, s.close())
	}
	return c, nil
}

// handshake drives the client endpoint until it is established.
func (c *tcpConn) handshake(timeout time.Duration) error {
	end := time.Now().Add(timeout).UnixNano()
	if err := c.output(time.Now()); err != nil {
		return fmt.Errorf("tcp handshake with %s: %w", c.remote, err)
	}
	for !c.e.Established() {
		if c.e.State() == utcp.StateClosed {
			if err := c.e.Err(); errors.Is(err, utcp.ErrRefused) {
				return fmt.Errorf("tcp handshake with %s refused (RST): %w", c.remote, err)
			} else if err != nil {
				return fmt.Errorf("tcp handshake with %s failed: %w", c.remote, err)
			}
			return fmt.Errorf("tcp handshake with %s failed: connection closed", c.remote)
		}
		expired, err := c.step(end)
		if err != nil {
			return fmt.Errorf("tcp handshake with %s: %w", c.remote, err)
		}
		if expired {
			return fmt.Errorf("tcp handshake with %s timed out after %v (state %v)", c.remote, timeout, c.e.State())
		}
	}
	return nil
}

// mono is the endpoint's clock at now: monotonic nanoseconds.
func (c *tcpConn) mono(now time.Time) int64 { return int64(now.Sub(c.epoch) + tcpClockBase) }

// LocalAddr is the session's local address and port.
func (c *tcpConn) LocalAddr() netip.AddrPort { return c.s.local }

// RemoteAddr is the peer (invalid for a reflector before the SYN).
func (c *tcpConn) RemoteAddr() netip.AddrPort { return c.e.Remote() }

// State is the TCP connection state.
func (c *tcpConn) State() utcp.State { return c.e.State() }

// Send queues probe on the connection and transmits what the peer's window
// allows: one frame per segment, built in UMEM frames and put on the TX ring
// in one batch with TX timestamp requests. It returns CLOCK_REALTIME read
// right before that TX ring write. The frame that carries the probe's last
// byte for the first time is the one whose TX stamp TxStamps reports for
// this Send; retransmitted frames are counted, not stamped. Data the window
// holds back, or that finds no free UMEM frame, leaves later from Recv.
func (c *tcpConn) Send(probe []byte) (int64, error) { return c.send(probe, 0) }

// ReplyStamped is Send with userTx, the reflector's clock read when it was
// done with the probe, as the reply's user TX stamp (bench.StampedReplier):
// the Conn reads no clock for it. Like Send it asks a TX completion stamp for
// every frame when the session takes stamps, whatever stamp says: a TCP
// frame can carry the bytes of more than one probe.
func (c *tcpConn) ReplyStamped(probe []byte, _ bool, userTx int64) error {
	_, err := c.send(probe, userTx)
	return err
}

// send is Send, with userTx (0: read the clock right before the TX ring
// write) as the probe's user TX stamp.
func (c *tcpConn) send(probe []byte, userTx int64) (int64, error) {
	switch {
	case c.closed || c.s.closed:
		return 0, errConnClosed
	case len(probe) == 0:
		return 0, errors.New("send: empty probe")
	}
	if err := c.e.Send(probe); err != nil {
		c.s.counters.TxErrors++
		return 0, fmt.Errorf("send: %w", err)
	}
	index := c.s.sends
	c.s.sends++
	c.queued += uint64(len(probe))
	if c.endCount < len(c.ends) {
		c.ends[(c.endHead+c.endCount)%len(c.ends)] = probeEnd{end: c.queued, index: index}
		c.endCount++
	} else {
		c.counters.TxUntracked++
	}
	c.wantUserTx, c.userTx = userTx == 0, userTx
	err := c.output(time.Now())
	userTx = c.userTx
	if userTx == 0 {
		userTx = c.s.clock.Now() // nothing transmitted yet
	}
	c.wantUserTx = false
	return userTx, err
}

// output runs the endpoint's Output and transmits the frames it emitted.
func (c *tcpConn) output(now time.Time) error {
	mono := c.mono(now)
	err := c.e.Output(mono, c.emit)
	c.retryAt = 0
	if errors.Is(err, errNoFrame) {
		c.retryAt, err = mono+int64(tcpRetryOutput), nil
	}
	if ferr := c.flush(); ferr != nil && err == nil {
		err = ferr
	}
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// emitSegment builds one segment into a UMEM frame of the TX batch and
// maps it to the Send whose probe it completes.
func (c *tcpConn) emitSegment(seg utcp.Segment) error {
	s := c.s
	switch {
	case c.havePeer && seg.Dst == c.e.Remote():
		c.dstMAC = c.peerMAC
	case seg.Dst == c.lastSrc:
		c.dstMAC = c.lastMAC
	default:
		c.counters.TxUnroutable++
		return nil
	}
	if seg.Flags&frame.TCPSyn != 0 {
		c.streamBase, c.baseKnown = seg.Seq+1, true
	}
	addr, ok := s.sock.AllocFrame()
	if !ok {
		if err := s.reap(); err != nil {
			return err
		}
		if addr, ok = s.sock.AllocFrame(); !ok {
			s.counters.TxNoFrame++
			return errNoFrame
		}
	}
	n, err := utcp.BuildFrame(s.sock.Frame(addr, int(s.info.FrameCapacity)), &c.hdr, seg)
	if err != nil {
		s.counters.TxErrors++
		return errors.Join(err, s.sock.FreeFrame(addr))
	}
	s.sendOf[addr/s.frameSize] = c.completedProbe(&seg)
	c.batch[c.nbatch] = Desc{Addr: addr, Len: uint32(n)}
	if c.nbatch++; c.nbatch == len(c.batch) {
		return c.flush()
	}
	return nil
}

// completedProbe returns the Send index of the probe whose last byte seg
// transmits for the first time, or controlFrame.
func (c *tcpConn) completedProbe(seg *utcp.Segment) uint64 {
	if len(seg.Payload) == 0 || !c.baseKnown {
		return controlFrame
	}
	// The segment's stream offset, from its 32-bit sequence number relative
	// to the highest offset sent (segments never lie 2 GiB away from it).
	rel := seg.Seq - c.streamBase
	start := uint64(int64(c.sentHigh) + int64(int32(rel-uint32(c.sentHigh))))
	end := start + uint64(len(seg.Payload))
	if end <= c.sentHigh {
		return controlFrame // a retransmission
	}
	c.sentHigh = end
	index := controlFrame
	for c.endCount > 0 {
		p := c.ends[c.endHead]
		if p.end > end {
			break
		}
		if index == controlFrame {
			index = p.index
		} else {
			c.counters.TxUnstamped++
		}
		c.endHead = (c.endHead + 1) % len(c.ends)
		c.endCount--
	}
	return index
}

// flush puts the batch on the TX ring, reading the user TX clock first.
func (c *tcpConn) flush() error {
	if c.nbatch == 0 {
		return nil
	}
	s := c.s
	if c.wantUserTx && c.userTx == 0 {
		c.userTx = c.s.clock.Now()
	}
	n := c.nbatch
	c.nbatch = 0
	queued, err := s.sock.Transmit(c.batch[:n], s.txStamp)
	s.counters.TxFrames += uint64(queued)
	for _, d := range c.batch[queued:n] {
		// Not queued (TX ring full): the endpoint retransmits the data.
		s.counters.TxErrors++
		s.sendOf[d.Addr/s.frameSize] = noSendIndex
		if ferr := s.sock.FreeFrame(d.Addr); ferr != nil && err == nil {
			err = ferr
		}
	}
	if queued > 0 {
		if rerr := s.unstall(); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}

// input hands one received frame to the endpoint and gives the frame back
// to the FILL ring. now is the clock right after the RX ring read.
func (c *tcpConn) input(d Desc, now time.Time) error {
	s := c.s
	s.counters.RxFrames++
	m, metaOK := s.rxMeta(d.Addr)
	data := s.sock.Frame(d.Addr, int(d.Len))
	pkt, perr := frame.Parse(data)
	if perr == frame.ErrChecksum {
		// A kernel sender on the same host (veth) leaves the TCP checksum
		// to an offload that never runs: count it, accept it.
		if pkt, perr = frame.ParseUnverified(data); perr == nil {
			s.counters.RxBadChecksum++
		}
	}
	seg, isTCP := utcp.FromPacket(&pkt)
	switch {
	case perr != nil:
		s.counters.RxBadFrames++
	case !isTCP || seg.Dst != s.local:
		s.counters.RxForeignFrames++
	default:
		c.lastSrc = seg.Src
		copy(c.lastMAC[:], pkt.SrcMAC)
		before := len(c.e.Peek())
		_ = c.e.Input(seg, c.mono(now)) // the destination was checked: never ErrNotLocal
		if !c.havePeer && c.e.Remote().IsValid() {
			// A server's first SYN: its source is the peer.
			c.peerMAC, c.havePeer = c.lastMAC, true
		}
		if len(c.e.Peek()) > before {
			c.lastRx = bench.RxStamps{User: now.UnixNano()}
			if metaOK {
				c.lastRx.XDPHook = TAIToRealtime(m.XDPTAI, s.taiOffset)
				if m.Hardware != 0 {
					c.lastRx.Hardware = s.rxHardware(m.Hardware)
				} else if m.HardwareErr != 0 {
					s.hwErr = m.HardwareErr
				}
			} else if s.rxStamps {
				s.counters.RxMissingMeta++
			}
		}
	}
	return s.recycle(d.Addr)
}

// step does one unit of work: it hands one received frame to the endpoint
// and sends what is due, or runs the timers that are due, or waits by the
// session's wait strategy until a frame arrives, a timer is due or deadline
// (CLOCK_REALTIME ns, 0: none) passes. expired reports the latter.
func (c *tcpConn) step(deadline int64) (expired bool, err error) {
	s := c.s
	got, err := s.sock.Receive(s.rxDescs[:])
	if err != nil {
		return false, fmt.Errorf("receive: %w", err)
	}
	now := time.Now()
	if got > 0 {
		err := c.input(s.rxDescs[0], now)
		return false, errors.Join(err, c.output(now))
	}
	mono := c.mono(now)
	timer := c.e.NextTimer()
	if c.retryAt != 0 && (timer == 0 || c.retryAt < timer) {
		timer = c.retryAt
	}
	if timer != 0 && timer <= mono {
		return false, c.output(now)
	}
	wall := now.UnixNano()
	if deadline != 0 && wall >= deadline {
		return true, nil
	}
	wait := time.Duration(-1)
	if deadline != 0 {
		wait = time.Duration(deadline - wall)
	}
	if timer != 0 && (wait < 0 || time.Duration(timer-mono) < wait) {
		wait = time.Duration(timer - mono)
	}
	if _, err := s.sock.WaitReceive(s.wait, wait); err != nil {
		return false, fmt.Errorf("receive: %w", err)
	}
	return false, nil
}

// Recv waits by the session's wait strategy (poll: need_wakeup and
// ppoll(2); spin: re-reading the RX ring) for one whole probe of the
// stream, copies it into buf and returns it with the stamps of the frame
// that completed it:
//
//   - User: CLOCK_REALTIME right after that frame was taken off the RX ring;
//   - XDPHook: the steering program's CLOCK_TAI stamp, converted to CLOCK_REALTIME;
//   - Hardware: the NIC's RX stamp when the device-bound program got one, in
//     raw PHC nanoseconds (not converted to the host clock yet).
//
// While it waits it feeds every frame of the flow to the endpoint, sends
// the ACKs and retransmissions due and runs its timers. It returns exactly
// one probe per call; bytes of the next probes stay buffered. It returns
// bench.ErrTimeout once deadline has passed (a zero deadline waits
// forever), an error wrapping io.EOF once the peer closed its side and
// every whole probe was read, and an error wrapping utcp.ErrReset (or
// another utcp error) when the connection failed.
func (c *tcpConn) Recv(buf []byte, deadline time.Time) (int, bench.RxStamps, error) {
	if c.closed || c.s.closed {
		return 0, bench.RxStamps{}, errConnClosed
	}
	var dl int64
	if !deadline.IsZero() {
		dl = deadline.UnixNano()
	}
	for {
		n, ok, err := c.takeProbe(buf)
		if ok || err != nil {
			return n, c.lastRx, err
		}
		if err := c.ended(); err != nil {
			return 0, bench.RxStamps{}, err
		}
		expired, err := c.step(dl)
		if err != nil {
			return 0, bench.RxStamps{}, err
		}
		if expired {
			return 0, bench.RxStamps{}, bench.ErrTimeout
		}
	}
}

// takeProbe moves the probe at the head of the received stream into buf
// when all of it has arrived.
func (c *tcpConn) takeProbe(buf []byte) (n int, ok bool, err error) {
	head := c.e.Peek()
	if len(head) < bench.HeaderSize {
		return 0, false, nil
	}
	n, err = bench.ProbeLength(head)
	if err == nil && n > bench.MaxProbeSize {
		err = fmt.Errorf("%w: declares %d bytes, more than %d", bench.ErrBadLength, n, bench.MaxProbeSize)
	}
	if err != nil {
		// The stream cannot be resynchronised: end the connection.
		c.e.Abort()
		c.output(time.Now())
		return 0, false, fmt.Errorf("receive: corrupt probe stream at byte %d: %w", c.e.Stats().BytesDelivered-uint64(len(head)), err)
	}
	if len(head) < n {
		return 0, false, nil
	}
	if n > len(buf) {
		c.s.counters.RxTooLong++
		return 0, false, fmt.Errorf("receive: %d-byte probe longer than the %d-byte buffer", n, len(buf))
	}
	c.e.Read(buf[:n])
	c.s.counters.RxProbes++
	// Reading may open the window enough for an update.
	if err := c.output(time.Now()); err != nil {
		return n, true, err
	}
	return n, true, nil
}

// ended returns why no more probes can arrive: the peer closed (io.EOF),
// the connection failed, or this end closed; nil while it is open.
func (c *tcpConn) ended() error {
	if c.e.PeerClosed() {
		if rest := len(c.e.Peek()); rest > 0 {
			return fmt.Errorf("receive: peer closed the connection in the middle of a probe (%d bytes left): %w", rest, io.ErrUnexpectedEOF)
		}
		return fmt.Errorf("receive: peer closed the connection: %w", io.EOF)
	}
	if c.e.State() == utcp.StateClosed {
		if err := c.e.Err(); err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		return errConnClosed
	}
	return nil
}

// TxStamps reports the TX completion stamp of the frame that carried each
// probe's last byte, by Send index (see udpConn.TxStamps for the kinds).
func (c *tcpConn) TxStamps(report func(index uint64, kind bench.TxStampKind, ts int64)) error {
	if c.closed {
		return errConnClosed
	}
	return c.s.txStamps(report)
}

// Stamps declares what the session stamps (bench.StampDeclarer).
func (c *tcpConn) Stamps() bench.StampSet { return c.s.stamps() }

// Counters returns the session's counters and the TCP endpoint's
// (bench.Reporter): retransmissions, timeouts, duplicate ACKs, resets….
func (c *tcpConn) Counters() map[string]uint64 {
	m := c.s.Counters()
	add := func(name string, v uint64) {
		if v != 0 {
			m[name] = v
		}
	}
	st := c.e.Stats()
	add("tcp_segments_sent", st.SegmentsSent)
	add("tcp_segments_received", st.SegmentsReceived)
	add("tcp_data_segments_sent", st.DataSegmentsSent)
	add("tcp_pure_acks_sent", st.PureAcksSent)
	add("tcp_bytes_sent", st.BytesSent)
	add("tcp_bytes_delivered", st.BytesDelivered)
	add("tcp_retransmits", st.Retransmits)
	add("tcp_timeouts", st.Timeouts)
	add("tcp_fast_retransmits", st.FastRetransmits)
	add("tcp_delayed_acks", st.DelayedAcks)
	add("tcp_dup_acks_sent", st.DupAcksSent)
	add("tcp_dup_acks_received", st.DupAcksReceived)
	add("tcp_out_of_order_dropped", st.OutOfOrderDropped)
	add("tcp_duplicates_dropped", st.DuplicatesDropped)
	add("tcp_trimmed_bytes", st.TrimmedBytes)
	add("tcp_unacceptable", st.Unacceptable)
	add("tcp_paws_dropped", st.PAWSDropped)
	add("tcp_acks_of_unsent", st.AcksOfUnsent)
	add("tcp_challenge_acks", st.ChallengeAcks)
	add("tcp_window_probes", st.WindowProbes)
	add("tcp_rsts_sent", st.RSTsSent)
	add("tcp_rsts_received", st.RSTsReceived)
	add("tcp_rsts_suppressed", st.RSTsSuppressed)
	add("tcp_tx_unstamped_probes", c.counters.TxUnstamped)
	add("tcp_tx_untracked_probes", c.counters.TxUntracked)
	add("tcp_tx_unroutable", c.counters.TxUnroutable)
	add("tcp_rx_unread_bytes", c.counters.RxBeforeClose)
	return m
}

// Notes describes the session and the TCP endpoint (bench.Reporter).
func (c *tcpConn) Notes() []string {
	return append(c.s.Notes(), fmt.Sprintf("tcp: userspace endpoint (utcp), MSS %d, window scale %d, no congestion control, TIME_WAIT skipped at close",
		c.cfg.MSS, c.cfg.WindowScale))
}

// Clock returns the clock of the session's user stamps (bench.ClockSharer).
func (c *tcpConn) Clock() clock.Wall { return c.s.clock }

// Close closes the connection in order — FIN after the queued data, then
// up to tcpCloseLinger of driving the endpoint until the FIN exchange is
// done (TIME_WAIT is skipped) — else resets it, and then ends the session.
// Idempotent.
func (c *tcpConn) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	if c.s.closed {
		return nil
	}
	var errs []error
	c.counters.RxBeforeClose = uint64(len(c.e.Peek()))
	c.e.Close()
	if err := c.output(time.Now()); err != nil {
		errs = append(errs, err)
	}
	end := time.Now().Add(tcpCloseLinger).UnixNano()
	for done := c.finished(); !done; done = c.finished() {
		expired, err := c.step(end)
		if err != nil {
			errs = append(errs, err)
			break
		}
		if expired {
			break
		}
	}
	if !c.finished() {
		c.e.Abort()
		if err := c.output(time.Now()); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.s.reap(); err != nil {
		errs = append(errs, err)
	}
	if err := c.s.close(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close tcp connection: %w", err)
	}
	return nil
}

// finished reports whether the connection needs nothing more from this end.
func (c *tcpConn) finished() bool {
	st := c.e.State()
	return st == utcp.StateClosed || st == utcp.StateTimeWait
}

// tcpListener is the reflector's end of one TCP session (bench.Listener):
// the server endpoint listens from Listen on, and Accept drives the
// handshake.
type tcpListener struct {
	mu       sync.Mutex
	s        *session
	conn     *tcpConn
	accepted bool
	closed   bool
}

// listenTCP makes the listener of a reflector's session. On error it
// closes the session.
func listenTCP(s *session) (*tcpListener, error) {
	c, err := newTCPConn(s, netip.AddrPort{})
	if err != nil {
		return nil, errors.Join(err, s.close())
	}
	return &tcpListener{s: s, conn: c}, nil
}

// Port is the session's TCP port.
func (l *tcpListener) Port() uint16 { return l.s.local.Port() }

// Accept handles the session's frames until a sender's connection is
// established and returns its Conn; bench.ErrTimeout once deadline passes
// first (a zero deadline waits forever). Probes that follow the handshake
// at once stay in the endpoint or the RX ring for Recv. A session serves
// one connection: a second Accept fails. The Conn then owns the session.
func (l *tcpListener) Accept(deadline time.Time) (bench.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		return nil, errors.New("xdp accept: listener closed")
	case l.accepted:
		return nil, errors.New("xdp accept: the session's conn was already accepted (one af_xdp socket per session)")
	}
	c := l.conn
	var dl int64
	if !deadline.IsZero() {
		dl = deadline.UnixNano()
	}
	for !c.e.Established() {
		if c.e.State() == utcp.StateClosed {
			// The handshake failed (reset, or the SYN-ACK timed out): listen again.
			e, err := utcp.NewServer(c.cfg)
			if err != nil {
				return nil, fmt.Errorf("xdp accept: %w", err)
			}
			c.e, c.havePeer, c.baseKnown = e, false, false
		}
		expired, err := c.step(dl)
		if err != nil {
			return nil, fmt.Errorf("xdp accept: %w", err)
		}
		if expired {
			return nil, bench.ErrTimeout
		}
	}
	l.accepted = true
	return c, nil
}

// Close ends the session unless its Conn was accepted (then closing the
// Conn ends it); a connection still in its handshake is reset.
func (l *tcpListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if l.accepted {
		return nil
	}
	if !l.s.closed {
		l.conn.e.Abort()
		l.conn.output(time.Now())
	}
	l.conn.closed = true
	return l.s.close()
}
