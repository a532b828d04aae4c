package kernelpath

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"golang.org/x/sys/unix"
)

// A small control-message parser that does not allocate, unlike
// unix.ParseSocketControlMessage, so it can run on every received packet.

var errBadControlMessage = errors.New("malformed control message")

// cmsgAlign rounds n up the way CMSG_ALIGN does (to the size of a long).
func cmsgAlign(n int) int { return (n + unix.SizeofPtr - 1) &^ (unix.SizeofPtr - 1) }

// cmsgHeaderLen is CMSG_LEN(0): the aligned size of struct cmsghdr.
const cmsgHeaderLen = (unix.SizeofCmsghdr + unix.SizeofPtr - 1) &^ (unix.SizeofPtr - 1)

// nextControlMessage splits the first control message off b, following
// CMSG_NXTHDR. ok is false when b holds no further complete header; err is set
// when a header's length is impossible.
func nextControlMessage(b []byte) (level, typ int32, data, rest []byte, ok bool, err error) {
	if len(b) < unix.SizeofCmsghdr {
		return 0, 0, nil, nil, false, nil
	}
	var length uint64
	if unix.SizeofPtr == 8 {
		length = binary.NativeEndian.Uint64(b[0:8])
	} else {
		length = uint64(binary.NativeEndian.Uint32(b[0:4]))
	}
	off := unix.SizeofPtr // struct cmsghdr { size_t len; int level; int type; }
	level = int32(binary.NativeEndian.Uint32(b[off : off+4]))
	typ = int32(binary.NativeEndian.Uint32(b[off+4 : off+8]))
	if length < uint64(cmsgHeaderLen) || length > uint64(len(b)) {
		return 0, 0, nil, nil, false, errBadControlMessage
	}
	data = b[cmsgHeaderLen:length]
	next := cmsgAlign(int(length))
	if next >= len(b) {
		return level, typ, data, nil, true, nil
	}
	return level, typ, data, b[next:], true, nil
}

// controlInfo is what this package reads from one control-message buffer.
type controlInfo struct {
	// stamps is struct scm_timestamping in ns: [0] software, [1] unused
	// (legacy), [2] raw hardware. Zero means absent.
	stamps    [3]int64
	hasStamps bool
	// extErr is struct sock_extended_err from IP_RECVERR / IPV6_RECVERR.
	extErr    unix.SockExtendedErr
	hasExtErr bool
	// offender is SO_EE_OFFENDER: who reported an ICMP error (may be invalid).
	offender netip.Addr
	// rxqDrops is SO_RXQ_OVFL: datagrams dropped on the socket's receive
	// queue so far (a running total).
	rxqDrops    uint32
	hasRxqDrops bool
	// short counts messages of a known kind whose payload was cut short
	// (MSG_CTRUNC) and therefore ignored.
	short int
}

// sizeofExtendedErr is sizeof(struct sock_extended_err).
const sizeofExtendedErr = 16

// parseControl fills ci from the control messages in b.
func parseControl(b []byte, ci *controlInfo) error {
	*ci = controlInfo{}
	for {
		level, typ, data, rest, ok, err := nextControlMessage(b)
		if err != nil || !ok {
			return err
		}
		b = rest
		switch {
		case level == unix.SOL_SOCKET && (typ == unix.SO_TIMESTAMPING || typ == unix.SO_TIMESTAMPING_NEW):
			// SO_TIMESTAMPING_NEW always uses 64-bit fields; the old form uses
			// the native long (the same on 64-bit systems).
			word := unix.SizeofPtr
			if typ == unix.SO_TIMESTAMPING_NEW {
				word = 8
			}
			if len(data) < 3*2*word {
				ci.short++
				continue
			}
			for i := range ci.stamps {
				sec := readWord(data[2*word*i:], word)
				nsec := readWord(data[2*word*i+word:], word)
				ci.stamps[i] = sec*1e9 + nsec
			}
			ci.hasStamps = true
		case level == unix.SOL_SOCKET && typ == unix.SO_RXQ_OVFL:
			if len(data) < 4 {
				ci.short++
				continue
			}
			ci.rxqDrops = binary.NativeEndian.Uint32(data)
			ci.hasRxqDrops = true
		case (level == unix.SOL_IP && typ == unix.IP_RECVERR) || (level == unix.SOL_IPV6 && typ == unix.IPV6_RECVERR):
			if len(data) < sizeofExtendedErr {
				ci.short++
				continue
			}
			ci.extErr = unix.SockExtendedErr{
				Errno:  binary.NativeEndian.Uint32(data[0:4]),
				Origin: data[4],
				Type:   data[5],
				Code:   data[6],
				Pad:    data[7],
				Info:   binary.NativeEndian.Uint32(data[8:12]),
				Data:   binary.NativeEndian.Uint32(data[12:16]),
			}
			ci.hasExtErr = true
			ci.offender = parseOffender(data[sizeofExtendedErr:])
		}
	}
}

func readWord(b []byte, word int) int64 {
	if word == 8 {
		return int64(binary.NativeEndian.Uint64(b))
	}
	return int64(int32(binary.NativeEndian.Uint32(b)))
}

// parseOffender decodes the struct sockaddr_in / sockaddr_in6 that follows a
// sock_extended_err (SO_EE_OFFENDER). It returns the zero Addr when there is
// none (AF_UNSPEC) or it is cut short.
func parseOffender(sa []byte) netip.Addr {
	if len(sa) < 2 {
		return netip.Addr{}
	}
	switch binary.NativeEndian.Uint16(sa[0:2]) {
	case unix.AF_INET:
		if len(sa) >= 8 {
			return netip.AddrFrom4([4]byte(sa[4:8]))
		}
	case unix.AF_INET6:
		if len(sa) >= 24 {
			return netip.AddrFrom16([16]byte(sa[8:24]))
		}
	}
	return netip.Addr{}
}
