package frame

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

var (
	hostAddr4 = netip.MustParseAddr("198.18.0.1")
	peerAddr4 = netip.MustParseAddr("198.18.0.2")
	hostAddr6 = netip.MustParseAddr("2001:2::1")
	peerAddr6 = netip.MustParseAddr("2001:2::2")
)

// vethBed is two fresh network namespaces joined by a veth pair; the test's
// goroutine is locked to its OS thread and sits in host.
type vethBed struct {
	host, peer       netns.NsHandle
	hostIf, peerIf   string
	hostIdx, peerIdx int
	hostMAC, peerMAC net.HardwareAddr
}

func newVethBed(t *testing.T) *vethBed {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root (CI=true, so not skipping)")
		}
		t.Skip("needs root")
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatalf("get current netns: %v", err)
	}
	t.Cleanup(func() {
		// Leave the thread locked if it cannot go home: it dies with the goroutine.
		if err := netns.Set(orig); err != nil {
			t.Errorf("restore netns: %v", err)
			return
		}
		orig.Close()
		runtime.UnlockOSThread()
	})
	suffix := fmt.Sprintf("%d%03x", os.Getpid()%100000, rand.IntN(0x1000))
	b := &vethBed{hostIf: "sfh" + suffix, peerIf: "sfp" + suffix}
	if b.peer, err = netns.New(); err != nil {
		t.Fatalf("create peer netns: %v", err)
	}
	t.Cleanup(func() { b.peer.Close() })
	if b.host, err = netns.New(); err != nil {
		t.Fatalf("create host netns: %v", err)
	}
	t.Cleanup(func() { b.host.Close() })
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: b.hostIf}, PeerName: b.peerIf, PeerNamespace: netlink.NsFd(b.peer)}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("add veth %s: %v", b.hostIf, err)
	}
	t.Cleanup(func() {
		if err := netns.Set(b.host); err == nil {
			if l, err := netlink.LinkByName(b.hostIf); err == nil {
				netlink.LinkDel(l)
			}
		}
	})
	b.hostIdx, b.hostMAC = setupLink(t, b.hostIf, hostAddr4, hostAddr6)
	b.in(t, b.peer, func() { b.peerIdx, b.peerMAC = setupLink(t, b.peerIf, peerAddr4, peerAddr6) })
	return b
}

func setupLink(t *testing.T, name string, v4, v6 netip.Addr) (int, net.HardwareAddr) {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatalf("find %s: %v", name, err)
	}
	for _, a := range []*netlink.Addr{
		{IPNet: &net.IPNet{IP: v4.AsSlice(), Mask: net.CIDRMask(24, 32)}},
		{IPNet: &net.IPNet{IP: v6.AsSlice(), Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD},
	} {
		if err := netlink.AddrAdd(l, a); err != nil {
			t.Fatalf("add address %v to %s: %v", a, name, err)
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		t.Fatalf("set %s up: %v", name, err)
	}
	return l.Attrs().Index, l.Attrs().HardwareAddr
}

// in runs fn with the thread in ns, then returns it to host.
func (b *vethBed) in(t *testing.T, ns netns.NsHandle, fn func()) {
	t.Helper()
	if err := netns.Set(ns); err != nil {
		t.Fatalf("enter netns: %v", err)
	}
	defer func() {
		if err := netns.Set(b.host); err != nil {
			panic(fmt.Sprintf("cannot return to host netns: %v", err)) // the thread is unusable
		}
	}()
	fn()
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
	b := newVethBed(t)
	// The kernel must compute the checksums itself rather than leave them to
	// an offload veth never runs.
	et, err := ethtool.NewEthtool()
	if err != nil {
		t.Fatalf("ethtool: %v", err)
	}
	defer et.Close()
	if err := et.Change(b.hostIf, map[string]bool{"tx-checksum-ip-generic": false}); err != nil {
		t.Fatalf("turn off tx checksum offload on %s: %v", b.hostIf, err)
	}

	var raw int
	b.in(t, b.peer, func() {
		if raw, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL))); err != nil {
			t.Fatalf("packet socket: %v", err)
		}
	})
	t.Cleanup(func() { unix.Close(raw) })
	if err := unix.Bind(raw, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: b.peerIdx}); err != nil {
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
		{"udp4", hostAddr4, peerAddr4, unix.SOCK_DGRAM},
		{"udp6", hostAddr6, peerAddr6, unix.SOCK_DGRAM},
		{"tcp4 syn", hostAddr4, peerAddr4, unix.SOCK_STREAM},
		{"tcp6 syn", hostAddr6, peerAddr6, unix.SOCK_STREAM},
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
			SrcMAC: b.hostMAC, DstMAC: b.peerMAC, Src: tt.src, Dst: tt.dst,
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
	b := newVethBed(t)
	for _, dst := range []netip.Addr{peerAddr4, peerAddr6} {
		start := time.Now()
		mac, err := ResolveMAC(b.hostIdx, dst, 3*time.Second)
		if err != nil {
			t.Fatalf("ResolveMAC(%v): %v", dst, err)
		}
		if !bytes.Equal(mac, b.peerMAC) {
			t.Errorf("ResolveMAC(%v) = %v, want %v", dst, mac, b.peerMAC)
		}
		t.Logf("resolved %v to %v in %v", dst, mac, time.Since(start))
		// now from the table
		if mac, err := ResolveMAC(b.hostIdx, dst, time.Millisecond); err != nil || !bytes.Equal(mac, b.peerMAC) {
			t.Errorf("second ResolveMAC(%v) = %v, %v", dst, mac, err)
		}
	}

	// a permanent entry is used as is
	static := netip.MustParseAddr("198.18.0.50")
	staticMAC := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x50}
	if err := netlink.NeighAdd(&netlink.Neigh{LinkIndex: b.hostIdx, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT, IP: static.AsSlice(), HardwareAddr: staticMAC}); err != nil {
		t.Fatal(err)
	}
	if mac, err := ResolveMAC(b.hostIdx, static, time.Millisecond); err != nil || !bytes.Equal(mac, staticMAC) {
		t.Errorf("ResolveMAC(static) = %v, %v", mac, err)
	}

	// nobody answers
	absent := netip.MustParseAddr("198.18.0.99")
	start := time.Now()
	_, err := ResolveMAC(b.hostIdx, absent, 300*time.Millisecond)
	want := fmt.Sprintf("no neighbour entry for 198.18.0.99 on %s after 300ms", b.hostIf)
	if !errors.Is(err, ErrNoNeighbour) || err.Error() != want {
		t.Errorf("ResolveMAC(absent) error %v, want %q", err, want)
	}
	if elapsed := time.Since(start); elapsed < 300*time.Millisecond {
		t.Errorf("ResolveMAC(absent) gave up after %v, before its 300ms timeout", elapsed)
	}

	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: b.hostIdx, Dst: &net.IPNet{IP: net.IP{198, 19, 0, 0}, Mask: net.CIDRMask(16, 32)}, Gw: peerAddr4.AsSlice()}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		ifindex int
		dst     netip.Addr
		want    string
	}{
		{99999, peerAddr4, "unknown interface index 99999"},
		{0, peerAddr4, "invalid interface index: 0"},
		{b.hostIdx, netip.MustParseAddr("198.19.7.7"), "198.19.7.7 is not on-link on " + b.hostIf + " but routed via 198.18.0.2: resolve the gateway instead"},
		{b.hostIdx, netip.Addr{}, "invalid neighbour address"},
	} {
		if _, err := ResolveMAC(tt.ifindex, tt.dst, 100*time.Millisecond); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ResolveMAC(%d, %v) error %v, want one containing %q", tt.ifindex, tt.dst, err, tt.want)
		}
	}
}
