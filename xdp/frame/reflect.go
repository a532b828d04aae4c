package frame

import "net/netip"

// UDPView locates the headers of a received UDP frame so that it can be
// turned into its reply where it lies, as a forwarding engine does: it reads
// offsets and raw bytes only, builds no addresses and verifies nothing until
// asked. Parse decodes a frame completely; a reflector's burst path uses a
// UDPView instead, because what it needs of a probe is where its payload
// lies and whether it is addressed to the reflector.
type UDPView struct {
	frame []byte
	l3    int // offset of the IP header
	l4    int // offset of the UDP header
	end   int // end of the UDP datagram (Ethernet padding excluded)
	v6    bool
	// headerSum is the running sum of the pseudo-header and of the UDP
	// header without its checksum field. Swapping the addresses and ports
	// does not change it, so the reply's checksum is this plus its payload.
	headerSum uint64
	// pseudoSum is the running sum of the pseudo-header alone.
	pseudoSum uint64
}

// ViewUDP locates an Ethernet frame carrying UDP over IPv4 (any header
// length, not a fragment) or IPv6 (no extension headers), with at most one
// VLAN tag: the frames Parse accepts as UDP. ok is false for anything else.
// Checksums are not verified: see IPHeaderValid and ChecksumValid.
func ViewUDP(frame []byte) (v UDPView, ok bool) {
	if len(frame) < EthernetHeaderLen {
		return UDPView{}, false
	}
	v.frame, v.l3 = frame, EthernetHeaderLen
	etherType := get16(frame[12:])
	if etherType == EtherTypeVLAN || etherType == EtherTypeQinQ {
		if len(frame) < EthernetHeaderLen+4 {
			return UDPView{}, false
		}
		etherType = get16(frame[EthernetHeaderLen+2:])
		v.l3 += 4
	}
	l3 := frame[v.l3:]
	var udpLen int
	switch etherType {
	case EtherTypeIPv4:
		if len(l3) < IPv4HeaderLen {
			return UDPView{}, false
		}
		ihl := int(l3[0]&0x0f) * 4
		totalLen := int(get16(l3[2:]))
		if l3[0]>>4 != 4 || ihl < IPv4HeaderLen || totalLen < ihl+UDPHeaderLen || len(l3) < totalLen ||
			get16(l3[6:])&0x3fff != 0 || l3[9] != ProtocolUDP {
			return UDPView{}, false
		}
		v.l4 = v.l3 + ihl
		udpLen = int(get16(frame[v.l4+4:]))
		if udpLen < UDPHeaderLen || udpLen > totalLen-ihl {
			return UDPView{}, false
		}
		v.headerSum = checksum(l3[12:20], uint64(ProtocolUDP)+uint64(udpLen))
	case EtherTypeIPv6:
		if len(l3) < IPv6HeaderLen+UDPHeaderLen {
			return UDPView{}, false
		}
		payloadLen := int(get16(l3[4:]))
		if l3[0]>>4 != 6 || l3[6] != ProtocolUDP || payloadLen < UDPHeaderLen || len(l3) < IPv6HeaderLen+payloadLen {
			return UDPView{}, false
		}
		v.v6, v.l4 = true, v.l3+IPv6HeaderLen
		udpLen = int(get16(frame[v.l4+4:]))
		if udpLen < UDPHeaderLen || udpLen > payloadLen {
			return UDPView{}, false
		}
		v.headerSum = checksum(l3[8:40], uint64(ProtocolUDP)+uint64(udpLen))
	default:
		return UDPView{}, false
	}
	v.end = v.l4 + udpLen
	v.pseudoSum = v.headerSum
	v.headerSum = checksum(frame[v.l4:v.l4+6], v.headerSum)
	return v, true
}

// IsTo reports whether the frame is addressed to addr and port.
func (v *UDPView) IsTo(addr netip.Addr, port uint16) bool {
	if get16(v.frame[v.l4+2:]) != port {
		return false
	}
	if v.v6 {
		a := addr.As16()
		return addr.Is6() && [16]byte(v.frame[v.l3+24:v.l3+40]) == a
	}
	a := addr.As4()
	return addr.Is4() && [4]byte(v.frame[v.l3+16:v.l3+20]) == a
}

// Source is the frame's source MAC address, IP address and port.
func (v *UDPView) Source() (mac [6]byte, addr netip.Addr, port uint16) {
	return v.endpoint(6, 12, 8, 0)
}

// Destination is the frame's destination MAC address, IP address and port:
// after Reflect, where the reply goes.
func (v *UDPView) Destination() (mac [6]byte, addr netip.Addr, port uint16) {
	return v.endpoint(0, 16, 24, 2)
}

// endpoint reads a MAC address, an IPv4 or IPv6 address and a port at the
// given offsets into the Ethernet, IPv4 or IPv6, and UDP headers.
func (v *UDPView) endpoint(macOff, ip4Off, ip6Off, portOff int) (mac [6]byte, addr netip.Addr, port uint16) {
	mac = [6]byte(v.frame[macOff : macOff+6])
	if v.v6 {
		addr = netip.AddrFrom16([16]byte(v.frame[v.l3+ip6Off : v.l3+ip6Off+16]))
	} else {
		addr = netip.AddrFrom4([4]byte(v.frame[v.l3+ip4Off : v.l3+ip4Off+4]))
	}
	return mac, addr, get16(v.frame[v.l4+portOff:])
}

// Payload is the UDP payload, where it lies in the frame.
func (v *UDPView) Payload() []byte { return v.frame[v.l4+UDPHeaderLen : v.end : v.end] }

// PayloadSum is the running one's complement sum of the payload, for
// ChecksumValid.
func (v *UDPView) PayloadSum() uint64 { return checksum(v.Payload(), 0) }

// IPHeaderValid reports whether the IPv4 header checksum verifies (always
// true for IPv6, which has none). Parse rejects such frames.
func (v *UDPView) IPHeaderValid() bool {
	if v.v6 {
		return true
	}
	ihl := int(v.frame[v.l3]&0x0f) * 4
	return fold(checksum(v.frame[v.l3:v.l3+ihl], 0)) == 0
}

// ChecksumValid reports whether the UDP checksum verifies, given the
// payload's PayloadSum. A zero checksum over IPv4 means none and is valid;
// over IPv6 it is not.
func (v *UDPView) ChecksumValid(payloadSum uint64) bool {
	stored := get16(v.frame[v.l4+6:])
	if stored == 0 {
		return !v.v6
	}
	return fold(v.headerSum+uint64(stored)+payloadSum) == 0
}

// ChecksumLeftToOffload reports whether the UDP checksum field holds what a
// sender leaves for a checksum offload to complete (the kernel's
// CHECKSUM_PARTIAL: the folded sum of the pseudo-header alone). A kernel
// sender on the same host leaves it so over veth, where no offload runs. It
// reads the headers only: unlike ChecksumValid, it does not sum the
// payload, whose cache lines the CPU that received the frame last wrote. A
// complete checksum holds the same value once in 65536 frames, which
// ChecksumValid tells apart; a corrupt one goes unnoticed.
func (v *UDPView) ChecksumLeftToOffload() bool {
	return get16(v.frame[v.l4+6:]) == ^fold(v.pseudoSum)
}

// Reflect turns the frame into its reply where it lies: MAC addresses, IP
// addresses and ports swapped, the IPv4 TTL or IPv6 hop limit set to
// HopLimit as for a frame this host originates, the IPv4 header checksum
// updated for that (RFC 1624), and the UDP checksum computed for the payload
// as it is now: the caller may have changed the payload, not its length.
// The reply is as long as the request, VLAN tag, IP options, identification,
// traffic class and flow label included, and its UDP checksum is valid even
// when the request's was not (a kernel sender on the same host leaves it to
// an offload that never runs).
func (v *UDPView) Reflect() {
	f := v.frame
	var mac [6]byte
	copy(mac[:], f[0:6])
	copy(f[0:6], f[6:12])
	copy(f[6:12], mac[:])
	ip := f[v.l3:]
	if v.v6 {
		src := [16]byte(ip[8:24])
		copy(ip[8:24], ip[24:40])
		copy(ip[24:40], src[:])
		ip[7] = HopLimit
	} else {
		src := [4]byte(ip[12:16])
		copy(ip[12:16], ip[16:20])
		copy(ip[16:20], src[:])
		if ip[8] != HopLimit {
			// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), m the word holding the TTL.
			old, now := uint64(ip[8])<<8|uint64(ip[9]), uint64(HopLimit)<<8|uint64(ip[9])
			ip[8] = HopLimit
			put16(ip[10:], fold(uint64(^get16(ip[10:]))+(^old&0xffff)+now))
		}
	}
	l4 := f[v.l4:]
	srcPort := get16(l4)
	put16(l4[0:], get16(l4[2:]))
	put16(l4[2:], srcPort)
	sum := fold(v.headerSum + v.PayloadSum())
	if sum == 0 {
		sum = 0xffff // 0 means "no checksum" (RFC 768), forbidden over IPv6
	}
	put16(l4[6:], sum)
}
