package kernelpath

import (
	"errors"
	"fmt"
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
	errQueue  bool // TxStamps has to read the error queue
	local     netip.AddrPort
	remote    netip.AddrPort // fixed peer, when connected

	// UDP reflector: where replies go (the source of the last datagram) and
	// where recvmsg writes each source.
	peer    rawSockaddr
	peerLen uint32
	from    rawSockaddr

	rxControl  [controlBufferSize]byte
	errControl [controlBufferSize]byte
	control    controlInfo // scratch for parseControl

	// TCP only.
	framer *streamFramer
	lastRx bench.RxStamps // stamps of the read that completed the buffered probes
	log    *sendLog
	broken error // sticky: a send failed part-way, the stream is out of step

	sends   uint64          // successful Send calls; the next send's index
	txNext  [txKinds]uint64 // per kind: the index after the last stamp seen
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
func (c *Conn) Stats() Stats { return c.stats }

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

// Send transmits one probe and returns CLOCK_REALTIME read right before the
// send system call. UDP sends one datagram (to the connected peer, or for a
// reflector to the source of the last datagram received); TCP writes the whole
// probe, looping on partial writes.
func (c *Conn) Send(probe []byte) (int64, error) {
	if len(probe) == 0 {
		return 0, errors.New("send: empty probe")
	}
	if c.framer != nil {
		return c.sendStream(probe)
	}
	if !c.connected && c.peerLen == 0 {
		return 0, errors.New("send: no peer yet (nothing received on this socket)")
	}
	for {
		var errno unix.Errno
		userTx := wallNanos()
		if c.connected {
			_, _, errno = unix.Syscall6(unix.SYS_SENDTO, uintptr(c.fd),
				uintptr(unsafe.Pointer(&probe[0])), uintptr(len(probe)), 0, 0, 0)
		} else {
			_, _, errno = unix.Syscall6(unix.SYS_SENDTO, uintptr(c.fd),
				uintptr(unsafe.Pointer(&probe[0])), uintptr(len(probe)), 0,
				uintptr(unsafe.Pointer(&c.peer[0])), uintptr(c.peerLen))
		}
		switch errno {
		case 0:
			c.sends++
			c.stats.Sends++
			return userTx, nil
		case unix.EINTR:
			continue
		}
		return 0, c.opError("send", "sendto", errno)
	}
}

func (c *Conn) sendStream(probe []byte) (int64, error) {
	if c.broken != nil {
		return 0, c.broken
	}
	userTx := wallNanos()
	for off := 0; off < len(probe); {
		n, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(c.fd),
			uintptr(unsafe.Pointer(&probe[off])), uintptr(len(probe)-off), unix.MSG_NOSIGNAL, 0, 0)
		switch errno {
		case 0:
			off += int(n)
			if off < len(probe) {
				c.stats.PartialWrites++
			}
			continue
		case unix.EINTR:
			continue
		}
		err := c.opError("send", "sendto", errno)
		if off > 0 {
			c.broken = fmt.Errorf("%w (after %d of %d bytes: the stream is out of step)", err, off, len(probe))
			return 0, c.broken
		}
		return 0, err
	}
	c.log.record(len(probe))
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
// Non-blocking calls skip the scheduler hand-off of a blocking system call.
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
	var r uintptr
	if flags&unix.MSG_DONTWAIT != 0 {
		r, _, errno = unix.RawSyscall(unix.SYS_RECVMSG, uintptr(c.fd), uintptr(unsafe.Pointer(&msg)), uintptr(flags))
	} else {
		r, _, errno = unix.Syscall(unix.SYS_RECVMSG, uintptr(c.fd), uintptr(unsafe.Pointer(&msg)), uintptr(flags))
	}
	if errno != 0 {
		return 0, 0, 0, 0, errno
	}
	return int(r), int(msg.Controllen), msg.Flags, msg.Namelen, 0
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
	if c.spin || (deadline != 0 && wallNanos() >= deadline) {
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
	return wallNanos() >= dl
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
	for {
		n, oobn, msgFlags, nameLen, errno := c.recvmsg(buf, c.rxControl[:], flags, !c.connected)
		if errno != 0 {
			switch {
			case errno == unix.EAGAIN && c.expired(dl, &misses):
				return 0, bench.RxStamps{}, bench.ErrTimeout
			case errno == unix.EAGAIN || errno == unix.EINTR:
				continue
			}
			return 0, bench.RxStamps{}, c.opError("receive", "recvmsg", errno)
		}
		now := wallNanos()
		if msgFlags&unix.MSG_TRUNC != 0 {
			return 0, bench.RxStamps{}, fmt.Errorf("receive: datagram longer than the %d-byte buffer", len(buf))
		}
		if !c.connected {
			c.peer, c.peerLen = c.from, nameLen
		}
		rx := c.rxStamps(now, oobn, msgFlags)
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
		r, oobn, msgFlags, _, errno := c.recvmsg(c.framer.space(), c.rxControl[:], flags, false)
		if errno != 0 {
			switch {
			case errno == unix.EAGAIN && c.expired(dl, &misses):
				return 0, bench.RxStamps{}, bench.ErrTimeout
			case errno == unix.EAGAIN || errno == unix.EINTR:
				continue
			}
			return 0, bench.RxStamps{}, c.opError("receive", "recvmsg", errno)
		}
		now := wallNanos()
		if r == 0 {
			if c.framer.buffered() > 0 {
				return 0, bench.RxStamps{}, fmt.Errorf("receive from %s: connection closed inside a probe: %w", c.remote, io.ErrUnexpectedEOF)
			}
			return 0, bench.RxStamps{}, fmt.Errorf("receive from %s: connection closed: %w", c.remote, io.EOF)
		}
		c.framer.commit(r)
		c.lastRx = c.rxStamps(now, oobn, msgFlags)
	}
}
