package frame

import (
	"encoding/binary"
	"net/netip"
)

// checksum adds b to the running one's complement sum acc (RFC 1071). It sums
// 32-bit big-endian words into a 64-bit accumulator, which is equivalent to
// summing 16-bit words because 2^16 ≡ 1 modulo 2^16−1; fold reduces it.
func checksum(b []byte, acc uint64) uint64 {
	for len(b) >= 8 {
		v := binary.BigEndian.Uint64(b)
		acc += v>>32 + v&0xffffffff
		b = b[8:]
	}
	if len(b) >= 4 {
		acc += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	return acc
}

// fold folds a running sum to 16 bits and complements it: the value to store
// in a checksum field, or 0 when verifying a segment that includes its checksum.
func fold(acc uint64) uint16 {
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return ^uint16(acc)
}

// pseudoHeaderSum is the running sum of the IPv4 (RFC 768/793) or IPv6
// (RFC 8200 §8.1) pseudo-header of an L4 segment of length l4Len.
func pseudoHeaderSum(src, dst netip.Addr, proto uint8, l4Len int) uint64 {
	var acc uint64
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		acc = checksum(s[:], acc)
		acc = checksum(d[:], acc)
	} else {
		s, d := src.As16(), dst.As16()
		acc = checksum(s[:], acc)
		acc = checksum(d[:], acc)
	}
	return acc + uint64(proto) + uint64(l4Len)
}

func put16(b []byte, v uint16) { binary.BigEndian.PutUint16(b, v) }
func put32(b []byte, v uint32) { binary.BigEndian.PutUint32(b, v) }
func get16(b []byte) uint16    { return binary.BigEndian.Uint16(b) }
func get32(b []byte) uint32    { return binary.BigEndian.Uint32(b) }
