package frame

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/stackgap/stackgap/internal/testbed"
	"github.com/stackgap/stackgap/internal/testbed/bedtest"
)

// newEnteredBed creates a testbed whose side A, the host these tests send from,
// holds the test's goroutine for the rest of the test; B is the peer.
func newEnteredBed(t *testing.T) *testbed.Testbed {
	t.Helper()
	tb := bedtest.New(t, testbed.Options{})
	bedtest.Enter(t, tb, testbed.A)
	return tb
}

func sockaddr(a netip.Addr, port int) unix.Sockaddr {
	if a.Is4() {
		return &unix.SockaddrInet4{Addr: a.As4(), Port: port}
	}
	return &unix.SockaddrInet6{Addr: a.As16(), Port: port}
}

func localPort(t *testing.T, fd int) uint16 {
	t.Helper()
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return uint16(sa.Port)
	case *unix.SockaddrInet6:
		return uint16(sa.Port)
	}
	t.Fatalf("unexpected sockaddr %T", sa)
	return 0
}

// capture reads frames arriving on the peer's interface until one parses as
// protocol proto to dstPort, and returns a copy of it.
func capture(t *testing.T, fd int, proto uint8, dstPort uint16) []byte {
	t.Helper()
	buf := make([]byte, 4096)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("capture: %v", err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if p, err := ParseUnverified(buf[:n]); err == nil && p.Protocol == proto && p.DstPort == dstPort {
			return append([]byte(nil), buf[:n]...)
		}
	}
	t.Fatalf("capture: no protocol %d frame to port %d within 3s", proto, dstPort)
	return nil
}

// TestKernelFramesMatch has the kernel send UDP datagrams and TCP SYNs over
// IPv4 and IPv6, captures them on the far end of the veth, and builds the
// same frames with BuildUDP and BuildTCP: they must be identical byte for
// byte once the fields the kernel picks at random (IPv4 ID, IPv6 flow label,
// TCP initial sequence number) are copied from the capture.
func TestKernelFramesMatch(t *testing.T) {
	tb := newEnteredBed(t)
	// The kernel must compute the checksums itself rather than leave them to
	// an offload veth never runs.
	et, err := ethtool.NewEthtool()
	if err != nil {
		t.Fatalf("ethtool: %v", err)
	}
	defer et.Close()
	if err := et.Change(tb.IfaceA, map[string]bool{"tx-checksum-ip-generic": false}); err != nil {
		t.Fatalf("turn off tx checksum offload on %s: %v", tb.IfaceA, err)
	}

	var raw int
	bedtest.In(t, tb, testbed.B, func() {
		if raw, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL))); err != nil {
			t.Fatalf("packet socket: %v", err)
		}
	})
	t.Cleanup(func() { unix.Close(raw) })
	if err := unix.Bind(raw, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: tb.IfindexB}); err != nil {
		t.Fatalf("bind packet socket: %v", err)
	}
	if err := unix.SetsockoptTimeval(raw, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100_000}); err != nil {
		t.Fatal(err)
	}

	payload := []byte("stackgap kernel golden frame, odd length.")
	for i, tt := range []struct {
		name     string
		src, dst netip.Addr
		sotype   int
	}{
		{"udp4", tb.AddrA4, tb.AddrB4, unix.SOCK_DGRAM},
		{"udp6", tb.AddrA6, tb.AddrB6, unix.SOCK_DGRAM},
		{"tcp4 syn", tb.AddrA4, tb.AddrB4, unix.SOCK_STREAM},
		{"tcp6 syn", tb.AddrA6, tb.AddrB6, unix.SOCK_STREAM},
	} {
		dstPort := uint16(7000 + i)
		domain := unix.AF_INET
		if tt.dst.Is6() {
			domain = unix.AF_INET6
		}
		fd, err := unix.Socket(domain, tt.sotype|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		proto := uint8(ProtocolUDP)
		if err := unix.Connect(fd, sockaddr(tt.dst, int(dstPort))); tt.sotype == unix.SOCK_STREAM {
			proto = ProtocolTCP
			if !errors.Is(err, unix.EINPROGRESS) {
				t.Fatalf("%s: connect: %v, want EINPROGRESS", tt.name, err)
			}
		} else {
			if err != nil {
				t.Fatalf("%s: connect: %v", tt.name, err)
			}
			if _, err := unix.Write(fd, payload); err != nil {
				t.Fatalf("%s: send: %v", tt.name, err)
			}
		}
		kernel := capture(t, raw, proto, dstPort)
		got, err := Parse(kernel) // checksums verified
		if err != nil {
			t.Fatalf("%s: Parse(kernel frame): %v\n%x", tt.name, err, kernel)
		}

		h := Header{
			SrcMAC: tb.MACA, DstMAC: tb.MACB, Src: tt.src, Dst: tt.dst,
			SrcPort: localPort(t, fd), DstPort: dstPort,
			IPv4ID: got.IPv4ID, FlowLabel: got.FlowLabel,
		}
		buf := make([]byte, 2048)
		var n int
		if proto == ProtocolTCP {
			if got.TCP.Flags != TCPSyn {
				t.Fatalf("%s: captured flags %#x, want SYN", tt.name, got.TCP.Flags)
			}
			n, err = BuildTCP(buf, &h, TCPHeader{Seq: got.TCP.Seq, Flags: TCPSyn, Window: got.TCP.Window, Options: got.TCP.Options}, nil)
		} else {
			n, err = BuildUDP(buf, &h, payload)
		}
		if err != nil {
			t.Fatalf("%s: build: %v", tt.name, err)
		}
		if !bytes.Equal(buf[:n], kernel) {
			t.Errorf("%s: built frame differs from the kernel's\nkernel %x\nbuilt  %x", tt.name, kernel, buf[:n])
		}
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func TestResolveMAC(t *testing.T) {
	tb := newEnteredBed(t)
	// The peer must be resolved for real (ARP, neighbour discovery): remove
	// the permanent entries the testbed adds for it.
	for _, peer := range []netip.Addr{tb.AddrB4, tb.AddrB6} {
		family := netlink.FAMILY_V4
		if peer.Is6() {
			family = netlink.FAMILY_V6
		}
		if err := netlink.NeighDel(&netlink.Neigh{LinkIndex: tb.IfindexA, Family: family, IP: peer.AsSlice()}); err != nil {
			t.Fatalf("delete the neighbour entry for %v: %v", peer, err)
		}
	}
	for _, dst := range []netip.Addr{tb.AddrB4, tb.AddrB6} {
		start := time.Now()
		mac, err := ResolveMAC(tb.IfindexA, dst, 3*time.Second)
		if err != nil {
			t.Fatalf("ResolveMAC(%v): %v", dst, err)
		}
		if !bytes.Equal(mac, tb.MACB) {
			t.Errorf("ResolveMAC(%v) = %v, want %v", dst, mac, tb.MACB)
		}
		t.Logf("resolved %v to %v in %v", dst, mac, time.Since(start))
		// now from the table
		if mac, err := ResolveMAC(tb.IfindexA, dst, time.Millisecond); err != nil || !bytes.Equal(mac, tb.MACB) {
			t.Errorf("second ResolveMAC(%v) = %v, %v", dst, mac, err)
		}
	}

	// a permanent entry is used as is
	static := netip.MustParseAddr("198.18.0.50")
	staticMAC := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x50}
	if err := netlink.NeighAdd(&netlink.Neigh{LinkIndex: tb.IfindexA, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT, IP: static.AsSlice(), HardwareAddr: staticMAC}); err != nil {
		t.Fatal(err)
	}
	if mac, err := ResolveMAC(tb.IfindexA, static, time.Millisecond); err != nil || !bytes.Equal(mac, staticMAC) {
		t.Errorf("ResolveMAC(static) = %v, %v", mac, err)
	}

	// nobody answers
	absent := netip.MustParseAddr("198.18.0.99")
	start := time.Now()
	_, err := ResolveMAC(tb.IfindexA, absent, 300*time.Millisecond)
	want := fmt.Sprintf("no neighbour entry for 198.18.0.99 on %s after 300ms", tb.IfaceA)
	if !errors.Is(err, ErrNoNeighbour) || err.Error() != want {
		t.Errorf("ResolveMAC(absent) error %v, want %q", err, want)
	}
	if elapsed := time.Since(start); elapsed < 300*time.Millisecond {
		t.Errorf("ResolveMAC(absent) gave up after %v, before its 300ms timeout", elapsed)
	}

	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: tb.IfindexA, Dst: &net.IPNet{IP: net.IP{198, 19, 0, 0}, Mask: net.CIDRMask(16, 32)}, Gw: tb.AddrB4.AsSlice()}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		ifindex int
		dst     netip.Addr
		want    string
	}{
		{99999, tb.AddrB4, "unknown interface index 99999"},
		{0, tb.AddrB4, "invalid interface index: 0"},
		{tb.IfindexA, netip.MustParseAddr("198.19.7.7"), "198.19.7.7 is not on-link on " + tb.IfaceA + " but routed via 198.18.0.2: resolve the gateway instead"},
		{tb.IfindexA, netip.Addr{}, "invalid neighbour address"},
	} {
		if _, err := ResolveMAC(tt.ifindex, tt.dst, 100*time.Millisecond); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ResolveMAC(%d, %v) error %v, want one containing %q", tt.ifindex, tt.dst, err, tt.want)
		}
	}
}
