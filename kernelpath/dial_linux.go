package kernelpath

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/stackgap/stackgap/bench"
	"golang.org/x/sys/unix"
)

// Dial opens the sender side of a probe channel to remote: a connected UDP
// socket, or a TCP connection with TCP_NODELAY. local, when valid, is the
// source address to bind (any port); it must be of remote's family.
func Dial(local netip.Addr, remote netip.AddrPort, o Options) (*Conn, error) {
	o, err := o.validate()
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	if !remote.Addr().IsValid() || remote.Port() == 0 {
		return nil, fmt.Errorf("dial %s: remote address %s needs an IP address and a port", o.Transport, remote)
	}
	c, err := dial(local.Unmap(), remote, o)
	if err != nil {
		return nil, fmt.Errorf("dial %s %s: %w", o.Transport, remote, err)
	}
	return c, nil
}

func dial(local netip.Addr, remote netip.AddrPort, o Options) (_ *Conn, err error) {
	family := familyOf(remote.Addr())
	if local.IsValid() && familyOf(local) != family {
		return nil, fmt.Errorf("local address %s is not of the remote's family", local)
	}
	fd, err := openSocket(family, o.Transport)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
		}
	}()
	if err := configureSocket(fd, o); err != nil {
		return nil, err
	}
	if local.IsValid() {
		sa, err := sockaddrOf(local, 0)
		if err != nil {
			return nil, err
		}
		if err := unix.Bind(fd, sa); err != nil {
			return nil, fmt.Errorf("bind to %s: %w", local, os.NewSyscallError("bind", err))
		}
	}
	rsa, err := sockaddrOf(remote.Addr(), remote.Port())
	if err != nil {
		return nil, err
	}
	if o.Transport == UDP {
		if err := enableRecvErr(fd, family); err != nil {
			return nil, err
		}
		if err := unix.Connect(fd, rsa); err != nil {
			return nil, os.NewSyscallError("connect", err)
		}
	} else {
		if err := connectStream(fd, rsa, o.ConnectTimeout); err != nil {
			return nil, err
		}
		if err := setNoDelay(fd); err != nil {
			return nil, err
		}
	}
	if err := enableTimestamping(fd, o); err != nil {
		return nil, err
	}
	c := newConn(fd, family, o, true)
	c.remote = remote
	c.errQueue = o.Timestamping || o.Transport == UDP // UDP: IP_RECVERR queues ICMP errors
	if c.local, err = localAddrOf(fd); err != nil {
		return nil, err
	}
	return c, nil
}

// connectStream connects a TCP socket, giving up after timeout.
func connectStream(fd int, sa unix.Sockaddr, timeout time.Duration) error {
	if err := unix.SetNonblock(fd, true); err != nil {
		return os.NewSyscallError("fcntl O_NONBLOCK", err)
	}
	err := unix.Connect(fd, sa)
	if errors.Is(err, unix.EINPROGRESS) {
		switch err = waitFD(fd, unix.POLLOUT, wallNanos()+timeout.Nanoseconds()); {
		case errors.Is(err, errTimedOut):
			return fmt.Errorf("connect: no answer within %v", timeout)
		case err != nil:
			return err
		}
		soErr, gerr := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if gerr != nil {
			return os.NewSyscallError("getsockopt SO_ERROR", gerr)
		}
		if soErr != 0 {
			err = unix.Errno(soErr)
		} else {
			err = nil
		}
	}
	if err != nil {
		if errors.Is(err, unix.ECONNREFUSED) {
			return fmt.Errorf("connect: refused (nothing listens on the port): %w", os.NewSyscallError("connect", err))
		}
		return os.NewSyscallError("connect", err)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		return os.NewSyscallError("fcntl O_NONBLOCK", err)
	}
	return nil
}

// Listener is the reflector side: a bound UDP socket or a listening TCP socket.
type Listener struct {
	fd       int
	family   int
	opts     Options
	local    netip.AddrPort
	accepted int // UDP Conns handed out
}

// Listen binds local (port 0 picks a free port) for the reflector.
func Listen(local netip.AddrPort, o Options) (*Listener, error) {
	o, err := o.validate()
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	if !local.Addr().IsValid() {
		return nil, fmt.Errorf("listen %s: local address %s has no IP address", o.Transport, local)
	}
	l, err := listen(local, o)
	if err != nil {
		return nil, fmt.Errorf("listen %s %s: %w", o.Transport, local, err)
	}
	return l, nil
}

func listen(local netip.AddrPort, o Options) (_ *Listener, err error) {
	family := familyOf(local.Addr())
	fd, err := openSocket(family, o.Transport)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
		}
	}()
	if err := configureSocket(fd, o); err != nil {
		return nil, err
	}
	if o.Transport == TCP {
		// Lets a restarted reflector bind while old connections sit in
		// TIME_WAIT; a port with a live listener still fails with EADDRINUSE.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return nil, os.NewSyscallError("setsockopt SO_REUSEADDR", err)
		}
	}
	if family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return nil, os.NewSyscallError("setsockopt IPV6_V6ONLY", err)
		}
	}
	sa, err := sockaddrOf(local.Addr(), local.Port())
	if err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, sa); err != nil {
		if errors.Is(err, unix.EADDRINUSE) {
			return nil, fmt.Errorf("port %d already in use: %w", local.Port(), os.NewSyscallError("bind", err))
		}
		return nil, os.NewSyscallError("bind", err)
	}
	if o.Transport == TCP {
		if err := unix.Listen(fd, 16); err != nil {
			return nil, os.NewSyscallError("listen", err)
		}
		// Accept polls, then accepts without blocking.
		if err := unix.SetNonblock(fd, true); err != nil {
			return nil, os.NewSyscallError("fcntl O_NONBLOCK", err)
		}
	} else if err := enableTimestamping(fd, o); err != nil {
		// Now rather than at Accept: a datagram is stamped on arrival only
		// if some socket had RX stamping on then, and the first one arrives
		// before Accept.
		return nil, err
	}
	l := &Listener{fd: fd, family: family, opts: o}
	if l.local, err = localAddrOf(fd); err != nil {
		return nil, err
	}
	return l, nil
}

// Addr is the bound local address.
func (l *Listener) Addr() netip.AddrPort { return l.local }

// Port is the bound local port.
func (l *Listener) Port() uint16 { return l.local.Port() }

// Close closes the listening socket. Conns already accepted stay open.
func (l *Listener) Close() error {
	if l.fd < 0 {
		return nil
	}
	fd := l.fd
	l.fd = -1
	if err := unix.Close(fd); err != nil {
		return fmt.Errorf("close listener: %w", os.NewSyscallError("close", err))
	}
	return nil
}

// Accept returns the session's Conn.
//
// TCP: it waits until deadline (zero: no deadline) for one connection, or
// returns an error wrapping bench.ErrTimeout. UDP: it returns at once an
// unconnected Conn on the bound socket (a duplicate descriptor, so the Conn
// and the Listener close independently) that replies to the source of the last
// datagram it received; until it has received one, RemoteAddr is invalid and
// Send fails. Only one UDP Conn per Listener should be in use at a time: they
// share one socket, its receive queue and its TX stamp counter, which a second
// Accept restarts.
func (l *Listener) Accept(deadline time.Time) (*Conn, error) {
	if l.fd < 0 {
		return nil, errors.New("accept: listener closed")
	}
	var c *Conn
	var err error
	if l.opts.Transport == UDP {
		c, err = l.acceptDatagram()
	} else {
		c, err = l.acceptStream(deadlineNanos(deadline))
	}
	if err != nil {
		return nil, fmt.Errorf("accept %s on %s: %w", l.opts.Transport, l.local, err)
	}
	return c, nil
}

func (l *Listener) acceptStream(deadline int64) (_ *Conn, err error) {
	var fd int
	var sa unix.Sockaddr
	for {
		switch err := waitFD(l.fd, unix.POLLIN, deadline); {
		case errors.Is(err, errTimedOut):
			return nil, bench.ErrTimeout
		case err != nil:
			return nil, err
		}
		// Non-blocking: the peer may have gone between poll and accept.
		fd, sa, err = unix.Accept4(l.fd, unix.SOCK_CLOEXEC)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.ECONNABORTED) {
			return nil, os.NewSyscallError("accept4", err)
		}
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
		}
	}()
	if err := configureSocket(fd, l.opts); err != nil {
		return nil, err
	}
	if err := setNoDelay(fd); err != nil {
		return nil, err
	}
	if err := enableTimestamping(fd, l.opts); err != nil {
		return nil, err
	}
	c := newConn(fd, l.family, l.opts, true)
	c.remote = addrPortOfSockaddr(sa)
	if c.local, err = localAddrOf(fd); err != nil {
		return nil, err
	}
	return c, nil
}

func (l *Listener) acceptDatagram() (_ *Conn, err error) {
	fd, err := unix.FcntlInt(uintptr(l.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err)
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
		}
	}()
	c := newConn(fd, l.family, l.opts, false)
	c.local = l.local
	if l.accepted > 0 && c.errQueue {
		// An earlier Conn sent on this socket: restart the stamp key counter
		// and drop stamps keyed from the old one.
		if err := enableTimestamping(fd, l.opts); err != nil {
			return nil, err
		}
		for {
			_, _, _, _, errno := c.recvmsg(nil, c.errControl[:], unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT, false)
			if errno != 0 && errno != unix.EINTR {
				break
			}
		}
	}
	l.accepted++
	return c, nil
}
