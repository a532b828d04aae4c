package kernelpath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/stackgap/stackgap/internal/clock"
	"io"
	"net/netip"
	"os"
	"time"
	"unsafe"

	"github.com/stackgap/stackgap/bench"
	"golang.org/x/sys/unix"
)

var _ bench.Conn = (*Conn)(nil)

// controlBufferSize fits every control message this package asks for:
// scm_timestamping (48 bytes), sock_extended_err with a sockaddr_in6
// offender (44) and SO_RXQ_OVFL (4), each with its 16-byte header.
const controlBufferSize = 256

// Conn is one probe channel over a kernel socket. It implements bench.Conn.
// It is not safe for concurrent use: one goroutine, locked to its OS thread,
// drives it.
type Conn struct {
	fd        int
	opts      Options
	family    int
	spin      bool
	connected bool // the socket has a fixed peer (Dial, or TCP Accept)
	errQueue  bool // the error queue can hold entries (timestamping, or IP_RECVERR)
	stamping  bool // stamped sends ask for TX stamps (Timestamping)
	// keyBySend: stamped UDP sends set their stamp key to the Send index with
	// SCM_TS_OPT_ID; cleared when the kernel refuses that (before 6.13).
	keyBySend bool
	clock     clock.Wall
	local     netip.AddrPort
	remote    netip.AddrPort // fixed peer, when connected

	// UDP reflector: where replies go (the source of the last datagram) and
	// where recvmsg writes each source.
	peer    rawSockaddr
	peerLen uint32
	from    rawSockaddr

	rxControl  [controlBufferSize]byte
	errControl [controlBufferSize]byte
	txControl  [txControlSize]byte // SO_TIMESTAMPING (and SCM_TS_OPT_ID) of stamped sends
	control    controlInfo         // scratch for parseControl

	// TCP only.
	framer *streamFramer
	lastRx bench.RxStamps // stamps of the read that completed the buffered probes
	log    *sendLog
	broken error // sticky: a send failed part-way, the stream is out of step

	sends   uint64          // successful Send calls; the next send's index
	stamped stampedLog      // Send indexes of the stamped sends
	txNext  [txKinds]uint64 // per kind: the stamped-send ordinal after the last stamp seen
	icmpDup int             // ICMP errors already reported from the socket error
	stats   Stats
}

func newConn(fd, family int, o Options, connected bool) *Conn {
	c := &Conn{
		fd:        fd,
		opts:      o,
		family:    family,
		spin:      o.Wait == bench.WaitSpin,
		connected: connected,
		errQueue:  o.Timestamping,
		stamping:  o.Timestamping,
		keyBySend: o.Transport == UDP && scmTsOptID != 0,
		clock:     clock.ForSession(o.Timestamping),
	}
	if o.Timestamping {
		putControlU32(c.txControl[:], unix.SOL_SOCKET, unix.SO_TIMESTAMPING, uint32(txTimestampingFlags(o)))
		putControlU32(c.txControl[txKeyMessage:], unix.SOL_SOCKET, scmTsOptID, 0)
	}
	if o.Transport == TCP {
		c.framer = newStreamFramer(framerBufferSize)
		c.log = new(sendLog)
	}
	return c
}

// LocalAddr is the socket's local address.
func (c *Conn) LocalAddr() netip.AddrPort { return c.local }

// RemoteAddr is the peer: the connected peer, or for a UDP Conn from
// Listener.Accept the source of the last datagram received.
func (c *Conn) RemoteAddr() netip.AddrPort {
	if c.connected {
		return c.remote
	}
	return c.peer.addrPort(c.peerLen)
}

// Stats returns the Conn's counters.
func (c *Conn) Stats() Stats {
	s := c.stats
	if c.framer == nil && c.plainRecv() && c.fd >= 0 {
		// recvfrom gets no SO_RXQ_OVFL message: ask for the same counter.
		if drops, ok := c.queueDrops(); ok {
			s.RxQueueDrops = drops
		}
	}
	return s
}

// skMeminfoDrops and skMeminfoVars are SK_MEMINFO_DROPS, the socket's drop
// count (what SO_RXQ_OVFL reports), and the length of the SO_MEMINFO array.
const (
	skMeminfoDrops = 8
	skMeminfoVars  = 9
)

// queueDrops reads the socket's receive-queue drop count with SO_MEMINFO.
func (c *Conn) queueDrops() (uint64, bool) {
	var info [skMeminfoVars]uint32
	size := uint32(unsafe.Sizeof(info))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(c.fd), unix.SOL_SOCKET, unix.SO_MEMINFO,
		uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 || size <= skMeminfoDrops*4 {
		return 0, false
	}
	return uint64(info[skMeminfoDrops]), true
}

// plainRecv reports whether receives use recvfrom instead of recvmsg: a Conn
// without timestamping needs no control data on the data path (for UDP the
// drop count comes from SO_MEMINFO instead), and recvfrom copies in no msghdr
// or iovec, which makes every empty poll of a spinning receive cheaper.
func (c *Conn) plainRecv() bool { return !c.opts.Timestamping }

// BusyPollActive reports whether busy polling can work on this socket: the
// kernel recorded the NAPI instance of received traffic (SO_INCOMING_NAPI_ID
// is not zero). Only meaningful after traffic arrived; on veth and loopback it
// stays false because those devices have no NAPI id, so busy-poll options are
// accepted but inert there.
func (c *Conn) BusyPollActive() (bool, error) {
	id, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_INCOMING_NAPI_ID)
	if err != nil {
		return false, fmt.Errorf("read incoming NAPI id: %w", os.NewSyscallError("getsockopt SO_INCOMING_NAPI_ID", err))
	}
	return id != 0, nil
}

// Close closes the socket.
func (c *Conn) Close() error {
	if c.fd < 0 {
		return nil
	}
	fd := c.fd
	c.fd = -1
	if err := unix.Close(fd); err != nil {
		return fmt.Errorf("close: %w", os.NewSyscallError("close", err))
	}
	return nil
}

// Send transmits one probe asking for its TX stamps: SendStamped(probe, true).
func (c *Conn) Send(probe []byte) (int64, error) { return c.SendStamped(probe, true) }

var (
	_ bench.SelectiveStamper = (*Conn)(nil)
	_ bench.StampedReplier   = (*Conn)(nil)
	_ bench.ClockSharer      = (*Conn)(nil)
)

// Clock returns the clock of the Conn's user stamps (bench.ClockSharer).
func (c *Conn) Clock() clock.Wall { return c.clock }

// SendStamped transmits one probe and returns CLOCK_REALTIME read right before
// the send system call. UDP sends one datagram (to the connected peer, or for a
// reflector to the source of the last datagram received); TCP writes the whole
// probe, looping on partial writes.
//
// With stamp set and Timestamping on, the send asks for its TX stamps with a
// SO_TIMESTAMPING control message (sendmsg) and TxStamps reports them later;
// otherwise it is a plain sendto that leaves nothing on the error queue and
// whose index no stamp will ever name.
func (c *Conn) SendStamped(probe []byte, stamp bool) (int64, error) {
	return c.send(probe, stamp, 0)
}

// ReplyStamped is SendStamped with userTx, the reflector's clock read taken
// when it was done with the probe, as the user-space TX stamp: the Conn reads
// no clock of its own (bench.StampedReplier).
func (c *Conn) ReplyStamped(probe []byte, stamp bool, userTx int64) error {
	_, err := c.send(probe, stamp, userTx)
	return err
}

// send transmits probe; userTx 0 reads the clock right before the send call.
func (c *Conn) send(probe []byte, stamp bool, userTx int64) (int64, error) {
	if len(probe) == 0 {
		return 0, errors.New("send: empty probe")
	}
	stamp = stamp && c.stamping
	if c.framer != nil {
		return c.sendStream(probe, stamp, userTx)
	}
	if !c.connected && c.peerLen == 0 {
		return 0, errors.New("send: no peer yet (nothing received on this socket)")
	}
	given := userTx != 0
	for {
		var errno unix.Errno
		if !given {
			userTx = c.clock.Now()
		}
		call := "sendto"
		if stamp {
			call = "sendmsg"
			control := c.txControl[:txKeyMessage]
			if c.keyBySend {
				binary.NativeEndian.PutUint32(c.txControl[txKeyMessage+cmsgHeaderLen:], uint32(c.sends))
				control = c.txControl[:]
			}
			_, errno = c.sendmsg(probe, 0, control)
		} else {
			_, errno = c.sendto(probe, 0)
		}
		switch errno {
		case 0:
			if stamp {
				c.stamped.record(c.sends)
				c.stats.StampedSends++
			}
			c.sends++
			c.stats.Sends++
			return userTx, nil
		case unix.EINTR:
			continue
		case unix.EINVAL:
			if stamp && c.keyBySend {
				// No SCM_TS_OPT_ID here (before 6.13): the kernel numbers
				// the stamped sends; nothing has used its counter yet.
				c.keyBySend = false
				continue
			}
		case unix.ENOBUFS, unix.EPERM:
			if stamp && !c.keyBySend {
				// The packet was built, so the kernel's key counter moved on.
				c.stamped.record(noSend)
			}
		}
		return 0, c.opError("send", call, errno)
	}
}

// sendto makes one sendto call of p, to the connected peer or the last source.
func (c *Conn) sendto(p []byte, flags int) (int, unix.Errno) {
	var n uintptr
	var errno unix.Errno
	if c.connected {
		n, _, errno = unix.RawSyscall6(unix.SYS_SENDTO, uintptr(c.fd),
			uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), uintptr(flags), 0, 0)
	} else {
		n, _, errno = unix.RawSyscall6(unix.SYS_SENDTO, uintptr(c.fd),
			uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), uintptr(flags),
			uintptr(unsafe.Pointer(&c.peer[0])), uintptr(c.peerLen))
	}
	return int(n), errno
}

// sendmsg makes one sendmsg call of p with the control messages in control.
func (c *Conn) sendmsg(p []byte, flags int, control []byte) (int, unix.Errno) {
	iov := unix.Iovec{Base: &p[0]}
	iov.SetLen(len(p))
	msg := unix.Msghdr{Iov: &iov, Control: &control[0]}
	msg.SetIovlen(1)
	msg.SetControllen(len(control))
	if !c.connected {
		msg.Name = &c.peer[0]
		msg.Namelen = c.peerLen
	}
	n, _, errno := unix.RawSyscall(unix.SYS_SENDMSG, uintptr(c.fd), uintptr(unsafe.Pointer(&msg)), uintptr(flags))
	return int(n), errno
}

func (c *Conn) sendStream(probe []byte, stamp bool, userTx int64) (int64, error) {
	if c.broken != nil {
		return 0, c.broken
	}
	call := "sendto"
	if stamp {
		call = "sendmsg"
	}
	if userTx == 0 {
		userTx = c.clock.Now()
	}
	for off := 0; off < len(probe); {
		var n int
		var errno unix.Errno
		if stamp {
			// Every piece asks: the stamp of the piece with the last byte counts.
			n, errno = c.sendmsg(probe[off:], unix.MSG_NOSIGNAL, c.txControl[:txKeyMessage])
		} else {
			n, errno = c.sendto(probe[off:], unix.MSG_NOSIGNAL)
		}
		switch errno {
		case 0:
			off += n
			if off < len(probe) {
				c.stats.PartialWrites++
			}
			continue
		case unix.EINTR:
			continue
		}
		err := c.opError("send", call, errno)
		if off > 0 {
			c.broken = fmt.Errorf("%w (after %d of %d bytes: the stream is out of step)", err, off, len(probe))
			return 0, c.broken
		}
		return 0, err
	}
	c.log.record(len(probe))
	if stamp {
		c.stamped.record(c.sends)
		c.stats.StampedSends++
	}
	c.sends++
	c.stats.Sends++
	return userTx, nil
}

// opError words a failed system call: an ICMP error becomes a PeerError with
// the peer's address, anything else names the peer and the call.
func (c *Conn) opError(op, syscall string, errno unix.Errno) error {
	peer := c.RemoteAddr()
	if isPeerErrno(errno) && c.opts.Transport == UDP {
		if c.errQueue {
			// The same ICMP error also sits on the error queue.
			c.icmpDup++
		}
		return fmt.Errorf("%s: %w", op, &PeerError{Peer: peer, Reason: peerReason(errno), Err: os.NewSyscallError(syscall, errno)})
	}
	return fmt.Errorf("%s %s %s: %w", op, c.opts.Transport, peer, os.NewSyscallError(syscall, errno))
}

// recvmsg makes one recvmsg call into p (may be empty) with control buffer
// oob, writing the source address into c.from when withName is set.
// Every call, blocking ones too, is a raw system call that keeps the P (see
// the package documentation); a blocking one returns within the SO_RCVTIMEO
// tick or with EINTR.
func (c *Conn) recvmsg(p, oob []byte, flags int, withName bool) (n, oobn int, msgFlags int32, nameLen uint32, errno unix.Errno) {
	var iov unix.Iovec
	var msg unix.Msghdr
	if len(p) > 0 {
		iov.Base = &p[0]
		iov.SetLen(len(p))
		msg.Iov = &iov
		msg.SetIovlen(1)
	}
	if withName {
		msg.Name = &c.from[0]
		msg.Namelen = uint32(len(c.from))
	}
	msg.Control = &oob[0]
	msg.SetControllen(len(oob))
	r, _, errno := unix.RawSyscall(unix.SYS_RECVMSG, uintptr(c.fd), uintptr(unsafe.Pointer(&msg)), uintptr(flags))
	if errno != 0 {
		return 0, 0, 0, 0, errno
	}
	return int(r), int(msg.Controllen), msg.Flags, msg.Namelen, 0
}

// recvfrom makes one recvfrom call into p (not empty), writing the source
// address into c.from when withName is set. It passes MSG_TRUNC, so n is the
// datagram's full length, which exceeds len(p) when it was truncated.
func (c *Conn) recvfrom(p []byte, flags int, withName bool) (n int, nameLen uint32, errno unix.Errno) {
	var name, nameLenPtr uintptr
	if withName {
		nameLen = uint32(len(c.from))
		name, nameLenPtr = uintptr(unsafe.Pointer(&c.from[0])), uintptr(unsafe.Pointer(&nameLen))
	}
	r, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(c.fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
		uintptr(flags|unix.MSG_TRUNC), name, nameLenPtr)
	if errno != 0 {
		return 0, 0, errno
	}
	return int(r), nameLen, 0
}

// readStream makes one recvfrom call into p (not empty) on a TCP socket: no
// source address, and no MSG_TRUNC, which on a stream would discard the data.
func (c *Conn) readStream(p []byte, flags int) (int, unix.Errno) {
	r, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(c.fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
		uintptr(flags), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), 0
}

// Recv waits for one whole probe, copies it into buf and returns its stamps:
// User is CLOCK_REALTIME read right after the receive call returned,
// Software is RX_SOFTWARE and Hardware the raw PHC value of RX_HARDWARE
// (converted to the system clock by a later layer). It returns
// bench.ErrTimeout once deadline has passed (a zero deadline waits forever).
// With WaitBlock the deadline is checked every 10 ms, so Recv can return up
// to that much after it.
//
// A TCP Conn returns exactly one probe per call, framed by the probe header's
// length; the stamps are those of the read that completed the probe (for TCP
// RX_SOFTWARE is the stamp of the last segment that read returned). A peer
// that closed the connection gives an error wrapping io.EOF.
func (c *Conn) Recv(buf []byte, deadline time.Time) (int, bench.RxStamps, error) {
	if c.framer != nil {
		return c.recvStream(buf, deadline)
	}
	return c.recvDatagram(buf, deadline)
}

// firstFlags picks the flags of the first receive attempt: non-blocking when
// spinning or when the deadline has already passed.
func (c *Conn) firstFlags(deadline int64) int {
	if c.spin || (deadline != 0 && c.clock.Now() >= deadline) {
		return unix.MSG_DONTWAIT
	}
	return 0
}

// expired reports whether the deadline dl (0: none) has passed after a
// receive attempt found nothing. A spinning Conn reads the clock only every
// spinCheckEvery misses, so most empty polls cost just the system call.
func (c *Conn) expired(dl int64, misses *int) bool {
	if dl == 0 {
		return false
	}
	*misses++
	if c.spin && *misses%spinCheckEvery != 0 {
		return false
	}
	return c.clock.Now() >= dl
}

// spinCheckEvery is how many empty polls a spinning Recv makes between
// deadline checks (each poll is a system call of a few hundred ns).
const spinCheckEvery = 16

func (c *Conn) recvDatagram(buf []byte, deadline time.Time) (int, bench.RxStamps, error) {
	if len(buf) == 0 {
		return 0, bench.RxStamps{}, errors.New("receive: empty buffer")
	}
	dl := deadlineNanos(deadline)
	flags := c.firstFlags(dl)
	misses := 0
	plain := c.plainRecv()
	for {
		var n, oobn int
		var msgFlags int32
		var nameLen uint32
		var errno unix.Errno
		call := "recvmsg"
		if plain {
			call = "recvfrom"
			n, nameLen, errno = c.recvfrom(buf, flags, !c.connected)
			if n > len(buf) {
				n, msgFlags = len(buf), unix.MSG_TRUNC
			}
		} else {
			n, oobn, msgFlags, nameLen, errno = c.recvmsg(buf, c.rxControl[:], flags, !c.connected)
		}
		if errno != 0 {
			switch {
			case errno == unix.EAGAIN && c.expired(dl, &misses):
				return 0, bench.RxStamps{}, bench.ErrTimeout
			case errno == unix.EAGAIN || errno == unix.EINTR:
				continue
			}
			return 0, bench.RxStamps{}, c.opError("receive", call, errno)
		}
		now := c.clock.Now()
		if msgFlags&unix.MSG_TRUNC != 0 {
			return 0, bench.RxStamps{}, fmt.Errorf("receive: datagram longer than the %d-byte buffer", len(buf))
		}
		if !c.connected {
			c.peer, c.peerLen = c.from, nameLen
		}
		rx := bench.RxStamps{User: now}
		if !plain {
			rx = c.rxStamps(now, oobn, msgFlags)
		}
		c.stats.Recvs++
		return n, rx, nil
	}
}

// rxStamps builds the stamps of a receive from its control data.
func (c *Conn) rxStamps(now int64, oobn int, msgFlags int32) bench.RxStamps {
	rx := bench.RxStamps{User: now}
	if msgFlags&unix.MSG_CTRUNC != 0 {
		c.stats.ControlTruncated++
	}
	ci := &c.control
	if err := parseControl(c.rxControl[:oobn], ci); err != nil {
		c.stats.ControlMalformed++
	}
	if ci.hasStamps {
		rx.Software, rx.Hardware = ci.stamps[0], ci.stamps[2]
	}
	if c.opts.Timestamping && rx.Software == 0 {
		c.stats.RxMissingStamps++
	}
	if ci.hasRxqDrops {
		c.stats.RxQueueDrops = uint64(ci.rxqDrops)
	}
	return rx
}

func (c *Conn) recvStream(buf []byte, deadline time.Time) (int, bench.RxStamps, error) {
	dl := deadlineNanos(deadline)
	flags := -1
	misses := 0
	plain := c.plainRecv()
	for {
		n, err := c.framer.whole()
		if err != nil {
			return 0, bench.RxStamps{}, fmt.Errorf("receive from %s: %w", c.remote, err)
		}
		if n > 0 {
			if n > len(buf) {
				return 0, bench.RxStamps{}, fmt.Errorf("receive: probe of %d bytes does not fit the %d-byte buffer", n, len(buf))
			}
			copy(buf, c.framer.head(n))
			c.framer.consume(n)
			c.stats.Recvs++
			return n, c.lastRx, nil
		}
		if flags < 0 {
			flags = c.firstFlags(dl)
		}
		var r, oobn int
		var msgFlags int32
		var errno unix.Errno
		call := "recvmsg"
		if plain {
			call = "recvfrom"
			r, errno = c.readStream(c.framer.space(), flags)
		} else {
			r, oobn, msgFlags, _, errno = c.recvmsg(c.framer.space(), c.rxControl[:], flags, false)
		}
		if errno != 0 {
			switch {
			case errno == unix.EAGAIN && c.expired(dl, &misses):
				return 0, bench.RxStamps{}, bench.ErrTimeout
			case errno == unix.EAGAIN || errno == unix.EINTR:
				continue
			}
			return 0, bench.RxStamps{}, c.opError("receive", call, errno)
		}
		now := c.clock.Now()
		if r == 0 {
			if c.framer.buffered() > 0 {
				return 0, bench.RxStamps{}, fmt.Errorf("receive from %s: connection closed inside a probe: %w", c.remote, io.ErrUnexpectedEOF)
			}
			return 0, bench.RxStamps{}, fmt.Errorf("receive from %s: connection closed: %w", c.remote, io.EOF)
		}
		c.framer.commit(r)
		if plain {
			c.lastRx = bench.RxStamps{User: now}
		} else {
			c.lastRx = c.rxStamps(now, oobn, msgFlags)
		}
	}
}
