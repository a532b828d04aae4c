package utcp

import (
	"encoding/binary"
	"testing"
)

// streamByte is the byte at stream offset k of the fuzzed peer's data, so
// that any byte delivered at the wrong position is detected.
func streamByte(k uint32) byte { return byte(k*7 + k>>8 + 1) }

// FuzzInput feeds an established server arbitrary segments from its client's
// address. Every segment's payload carries the stream bytes of the offset
// its sequence number claims; Input and Output must never panic, and Read
// must only ever return the stream in order.
func FuzzInput(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 24, 0, 0, 0, 0, 0, 255, 255, 10, 0})
	f.Add([]byte{0, 0, 0, 5, 24, 0, 0, 0, 0, 0, 1, 0, 100, 1, 1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xf0, 17, 0, 0, 0, 0, 0, 0, 0, 0, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		p := newPair(t, Config{}, Config{RecvWindow: 8192, WindowScale: 2})
		p.handshake()
		s := p.s.e
		base := s.rcvNxt // stream offset 0
		ackBase := s.sndUna
		delivered := uint32(0)
		var buf [1 << 14]byte
		for len(data) >= 14 {
			h := data[:14]
			data = data[14:]
			seg := Segment{
				Src:    clientAddr,
				Dst:    serverAddr,
				Seq:    base + binary.BigEndian.Uint32(h[0:4]),
				Flags:  h[4],
				Ack:    ackBase + binary.BigEndian.Uint32(h[5:9]),
				Window: binary.BigEndian.Uint16(h[9:11]),
			}
			n := int(binary.BigEndian.Uint16(h[11:13])) % 3000
			optLen := int(h[13]%11) * 4
			if optLen > len(data) {
				optLen = len(data) &^ 3
			}
			seg.Options, data = data[:optLen], data[optLen:]
			seg.Payload = make([]byte, n)
			for i := range seg.Payload {
				seg.Payload[i] = streamByte(seg.Seq - base + uint32(i))
			}
			p.now += int64(h[13]) * 1e6
			if err := s.Input(seg, p.now); err != nil {
				t.Fatalf("Input(%v): %v", seg, err)
			}
			if err := s.Output(p.now, func(out Segment) error {
				if len(out.Options)%4 != 0 || len(out.Options) > 40 || uint32(len(out.Payload)) > max(s.sndMSS, 1) {
					t.Fatalf("emitted malformed segment %v", out)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			got := s.Read(buf[:int(h[12])%len(buf)+1])
			for i := range got {
				if buf[i] != streamByte(delivered) {
					t.Fatalf("byte %d delivered as %#x, want %#x: data out of order", delivered, buf[i], streamByte(delivered))
				}
				delivered++
			}
			if s.NextTimer() < 0 || len(s.rcvBuf) > cap(s.rcvBuf) {
				t.Fatalf("inconsistent endpoint: timer %d, buffer %d/%d", s.NextTimer(), len(s.rcvBuf), cap(s.rcvBuf))
			}
		}
	})
}
