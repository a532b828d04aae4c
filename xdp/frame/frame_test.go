package frame

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

var (
	testSrcMAC = net.HardwareAddr{0x02, 0x53, 0x47, 0x00, 0x00, 0x01}
	testDstMAC = net.HardwareAddr{0x02, 0x53, 0x47, 0x00, 0x00, 0x02}
)

func testHeader(v6 bool) Header {
	h := Header{SrcMAC: testSrcMAC, DstMAC: testDstMAC, SrcPort: 40000, DstPort: 4000, IPv4ID: 0xfffe}
	if v6 {
		h.Src, h.Dst = netip.MustParseAddr("2001:2::1"), netip.MustParseAddr("2001:2::2")
		h.FlowLabel = 0xabcde
		h.TrafficClass = 0x10
	} else {
		h.Src, h.Dst = netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	}
	return h
}

// refSum is the textbook RFC 1071 one's complement sum over 16-bit words,
// written independently of the package's checksum code.
func refSum(parts ...[]byte) uint16 {
	var all []byte
	for _, p := range parts {
		all = append(all, p...)
	}
	if len(all)%2 == 1 {
		all = append(all, 0)
	}
	var sum uint32
	for i := 0; i < len(all); i += 2 {
		sum += uint32(all[i])<<8 | uint32(all[i+1])
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// refPseudoHeader builds the pseudo-header bytes literally.
func refPseudoHeader(src, dst netip.Addr, proto uint8, l4Len int) []byte {
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		return append(append(s[:], d[:]...), 0, proto, byte(l4Len>>8), byte(l4Len))
	}
	s, d := src.As16(), dst.As16()
	return append(append(s[:], d[:]...), byte(l4Len>>24), byte(l4Len>>16), byte(l4Len>>8), byte(l4Len), 0, 0, 0, proto)
}

// refVerify checks a built frame's checksums with the reference sum: every
// checksummed region including its checksum field must sum to 0xffff.
func refVerify(t *testing.T, frame []byte, h Header, proto uint8) {
	t.Helper()
	l3 := frame[EthernetHeaderLen:]
	var l4 []byte
	if h.Src.Is4() {
		if got := refSum(l3[:IPv4HeaderLen]); got != 0xffff {
			t.Errorf("IPv4 header checksum: sum %#04x, want 0xffff", got)
		}
		l4 = l3[IPv4HeaderLen:]
	} else {
		l4 = l3[IPv6HeaderLen:]
	}
	if got := refSum(refPseudoHeader(h.Src, h.Dst, proto, len(l4)), l4); got != 0xffff {
		t.Errorf("L4 checksum: sum %#04x, want 0xffff", got)
	}
	if proto == ProtocolUDP && binary.BigEndian.Uint16(l4[6:]) == 0 {
		t.Error("UDP checksum field is 0")
	}
}

func TestBuildParseRoundTrip(t *testing.T) {
	options := []byte{2, 4, 0x05, 0xb4, 1, 1, 4, 2} // MSS 1460, NOP, NOP, SACK permitted
	tests := []struct {
		name    string
		v6      bool
		tcp     *TCPHeader
		payload []byte
	}{
		{"udp4", false, nil, []byte("probe payload 0123456789")},
		{"udp4 odd length", false, nil, []byte("odd")},
		{"udp4 empty", false, nil, nil},
		{"udp6", true, nil, bytes.Repeat([]byte{0xa5}, 1000)},
		{"udp6 odd length", true, nil, []byte{1, 2, 3, 4, 5}},
		{"tcp4 syn with options", false, &TCPHeader{Seq: 0x01020304, Flags: TCPSyn, Window: 64240, Options: options}, nil},
		{"tcp4 data", false, &TCPHeader{Seq: 7, Ack: 9, Flags: TCPAck | TCPPsh, Window: 502}, []byte("hello, tcp")},
		{"tcp6 fin", true, &TCPHeader{Seq: 0xffffffff, Ack: 1, Flags: TCPFin | TCPAck, Window: 1}, nil},
		{"tcp6 data with options", true, &TCPHeader{Seq: 1, Ack: 2, Flags: TCPAck, Window: 3, Options: options}, []byte{0}},
	}
	for _, tt := range tests {
		h := testHeader(tt.v6)
		buf := make([]byte, 2048)
		var n int
		var err error
		proto := uint8(ProtocolUDP)
		if tt.tcp != nil {
			proto = ProtocolTCP
			n, err = BuildTCP(buf, &h, *tt.tcp, tt.payload)
		} else {
			n, err = BuildUDP(buf, &h, tt.payload)
		}
		if err != nil {
			t.Fatalf("%s: build: %v", tt.name, err)
		}
		frame := buf[:n]
		refVerify(t, frame, testHeader(tt.v6), proto)

		p, err := Parse(frame)
		if err != nil {
			t.Fatalf("%s: Parse: %v", tt.name, err)
		}
		want := testHeader(tt.v6)
		if tt.v6 {
			want.IPv4ID = 0
		} else {
			want.TrafficClass = 0
			want.FlowLabel = 0
		}
		if !bytes.Equal(p.SrcMAC, want.SrcMAC) || !bytes.Equal(p.DstMAC, want.DstMAC) || p.Src != want.Src || p.Dst != want.Dst ||
			p.SrcPort != want.SrcPort || p.DstPort != want.DstPort || p.IPv4ID != want.IPv4ID ||
			p.TrafficClass != want.TrafficClass || p.FlowLabel != want.FlowLabel {
			t.Errorf("%s: unexpected header (-want +got):\n-%+v\n+%+v", tt.name, want, p.Header)
		}
		if p.Protocol != proto || p.HopLimit != HopLimit || p.DontFragment != !tt.v6 || p.Tagged {
			t.Errorf("%s: protocol %d hop limit %d DF %v tagged %v", tt.name, p.Protocol, p.HopLimit, p.DontFragment, p.Tagged)
		}
		if !bytes.Equal(p.Payload, tt.payload) {
			t.Errorf("%s: payload %x, want %x", tt.name, p.Payload, tt.payload)
		}
		if tt.tcp != nil {
			got := p.TCP
			if got.Seq != tt.tcp.Seq || got.Ack != tt.tcp.Ack || got.Flags != tt.tcp.Flags || got.Window != tt.tcp.Window || !bytes.Equal(got.Options, tt.tcp.Options) {
				t.Errorf("%s: TCP header %+v, want %+v", tt.name, got, *tt.tcp)
			}
		}
		if !tt.v6 && h.IPv4ID != 0xffff {
			t.Errorf("%s: IPv4ID after build %#x, want it incremented to 0xffff", tt.name, h.IPv4ID)
		}
	}
}

// TestBuildUDPGolden pins the exact bytes of one IPv4 and one IPv6 probe
// frame. Their checksums are also checked with refSum, and their layout
// against frames the kernel sent (TestKernelFramesMatch).
func TestBuildUDPGolden(t *testing.T) {
	payload := []byte{0x53, 0x47, 0x01, 0x00, 0xfe, 0xed, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 1, 0x00, 0x12}
	tests := []struct {
		v6   bool
		want string
	}{
		{false, "025347000002" + "025347000001" + "0800" + // Ethernet
			"4500002efffe40004011ae98c6120001c6120002" + // IPv4: len 46, id 0xfffe, DF, TTL 64, UDP
			"9c400fa0001ab579" + // UDP 40000 → 4000, len 26
			"53470100feedbeef00000000000000010012"},
		{true, "025347000002" + "025347000001" + "86dd" +
			"610abcde001a1140" + "20010002000000000000000000000001" + "20010002000000000000000000000002" + // IPv6: tc 0x10, label 0xabcde, hop limit 64
			"9c400fa0001a0199" +
			"53470100feedbeef00000000000000010012"},
	}
	for _, tt := range tests {
		h := testHeader(tt.v6)
		buf := make([]byte, 128)
		n, err := BuildUDP(buf, &h, payload)
		if err != nil {
			t.Fatal(err)
		}
		refVerify(t, buf[:n], testHeader(tt.v6), ProtocolUDP)
		if got := hexString(buf[:n]); got != tt.want {
			t.Errorf("v6=%v: frame\n got %s\nwant %s", tt.v6, got, tt.want)
		}
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	s := make([]byte, 0, 2*len(b))
	for _, c := range b {
		s = append(s, digits[c>>4], digits[c&0xf])
	}
	return string(s)
}

func TestBuildUDPNeverWritesZeroChecksum(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		h := testHeader(v6)
		buf := make([]byte, 128)
		// With a zero payload word the checksum is c; a payload word of c makes the sum 0xffff,
		// i.e. a computed checksum of 0, which must go on the wire as 0xffff.
		payload := []byte{0, 0}
		n, err := BuildUDP(buf, &h, payload)
		if err != nil {
			t.Fatal(err)
		}
		l4 := buf[n-UDPHeaderLen-2 : n]
		binary.BigEndian.PutUint16(payload, binary.BigEndian.Uint16(l4[6:]))
		h = testHeader(v6)
		if n, err = BuildUDP(buf, &h, payload); err != nil {
			t.Fatal(err)
		}
		if got := binary.BigEndian.Uint16(buf[n-4:]); got != 0xffff {
			t.Errorf("v6=%v: checksum %#04x, want 0xffff", v6, got)
		}
		if _, err := Parse(buf[:n]); err != nil {
			t.Errorf("v6=%v: Parse: %v", v6, err)
		}
	}
}

func TestBuildErrors(t *testing.T) {
	v4, v6 := testHeader(false), testHeader(true)
	mixed := v4
	mixed.Dst = v6.Dst
	mapped := v4
	mapped.Dst = netip.MustParseAddr("::ffff:198.18.0.2")
	badMAC := v4
	badMAC.DstMAC = badMAC.DstMAC[:5]
	badLabel := v6
	badLabel.FlowLabel = 1 << 20
	tests := []struct {
		name string
		h    Header
		tcp  *TCPHeader
		buf  int
		pay  int
		want string
	}{
		{"small buffer", v4, nil, 50, 10, "buffer of 50 bytes too small for a 52-byte frame"},
		{"mixed families", mixed, nil, 100, 0, "must both be IPv4 or both IPv6"},
		{"4in6", mapped, nil, 100, 0, "must both be IPv4 or both IPv6"},
		{"bad mac", badMAC, nil, 100, 0, "MAC addresses must have 6 bytes"},
		{"flow label", badLabel, nil, 100, 0, "does not fit 20 bits"},
		{"udp4 too large", v4, nil, 70000, 65535 - 28 + 1, "payload too large"},
		{"tcp options", v4, &TCPHeader{Options: []byte{1, 1, 1}}, 100, 0, "3 option bytes"},
		{"tcp long options", v4, &TCPHeader{Options: make([]byte, 44)}, 200, 0, "44 option bytes"},
		{"tcp small buffer", v6, &TCPHeader{}, 73, 0, "buffer of 73 bytes too small for a 74-byte frame"},
	}
	for _, tt := range tests {
		var err error
		if tt.tcp != nil {
			_, err = BuildTCP(make([]byte, tt.buf), &tt.h, *tt.tcp, make([]byte, tt.pay))
		} else {
			_, err = BuildUDP(make([]byte, tt.buf), &tt.h, make([]byte, tt.pay))
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

func buildTestUDP(t testing.TB, v6 bool, payload []byte) []byte {
	h := testHeader(v6)
	buf := make([]byte, 256)
	n, err := BuildUDP(buf, &h, payload)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

func TestParseErrors(t *testing.T) {
	udp4 := buildTestUDP(t, false, []byte("payload"))
	udp6 := buildTestUDP(t, true, []byte("payload"))
	h := testHeader(false)
	tcpBuf := make([]byte, 128)
	n, err := BuildTCP(tcpBuf, &h, TCPHeader{Flags: TCPSyn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tcp4 := tcpBuf[:n]
	mutate := func(frame []byte, f func(b []byte)) []byte {
		b := append([]byte(nil), frame...)
		f(b)
		return b
	}
	tests := []struct {
		name  string
		frame []byte
		want  error
	}{
		{"empty", nil, ErrTruncated},
		{"ethernet only", udp4[:14], ErrTruncated},
		{"ipv4 header cut", udp4[:30], ErrTruncated},
		{"ipv4 total length beyond frame", udp4[:len(udp4)-1], ErrTruncated},
		{"ipv6 payload beyond frame", udp6[:len(udp6)-1], ErrTruncated},
		{"arp", mutate(udp4, func(b []byte) { b[12], b[13] = 0x08, 0x06 }), ErrUnsupported},
		{"ipv4 bad version", mutate(udp4, func(b []byte) { b[14] = 0x55 }), ErrMalformed},
		{"ipv4 ihl 4", mutate(udp4, func(b []byte) { b[14] = 0x44 }), ErrMalformed},
		{"ipv4 header checksum", mutate(udp4, func(b []byte) { b[22]-- }), ErrChecksum},
		{"ipv4 fragment", mutate(udp4, func(b []byte) { b[20] = 0x20; fixIPv4Checksum(b) }), ErrFragment},
		{"ipv4 icmp", mutate(udp4, func(b []byte) { b[23] = 1; fixIPv4Checksum(b) }), ErrUnsupported},
		{"udp checksum", mutate(udp4, func(b []byte) { b[len(b)-1]++ }), ErrChecksum},
		{"udp length short", mutate(udp4, func(b []byte) { b[39] = 7 }), ErrMalformed},
		{"udp length long", mutate(udp4, func(b []byte) { b[39] = 100 }), ErrTruncated},
		{"udp6 zero checksum", mutate(udp6, func(b []byte) { b[60], b[61] = 0, 0 }), ErrChecksum},
		{"udp6 checksum", mutate(udp6, func(b []byte) { b[len(b)-1]++ }), ErrChecksum},
		{"ipv6 extension header", mutate(udp6, func(b []byte) { b[20] = 0 }), ErrUnsupported},
		{"ipv6 bad version", mutate(udp6, func(b []byte) { b[14] = 0x40 }), ErrMalformed},
		{"tcp checksum", mutate(tcp4, func(b []byte) { b[38]++ }), ErrChecksum},
		{"tcp data offset 4", mutate(tcp4, func(b []byte) { b[46] = 0x40 }), ErrMalformed},
		{"tcp data offset beyond segment", mutate(tcp4, func(b []byte) { b[46] = 0x60 }), ErrTruncated},
		{"tcp cut", tcp4[:40], ErrTruncated},
		{"vlan cut", mutate(udp4[:16], func(b []byte) { b[12], b[13] = 0x81, 0x00 }), ErrTruncated},
	}
	for _, tt := range tests {
		if _, err := Parse(tt.frame); !errors.Is(err, tt.want) {
			t.Errorf("%s: Parse error %v, want %v", tt.name, err, tt.want)
		}
	}
}

func fixIPv4Checksum(b []byte) {
	b[24], b[25] = 0, 0
	binary.BigEndian.PutUint16(b[24:], ^refSum(b[14:34]))
}

func TestParseAccepts(t *testing.T) {
	payload := []byte("payload")
	udp4 := buildTestUDP(t, false, payload)

	// Ethernet padding up to the 60-byte minimum is ignored
	padded := append(append([]byte(nil), udp4...), make([]byte, 20)...)
	// one 802.1Q tag
	tagged := append(append(append([]byte(nil), udp4[:12]...), 0x81, 0x00, 0x20, 0x64), udp4[12:]...)
	// IPv4 UDP without checksum
	noChecksum := append([]byte(nil), udp4...)
	noChecksum[40], noChecksum[41] = 0, 0
	// IPv4 with a 4-byte option (IHL 6): NOP NOP NOP EOL
	withOptions := append(append(append([]byte(nil), udp4[:34]...), 1, 1, 1, 0), udp4[34:]...)
	withOptions[14] = 0x46
	binary.BigEndian.PutUint16(withOptions[16:], binary.BigEndian.Uint16(udp4[16:])+4)
	withOptions[24], withOptions[25] = 0, 0
	binary.BigEndian.PutUint16(withOptions[24:], ^refSum(withOptions[14:38]))

	for _, tt := range []struct {
		name   string
		frame  []byte
		tagged bool
	}{
		{"padded", padded, false},
		{"vlan", tagged, true},
		{"ipv4 udp without checksum", noChecksum, false},
		{"ipv4 options", withOptions, false},
	} {
		p, err := Parse(tt.frame)
		if err != nil {
			t.Errorf("%s: Parse: %v", tt.name, err)
			continue
		}
		if !bytes.Equal(p.Payload, payload) || p.Tagged != tt.tagged || p.DstPort != 4000 {
			t.Errorf("%s: payload %q tagged %v port %d", tt.name, p.Payload, p.Tagged, p.DstPort)
		}
		if tt.tagged && p.VLAN != 0x2064 {
			t.Errorf("%s: VLAN TCI %#x, want 0x2064", tt.name, p.VLAN)
		}
	}

	// ParseUnverified accepts a bad L4 checksum, but not a bad IPv4 header checksum
	badL4 := append([]byte(nil), udp4...)
	badL4[41]++
	if _, err := ParseUnverified(badL4); err != nil {
		t.Errorf("ParseUnverified with bad UDP checksum: %v", err)
	}
	badL4[24]++
	if _, err := ParseUnverified(badL4); !errors.Is(err, ErrChecksum) {
		t.Errorf("ParseUnverified with bad IPv4 header checksum: %v, want ErrChecksum", err)
	}
}

func TestChecksumMatchesReference(t *testing.T) {
	data := make([]byte, 301)
	for i := range data {
		data[i] = byte(i*7 + 3)
	}
	for n := 0; n <= len(data); n++ {
		if got, want := ^fold(checksum(data[:n], 0)), refSum(data[:n]); got != want && !(got == 0xffff && want == 0) && !(got == 0 && want == 0xffff) {
			t.Fatalf("checksum of %d bytes: %#04x, reference %#04x", n, got, want)
		}
	}
}

func TestNoAllocations(t *testing.T) {
	h := testHeader(false)
	buf := make([]byte, 2048)
	payload := make([]byte, 64)
	tcp := TCPHeader{Seq: 1, Ack: 2, Flags: TCPAck, Window: 100, Options: []byte{1, 1, 1, 1}}
	frame := buildTestUDP(t, true, payload)
	for name, f := range map[string]func(){
		"BuildUDP": func() { BuildUDP(buf, &h, payload) },
		"BuildTCP": func() { BuildTCP(buf, &h, tcp, payload) },
		"Parse":    func() { Parse(frame) },
	} {
		if allocs := testing.AllocsPerRun(100, f); allocs != 0 {
			t.Errorf("%s allocates %.1f times per call", name, allocs)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, v6 := range []bool{false, true} {
		f.Add(buildTestUDP(f, v6, []byte{0x53, 0x47, 1, 0}))
		h := testHeader(v6)
		buf := make([]byte, 128)
		n, _ := BuildTCP(buf, &h, TCPHeader{Seq: 1, Flags: TCPSyn, Options: []byte{2, 4, 5, 0xb4}}, []byte("x"))
		f.Add(buf[:n])
	}
	f.Add([]byte{})
	f.Add(make([]byte, 14))
	f.Fuzz(func(t *testing.T, frame []byte) {
		p, err := Parse(frame)
		if err != nil {
			return
		}
		// Whatever parsed must rebuild into a frame that parses to the same fields.
		h := p.Header
		h.SrcMAC = append(net.HardwareAddr(nil), p.SrcMAC...)
		h.DstMAC = append(net.HardwareAddr(nil), p.DstMAC...)
		if h.Src.Is4() {
			h.TrafficClass, h.FlowLabel = p.TrafficClass, 0
		}
		buf := make([]byte, len(frame)+64)
		var n int
		if p.Protocol == ProtocolTCP {
			if len(p.TCP.Options)%4 != 0 {
				t.Fatalf("TCP options of %d bytes", len(p.TCP.Options))
			}
			n, err = BuildTCP(buf, &h, p.TCP, p.Payload)
		} else {
			n, err = BuildUDP(buf, &h, p.Payload)
		}
		if err != nil {
			t.Fatalf("rebuild %+v: %v", p, err)
		}
		q, err := Parse(buf[:n])
		if err != nil {
			t.Fatalf("parse rebuilt frame: %v", err)
		}
		if q.Src != p.Src || q.Dst != p.Dst || q.SrcPort != p.SrcPort || q.DstPort != p.DstPort || q.Protocol != p.Protocol ||
			!bytes.Equal(q.Payload, p.Payload) || q.TCP.Seq != p.TCP.Seq || q.TCP.Ack != p.TCP.Ack || q.TCP.Flags != p.TCP.Flags ||
			!bytes.Equal(q.TCP.Options, p.TCP.Options) || q.IPv4ID != p.IPv4ID || q.FlowLabel != p.FlowLabel {
			t.Fatalf("rebuilt frame parses differently:\n%+v\n%+v", p, q)
		}
	})
}

func BenchmarkBuildUDP(b *testing.B) {
	h := testHeader(false)
	buf := make([]byte, 2048)
	payload := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		BuildUDP(buf, &h, payload)
	}
}

func BenchmarkParse(b *testing.B) {
	frame := buildTestUDP(b, false, make([]byte, 64))
	b.ReportAllocs()
	for b.Loop() {
		Parse(frame)
	}
}
