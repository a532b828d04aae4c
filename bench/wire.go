package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Probe payload format, version 1. All integers are big-endian.
//
//	offset size field
//	0      2    magic 0x5347 ("SG")
//	2      1    version (1)
//	3      1    flags: bit 0 reply (set by the reflector), bit 1 reflector stamps
//	            present, bit 2 warm-up (set by the sender: not part of the histograms),
//	            bit 3 stamped (set by the sender: both hosts take TX stamps for this probe)
//	4      4    session token
//	8      8    sequence number (0-based, per session)
//	16     2    payload length in bytes, this header included
//	18     4    reflector RX stack time, ns: the path's earliest RX stamp (RX_SOFTWARE
//	            on the kernel path, the XDP hook on AF_XDP) → user receive; 0xffffffff if unknown
//	22     4    reflector residence time, ns (user receive → user send)
//	26     …    zero padding up to the payload length
//
// The 18-byte header alone fits a minimum-size Ethernet frame carrying UDP over
// IPv4 (64 − 4 FCS − 14 Ethernet − 20 IPv4 − 8 UDP = 18). Probes of at least
// InBandSize bytes carry the reflector's stamps in-band; smaller probes leave
// them to the control channel, keyed by sequence number.
const (
	ProbeMagic   = 0x5347
	ProbeVersion = 1
	// HeaderSize is the smallest valid probe payload.
	HeaderSize = 18
	// InBandSize is the smallest payload that carries the reflector's stamps.
	InBandSize = 26
	// MaxProbeSize is the largest payload the length field and the engines accept.
	MaxProbeSize = 65000

	FlagReply         = 1 << 0
	FlagReflectStamps = 1 << 1
	FlagWarmup        = 1 << 2
	FlagStamped       = 1 << 3

	// StampUnknown marks an in-band reflector stamp that the reflector could not take.
	StampUnknown = 0xffffffff
)

// Probe is the decoded header of one probe payload.
type Probe struct {
	Flags  uint8
	Token  uint32
	Seq    uint64
	Length uint16
	// ReflectRxStack and ReflectResidence are valid when Flags has FlagReflectStamps.
	ReflectRxStack   uint32
	ReflectResidence uint32
}

// Errors returned by ParseProbe. They let a reflector count why it ignored a packet.
var (
	ErrShortProbe   = errors.New("probe shorter than its header")
	ErrBadMagic     = errors.New("not a stackgap probe (bad magic)")
	ErrBadVersion   = errors.New("unsupported probe version")
	ErrBadLength    = errors.New("probe length field does not match its size")
	ErrBadReflector = errors.New("reflector stamps flagged in a probe too small for them")
)

// ProbeLength returns the payload length declared by a probe header. It lets a
// stream transport (TCP) frame probes; hdr must hold at least HeaderSize bytes.
func ProbeLength(hdr []byte) (int, error) {
	if len(hdr) < HeaderSize {
		return 0, ErrShortProbe
	}
	if binary.BigEndian.Uint16(hdr[0:2]) != ProbeMagic {
		return 0, ErrBadMagic
	}
	if hdr[2] != ProbeVersion {
		return 0, fmt.Errorf("%w: %d", ErrBadVersion, hdr[2])
	}
	n := int(binary.BigEndian.Uint16(hdr[16:18]))
	if n < HeaderSize {
		return 0, fmt.Errorf("%w: declares %d bytes", ErrBadLength, n)
	}
	return n, nil
}

// ParseProbe decodes and validates a whole probe payload.
func ParseProbe(b []byte) (Probe, error) {
	n, err := ProbeLength(b)
	if err != nil {
		return Probe{}, err
	}
	if n != len(b) {
		return Probe{}, fmt.Errorf("%w: declares %d bytes, got %d", ErrBadLength, n, len(b))
	}
	p := Probe{
		Flags:  b[3],
		Token:  binary.BigEndian.Uint32(b[4:8]),
		Seq:    binary.BigEndian.Uint64(b[8:16]),
		Length: uint16(n),
	}
	if p.Flags&FlagReflectStamps != 0 {
		if n < InBandSize {
			return Probe{}, ErrBadReflector
		}
		p.ReflectRxStack = binary.BigEndian.Uint32(b[18:22])
		p.ReflectResidence = binary.BigEndian.Uint32(b[22:26])
	}
	return p, nil
}

// MarshalProbe writes a request probe of len(b) bytes into b: header, then zero
// padding. len(b) must be within [HeaderSize, MaxProbeSize].
func MarshalProbe(b []byte, token uint32, seq uint64) {
	binary.BigEndian.PutUint16(b[0:2], ProbeMagic)
	b[2] = ProbeVersion
	b[3] = 0
	binary.BigEndian.PutUint32(b[4:8], token)
	binary.BigEndian.PutUint64(b[8:16], seq)
	binary.BigEndian.PutUint16(b[16:18], uint16(len(b)))
	clear(b[HeaderSize:])
}

// SetProbeSeq rewrites only the sequence number of a probe built by MarshalProbe,
// so a sender can reuse one buffer without clearing its padding every time.
func SetProbeSeq(b []byte, seq uint64) { binary.BigEndian.PutUint64(b[8:16], seq) }

// SetProbeWarmup sets or clears the warm-up flag of a request probe. The
// reflector counts warm-up probes but leaves them out of its histograms.
func SetProbeWarmup(b []byte, warmup bool) {
	if warmup {
		b[3] |= FlagWarmup
	} else {
		b[3] &^= FlagWarmup
	}
}

// SetProbeStamped sets or clears the stamped flag of a request probe: the
// sender and the reflector take transmit stamps only for stamped probes.
func SetProbeStamped(b []byte, stamped bool) {
	if stamped {
		b[3] |= FlagStamped
	} else {
		b[3] &^= FlagStamped
	}
}

// MarkReply turns a received request into its reply in place: it sets the reply
// flag and, when the probe has room, the reflector's in-band stamps. It never
// changes the probe's length. It reports whether the stamps went in-band.
func MarkReply(b []byte, rxStack, residence uint32) (inBand bool) {
	b[3] |= FlagReply
	if len(b) < InBandSize {
		return false
	}
	b[3] |= FlagReflectStamps
	binary.BigEndian.PutUint32(b[18:22], rxStack)
	binary.BigEndian.PutUint32(b[22:26], residence)
	return true
}

// ValidProbeSize reports whether n is a payload size the probe format can carry.
func ValidProbeSize(n int) error {
	if n < HeaderSize || n > MaxProbeSize {
		return fmt.Errorf("probe size %d out of range [%d, %d] bytes", n, HeaderSize, MaxProbeSize)
	}
	return nil
}
