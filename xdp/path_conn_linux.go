package xdp

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/stackgap/stackgap/bench"
	"github.com/stackgap/stackgap/internal/clock"
	"github.com/stackgap/stackgap/xdp/frame"
)

var (
	_ bench.Conn             = (*udpConn)(nil)
	_ bench.Reporter         = (*udpConn)(nil)
	_ bench.SelectiveStamper = (*udpConn)(nil)
	_ bench.InPlaceConn      = (*udpConn)(nil)
	_ bench.BatchConn        = (*udpConn)(nil)
	_ bench.ClockSharer      = (*udpConn)(nil)
)

var errConnClosed = errors.New("use of a closed af_xdp conn")

// udpConn is one UDP probe channel over an AF_XDP session (bench.Conn). A
// sender's Conn sends to the reflector it dialled and accepts only its
// replies; a reflector's Conn replies to the source (MAC, IP, port) of the
// last probe it received, like the kernel path's unconnected UDP socket.
// It is not safe for concurrent use: one goroutine, locked to its OS
// thread, drives it. Nothing on the probe path allocates.
type udpConn struct {
	s         *session
	reflector bool
	hdr       frame.Header // source and destination of the next frame sent
	srcMAC    [6]byte
	peerMAC   [6]byte
	havePeer  bool
	remote    netip.AddrPort // sender: the reflector's probe endpoint

	// held is the received frame RecvInPlace lent out, until ReplyInPlace
	// sends it back or the next receive recycles it.
	held    Desc
	holding bool
	payload []byte // the held frame's UDP payload
	// unkicked counts frames left on the TX ring for one kick with the
	// ones that follow (in-place replies to a burst, SendDeferred).
	unkicked int
	// owedFill counts frames taken off the FILL ring (received) whose
	// place there has not been refilled yet: in-place replies return
	// frames to the free list only when their transmission completes.
	owedFill int
}

// LocalAddr is the session's local address and port.
func (c *udpConn) LocalAddr() netip.AddrPort { return c.s.local }

// RemoteAddr is the peer: the dialled reflector, or for a reflector the
// source of the last probe (invalid before the first).
func (c *udpConn) RemoteAddr() netip.AddrPort {
	if !c.havePeer {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(c.hdr.Dst, c.hdr.DstPort)
}

// Clock returns the clock of the session's user stamps (bench.ClockSharer).
func (c *udpConn) Clock() clock.Wall { return c.s.clock }

// Counters implements bench.Reporter.
func (c *udpConn) Counters() map[string]uint64 { return c.s.Counters() }

// Notes implements bench.Reporter.
func (c *udpConn) Notes() []string { return c.s.Notes() }

// Close ends the session. Idempotent.
func (c *udpConn) Close() error { return c.s.close() }

// Send is SendStamped(probe, true).
func (c *udpConn) Send(probe []byte) (int64, error) { return c.SendStamped(probe, true) }

// SendStamped builds one Ethernet/IP/UDP frame around probe in a free UMEM
// frame and puts it on the TX ring, kicking the kernel; with stamp set (and
// the session taking stamps) the frame asks for its TX completion stamp.
// It returns CLOCK_REALTIME read after the frame was built, right before the
// TX ring write and kick. A reflector's Conn sends to the source of the last
// probe received and fails before the first.
//
// IPv4 frames carry DF and TTL 64 like the kernel path's, and an IP ID that
// counts up from a random seed, as Linux's do.
func (c *udpConn) SendStamped(probe []byte, stamp bool) (int64, error) {
	userTx, err := c.send(probe, stamp, true)
	if err == nil {
		c.unkicked = 0
	}
	return userTx, err
}

// SendDeferred is SendStamped without the kick (bench.BatchConn): the frame
// waits on the TX ring for the next SendStamped or Flush. Its user TX stamp
// is read when it is queued.
func (c *udpConn) SendDeferred(probe []byte, stamp bool) (int64, error) {
	userTx, err := c.send(probe, stamp, false)
	if err != nil {
		return 0, err
	}
	if c.unkicked++; c.unkicked > maxUnkicked {
		// A batch the kernel's copy-mode transmit takes in one call.
		err = c.kickBatch()
	}
	return userTx, err
}

// Flush kicks the kernel for the frames SendDeferred queued
// (bench.BatchConn).
func (c *udpConn) Flush() error {
	if c.s.closed {
		return errConnClosed
	}
	return c.kickBatch()
}

// Pending reports whether received frames wait on the RX ring
// (bench.BatchConn).
func (c *udpConn) Pending() bool { return !c.s.closed && c.s.sock.RxAvailable() }

func (c *udpConn) send(probe []byte, stamp, kick bool) (int64, error) {
	s := c.s
	switch {
	case s.closed:
		return 0, errConnClosed
	case len(probe) == 0:
		return 0, errors.New("send: empty probe")
	case !c.havePeer:
		return 0, errors.New("send: no peer yet (no probe received in this session)")
	}
	if packet := len(probe) + udpHeaderBytes(c.hdr.Src); packet > s.mtu {
		return 0, fmt.Errorf("send: %d-byte probe makes a %d-byte IP packet, above the MTU %d of %s", len(probe), packet, s.mtu, s.ifname)
	}
	addr, err := s.allocFrame()
	if err != nil {
		return 0, err
	}
	n, err := frame.BuildUDP(s.sock.Frame(addr, int(s.info.FrameCapacity)), &c.hdr, probe)
	if err != nil {
		s.counters.TxErrors++
		return 0, errors.Join(fmt.Errorf("send: %w", err), s.sock.FreeFrame(addr))
	}
	return s.transmitAt(addr, n, stamp, 0, kick)
}

// Recv waits by the session's wait strategy (poll: need_wakeup and
// ppoll(2); spin: re-reading the RX ring) for a probe of the session, copies
// its UDP payload into buf and returns it with its stamps:
//
//   - User: CLOCK_REALTIME right after the frame was taken off the RX ring;
//   - XDPHook: the steering program's CLOCK_TAI stamp, converted to CLOCK_REALTIME;
//   - Hardware: the NIC's RX stamp when the device-bound program got one, in
//     raw PHC nanoseconds (not converted to the host clock yet).
//
// Frames that do not parse, or are not UDP to the session's address and
// port (for a sender: not from the dialled reflector), are counted and
// dropped. The UDP checksum is checked but not enforced: a kernel sender on
// the same host (veth) leaves a partial checksum for an offload that never
// runs; mismatches are counted. It returns bench.ErrTimeout once deadline
// has passed (a zero deadline waits forever).
func (c *udpConn) Recv(buf []byte, deadline time.Time) (int, bench.RxStamps, error) {
	return c.recv(buf, false, deadline)
}

// RecvInPlace waits like Recv but copies nothing: it returns the probe's
// UDP payload where it lies in the UMEM frame (bench.InPlaceConn). The frame
// is lent to the caller until ReplyInPlace sends it back or the next receive
// recycles it.
func (c *udpConn) RecvInPlace(deadline time.Time) ([]byte, bench.RxStamps, error) {
	_, rx, err := c.recv(nil, true, deadline)
	if err != nil {
		return nil, rx, err
	}
	return c.payload, rx, nil
}

// ReplyInPlace turns the frame RecvInPlace lent out into the reply where it
// lies, as a forwarding engine does: the same UMEM frame gets the reply's
// Ethernet, IP and UDP headers (to the probe's source; checksums computed
// over the payload as the caller changed it) and goes on the TX ring, with a
// completion stamp request when stamp is set. No frame is allocated and the
// payload is not copied. userTx, the caller's clock read, is the reply's
// user TX stamp.
func (c *udpConn) ReplyInPlace(stamp bool, userTx int64) error {
	s := c.s
	switch {
	case s.closed:
		return errConnClosed
	case !c.holding:
		return errors.New("reply in place: no received probe held")
	}
	c.holding = false
	addr := c.held.Addr
	// The kernel put the received frame at its own offset in the chunk:
	// the reply may use the chunk up to its end.
	room := int(s.frameSize - addr&(s.frameSize-1))
	n, err := frame.BuildUDP(s.sock.Frame(addr, room), &c.hdr, c.payload)
	if err != nil {
		s.counters.TxErrors++
		return errors.Join(fmt.Errorf("reply in place: %w", err), s.recycleHeld(addr))
	}
	// More probes already waiting: leave this reply on the TX ring and
	// send it with theirs, one kick for the batch. The last reply of a
	// burst (or a lone one) kicks at once.
	batch := c.unkicked < maxUnkicked && s.sock.RxAvailable()
	if _, err = s.transmitAt(addr, n, stamp, userTx, !batch); err != nil {
		return err
	}
	if batch {
		c.unkicked++
	} else {
		c.unkicked = 0
	}
	return nil
}

// maxUnkicked bounds how many in-place replies wait on the TX ring for the
// batch's kick (the kernel's copy-mode transmit takes 32 per call).
const maxUnkicked = 31

// kickBatch sends replies ReplyInPlace left on the TX ring.
func (c *udpConn) kickBatch() error {
	if c.unkicked == 0 {
		return nil
	}
	c.unkicked = 0
	if err := c.s.sock.Kick(); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return c.s.unstall()
}

// release recycles a frame still lent out by RecvInPlace.
func (c *udpConn) release() error {
	if !c.holding {
		return nil
	}
	c.holding = false
	return c.s.recycleHeld(c.held.Addr)
}

// recv is Recv, or with inPlace RecvInPlace (buf unused).
func (c *udpConn) recv(buf []byte, inPlace bool, deadline time.Time) (int, bench.RxStamps, error) {
	s := c.s
	if s.closed {
		return 0, bench.RxStamps{}, errConnClosed
	}
	if err := c.release(); err != nil {
		return 0, bench.RxStamps{}, err
	}
	if err := c.payFill(); err != nil {
		return 0, bench.RxStamps{}, err
	}
	if c.unkicked > 0 && !s.sock.RxAvailable() {
		// Nothing waits behind the batch (the last probe was dropped):
		// send it before waiting.
		if err := c.kickBatch(); err != nil {
			return 0, bench.RxStamps{}, err
		}
	}
	var dl int64
	if !deadline.IsZero() {
		dl = deadline.UnixNano()
	}
	for {
		got, err := s.sock.Receive(s.rxDescs[:])
		if err != nil {
			return 0, bench.RxStamps{}, fmt.Errorf("receive: %w", err)
		}
		if got == 0 {
			s.counters.RxWaits++
			// The wait reads the clock only now and then: none of its reads
			// sits between the frame's arrival and its user stamp.
			n, err := s.sock.WaitReceiveUntil(s.wait, deadline)
			if err != nil {
				return 0, bench.RxStamps{}, fmt.Errorf("receive: %w", err)
			}
			if n == 0 {
				return 0, bench.RxStamps{}, bench.ErrTimeout
			}
			continue
		}
		now := s.clock.Now()
		n, rx, ok, err := c.take(s.rxDescs[0], buf, inPlace, now)
		if ok || err != nil {
			return n, rx, err
		}
		if dl != 0 && s.clock.Now() >= dl {
			return 0, bench.RxStamps{}, bench.ErrTimeout
		}
	}
}

// take handles one received frame: ok is false when it was not a probe of
// this session. The frame goes back to the FILL ring, unless inPlace is set
// and it is a probe: then it is lent out (RecvInPlace) with its payload in
// c.payload, and buf is not used.
func (c *udpConn) take(d Desc, buf []byte, inPlace bool, now int64) (n int, rx bench.RxStamps, ok bool, err error) {
	s := c.s
	s.counters.RxFrames++
	defer func() {
		if ok && err == nil && inPlace {
			c.held, c.holding = d, true
			c.owedFill++
			return
		}
		if rerr := s.recycle(d.Addr); rerr != nil && err == nil {
			err = rerr
		}
	}()
	m, metaOK := s.rxMeta(d.Addr)
	data := s.sock.Frame(d.Addr, int(d.Len))
	pkt, perr := frame.Parse(data)
	if perr == frame.ErrChecksum {
		if pkt, perr = frame.ParseUnverified(data); perr == nil {
			s.counters.RxBadChecksum++
		}
	}
	if perr != nil {
		s.counters.RxBadFrames++
		return 0, rx, false, nil
	}
	if pkt.Protocol != frame.ProtocolUDP || pkt.Dst != s.local.Addr() || pkt.DstPort != s.local.Port() ||
		(!c.reflector && (pkt.Src != c.remote.Addr() || pkt.SrcPort != c.remote.Port())) {
		s.counters.RxForeignFrames++
		return 0, rx, false, nil
	}
	if inPlace {
		n, c.payload = len(pkt.Payload), pkt.Payload
	} else if len(pkt.Payload) > len(buf) {
		s.counters.RxTooLong++
		return 0, rx, true, fmt.Errorf("receive: %d-byte probe longer than the %d-byte buffer", len(pkt.Payload), len(buf))
	} else {
		n = copy(buf, pkt.Payload)
	}
	if c.reflector {
		copy(c.peerMAC[:], pkt.SrcMAC)
		c.hdr.Dst, c.hdr.DstPort = pkt.Src, pkt.SrcPort
		c.havePeer = true
	}
	rx.User = now
	switch {
	case metaOK:
		rx.XDPHook = TAIToRealtime(m.XDPTAI, s.taiOffset)
		if m.Hardware != 0 {
			rx.Hardware = s.rxHardware(m.Hardware)
		} else if m.HardwareErr != 0 {
			s.hwErr = m.HardwareErr
		}
	case s.rxStamps:
		s.counters.RxMissingMeta++
	}
	s.counters.RxProbes++
	return n, rx, true, nil
}

// TxStamps reports the TX completion stamp of every frame the kernel
// returned since the last call, by Send index, and frees the frames. In copy
// mode the stamp is the kernel's software completion stamp (CLOCK_TAI,
// converted to CLOCK_REALTIME; not a wire time), reported as
// bench.TxCompletion; in zero-copy mode it is the driver's hardware stamp in
// raw PHC nanoseconds, reported as bench.TxHardware.
func (c *udpConn) TxStamps(report func(index uint64, kind bench.TxStampKind, ts int64)) error {
	return c.s.txStamps(report)
}

// txStamps drains the completion ring and reports the stamps kept for Sends.
func (s *session) txStamps(report func(index uint64, kind bench.TxStampKind, ts int64)) error {
	if s.closed {
		return errConnClosed
	}
	err := s.reap()
	for _, p := range s.pending {
		report(p.index, s.txKind, p.ts)
	}
	s.pending = s.pending[:0]
	return err
}

// allocFrame takes a free UMEM frame, draining the completion ring first
// when none is free.
func (s *session) allocFrame() (uint64, error) {
	if addr, ok := s.sock.AllocFrame(); ok {
		return addr, nil
	}
	if err := s.reap(); err != nil {
		return 0, fmt.Errorf("send: %w", err)
	}
	if addr, ok := s.sock.AllocFrame(); ok {
		return addr, nil
	}
	s.counters.TxNoFrame++
	return 0, fmt.Errorf("send: no free UMEM frame (%d frames, all in the FILL ring or in flight)", s.info.NumFrames)
}

// transmitAt puts the frame at addr (n bytes) on the TX ring, with a
// completion stamp request when stamp is set and the session takes stamps,
// and remembers which Send it belongs to. userTx is the user TX stamp (0:
// read the clock now, right before the TX ring write and kick); the kernel
// is kicked only with kick set.
func (s *session) transmitAt(addr uint64, n int, stamp bool, userTx int64, kick bool) (int64, error) {
	i := addr / s.frameSize
	s.sendOf[i] = s.sends
	s.txDescs[0] = Desc{Addr: addr, Len: uint32(n)}
	if userTx == 0 {
		userTx = s.clock.Now()
	}
	var queued int
	var err error
	if kick {
		queued, err = s.sock.Transmit(s.txDescs[:], stamp && s.txStamp)
	} else {
		queued, err = s.sock.Enqueue(s.txDescs[:], stamp && s.txStamp)
	}
	switch {
	case queued == 0:
		s.sendOf[i] = noSendIndex
		s.counters.TxErrors++
		return 0, errors.Join(fmt.Errorf("send: %w", err), s.sock.FreeFrame(addr))
	case err != nil:
		// Queued but the kick failed: the frame may still leave later,
		// but it belongs to no successful Send.
		s.sendOf[i] = noSendIndex
		s.counters.TxErrors++
		return 0, fmt.Errorf("send: %w", err)
	}
	s.sends++
	s.counters.TxFrames++
	if kick {
		if rerr := s.unstall(); rerr != nil {
			s.counters.TxErrors++
		}
	}
	return userTx, nil
}

// unstall drains the completion ring when the last kick made no progress
// because the ring was full (nobody drained it since), keeping the stamps;
// Complete then kicks the waiting frames out. Left alone they would wait for
// whatever drains the ring next. Call it after every kick.
func (s *session) unstall() error {
	if !s.sock.TxStalled() {
		return nil
	}
	return s.reap()
}

// reap drains the completion ring: it keeps each frame's stamp for
// TxStamps and frees the frame.
func (s *session) reap() error {
	for {
		got, err := s.sock.Complete(s.comps[:])
		for _, comp := range s.comps[:got] {
			s.counters.TxCompletions++
			i := comp.Addr / s.frameSize
			index := noSendIndex
			if i < uint64(len(s.sendOf)) {
				index, s.sendOf[i] = s.sendOf[i], noSendIndex
			}
			// The TX metadata area is where the steering metadata of a
			// later reception goes: never leave a stale magic there. (A
			// frame sent without a stamp request had it cleared when it was
			// received, and Transmit did not write it.)
			if comp.Stamped {
				ClearSteerMeta(s.sock.MetadataBefore(comp.Addr, SteerMetaSize))
			}
			if ferr := s.sock.FreeFrame(comp.Addr); ferr != nil && err == nil {
				err = ferr
			}
			switch {
			case index == controlFrame:
				// a TCP segment that completes no probe: nothing to report
			case index == noSendIndex:
				s.counters.TxUnmatched++
			case !comp.Stamped:
				// sent without a stamp request (SendStamped, or no timestamping)
			case comp.Timestamp == 0:
				s.counters.TxMissingStamps++
			case len(s.pending) == cap(s.pending):
				s.counters.TxStampsDropped++
			case s.txKind == bench.TxCompletion:
				s.pending = append(s.pending, pendingStamp{index: index, ts: TAIToRealtime(int64(comp.Timestamp), s.taiOffset)})
			default:
				if ts, ok := s.hw.toRealtime(comp.Timestamp); ok {
					s.pending = append(s.pending, pendingStamp{index: index, ts: ts})
				} else {
					s.counters.TxHardwareUnconverted++
				}
			}
		}
		if err != nil {
			return fmt.Errorf("drain completions: %w", err)
		}
		if got < len(s.comps) {
			return nil
		}
	}
}

// rxMeta reads and invalidates the steering program's metadata in front of
// the received frame at addr, when the session takes stamps. Without
// timestamping it does not touch it: the metadata sits in a cache line of
// its own, written by the CPU that ran the XDP program, and reading it costs
// a cache-line transfer per frame (the largest cost on the reflector's
// receive path in perf). Nothing reads it later in that session.
func (s *session) rxMeta(addr uint64) (SteerMeta, bool) {
	if !s.rxStamps {
		return SteerMeta{}, false
	}
	meta := s.sock.MetadataBefore(addr, SteerMetaSize)
	m, ok := ParseSteerMeta(meta)
	ClearSteerMeta(meta)
	return m, ok
}

// rxHardware converts a NIC RX stamp to CLOCK_REALTIME, or counts it and
// returns 0 (no stamp) when there is no conversion.
func (s *session) rxHardware(phcNs uint64) int64 {
	ts, ok := s.hw.toRealtime(phcNs)
	if !ok {
		s.counters.RxHardwareUnconverted++
		return 0
	}
	s.counters.RxHardwareStamps++
	return ts
}

// fillBatch is how many frames an in-place reflector lets the FILL ring
// owe before it refills: one ring update, and one cache line handed to the
// kernel's CPU, per batch instead of per probe.
const fillBatch = 16

// payFill refills the FILL ring for frames lent out by RecvInPlace once a
// batch is owed and their transmissions have completed.
func (c *udpConn) payFill() error {
	if c.owedFill < fillBatch {
		return nil
	}
	got, err := c.s.sock.Refill(c.owedFill)
	c.owedFill -= got
	if err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	return nil
}

// recycleHeld gives a frame RecvInPlace lent out, and did not send, back:
// to the free list, where payFill takes it for the FILL ring.
func (s *session) recycleHeld(addr uint64) error {
	if err := s.sock.FreeFrame(addr); err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	return nil
}

// recycle clears a received frame's metadata and gives it back to the FILL
// ring.
func (s *session) recycle(addr uint64) error {
	if err := s.sock.FreeFrame(addr); err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	if _, err := s.sock.Refill(1); err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	return nil
}

// takeInto takes the frames waiting on the RX ring into the burst from
// index from on, up to burstSize, without waiting: their places in the FILL
// ring are owed from now, and their first cache lines start loading.
func (c *udpConn) takeInto(from int) (int, error) {
	s := c.s
	n, err := s.sock.Receive(s.burst[from:])
	c.owedFill += n
	for _, d := range s.burst[from : from+n] {
		s.sock.prefetchFrame(d.Addr)
	}
	return n, err
}

// join takes the frames that arrived on the RX ring while the burst's first
// got frames were handled into the burst, up to burstSize, and returns how
// many it took. It never waits: with nothing there the burst is complete.
func (c *udpConn) join(got int) (int, error) {
	if got == burstSize || !c.s.sock.RxAvailable() {
		return 0, nil
	}
	more, err := c.takeInto(got)
	c.s.counters.RxJoined += uint64(more)
	if err != nil {
		return more, fmt.Errorf("receive: %w", err)
	}
	return more, nil
}

// burstSize is the most probes ReflectBurst takes off the RX ring at once:
// the kernel's copy-mode transmit sends up to 32 frames per system call, so
// one kick sends a whole burst's replies.
const burstSize = 32

// ReflectBurst reflects every probe waiting on the RX ring, up to
// burstSize, where it lies (bench.BurstReflector), as a forwarding engine's
// 5-tuple swap does: one ring read and one clock read for the burst; per
// frame, the headers located without decoding them (frame.ViewUDP), the
// payload handed to reply, then the MAC and IP addresses and the ports
// swapped and the UDP checksum computed for the payload reply left; one
// TX ring update and one kick for the burst. Frames that arrive while a
// burst is handled join it (up to burstSize; join) before the kick, with a
// clock read of their own: when requests come faster than single frames,
// bursts grow, and the replies leave with fewer kicks and reach the sender
// in larger groups, which both CPUs pay for per kick and per group; with
// nothing more waiting the burst leaves at once. Frames that are not UDP to the
// session's address and port, and probes reply declines, go back to the
// FILL ring. A request whose UDP checksum was left to an offload that never
// runs (a kernel sender on the same host) is counted and answered with a
// valid one, as Recv does; unlike Recv, ReflectBurst does not verify the
// others (see frame.UDPView.ChecksumLeftToOffload). Frames of earlier
// bursts whose transmission completed go back to the FILL ring first, in
// batches of fillBatch: the FILL ring's cache lines move to the kernel's CPU
// once per batch, not once per probe.
func (c *udpConn) ReflectBurst(deadline time.Time, reply func(probe []byte, rxUser int64) bool) (int, error) {
	s := c.s
	if s.closed {
		return 0, errConnClosed
	}
	if err := c.release(); err != nil {
		return 0, err
	}
	if err := c.kickBatch(); err != nil {
		return 0, err
	}
	if err := s.reap(); err != nil {
		return 0, err
	}
	if err := c.payFill(); err != nil {
		return 0, err
	}
	got, err := c.takeInto(0)
	for got == 0 && err == nil {
		s.counters.RxWaits++
		var n int
		if n, err = s.sock.WaitReceiveUntil(s.wait, deadline); err != nil {
			break
		}
		if n == 0 {
			return 0, bench.ErrTimeout
		}
		got, err = c.takeInto(0)
	}
	if err != nil {
		return 0, fmt.Errorf("receive: %w", err)
	}
	now := s.clock.Now()
	s.counters.RxBursts++
	replies := s.txBurst[:0]
	var last frame.UDPView
	handed := 0
	var ferr error
	for k := 0; ; k++ {
		if k == got {
			more, err := c.join(got)
			if err != nil && ferr == nil {
				ferr = err
			}
			if more == 0 {
				break
			}
			got += more
			now = s.clock.Now()
		}
		d := s.burst[k]
		s.counters.RxFrames++
		v, ok := frame.ViewUDP(s.sock.Frame(d.Addr, int(d.Len)))
		switch {
		case !ok || !v.IPHeaderValid():
			s.counters.RxBadFrames++
			ok = false
		case !v.IsTo(s.local.Addr(), s.local.Port()):
			s.counters.RxForeignFrames++
			ok = false
		}
		if ok {
			// Only the checksum a kernel sender leaves to an offload is
			// looked for: verifying every request's would read its
			// payload's last cache line before the reply is written into
			// it, one more transfer from the CPU that received the frame.
			// The payload is summed only when the field holds the offload's
			// value, which a complete checksum does once in 65536. The
			// reply's checksum is computed whole (Reflect) either way.
			if v.ChecksumLeftToOffload() && !v.ChecksumValid(v.PayloadSum()) {
				s.counters.RxBadChecksum++
			}
			s.counters.RxProbes++
			handed++
			if ok = reply(v.Payload(), now); ok {
				v.Reflect()
				last = v
				replies = append(replies, Desc{Addr: d.Addr, Len: d.Len})
			}
		}
		if !ok {
			if err := s.sock.FreeFrame(d.Addr); err != nil && ferr == nil {
				ferr = fmt.Errorf("receive: %w", err)
			}
		}
	}
	if len(replies) == 0 {
		return handed, ferr
	}
	// RemoteAddr's answer: the source of the burst's last probe, where its
	// reply now goes, read once per burst.
	mac, src, port := last.Destination()
	c.peerMAC, c.hdr.Dst, c.hdr.DstPort, c.havePeer = mac, src, port, true
	for _, r := range replies {
		s.sendOf[r.Addr/s.frameSize] = s.sends
		s.sends++
	}
	queued, err := s.sock.Transmit(replies, false)
	s.counters.TxFrames += uint64(queued)
	if queued < len(replies) {
		s.counters.TxErrors += uint64(len(replies) - queued)
		for _, r := range replies[queued:] {
			s.sendOf[r.Addr/s.frameSize] = noSendIndex
			if ferr := s.sock.FreeFrame(r.Addr); ferr != nil {
				err = errors.Join(err, ferr)
			}
		}
		if err == nil {
			err = errors.New("TX ring full")
		}
		return handed, fmt.Errorf("send: %d of %d replies not queued: %w", len(replies)-queued, len(replies), err)
	}
	if err != nil {
		s.counters.TxErrors++
		return handed, fmt.Errorf("send: %w", err)
	}
	if err := s.unstall(); err != nil {
		s.counters.TxErrors++
	}
	return handed, ferr
}
