// Package frame builds and parses the Ethernet frames of stackgap's AF_XDP
// path: Ethernet II carrying IPv4 or IPv6 and UDP or TCP, with every checksum
// computed in software (AF_XDP frames get no checksum offload), and resolves
// the destination MAC address through the kernel's neighbour table.
//
// The frames match what a Linux kernel socket sends by default: IPv4 with the
// Don't Fragment bit and TTL 64, IPv6 with hop limit 64 and no extension
// headers, UDP over IPv6 always with a checksum. Encoding writes into a
// caller's buffer and never allocates; parsing returns slices of the frame.
package frame

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Sizes of the headers this package writes.
const (
	EthernetHeaderLen = 14
	IPv4HeaderLen     = 20
	IPv6HeaderLen     = 40
	UDPHeaderLen      = 8
	TCPHeaderLen      = 20 // without options
	// MaxTCPOptionsLen is the most option bytes a TCP header can carry.
	MaxTCPOptionsLen = 40
	// HopLimit is the IPv4 TTL and IPv6 hop limit of built frames, Linux's
	// default (net.ipv4.ip_default_ttl, net.ipv6.conf.*.hop_limit).
	HopLimit = 64
)

// EtherTypes and IP protocol numbers.
const (
	EtherTypeIPv4    = 0x0800
	EtherTypeIPv6    = 0x86dd
	EtherTypeVLAN    = 0x8100 // 802.1Q
	EtherTypeQinQ    = 0x88a8 // 802.1ad
	ProtocolTCP      = 6
	ProtocolUDP      = 17
	ipv4DontFragment = 0x4000
)

// TCP flags.
const (
	TCPFin = 1 << iota
	TCPSyn
	TCPRst
	TCPPsh
	TCPAck
	TCPUrg
	TCPEce
	TCPCwr
)

// Header holds the Ethernet, IP and port fields of a frame.
type Header struct {
	SrcMAC, DstMAC net.HardwareAddr
	// Src and Dst are both IPv4 or both IPv6 addresses. IPv4-mapped IPv6
	// addresses (::ffff:a.b.c.d) are IPv6 here: Unmap them to send IPv4.
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	// IPv4ID is the IPv4 identification field. BuildUDP and BuildTCP write it
	// and then increment it, like the per-socket counter (inet_id) of a
	// connected Linux socket sending with DF set; seed it with a random value,
	// as Linux does at connect(2). (An unconnected Linux UDP socket sends DF
	// datagrams with ID 0; receivers ignore the ID of unfragmentable packets.)
	IPv4ID uint16
	// TrafficClass is the IPv4 TOS byte or IPv6 traffic class (DSCP and ECN), 0 by default.
	TrafficClass uint8
	// FlowLabel is the IPv6 flow label (20 bits), 0 by default. Linux
	// connected sockets set one from a flow hash (net.ipv6.auto_flowlabels).
	FlowLabel uint32
}

// TCPHeader holds the TCP fields of a segment other than the ports.
type TCPHeader struct {
	Seq, Ack uint32
	// Flags is a combination of TCPFin … TCPCwr.
	Flags  uint8
	Window uint16
	// Options are the raw option bytes: a multiple of 4, at most
	// MaxTCPOptionsLen. Parse returns a slice of the frame.
	Options []byte
}

// Packet is a parsed frame. Its slices (MACs, TCP options, payload) alias the frame.
type Packet struct {
	Header
	// VLAN is the tag control information (PCP, DEI, VLAN ID) of one
	// 802.1Q or 802.1ad tag, valid when Tagged.
	VLAN   uint16
	Tagged bool
	// Protocol is ProtocolUDP or ProtocolTCP.
	Protocol uint8
	// HopLimit is the IPv4 TTL or IPv6 hop limit.
	HopLimit uint8
	// DontFragment is the IPv4 DF bit (always false for IPv6).
	DontFragment bool
	// TCP is valid when Protocol is ProtocolTCP.
	TCP     TCPHeader
	Payload []byte
}

// Errors returned by Parse. They let a receiver count why it ignored a frame.
var (
	ErrTruncated   = errors.New("frame truncated")
	ErrMalformed   = errors.New("malformed header")
	ErrUnsupported = errors.New("not IPv4/IPv6 UDP or TCP without extension headers")
	ErrFragment    = errors.New("IPv4 fragment")
	ErrChecksum    = errors.New("bad checksum")
)

// validate checks h and returns the length of its IP header.
func (h *Header) validate() (ipHeaderLen int, err error) {
	if len(h.SrcMAC) != 6 || len(h.DstMAC) != 6 {
		return 0, fmt.Errorf("build frame: MAC addresses must have 6 bytes, got %d and %d", len(h.SrcMAC), len(h.DstMAC))
	}
	switch {
	case h.Src.Is4() && h.Dst.Is4():
		return IPv4HeaderLen, nil
	case h.Src.Is6() && h.Dst.Is6(): // IPv4-mapped IPv6 addresses too, as IPv6
		if h.FlowLabel > 0xfffff {
			return 0, fmt.Errorf("build frame: IPv6 flow label %#x does not fit 20 bits", h.FlowLabel)
		}
		return IPv6HeaderLen, nil
	}
	return 0, fmt.Errorf("build frame: source %v and destination %v must both be IPv4 or both IPv6", h.Src, h.Dst)
}

// BuildUDP writes an Ethernet/IP/UDP frame carrying payload into buf and
// returns its length. It increments h.IPv4ID for IPv4.
func BuildUDP(buf []byte, h *Header, payload []byte) (n int, err error) {
	ipLen, err := h.validate()
	if err != nil {
		return 0, err
	}
	l4Len := UDPHeaderLen + len(payload)
	if (ipLen == IPv4HeaderLen && ipLen+l4Len > 0xffff) || l4Len > 0xffff {
		return 0, fmt.Errorf("build udp frame: %d-byte payload too large", len(payload))
	}
	n = EthernetHeaderLen + ipLen + l4Len
	if len(buf) < n {
		return 0, fmt.Errorf("build udp frame: buffer of %d bytes too small for a %d-byte frame", len(buf), n)
	}
	l4 := buf[EthernetHeaderLen+ipLen : n]
	put16(l4[0:], h.SrcPort)
	put16(l4[2:], h.DstPort)
	put16(l4[4:], uint16(l4Len))
	put16(l4[6:], 0)
	copy(l4[UDPHeaderLen:], payload)
	h.writeEthernetIP(buf, ProtocolUDP, l4Len)
	sum := fold(checksum(l4, pseudoHeaderSum(h.Src, h.Dst, ProtocolUDP, l4Len)))
	if sum == 0 {
		sum = 0xffff // 0 means "no checksum" (RFC 768), forbidden over IPv6 (RFC 8200)
	}
	put16(l4[6:], sum)
	return n, nil
}

// BuildTCP writes an Ethernet/IP/TCP frame carrying payload into buf and
// returns its length. It increments h.IPv4ID for IPv4.
func BuildTCP(buf []byte, h *Header, tcp TCPHeader, payload []byte) (n int, err error) {
	ipLen, err := h.validate()
	if err != nil {
		return 0, err
	}
	if len(tcp.Options)%4 != 0 || len(tcp.Options) > MaxTCPOptionsLen {
		return 0, fmt.Errorf("build tcp frame: %d option bytes, want a multiple of 4 up to %d", len(tcp.Options), MaxTCPOptionsLen)
	}
	tcpHeaderLen := TCPHeaderLen + len(tcp.Options)
	l4Len := tcpHeaderLen + len(payload)
	if (ipLen == IPv4HeaderLen && ipLen+l4Len > 0xffff) || l4Len > 0xffff {
		return 0, fmt.Errorf("build tcp frame: %d-byte payload too large", len(payload))
	}
	n = EthernetHeaderLen + ipLen + l4Len
	if len(buf) < n {
		return 0, fmt.Errorf("build tcp frame: buffer of %d bytes too small for a %d-byte frame", len(buf), n)
	}
	l4 := buf[EthernetHeaderLen+ipLen : n]
	put16(l4[0:], h.SrcPort)
	put16(l4[2:], h.DstPort)
	put32(l4[4:], tcp.Seq)
	put32(l4[8:], tcp.Ack)
	l4[12] = uint8(tcpHeaderLen/4) << 4
	l4[13] = tcp.Flags
	put16(l4[14:], tcp.Window)
	put16(l4[16:], 0) // checksum
	put16(l4[18:], 0) // urgent pointer
	copy(l4[TCPHeaderLen:], tcp.Options)
	copy(l4[tcpHeaderLen:], payload)
	h.writeEthernetIP(buf, ProtocolTCP, l4Len)
	put16(l4[16:], fold(checksum(l4, pseudoHeaderSum(h.Src, h.Dst, ProtocolTCP, l4Len))))
	return n, nil
}

// writeEthernetIP writes the Ethernet and IP headers in front of an L4 segment of l4Len bytes.
func (h *Header) writeEthernetIP(buf []byte, proto uint8, l4Len int) {
	copy(buf[0:6], h.DstMAC)
	copy(buf[6:12], h.SrcMAC)
	ip := buf[EthernetHeaderLen:]
	if h.Src.Is4() {
		put16(buf[12:], EtherTypeIPv4)
		ip[0] = 0x45
		ip[1] = h.TrafficClass
		put16(ip[2:], uint16(IPv4HeaderLen+l4Len))
		put16(ip[4:], h.IPv4ID)
		put16(ip[6:], ipv4DontFragment)
		ip[8] = HopLimit
		ip[9] = proto
		put16(ip[10:], 0)
		src, dst := h.Src.As4(), h.Dst.As4()
		copy(ip[12:16], src[:])
		copy(ip[16:20], dst[:])
		put16(ip[10:], fold(checksum(ip[:IPv4HeaderLen], 0)))
		h.IPv4ID++
		return
	}
	put16(buf[12:], EtherTypeIPv6)
	put32(ip[0:], 6<<28|uint32(h.TrafficClass)<<20|h.FlowLabel)
	put16(ip[4:], uint16(l4Len))
	ip[6] = proto
	ip[7] = HopLimit
	src, dst := h.Src.As16(), h.Dst.As16()
	copy(ip[8:24], src[:])
	copy(ip[24:40], dst[:])
}

// Parse decodes an Ethernet frame carrying IPv4 or IPv6 and UDP or TCP,
// with at most one VLAN tag, and verifies its IPv4 header, UDP and TCP
// checksums. Trailing bytes beyond the IP length (Ethernet padding) are
// ignored.
func Parse(frame []byte) (Packet, error) {
	return parse(frame, true)
}

// ParseUnverified is Parse without the UDP and TCP checksum verification (the
// IPv4 header checksum is still verified). Use it for frames from a kernel
// sender on the same host that left the L4 checksum to an offload that never
// ran (CHECKSUM_PARTIAL, e.g. over veth).
func ParseUnverified(frame []byte) (Packet, error) {
	return parse(frame, false)
}

func parse(frame []byte, verifyL4 bool) (p Packet, err error) {
	if len(frame) < EthernetHeaderLen {
		return Packet{}, ErrTruncated
	}
	p.DstMAC = net.HardwareAddr(frame[0:6:6])
	p.SrcMAC = net.HardwareAddr(frame[6:12:12])
	etherType := get16(frame[12:])
	l3 := frame[EthernetHeaderLen:]
	if etherType == EtherTypeVLAN || etherType == EtherTypeQinQ {
		if len(l3) < 4 {
			return Packet{}, ErrTruncated
		}
		p.Tagged, p.VLAN = true, get16(l3)
		etherType = get16(l3[2:])
		l3 = l3[4:]
	}
	var l4 []byte
	switch etherType {
	case EtherTypeIPv4:
		if len(l3) < IPv4HeaderLen {
			return Packet{}, ErrTruncated
		}
		ihl := int(l3[0]&0x0f) * 4
		totalLen := int(get16(l3[2:]))
		switch {
		case l3[0]>>4 != 4 || ihl < IPv4HeaderLen || totalLen < ihl:
			return Packet{}, ErrMalformed
		case len(l3) < totalLen:
			return Packet{}, ErrTruncated
		}
		if fold(checksum(l3[:ihl], 0)) != 0 {
			return Packet{}, ErrChecksum
		}
		flags := get16(l3[6:])
		if flags&0x3fff != 0 {
			return Packet{}, ErrFragment
		}
		p.TrafficClass = l3[1]
		p.IPv4ID = get16(l3[4:])
		p.DontFragment = flags&ipv4DontFragment != 0
		p.HopLimit = l3[8]
		p.Protocol = l3[9]
		p.Src = netip.AddrFrom4([4]byte(l3[12:16]))
		p.Dst = netip.AddrFrom4([4]byte(l3[16:20]))
		l4 = l3[ihl:totalLen]
	case EtherTypeIPv6:
		if len(l3) < IPv6HeaderLen {
			return Packet{}, ErrTruncated
		}
		if l3[0]>>4 != 6 {
			return Packet{}, ErrMalformed
		}
		payloadLen := int(get16(l3[4:]))
		if len(l3) < IPv6HeaderLen+payloadLen {
			return Packet{}, ErrTruncated
		}
		vtf := get32(l3)
		p.TrafficClass = uint8(vtf >> 20)
		p.FlowLabel = vtf & 0xfffff
		p.Protocol = l3[6]
		p.HopLimit = l3[7]
		p.Src = netip.AddrFrom16([16]byte(l3[8:24]))
		p.Dst = netip.AddrFrom16([16]byte(l3[24:40]))
		l4 = l3[IPv6HeaderLen : IPv6HeaderLen+payloadLen]
	default:
		return Packet{}, ErrUnsupported
	}

	switch p.Protocol {
	case ProtocolUDP:
		if len(l4) < UDPHeaderLen {
			return Packet{}, ErrTruncated
		}
		udpLen := int(get16(l4[4:]))
		switch {
		case udpLen < UDPHeaderLen:
			return Packet{}, ErrMalformed
		case udpLen > len(l4):
			return Packet{}, ErrTruncated
		}
		l4 = l4[:udpLen]
		if verifyL4 {
			stored := get16(l4[6:])
			if stored == 0 && p.Src.Is6() {
				return Packet{}, ErrChecksum // mandatory over IPv6
			}
			if stored != 0 && fold(checksum(l4, pseudoHeaderSum(p.Src, p.Dst, ProtocolUDP, udpLen))) != 0 {
				return Packet{}, ErrChecksum
			}
		}
		p.SrcPort, p.DstPort = get16(l4[0:]), get16(l4[2:])
		p.Payload = l4[UDPHeaderLen:]
	case ProtocolTCP:
		if len(l4) < TCPHeaderLen {
			return Packet{}, ErrTruncated
		}
		dataOffset := int(l4[12]>>4) * 4
		switch {
		case dataOffset < TCPHeaderLen:
			return Packet{}, ErrMalformed
		case dataOffset > len(l4):
			return Packet{}, ErrTruncated
		}
		if verifyL4 && fold(checksum(l4, pseudoHeaderSum(p.Src, p.Dst, ProtocolTCP, len(l4)))) != 0 {
			return Packet{}, ErrChecksum
		}
		p.SrcPort, p.DstPort = get16(l4[0:]), get16(l4[2:])
		p.TCP = TCPHeader{
			Seq:     get32(l4[4:]),
			Ack:     get32(l4[8:]),
			Flags:   l4[13],
			Window:  get16(l4[14:]),
			Options: l4[TCPHeaderLen:dataOffset:dataOffset],
		}
		p.Payload = l4[dataOffset:]
	default:
		return Packet{}, ErrUnsupported
	}
	return p, nil
}
