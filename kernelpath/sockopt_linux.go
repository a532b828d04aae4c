package kernelpath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/stackgap/stackgap/bench"
	"golang.org/x/sys/unix"
)

// rawSockaddr holds a struct sockaddr_in or sockaddr_in6 as the kernel writes
// it, so the hot path can pass addresses without building unix.Sockaddr values.
type rawSockaddr [unix.SizeofSockaddrInet6]byte

// addrPort decodes the first n bytes of a raw sockaddr.
func (r *rawSockaddr) addrPort(n uint32) netip.AddrPort {
	if n < 2 {
		return netip.AddrPort{}
	}
	port := binary.BigEndian.Uint16(r[2:4])
	switch binary.NativeEndian.Uint16(r[0:2]) {
	case unix.AF_INET:
		if n >= unix.SizeofSockaddrInet4 {
			return netip.AddrPortFrom(netip.AddrFrom4([4]byte(r[4:8])), port)
		}
	case unix.AF_INET6:
		if n >= unix.SizeofSockaddrInet6 {
			a := netip.AddrFrom16([16]byte(r[8:24]))
			if scope := binary.NativeEndian.Uint32(r[24:28]); scope != 0 {
				a = a.WithZone(strconv.FormatUint(uint64(scope), 10))
			}
			return netip.AddrPortFrom(a, port)
		}
	}
	return netip.AddrPort{}
}

// familyOf returns the socket family for an (unmapped) address.
func familyOf(a netip.Addr) int {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// sockaddrOf converts an address and port to a unix.Sockaddr of the family
// the address belongs to. IPv4-mapped IPv6 addresses must be unmapped first.
func sockaddrOf(a netip.Addr, port uint16) (unix.Sockaddr, error) {
	if a.Is4() {
		return &unix.SockaddrInet4{Port: int(port), Addr: a.As4()}, nil
	}
	sa := &unix.SockaddrInet6{Port: int(port), Addr: a.As16()}
	if zone := a.Zone(); zone != "" {
		if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
			sa.ZoneId = uint32(n)
		} else {
			ifi, err := net.InterfaceByName(zone)
			if err != nil {
				return nil, fmt.Errorf("address %s: zone: %w", a, err)
			}
			sa.ZoneId = uint32(ifi.Index)
		}
	}
	return sa, nil
}

// addrPortOfSockaddr converts what getsockname/accept return.
func addrPortOfSockaddr(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		a := netip.AddrFrom16(sa.Addr)
		if sa.ZoneId != 0 {
			a = a.WithZone(strconv.FormatUint(uint64(sa.ZoneId), 10))
		}
		return netip.AddrPortFrom(a, uint16(sa.Port))
	}
	return netip.AddrPort{}
}

func localAddrOf(fd int) (netip.AddrPort, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}, os.NewSyscallError("getsockname", err)
	}
	return addrPortOfSockaddr(sa), nil
}

// openSocket creates a blocking, close-on-exec socket for t.
func openSocket(family int, t Transport) (int, error) {
	typ := unix.SOCK_DGRAM
	if t == TCP {
		typ = unix.SOCK_STREAM
	}
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	return fd, nil
}

// configureSocket applies the options that do not depend on the socket's
// state: device binding, busy polling, the blocking receive tick and, for UDP
// with timestamping, receive-queue drop reporting in control messages.
func configureSocket(fd int, o Options) error {
	if o.Device != "" {
		if err := unix.BindToDevice(fd, o.Device); err != nil {
			return fmt.Errorf("bind to device %q: %w", o.Device, os.NewSyscallError("setsockopt SO_BINDTODEVICE", err))
		}
	}
	if o.BusyPoll > 0 {
		us := int(o.BusyPoll / time.Microsecond)
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BUSY_POLL, us); err != nil {
			return privilegeHint(fmt.Errorf("set busy-poll time %v: %w", o.BusyPoll,
				os.NewSyscallError("setsockopt SO_BUSY_POLL", err)))
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PREFER_BUSY_POLL, 1); err != nil {
			return privilegeHint(fmt.Errorf("prefer busy polling: %w",
				os.NewSyscallError("setsockopt SO_PREFER_BUSY_POLL", err)))
		}
	}
	if o.Wait == bench.WaitBlock {
		tv := unix.NsecToTimeval(blockTick.Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return fmt.Errorf("set receive tick: %w", os.NewSyscallError("setsockopt SO_RCVTIMEO", err))
		}
	}
	if o.Transport == UDP && o.Timestamping {
		// Without timestamping datagrams are read with recvfrom, which
		// takes no control data; Stats reads the count with SO_MEMINFO, and
		// leaving the flag off keeps the kernel's per-receive control
		// message work (__sock_recv_cmsgs) off the data path.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1); err != nil {
			return fmt.Errorf("report receive-queue drops: %w", os.NewSyscallError("setsockopt SO_RXQ_OVFL", err))
		}
	}
	return nil
}

// privilegeHint names the missing capability when err is EPERM.
func privilegeHint(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%w (needs CAP_NET_ADMIN)", err)
	}
	return err
}

// timestampingFlags is the socket's SO_TIMESTAMPING value for o (0 when
// off): receive stamps and how stamps are reported, but no TX stamp
// generation, which stamped sends ask for per call (txTimestampingFlags).
func timestampingFlags(o Options) int {
	if !o.Timestamping {
		return 0
	}
	flags := unix.SOF_TIMESTAMPING_SOFTWARE | unix.SOF_TIMESTAMPING_RX_SOFTWARE |
		unix.SOF_TIMESTAMPING_OPT_ID | unix.SOF_TIMESTAMPING_OPT_TSONLY
	if o.Transport == TCP {
		flags |= unix.SOF_TIMESTAMPING_OPT_ID_TCP
	}
	if o.HardwareTimestamps {
		// OPT_TX_SWHW: without it a device that stamps in hardware suppresses
		// the software TX stamp.
		flags |= unix.SOF_TIMESTAMPING_RX_HARDWARE | unix.SOF_TIMESTAMPING_RAW_HARDWARE |
			unix.SOF_TIMESTAMPING_OPT_TX_SWHW
	}
	return flags
}

// txTimestampingFlags are the TX stamps a stamped send asks for in its
// SO_TIMESTAMPING control message (Documentation/networking/timestamping.rst,
// "Enabling timestamps via control messages": only the TX generation flags
// may be passed there).
func txTimestampingFlags(o Options) int {
	flags := unix.SOF_TIMESTAMPING_TX_SCHED | unix.SOF_TIMESTAMPING_TX_SOFTWARE
	if o.HardwareTimestamps {
		flags |= unix.SOF_TIMESTAMPING_TX_HARDWARE
	}
	return flags
}

// cmsgSpaceU32 is CMSG_SPACE(4): a control message carrying one 32-bit value.
const cmsgSpaceU32 = cmsgHeaderLen + (4+unix.SizeofPtr-1)&^(unix.SizeofPtr-1)

// A stamped send's control data: SO_TIMESTAMPING with the TX flags, then (UDP,
// when the kernel takes it) SCM_TS_OPT_ID with the stamp key at txKeyMessage.
const (
	txKeyMessage  = cmsgSpaceU32
	txControlSize = 2 * cmsgSpaceU32
)

// putControlU32 writes a control message carrying v at the start of b.
func putControlU32(b []byte, level, typ int, v uint32) {
	if unix.SizeofPtr == 8 {
		binary.NativeEndian.PutUint64(b[0:8], uint64(cmsgHeaderLen+4))
	} else {
		binary.NativeEndian.PutUint32(b[0:4], uint32(cmsgHeaderLen+4))
	}
	binary.NativeEndian.PutUint32(b[unix.SizeofPtr:], uint32(level))
	binary.NativeEndian.PutUint32(b[unix.SizeofPtr+4:], uint32(typ))
	binary.NativeEndian.PutUint32(b[cmsgHeaderLen:], v)
}

// enableTimestamping sets SO_TIMESTAMPING and restarts the OPT_ID key
// counter. For TCP it must run on a connected socket: the kernel refuses
// OPT_ID in the CLOSE and LISTEN states (net/core/sock.c sock_set_timestamping)
// and takes the key origin from the sequence number at this moment.
func enableTimestamping(fd int, o Options) error {
	flags := timestampingFlags(o)
	if flags == 0 {
		return nil
	}
	if err := EnableRxStamping(); err != nil {
		return err
	}
	// The key counter restarts only when OPT_ID goes from off to on.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPING, 0); err != nil {
		return fmt.Errorf("reset timestamping: %w", os.NewSyscallError("setsockopt SO_TIMESTAMPING", err))
	}
	err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPING, flags)
	if errors.Is(err, unix.EINVAL) && flags&unix.SOF_TIMESTAMPING_OPT_ID_TCP != 0 {
		// Kernels before 6.2 lack OPT_ID_TCP. Without it the key origin is
		// snd_una instead of write_seq; both are equal here because nothing
		// has been sent yet, so the keys are the same.
		flags &^= unix.SOF_TIMESTAMPING_OPT_ID_TCP
		err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPING, flags)
	}
	if err != nil {
		return fmt.Errorf("enable timestamping (flags %#x): %w", flags, os.NewSyscallError("setsockopt SO_TIMESTAMPING", err))
	}
	return nil
}

// enableRecvErr makes the kernel queue ICMP errors, with the reporting host,
// on the socket's error queue.
func enableRecvErr(fd, family int) error {
	level, opt := unix.SOL_IP, unix.IP_RECVERR
	if family == unix.AF_INET6 {
		level, opt = unix.SOL_IPV6, unix.IPV6_RECVERR
	}
	if err := unix.SetsockoptInt(fd, level, opt, 1); err != nil {
		return fmt.Errorf("enable ICMP error reports: %w", os.NewSyscallError("setsockopt RECVERR", err))
	}
	return nil
}

func setNoDelay(fd int) error {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return fmt.Errorf("disable Nagle: %w", os.NewSyscallError("setsockopt TCP_NODELAY", err))
	}
	return nil
}

// waitFD polls fd for events until deadline (unix ns; 0 = none). It returns
// errTimedOut when the deadline passes.
func waitFD(fd int, events int16, deadline int64) error {
	for {
		timeout := -1
		if deadline != 0 {
			left := deadline - wallNanos()
			if left <= 0 {
				return errTimedOut
			}
			timeout = int((left + int64(time.Millisecond) - 1) / int64(time.Millisecond))
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: events}}
		n, err := unix.Poll(fds, timeout)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return os.NewSyscallError("poll", err)
		case n > 0:
			return nil
		}
	}
}

// errTimedOut is waitFD's internal timeout.
var errTimedOut = errors.New("timed out")
