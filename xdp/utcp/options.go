package utcp

import "encoding/binary"

// TCP option kinds and lengths.
const (
	optEnd          = 0
	optNOP          = 1
	optMSS          = 2
	optWindowScale  = 3
	optSACKPermit   = 4
	optTimestamps   = 8
	lenMSS          = 4
	lenWindowScale  = 3
	lenSACKPermit   = 2
	lenTimestamps   = 10
	timestampOptLen = 12 // NOP, NOP, TS
)

// options are the TCP options of a received segment that the endpoint uses.
type options struct {
	mss            uint16
	hasMSS         bool
	windowScale    uint8
	hasWindowScale bool
	sackPermitted  bool
	tsVal, tsEcr   uint32
	hasTimestamps  bool
}

// parseOptions decodes raw option bytes, stopping at the end-of-list option
// or at the first malformed option (what came before it is kept).
func parseOptions(b []byte) (o options) {
	for len(b) > 0 {
		kind := b[0]
		if kind == optEnd {
			break
		}
		if kind == optNOP {
			b = b[1:]
			continue
		}
		if len(b) < 2 || int(b[1]) < 2 || int(b[1]) > len(b) {
			break
		}
		n := int(b[1])
		switch {
		case kind == optMSS && n == lenMSS:
			o.mss, o.hasMSS = binary.BigEndian.Uint16(b[2:]), true
		case kind == optWindowScale && n == lenWindowScale:
			o.windowScale, o.hasWindowScale = min(b[2], maxWindowScale), true
		case kind == optSACKPermit && n == lenSACKPermit:
			o.sackPermitted = true
		case kind == optTimestamps && n == lenTimestamps:
			o.tsVal, o.tsEcr, o.hasTimestamps = binary.BigEndian.Uint32(b[2:]), binary.BigEndian.Uint32(b[6:]), true
		}
		b = b[n:]
	}
	return o
}

// synOptions says which options a SYN or SYN-ACK carries.
type synOptions struct {
	mss                        uint16
	windowScale                uint8
	timestamps, sack, winScale bool
	tsVal, tsEcr               uint32
}

// writeSYNOptions writes the options of a SYN or SYN-ACK in Linux's order
// and padding (tcp_options_write) and returns their length:
//
//	MSS; SACK-permitted+TS packed as 04 02 08 0a, or NOP NOP TS, or
//	NOP NOP SACK-permitted; NOP + window scale.
func writeSYNOptions(b []byte, o synOptions) int {
	n := 0
	b[0], b[1] = optMSS, lenMSS
	binary.BigEndian.PutUint16(b[2:], o.mss)
	n += 4
	switch {
	case o.timestamps:
		if o.sack {
			b[n], b[n+1] = optSACKPermit, lenSACKPermit
		} else {
			b[n], b[n+1] = optNOP, optNOP
		}
		n += writeTimestamp(b[n+2:], o.tsVal, o.tsEcr) + 2
	case o.sack:
		b[n], b[n+1], b[n+2], b[n+3] = optNOP, optNOP, optSACKPermit, lenSACKPermit
		n += 4
	}
	if o.winScale {
		b[n], b[n+1], b[n+2], b[n+3] = optNOP, optWindowScale, lenWindowScale, o.windowScale
		n += 4
	}
	return n
}

// writeTimestamp writes the 10-byte timestamps option.
func writeTimestamp(b []byte, tsVal, tsEcr uint32) int {
	b[0], b[1] = optTimestamps, lenTimestamps
	binary.BigEndian.PutUint32(b[2:], tsVal)
	binary.BigEndian.PutUint32(b[6:], tsEcr)
	return lenTimestamps
}

// writeTimestampOption writes NOP, NOP, TS: the options of every non-SYN
// segment once timestamps are negotiated.
func writeTimestampOption(b []byte, tsVal, tsEcr uint32) int {
	b[0], b[1] = optNOP, optNOP
	return 2 + writeTimestamp(b[2:], tsVal, tsEcr)
}
