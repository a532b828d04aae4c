package frame

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// vlanTagged inserts an 802.1Q tag with the given TCI after the MACs.
func vlanTagged(frame []byte, tci uint16) []byte {
	out := append([]byte(nil), frame[:12]...)
	out = binary.BigEndian.AppendUint16(out, EtherTypeVLAN)
	out = binary.BigEndian.AppendUint16(out, tci)
	return append(out, frame[12:]...)
}

// withIPv4Options rebuilds an untagged IPv4 frame with 4 bytes of IP options
// (one NOP and an End of Options list padded), fixing the lengths and the
// header checksum. The UDP checksum does not cover the IP options.
func withIPv4Options(frame []byte) []byte {
	ip := frame[EthernetHeaderLen:]
	out := append([]byte(nil), frame[:EthernetHeaderLen+IPv4HeaderLen]...)
	out = append(out, 1, 0, 0, 0)
	out = append(out, ip[IPv4HeaderLen:]...)
	oip := out[EthernetHeaderLen:]
	oip[0] = 0x46
	put16(oip[2:], get16(ip[2:])+4)
	put16(oip[10:], 0)
	put16(oip[10:], fold(checksum(oip[:24], 0)))
	return out
}

// leftToOffload puts in the UDP checksum field of f, a frame of
// buildTestUDP with a payload of payloadLen bytes, what a kernel sender
// leaves for an offload: the folded sum of the pseudo-header alone.
func leftToOffload(f []byte, v6 bool, payloadLen int) []byte {
	h := testHeader(v6)
	l4 := EthernetHeaderLen + IPv4HeaderLen
	if v6 {
		l4 = EthernetHeaderLen + IPv6HeaderLen
	}
	udpLen := UDPHeaderLen + payloadLen
	put16(f[l4+6:], refSum(refPseudoHeader(h.Src, h.Dst, ProtocolUDP, udpLen)))
	return f
}

// offloadLookalike builds an IPv4 frame of buildTestUDP whose complete,
// valid UDP checksum equals the value a sender leaves to an offload: the
// payload's bytes 4 and 5 are tried until it does.
func offloadLookalike(t *testing.T, payload []byte) []byte {
	h := testHeader(false)
	p := append([]byte(nil), payload...)
	partial := refSum(refPseudoHeader(h.Src, h.Dst, ProtocolUDP, UDPHeaderLen+len(p)))
	for w := range 1 << 16 {
		put16(p[4:], uint16(w))
		f := buildTestUDP(t, false, p)
		if get16(f[EthernetHeaderLen+IPv4HeaderLen+6:]) == partial {
			return f
		}
	}
	t.Fatal("no payload gives a checksum equal to the offload's value")
	return nil
}

func TestUDPViewReflect(t *testing.T) {
	payload := []byte("\x53\x47\x01\x00 a probe payload of odd length")
	cases := []struct {
		name    string
		v6      bool
		build   func([]byte) []byte
		offload bool // the checksum is left to an offload
	}{
		{"ipv4", false, nil, false},
		{"ipv6", true, nil, false},
		{"ipv4 vlan", false, func(f []byte) []byte { return vlanTagged(f, 0x2007) }, false},
		{"ipv6 vlan", true, func(f []byte) []byte { return vlanTagged(f, 7) }, false},
		{"ipv4 options", false, withIPv4Options, false},
		{"ipv4 ttl 63", false, func(f []byte) []byte {
			ip := f[EthernetHeaderLen:]
			ip[8]--
			put16(ip[10:], 0)
			put16(ip[10:], fold(checksum(ip[:IPv4HeaderLen], 0)))
			return f
		}, false},
		{"ipv4 padded", false, func(f []byte) []byte { return append(f, 0, 0, 0, 0) }, false},
		{"ipv4 bad udp checksum", false, func(f []byte) []byte { f[EthernetHeaderLen+IPv4HeaderLen+6] ^= 0xff; return f }, false},
		{"ipv6 bad udp checksum", true, func(f []byte) []byte { f[EthernetHeaderLen+IPv6HeaderLen+6] ^= 0xff; return f }, false},
		{"ipv4 no udp checksum", false, func(f []byte) []byte { put16(f[EthernetHeaderLen+IPv4HeaderLen+6:], 0); return f }, false},
		{"ipv4 checksum left to offload", false, func(f []byte) []byte { return leftToOffload(f, false, len(payload)) }, true},
		{"ipv6 checksum left to offload", true, func(f []byte) []byte { return leftToOffload(f, true, len(payload)) }, true},
		{"ipv4 complete checksum equal to the offload's value", false, func([]byte) []byte { return offloadLookalike(t, payload) }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := buildTestUDP(t, tc.v6, payload)
			if tc.build != nil {
				req = tc.build(req)
			}
			want, err := ParseUnverified(req)
			if err != nil {
				t.Fatalf("test request does not parse: %v", err)
			}
			_, verr := Parse(req)
			frame := append([]byte(nil), req...)
			v, ok := ViewUDP(frame)
			if !ok {
				t.Fatal("ViewUDP refused a UDP frame Parse accepts")
			}
			if !v.IPHeaderValid() {
				t.Error("IPv4 header checksum does not verify")
			}
			if got, wantValid := v.ChecksumValid(v.PayloadSum()), verr == nil; got != wantValid {
				t.Errorf("ChecksumValid = %v, Parse says valid = %v (%v)", got, wantValid, verr)
			}
			if got := v.ChecksumLeftToOffload(); got != tc.offload {
				t.Errorf("ChecksumLeftToOffload = %v, want %v", got, tc.offload)
			}
			if !v.IsTo(want.Dst, want.DstPort) || v.IsTo(want.Src, want.DstPort) || v.IsTo(want.Dst, want.DstPort+1) {
				t.Error("IsTo does not match exactly the frame's destination")
			}
			mac, src, port := v.Source()
			if !bytes.Equal(mac[:], want.SrcMAC) || src != want.Src || port != want.SrcPort {
				t.Errorf("Source = %x %v %d, want %v %v %d", mac, src, port, want.SrcMAC, want.Src, want.SrcPort)
			}
			if !bytes.Equal(v.Payload(), want.Payload) {
				t.Fatalf("Payload = %q", v.Payload())
			}
			v.Payload()[3] |= 1 // what a reflector marks
			v.Payload()[len(want.Payload)-1] = 'X'
			v.Reflect()

			if len(frame) != len(req) {
				t.Fatalf("reply is %d bytes, request %d", len(frame), len(req))
			}
			got, err := Parse(frame)
			if err != nil {
				t.Fatalf("reply does not verify: %v", err)
			}
			wantPayload := append([]byte(nil), want.Payload...)
			wantPayload[3] |= 1
			wantPayload[len(wantPayload)-1] = 'X'
			switch {
			case !bytes.Equal(got.SrcMAC, want.DstMAC) || !bytes.Equal(got.DstMAC, want.SrcMAC):
				t.Errorf("reply MACs %v → %v, want %v → %v", got.SrcMAC, got.DstMAC, want.DstMAC, want.SrcMAC)
			case got.Src != want.Dst || got.Dst != want.Src || got.SrcPort != want.DstPort || got.DstPort != want.SrcPort:
				t.Errorf("reply %v:%d → %v:%d, want %v:%d → %v:%d", got.Src, got.SrcPort, got.Dst, got.DstPort,
					want.Dst, want.DstPort, want.Src, want.SrcPort)
			case got.HopLimit != HopLimit:
				t.Errorf("reply TTL/hop limit %d, want %d", got.HopLimit, HopLimit)
			case got.Tagged != want.Tagged || got.VLAN != want.VLAN || got.IPv4ID != want.IPv4ID ||
				got.TrafficClass != want.TrafficClass || got.FlowLabel != want.FlowLabel || got.DontFragment != want.DontFragment:
				t.Errorf("reply header fields changed: %+v, request %+v", got, want)
			case !bytes.Equal(got.Payload, wantPayload):
				t.Errorf("reply payload %q, want %q", got.Payload, wantPayload)
			}
			if mac, dst, port := v.Destination(); !bytes.Equal(mac[:], want.SrcMAC) || dst != want.Src || port != want.SrcPort {
				t.Errorf("Destination after Reflect = %x %v %d, want the request's source", mac, dst, port)
			}
			if get16(frame[v.l4+6:]) == 0 {
				t.Error("reply has no UDP checksum")
			}
		})
	}
}

func TestUDPViewRefuses(t *testing.T) {
	udp4 := buildTestUDP(t, false, []byte("payload"))
	h := testHeader(false)
	buf := make([]byte, 128)
	n, err := BuildTCP(buf, &h, TCPHeader{Flags: TCPSyn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	mod := func(f []byte, edit func([]byte)) []byte {
		f = append([]byte(nil), f...)
		edit(f)
		return f
	}
	for name, f := range map[string][]byte{
		"empty":        nil,
		"ethernet":     udp4[:EthernetHeaderLen],
		"truncated ip": udp4[:EthernetHeaderLen+10],
		"truncated":    udp4[:len(udp4)-1],
		"tcp":          buf[:n],
		"arp":          mod(udp4, func(f []byte) { put16(f[12:], 0x0806) }),
		"fragment":     mod(udp4, func(f []byte) { put16(f[EthernetHeaderLen+6:], 0x2000) }),
		"short ihl":    mod(udp4, func(f []byte) { f[EthernetHeaderLen] = 0x44 }),
		"udp length":   mod(udp4, func(f []byte) { put16(f[EthernetHeaderLen+IPv4HeaderLen+4:], 7) }),
		"udp too long": mod(udp4, func(f []byte) { put16(f[EthernetHeaderLen+IPv4HeaderLen+4:], 100) }),
	} {
		if _, ok := ViewUDP(f); ok {
			t.Errorf("%s: ViewUDP accepted it", name)
		}
	}
	bad := mod(udp4, func(f []byte) { f[EthernetHeaderLen+8]++ })
	if v, ok := ViewUDP(bad); !ok || v.IPHeaderValid() {
		t.Errorf("IPv4 header with a bad checksum: ok %v, then IPHeaderValid true", ok)
	}
}

func TestUDPViewNoAllocations(t *testing.T) {
	frame := buildTestUDP(t, true, make([]byte, 18))
	h := testHeader(true)
	allocs := testing.AllocsPerRun(100, func() {
		v, ok := ViewUDP(frame)
		if !ok || !v.IPHeaderValid() || !v.IsTo(h.Dst, h.DstPort) {
			t.Fatal("view failed")
		}
		v.ChecksumValid(v.PayloadSum())
		v.Reflect()
		h.Dst, h.Src, h.DstPort, h.SrcPort = h.Src, h.Dst, h.SrcPort, h.DstPort
	})
	if allocs != 0 {
		t.Errorf("view and reflect allocate %.1f times", allocs)
	}
}

// FuzzUDPView checks ViewUDP against Parse: it locates exactly the UDP
// frames ParseUnverified accepts, and Reflect turns them into replies that
// verify and carry the same payload back to the source.
func FuzzUDPView(f *testing.F) {
	for _, v6 := range []bool{false, true} {
		f.Add(buildTestUDP(f, v6, []byte{0x53, 0x47, 1, 0}))
		f.Add(vlanTagged(buildTestUDP(f, v6, []byte("x")), 1))
	}
	f.Add(withIPv4Options(buildTestUDP(f, false, []byte("options"))))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, frame []byte) {
		p, perr := ParseUnverified(frame)
		isUDP := perr == nil && p.Protocol == ProtocolUDP
		frame = append([]byte(nil), frame...)
		v, ok := ViewUDP(frame)
		if ok && !v.IPHeaderValid() {
			ok = false // Parse refuses a bad IPv4 header checksum
		}
		if ok != isUDP {
			t.Fatalf("ViewUDP ok = %v, ParseUnverified UDP = %v (%v)", ok, isUDP, perr)
		}
		if !ok {
			return
		}
		if !bytes.Equal(v.Payload(), p.Payload) || !v.IsTo(p.Dst, p.DstPort) {
			t.Fatal("view and parse disagree on the payload or destination")
		}
		v.Reflect()
		q, err := Parse(frame)
		if err != nil {
			t.Fatalf("reflected frame does not verify: %v", err)
		}
		if q.Src != p.Dst || q.Dst != p.Src || q.SrcPort != p.DstPort || q.DstPort != p.SrcPort || !bytes.Equal(q.Payload, p.Payload) {
			t.Fatalf("reflected %+v from %+v", q, p)
		}
	})
}

func BenchmarkUDPViewReflect(b *testing.B) {
	frame := buildTestUDP(b, false, make([]byte, 18))
	h := testHeader(false)
	b.ReportAllocs()
	for b.Loop() {
		v, _ := ViewUDP(frame)
		if v.IPHeaderValid() && v.IsTo(h.Dst, h.DstPort) {
			v.ChecksumValid(v.PayloadSum())
			v.Reflect()
			h.Dst, h.Src, h.DstPort, h.SrcPort = h.Src, h.Dst, h.SrcPort, h.DstPort
		}
	}
}
