package utcp

import (
	"fmt"
	"net/netip"

	"github.com/stackgap/stackgap/xdp/frame"
)

// Segment is one TCP segment as the endpoint sees it: addresses, the TCP
// header fields and the payload. Flags uses frame.TCPFin … frame.TCPCwr.
//
// Segments passed to the emit function of Output alias the endpoint's
// buffers (Options, Payload): they are valid only until emit returns, so
// build the frame (BuildFrame) inside emit. Segments passed to Input may
// alias a received frame; Input copies what it keeps.
type Segment struct {
	// Src and Dst are the source and destination address and port.
	Src, Dst netip.AddrPort
	Seq, Ack uint32
	Flags    uint8
	// Window is the raw 16-bit window field (scaled by the sender's shift
	// outside SYN segments).
	Window uint16
	// Options are the raw option bytes, a multiple of 4 when sent.
	Options []byte
	Payload []byte
}

// seqLen is the sequence space the segment occupies: payload, SYN and FIN.
func (s *Segment) seqLen() uint32 {
	n := uint32(len(s.Payload))
	if s.Flags&frame.TCPSyn != 0 {
		n++
	}
	if s.Flags&frame.TCPFin != 0 {
		n++
	}
	return n
}

func (s Segment) String() string {
	flags := ""
	for i, name := range []string{"F", "S", "R", "P", "."} {
		if s.Flags&(1<<i) != 0 {
			flags += name
		}
	}
	return fmt.Sprintf("%v > %v [%s] seq %d ack %d win %d opts %d len %d",
		s.Src, s.Dst, flags, s.Seq, s.Ack, s.Window, len(s.Options), len(s.Payload))
}

// FromPacket returns the Segment of a parsed TCP frame (ok false for other
// protocols). It aliases the packet's options and payload.
func FromPacket(p *frame.Packet) (seg Segment, ok bool) {
	if p.Protocol != frame.ProtocolTCP {
		return Segment{}, false
	}
	return Segment{
		Src:     netip.AddrPortFrom(p.Src.Unmap(), p.SrcPort),
		Dst:     netip.AddrPortFrom(p.Dst.Unmap(), p.DstPort),
		Seq:     p.TCP.Seq,
		Ack:     p.TCP.Ack,
		Flags:   p.TCP.Flags,
		Window:  p.TCP.Window,
		Options: p.TCP.Options,
		Payload: p.Payload,
	}, true
}

// BuildFrame writes seg as an Ethernet/IP/TCP frame into buf with
// frame.BuildTCP and returns its length. h supplies the MAC addresses, the
// IPv4 identification (incremented), traffic class and flow label; its
// addresses and ports are set from seg.
func BuildFrame(buf []byte, h *frame.Header, seg Segment) (int, error) {
	h.Src, h.SrcPort = seg.Src.Addr(), seg.Src.Port()
	h.Dst, h.DstPort = seg.Dst.Addr(), seg.Dst.Port()
	n, err := frame.BuildTCP(buf, h, frame.TCPHeader{
		Seq: seg.Seq, Ack: seg.Ack, Flags: seg.Flags, Window: seg.Window, Options: seg.Options,
	}, seg.Payload)
	if err != nil {
		return 0, fmt.Errorf("build tcp segment: %w", err)
	}
	return n, nil
}
