package xdp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/stackgap/stackgap/internal/testutil"
)

// TestOpenValidatesBeforeTouchingTheKernel needs no privileges: options and
// the queue id are checked before the socket is created.
func TestOpenValidatesBeforeTouchingTheKernel(t *testing.T) {
	if _, err := Open(Options{Interface: "lo", FrameSize: 100}); err == nil || !strings.Contains(err.Error(), "invalid frame size 100") {
		t.Errorf("Open with frame size 100: %v", err)
	}
	_, err := Open(Options{Interface: "lo", QueueID: 7})
	if want := "invalid queue 7 on lo: the device has 1 RX queue(s)"; err == nil || err.Error() != want {
		t.Errorf("Open on lo queue 7: error %v, want %q", err, want)
	}
	if _, err := Open(Options{Interface: "nosuchif0"}); err == nil || !strings.Contains(err.Error(), `look up interface "nosuchif0"`) {
		t.Errorf("Open on a missing interface: %v", err)
	}
}

// testbed is two fresh network namespaces joined by a veth pair:
// A (198.18.0.1, where the AF_XDP sockets live) and B (198.18.0.2).
//
// It is not internal/testbed on purpose: these tests redirect every frame of
// an interface to their AF_XDP sockets, so the link must never carry IPv6
// (multicast listener reports, solicitations), and IPv6 is off on both ends
// before they come up. internal/testbed brings the link up with IPv6
// addresses, whose first packets could still be in flight once a test starts.
type testbed struct {
	nsA, nsB   netns.NsHandle
	ifA, ifB   string
	idxA, idxB int
	macA, macB net.HardwareAddr
	ipA, ipB   net.IP
}

// newTestbed locks the calling goroutine to its OS thread for the rest of
// the test: the test switches namespaces on it.
func newTestbed(tb testing.TB) *testbed {
	tb.Helper()
	testutil.RequireRoot(tb)
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		tb.Fatalf("get network namespace: %v", err)
	}
	tb.Cleanup(func() { orig.Close() })

	suffix := fmt.Sprintf("%d%04x", os.Getpid()%100000, rand.IntN(0x10000))
	b := &testbed{ifA: "xa" + suffix, ifB: "xb" + suffix,
		ipA: net.IPv4(198, 18, 0, 1).To4(), ipB: net.IPv4(198, 18, 0, 2).To4()}
	for _, ns := range []*netns.NsHandle{&b.nsA, &b.nsB} {
		*ns, err = netns.New() // also switches this thread into it
		if err != nil {
			tb.Fatalf("create network namespace: %v", err)
		}
		h := *ns
		tb.Cleanup(func() { h.Close() })
	}
	if err := netns.Set(orig); err != nil {
		tb.Fatalf("restore network namespace: %v", err) // thread stays locked and dies
	}

	hA, err := netlink.NewHandleAt(b.nsA)
	if err != nil {
		tb.Fatalf("netlink handle: %v", err)
	}
	tb.Cleanup(hA.Close)
	hB, err := netlink.NewHandleAt(b.nsB)
	if err != nil {
		tb.Fatalf("netlink handle: %v", err)
	}
	tb.Cleanup(hB.Close)

	if err := hA.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: b.ifA}, PeerName: b.ifB}); err != nil {
		tb.Fatalf("create veth %s/%s: %v", b.ifA, b.ifB, err)
	}
	tb.Cleanup(func() {
		if l, err := hA.LinkByName(b.ifA); err == nil {
			if err := hA.LinkDel(l); err != nil {
				tb.Errorf("delete veth %s: %v", b.ifA, err)
			}
		}
	})
	peer, err := hA.LinkByName(b.ifB)
	if err != nil {
		tb.Fatal(err)
	}
	if err := hA.LinkSetNsFd(peer, int(b.nsB)); err != nil {
		tb.Fatalf("move %s to namespace B: %v", b.ifB, err)
	}
	for _, side := range []struct {
		h   *netlink.Handle
		ns  netns.NsHandle
		ifc string
		ip  net.IP
		idx *int
		mac *net.HardwareAddr
	}{{hA, b.nsA, b.ifA, b.ipA, &b.idxA, &b.macA}, {hB, b.nsB, b.ifB, b.ipB, &b.idxB, &b.macB}} {
		b.in(tb, side.ns, func() {
			// No IPv6: keeps router/neighbour solicitations off the wire.
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+side.ifc+"/disable_ipv6", []byte("1"), 0); err != nil {
				tb.Fatalf("disable ipv6 on %s: %v", side.ifc, err)
			}
		})
		l, err := side.h.LinkByName(side.ifc)
		if err != nil {
			tb.Fatal(err)
		}
		if err := side.h.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: side.ip, Mask: net.CIDRMask(24, 32)}}); err != nil {
			tb.Fatalf("address %s: %v", side.ifc, err)
		}
		if err := side.h.LinkSetUp(l); err != nil {
			tb.Fatalf("up %s: %v", side.ifc, err)
		}
		*side.idx, *side.mac = l.Attrs().Index, l.Attrs().HardwareAddr
	}
	// Static neighbours: no ARP, whose replies the redirect program would steal.
	for _, n := range []struct {
		h   *netlink.Handle
		idx int
		ip  net.IP
		mac net.HardwareAddr
	}{{hA, b.idxA, b.ipB, b.macB}, {hB, b.idxB, b.ipA, b.macA}} {
		if err := n.h.NeighAdd(&netlink.Neigh{LinkIndex: n.idx, Family: netlink.FAMILY_V4,
			State: netlink.NUD_PERMANENT, IP: n.ip, HardwareAddr: n.mac}); err != nil {
			tb.Fatalf("add neighbour %s: %v", n.ip, err)
		}
	}
	return b
}

// in runs fn with the calling (locked) thread in namespace ns.
func (b *testbed) in(tb testing.TB, ns netns.NsHandle, fn func()) {
	tb.Helper()
	orig, err := netns.Get()
	if err != nil {
		tb.Fatalf("get network namespace: %v", err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		tb.Fatalf("enter network namespace: %v", err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			tb.Fatalf("restore network namespace: %v", err) // thread stays locked and dies
		}
	}()
	fn()
}

// openIn opens a socket on queue 0 of ifc in namespace ns and closes it in cleanup.
func (b *testbed) openIn(tb testing.TB, ns netns.NsHandle, opts Options) *Socket {
	tb.Helper()
	var s *Socket
	var err error
	b.in(tb, ns, func() { s, err = Open(opts) })
	if err != nil {
		tb.Fatalf("open af_xdp socket: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	return s
}

// redirectAll attaches, in driver mode, an XDP program that redirects every
// frame of ifindex to the XSKMAP entry of its RX queue (XDP_PASS when the
// entry is empty) and puts s there.
func (b *testbed) redirectAll(tb testing.TB, ns netns.NsHandle, ifindex int, s *Socket) {
	b.redirect(tb, ns, ifindex, s, 0)
}

// testMetaMagic is what the metadata-writing program stores before each frame.
const testMetaMagic = 0x5ca1ab1e

// redirect is redirectAll; with withMeta > 0 the program first prepends 8
// bytes of XDP metadata (bpf_xdp_adjust_meta) holding testMetaMagic.
func (b *testbed) redirect(tb testing.TB, ns netns.NsHandle, ifindex int, s *Socket, withMeta int) {
	tb.Helper()
	xsks, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: 4})
	if err != nil {
		tb.Fatalf("create xskmap: %v", err)
	}
	tb.Cleanup(func() { xsks.Close() })
	var insns asm.Instructions
	if withMeta > 0 {
		insns = asm.Instructions{
			asm.Mov.Reg(asm.R6, asm.R1),
			asm.Mov.Imm(asm.R2, -8),
			asm.FnXdpAdjustMeta.Call(),
			asm.JNE.Imm(asm.R0, 0, "redirect"),
			asm.LoadMem(asm.R2, asm.R6, 8, asm.Word), // ctx->data_meta
			asm.LoadMem(asm.R3, asm.R6, 0, asm.Word), // ctx->data
			asm.Mov.Reg(asm.R4, asm.R2),
			asm.Add.Imm(asm.R4, 8),
			asm.JGT.Reg(asm.R4, asm.R3, "redirect"),
			asm.Mov.Imm(asm.R5, testMetaMagic),
			asm.StoreMem(asm.R2, 0, asm.R5, asm.DWord),
			asm.Mov.Reg(asm.R1, asm.R6).WithSymbol("redirect"),
		}
	}
	insns = append(insns,
		asm.LoadMem(asm.R2, asm.R1, 16, asm.Word), // ctx->rx_queue_index
		asm.LoadMapPtr(asm.R1, xsks.FD()),
		asm.Mov.Imm(asm.R3, 2), // XDP_PASS when the slot is empty
		asm.FnRedirectMap.Call(),
		asm.Return(),
	)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "xsk_redirect",
		Type:         ebpf.XDP,
		AttachType:   ebpf.AttachXDP,
		License:      "GPL",
		Instructions: insns,
	})
	if err != nil {
		tb.Fatalf("load xdp program: %v", err)
	}
	tb.Cleanup(func() { prog.Close() })
	var l link.Link
	b.in(tb, ns, func() {
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPDriverMode})
	})
	if err != nil {
		tb.Fatalf("attach xdp program: %v", err)
	}
	tb.Cleanup(func() { l.Close() })
	if err := xsks.Put(uint32(0), uint32(s.FD())); err != nil {
		tb.Fatalf("put socket in xskmap: %v", err)
	}
}

// udpFrame builds an Ethernet/IPv4/UDP frame into buf and returns its length.
func udpFrame(buf []byte, srcMAC, dstMAC net.HardwareAddr, src, dst net.IP, sport, dport uint16, payload []byte) int {
	n := 14 + 20 + 8 + len(payload)
	f := buf[:n]
	copy(f[0:6], dstMAC)
	copy(f[6:12], srcMAC)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:34]
	ip[0], ip[1] = 0x45, 0
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	binary.BigEndian.PutUint32(ip[4:], 0x4000_0000) // id 0, DF
	ip[8], ip[9] = 64, unix.IPPROTO_UDP
	binary.BigEndian.PutUint16(ip[10:], 0)
	copy(ip[12:16], src.To4())
	copy(ip[16:20], dst.To4())
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := f[34:42]
	binary.BigEndian.PutUint16(udp[0:], sport)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	binary.BigEndian.PutUint16(udp[6:], 0) // no checksum (IPv4)
	copy(f[42:], payload)
	return n
}

func clockNs(tb testing.TB, clock int32) uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(clock, &ts); err != nil {
		tb.Fatal(err)
	}
	return uint64(ts.Nano())
}

// TestReceiveUDPFromPeer receives datagrams in both UMEM chunk modes, with
// and without UMEM headroom: every descriptor's address must come out as
// the frame's data address, with the XDP program's metadata right before it.
func TestReceiveUDPFromPeer(t *testing.T) {
	for _, tt := range []struct {
		aligned  bool
		headroom uint32
	}{{false, 0}, {true, 0}, {false, 64}, {true, 64}} {
		name := fmt.Sprintf("unaligned/headroom=%d", tt.headroom)
		if tt.aligned {
			name = fmt.Sprintf("aligned/headroom=%d", tt.headroom)
		}
		t.Run(name, func(t *testing.T) { testReceiveUDPFromPeer(t, tt.aligned, tt.headroom) })
	}
}

func testReceiveUDPFromPeer(t *testing.T, aligned bool, headroom uint32) {
	b := newTestbed(t)
	s := b.openIn(t, b.nsA, Options{Interface: b.ifA, AlignedChunks: aligned, Headroom: headroom})
	b.redirect(t, b.nsA, b.idxA, s, 8)
	if got := s.Mode(); got != ModeCopy {
		t.Fatalf("mode on veth = %q, want copy", got)
	}
	if got := s.Info().UnalignedChunks; got == aligned {
		t.Fatalf("Info.UnalignedChunks = %v with AlignedChunks %v", got, aligned)
	}

	var conn *net.UDPConn
	var err error
	b.in(t, b.nsB, func() {
		conn, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: b.ipA, Port: 9999})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	const count = 20
	want := map[string]bool{}
	for i := range count {
		p := fmt.Sprintf("stackgap-xdp-rx-%02d", i)
		want[p] = true
		if _, err := conn.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	descs := make([]Desc, 8)
	deadline := time.Now().Add(5 * time.Second)
	for len(want) > 0 && time.Now().Before(deadline) {
		strategy := WaitPoll
		if len(want)%2 == 0 {
			strategy = WaitSpin
		}
		if _, err := s.WaitReceive(strategy, time.Second); err != nil {
			t.Fatal(err)
		}
		n, err := s.Receive(descs)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range descs[:n] {
			if off := d.Addr % 4096; off != uint64(256+headroom) {
				t.Errorf("rx frame at chunk offset %d, want 256 (XDP_PACKET_HEADROOM) + %d", off, headroom)
			}
			f := s.Frame(d.Addr, int(d.Len))
			if len(f) >= 42 && bytes.Equal(f[0:6], b.macA) && binary.BigEndian.Uint16(f[12:]) == 0x0800 &&
				f[23] == unix.IPPROTO_UDP && binary.BigEndian.Uint16(f[36:]) == 9999 {
				p := string(f[42:])
				meta := s.MetadataBefore(d.Addr, 8)
				if got := binary.NativeEndian.Uint64(meta); got != testMetaMagic {
					t.Errorf("xdp metadata before frame %q = %#x, want %#x", p, got, testMetaMagic)
				}
				if !want[p] {
					t.Errorf("unexpected or duplicate payload %q", p)
				}
				delete(want, p)
			}
			if err := s.FreeFrame(d.Addr); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Refill(-1); err != nil {
			t.Fatal(err)
		}
	}
	if len(want) > 0 {
		st, _ := s.Stats()
		t.Fatalf("%d of %d datagrams not received; stats %+v", len(want), count, st)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.RxDropped != 0 || st.RxInvalidDescs != 0 {
		t.Errorf("unexpected drops: %+v", st)
	}
	t.Logf("stats after rx: %+v", st)
}

func TestTransmitToPeerUDPSocket(t *testing.T) {
	b := newTestbed(t)
	s := b.openIn(t, b.nsA, Options{Interface: b.ifA})
	info := s.Info()
	t.Logf("info: %+v", info)
	if info.TxMetadataLen != 24 || info.TxMetadataNote != "flag" {
		t.Fatalf("tx metadata = %d (%s), want 24 registered with XDP_UMEM_TX_METADATA_LEN", info.TxMetadataLen, info.TxMetadataNote)
	}
	var conn *net.UDPConn
	var err error
	b.in(t, b.nsB, func() {
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: b.ipB, Port: 7777})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	buf := make([]byte, 2048)
	done := make([]Completion, 4)
	for i, stamp := range []bool{true, false, true} {
		payload := fmt.Sprintf("stackgap-xdp-tx-%d", i)
		addr, ok := s.AllocFrame()
		if !ok {
			t.Fatal("no free frame")
		}
		n := udpFrame(s.Frame(addr, int(info.FrameCapacity)), b.macA, b.macB, b.ipA, b.ipB, 40000, 7777, []byte(payload))
		before := clockNs(t, unix.CLOCK_TAI)
		sent, err := s.Transmit([]Desc{{Addr: addr, Len: uint32(n)}}, stamp)
		after := clockNs(t, unix.CLOCK_TAI)
		if err != nil || sent != 1 {
			t.Fatalf("transmit: sent %d, %v", sent, err)
		}
		if err := s.FreeFrame(addr); err == nil {
			t.Fatal("freeing a frame in the TX ring succeeded")
		}

		conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		m, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("peer read: %v", err)
		}
		if got := string(buf[:m]); got != payload {
			t.Fatalf("peer received %q, want %q", got, payload)
		}

		var c int
		for end := time.Now().Add(2 * time.Second); c == 0 && time.Now().Before(end); {
			if c, err = s.Complete(done); err != nil {
				t.Fatal(err)
			}
		}
		if c != 1 || done[0].Addr != addr {
			t.Fatalf("completions %+v, want frame %#x", done[:c], addr)
		}
		ts := done[0].Timestamp
		switch {
		case !stamp && ts != 0:
			t.Errorf("completion stamp %d without a request, want 0", ts)
		case stamp && (ts < before || ts > after):
			t.Errorf("completion stamp %d outside [%d, %d] (CLOCK_TAI around Transmit)", ts, before, after)
		case stamp:
			t.Logf("sw completion stamp %d ns after the TAI clock read before Transmit (TAI-REALTIME %d ns)",
				ts-before, int64(clockNs(t, unix.CLOCK_TAI))-int64(clockNs(t, unix.CLOCK_REALTIME)))
		}
		if err := s.FreeFrame(addr); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.TxInvalidDescs != 0 || st.TxKicks == 0 {
		t.Errorf("stats after tx: %+v", st)
	}
	t.Logf("stats after tx: %+v", st)
}

func TestModes(t *testing.T) {
	b := newTestbed(t)
	auto := b.openIn(t, b.nsA, Options{Interface: b.ifA, Mode: ModeAuto})
	info := auto.Info()
	if info.Mode != ModeCopy || info.XDPOptions != 0 || info.BindFlags != unix.XDP_COPY|unix.XDP_USE_NEED_WAKEUP || info.Driver != "veth" {
		t.Errorf("auto on veth: mode %q, XDP_OPTIONS %#x, bind flags %#x, driver %q; want copy, 0, %#x, veth",
			info.Mode, info.XDPOptions, info.BindFlags, info.Driver, unix.XDP_COPY|unix.XDP_USE_NEED_WAKEUP)
	}
	if want := fmt.Sprintf("zero-copy not supported by veth driver on %s queue 0: ", b.ifA); !strings.HasPrefix(info.ZeroCopyNote, want) {
		t.Errorf("auto on veth: zero-copy note %q, want prefix %q", info.ZeroCopyNote, want)
	}
	t.Logf("auto: %+v", info)
	if err := auto.Close(); err != nil {
		t.Fatal(err)
	}

	var err error
	b.in(t, b.nsA, func() { _, err = Open(Options{Interface: b.ifA, Mode: ModeZeroCopy}) })
	want := fmt.Sprintf("zero-copy not supported by veth driver on %s queue 0", b.ifA)
	if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, ErrNotSupported) || !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("zerocopy on veth: error %v, want %q wrapping ErrNotSupported and EOPNOTSUPP", err, want)
	}
	t.Logf("zerocopy: %v", err)

	cp := b.openIn(t, b.nsA, Options{Interface: b.ifA, Mode: ModeCopy, NoTxMetadata: true,
		BusyPoll: BusyPoll{Prefer: true, Timeout: 20 * time.Microsecond, Budget: 16}})
	info = cp.Info()
	if info.Mode != ModeCopy || info.NAPIID != 0 || info.BusyPoll != BusyPollInert || cp.TxMetadata() || info.TxMetadataNote != "disabled" {
		t.Errorf("copy with busy poll on veth: %+v; want copy, napi id 0, busy poll inert, no tx metadata", info)
	}
	addr, _ := cp.AllocFrame()
	if _, err := cp.Transmit([]Desc{{Addr: addr, Len: 60}}, true); !errors.Is(err, ErrNoTxMetadata) {
		t.Errorf("timestamp request without tx metadata: %v, want ErrNoTxMetadata", err)
	}

	// A queue another socket holds stays EBUSY: Open retries, then gives up.
	start := time.Now()
	b.in(t, b.nsA, func() { _, err = Open(Options{Interface: b.ifA, Mode: ModeCopy}) })
	if err == nil || !errors.Is(err, unix.EBUSY) || !strings.Contains(err.Error(), "gave up after 7 attempts") {
		t.Errorf("second socket on a bound queue: %v, want EBUSY after 7 attempts", err)
	}
	t.Logf("busy queue: gave up after %v: %v", time.Since(start).Round(time.Millisecond), err)

	b.in(t, b.nsA, func() { _, err = Open(Options{Interface: b.ifA, QueueID: 1}) })
	if want := fmt.Sprintf("invalid queue 1 on %s: the device has 1 RX queue(s)", b.ifA); err == nil || err.Error() != want {
		t.Errorf("queue 1 on veth: %v, want %q", err, want)
	}
}

func TestTransmitRejectsBadFrames(t *testing.T) {
	b := newTestbed(t)
	s := b.openIn(t, b.nsA, Options{Interface: b.ifA, NumFrames: 64, FrameSize: 2048})
	addr, _ := s.AllocFrame()
	chunk := addr &^ 2047
	tests := []struct {
		name string
		d    Desc
	}{
		{"empty", Desc{Addr: addr}},
		{"crosses chunk end", Desc{Addr: addr, Len: 2048 - 256 + 1}},
		{"overlaps tx metadata", Desc{Addr: chunk + 8, Len: 60}},
		{"outside umem", Desc{Addr: 64 * 2048, Len: 60}},
	}
	for _, tt := range tests {
		if n, err := s.Transmit([]Desc{tt.d}, false); n != 0 || err == nil {
			t.Errorf("%s: transmit returned %d, %v; want 0 and an error", tt.name, n, err)
		}
	}
	// A frame the caller does not own: in the FILL ring.
	var fill uint64
	for i := range uint64(64) {
		if s.frames.owner[i] == OwnerFill {
			fill = s.layout.frameAddr(uint32(i))
			break
		}
	}
	_, err := s.Transmit([]Desc{{Addr: fill, Len: 60}}, false)
	var se *FrameStateError
	if !errors.As(err, &se) || se.Owner != OwnerFill {
		t.Errorf("transmit of a frame in the fill ring: %v, want a FrameStateError", err)
	}
	if err := s.FreeFrame(addr); err != nil {
		t.Fatal(err)
	}
	if err := s.FreeFrame(addr); err == nil || err.Error() != fmt.Sprintf("double free of frame %#x", addr) {
		t.Errorf("double free: %v", err)
	}
	if s.tx.outstanding() != 0 || s.tx.reserved != s.tx.published {
		t.Errorf("rejected frames left in the tx ring")
	}
}

func fdCount(tb testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatal(err)
	}
	return len(ents)
}

func mapped(tb testing.TB, addrs []uintptr) []uintptr {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		tb.Fatal(err)
	}
	var found []uintptr
	for _, line := range strings.Split(string(maps), "\n") {
		var lo, hi uintptr
		if _, err := fmt.Sscanf(line, "%x-%x", &lo, &hi); err != nil {
			continue
		}
		for _, a := range addrs {
			if a >= lo && a < hi {
				found = append(found, a)
			}
		}
	}
	return found
}

// TestReopenAndCloseLeaveNothing closes and reopens a socket on the same
// queue right away (EBUSY retry), then checks that Close released every fd
// and mapping, and that the kernel dropped the socket from the XSKMAP.
func TestReopenAndCloseLeaveNothing(t *testing.T) {
	b := newTestbed(t)
	first := b.openIn(t, b.nsA, Options{Interface: b.ifA})
	b.redirectAll(t, b.nsA, b.idxA, first)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	// User space cannot look up XSKMAP entries (EOPNOTSUPP), so check the
	// effect: with the entry gone, redirect falls back to XDP_PASS and the
	// kernel stack delivers to an ordinary socket in A.
	var recv, send *net.UDPConn
	var err error
	b.in(t, b.nsA, func() { recv, err = net.ListenUDP("udp4", &net.UDPAddr{IP: b.ipA, Port: 5555}) })
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	b.in(t, b.nsB, func() { send, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: b.ipA, Port: 5555}) })
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	if _, err := send.Write([]byte("after-close")); err != nil {
		t.Fatal(err)
	}
	recv.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 64)
	if n, _, err := recv.ReadFromUDP(buf); err != nil || string(buf[:n]) != "after-close" {
		t.Errorf("kernel socket after the af_xdp socket closed: %q, %v; want the datagram (xskmap entry gone)", buf[:n], err)
	}
	for i := range 5 {
		before := fdCount(t)
		var s *Socket
		var err error
		b.in(t, b.nsA, func() { s, err = Open(Options{Interface: b.ifA, NumFrames: 256}) })
		if err != nil {
			t.Fatalf("reopen %d: %v", i, err)
		}
		t.Logf("reopen %d: %d bind attempt(s)", i, s.Info().BindTries)
		var addrs []uintptr
		for _, m := range append([][]byte{s.umem}, s.rings[:]...) {
			addrs = append(addrs, uintptr(unsafeAddr(m)))
		}
		if len(mapped(t, addrs)) != 5 {
			t.Fatalf("umem and rings not all mapped: %v", mapped(t, addrs))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second close: %v", err)
		}
		if after := fdCount(t); after != before {
			t.Errorf("reopen %d: %d fds before Open, %d after Close", i, before, after)
		}
		if left := mapped(t, addrs); len(left) != 0 {
			t.Errorf("reopen %d: mappings left after Close at %#x", i, left)
		}
	}
}

// pingPong is an AF_XDP ping-pong across the veth pair: a in A sends a
// frame, b in B reflects it in place (MACs swapped) and a receives it back.
type pingPong struct {
	a, b       *Socket
	frame      uint64 // a's frame to send next
	length     uint32
	rx         [1]Desc
	done       [4]Completion
	tx         [1]Desc
	lastStampA uint64
}

func newPingPong(tb testing.TB) *pingPong {
	b := newTestbed(tb)
	p := &pingPong{
		a: b.openIn(tb, b.nsA, Options{Interface: b.ifA, NumFrames: 256, FillRingSize: 64}),
		b: b.openIn(tb, b.nsB, Options{Interface: b.ifB, NumFrames: 256, FillRingSize: 64}),
	}
	b.redirectAll(tb, b.nsA, b.idxA, p.a)
	b.redirectAll(tb, b.nsB, b.idxB, p.b)
	addr, _ := p.a.AllocFrame()
	n := udpFrame(p.a.Frame(addr, 1500), b.macA, b.macB, b.ipA, b.ipB, 40000, 7777, make([]byte, 64))
	p.frame, p.length = addr, uint32(n)
	return p
}

// receiveOne spins until s has a frame and takes it.
func receiveOne(s *Socket, out []Desc) error {
	n, err := s.WaitReceive(WaitSpin, 2*time.Second)
	if err != nil {
		return err
	}
	if n == 0 {
		return errors.New("no frame within 2s")
	}
	if n, err = s.Receive(out[:1]); err != nil || n != 1 {
		return fmt.Errorf("receive: %d, %v", n, err)
	}
	return nil
}

// drain frees every completed frame of s and refills its FILL ring.
func drain(s *Socket, done []Completion) (stamp uint64, err error) {
	n, err := s.Complete(done)
	if err != nil {
		return 0, err
	}
	for _, c := range done[:n] {
		stamp = c.Timestamp
		if err := s.FreeFrame(c.Addr); err != nil {
			return 0, err
		}
	}
	_, err = s.Refill(-1)
	return stamp, err
}

// round sends p.frame from a and waits until it came back through b.
func (p *pingPong) round() error {
	p.tx[0] = Desc{Addr: p.frame, Len: p.length}
	if n, err := p.a.Transmit(p.tx[:], true); err != nil || n != 1 {
		return fmt.Errorf("a transmit: %d, %v", n, err)
	}
	if err := receiveOne(p.b, p.rx[:]); err != nil {
		return fmt.Errorf("b: %w", err)
	}
	f := p.b.Frame(p.rx[0].Addr, int(p.rx[0].Len))
	var mac [6]byte
	copy(mac[:], f[0:6])
	copy(f[0:6], f[6:12])
	copy(f[6:12], mac[:])
	if n, err := p.b.Transmit(p.rx[:], false); err != nil || n != 1 {
		return fmt.Errorf("b transmit: %d, %v", n, err)
	}
	if err := receiveOne(p.a, p.rx[:]); err != nil {
		return fmt.Errorf("a: %w", err)
	}
	p.frame, p.length = p.rx[0].Addr, p.rx[0].Len // send the reflected frame next
	stamp, err := drain(p.a, p.done[:])
	if err != nil {
		return fmt.Errorf("a: %w", err)
	}
	if stamp != 0 {
		p.lastStampA = stamp
	}
	if _, err := drain(p.b, p.done[:]); err != nil {
		return fmt.Errorf("b: %w", err)
	}
	return nil
}

// TestPingPongReflectInPlace runs the reflector cycle (RX frame → modify →
// TX → completion → free → FILL) and checks it allocates nothing and loses
// no frame.
func TestPingPongReflectInPlace(t *testing.T) {
	p := newPingPong(t)
	freeA, freeB := p.a.FreeFrames(), p.b.FreeFrames()
	for range 10 { // warm up
		if err := p.round(); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	allocs := testing.AllocsPerRun(200, func() {
		if e := p.round(); e != nil && err == nil {
			err = e
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if allocs != 0 {
		t.Errorf("%v allocations per round trip, want 0", allocs)
	}
	if p.lastStampA == 0 {
		t.Error("no tx completion stamp on a")
	}
	// a swapped the frame it allocated for the one it holds now (received,
	// the next to send), whose FILL slot was refilled from the free list:
	// every frame is accounted for.
	if got := p.a.FreeFrames() + p.b.FreeFrames(); got != freeA+freeB {
		t.Errorf("free frames a+b = %d, want %d", got, freeA+freeB)
	}
	var owned [2][OwnerCompleted + 1]int
	for k, s := range []*Socket{p.a, p.b} {
		for _, o := range s.frames.owner {
			owned[k][o]++
		}
	}
	if want := [2][OwnerCompleted + 1]int{{191, 64, 1, 0, 0, 0}, {192, 64, 0, 0, 0, 0}}; owned != want {
		t.Errorf("owners (free, fill, received, allocated, transmit, completed) = %v, want %v", owned, want)
	}
	for _, s := range []*Socket{p.a, p.b} {
		st, err := s.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.RxDropped+st.RxRingFull+st.RxFillRingEmptyDescs+st.TxInvalidDescs != 0 {
			t.Errorf("drops: %+v", st)
		}
	}
}

func BenchmarkPingPong(b *testing.B) {
	p := newPingPong(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := p.round(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTransmitBatches sends more frames than the TX ring, the completion
// ring and copy mode's per-sendto budget (32) hold, and checks that every
// frame reaches the peer and comes back exactly once.
func TestTransmitBatches(t *testing.T) {
	tests := []struct {
		name           string
		txRing, cqRing uint32
		frames, batch  int
	}{
		{"tx ring smaller than batch", 16, 2048, 100, 40},
		{"beyond sendto budget", 2048, 2048, 100, 100},
		{"completion ring full", 64, 16, 64, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newTestbed(t)
			s := b.openIn(t, b.nsA, Options{Interface: b.ifA, NumFrames: 512, TxRingSize: tt.txRing, CompletionRingSize: tt.cqRing})
			var conn *net.UDPConn
			var err error
			b.in(t, b.nsB, func() { conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: b.ipB, Port: 7777}) })
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			frames := make([]Desc, tt.frames)
			for i := range frames {
				addr, ok := s.AllocFrame()
				if !ok {
					t.Fatal("out of frames")
				}
				n := udpFrame(s.Frame(addr, 1500), b.macA, b.macB, b.ipA, b.ipB, 40000, 7777, fmt.Appendf(nil, "batch-%03d", i))
				frames[i] = Desc{Addr: addr, Len: uint32(n)}
			}
			completed := map[uint64]bool{}
			done := make([]Completion, 8)
			queued := 0
			for end := time.Now().Add(5 * time.Second); len(completed) < tt.frames && time.Now().Before(end); {
				if queued < tt.frames {
					n, err := s.Transmit(frames[queued:min(queued+tt.batch, tt.frames)], true)
					if err != nil {
						t.Fatal(err)
					}
					if n > int(tt.txRing) {
						t.Fatalf("queued %d frames on a %d-slot tx ring", n, tt.txRing)
					}
					queued += n
				}
				n, err := s.Complete(done)
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range done[:n] {
					if completed[c.Addr] || c.Timestamp == 0 {
						t.Fatalf("completion %+v: duplicate or without stamp", c)
					}
					completed[c.Addr] = true
				}
			}
			if len(completed) != tt.frames {
				t.Fatalf("%d of %d frames completed", len(completed), tt.frames)
			}
			got := map[string]bool{}
			buf := make([]byte, 64)
			conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			for len(got) < tt.frames {
				n, _, err := conn.ReadFromUDP(buf)
				if err != nil {
					t.Fatalf("peer received %d of %d: %v", len(got), tt.frames, err)
				}
				got[string(buf[:n])] = true
			}
			st, err := s.Stats()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("stats: %+v", st)
			if st.TxInvalidDescs != 0 {
				t.Errorf("invalid tx descriptors: %d", st.TxInvalidDescs)
			}
		})
	}
}

func TestWaitReceiveTimesOut(t *testing.T) {
	b := newTestbed(t)
	s := b.openIn(t, b.nsA, Options{Interface: b.ifA})
	for _, w := range []WaitStrategy{WaitPoll, WaitSpin} {
		start := time.Now()
		n, err := s.WaitReceive(w, 50*time.Millisecond)
		if elapsed := time.Since(start); n != 0 || err != nil || elapsed < 50*time.Millisecond {
			t.Errorf("%s: %d frames, %v after %v; want 0, nil after at least 50ms", w, n, err, elapsed)
		}
	}
	if _, err := s.WaitReceive("block", 0); err == nil || !strings.Contains(err.Error(), `invalid wait strategy "block"`) {
		t.Errorf("unknown strategy: %v", err)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Polls == 0 || st.RxKicks != 0 {
		t.Errorf("stats %+v: want polls and no rx kicks (veth copy mode never sets need_wakeup on FILL)", st)
	}
}

// TestFillDepth: Open puts FillFrames frames in the FILL ring, by default
// as many as the ring holds up to half the UMEM, and leaves the rest free.
func TestFillDepth(t *testing.T) {
	b := newTestbed(t)
	for _, tt := range []struct{ fill, want uint32 }{{0, 64}, {32, 32}} {
		s := b.openIn(t, b.nsA, Options{Interface: b.ifA, NumFrames: 256, FillRingSize: 64, FillFrames: tt.fill})
		if got := s.Info().FillFrames; got != tt.want {
			t.Errorf("FillFrames %d: Info says %d, want %d", tt.fill, got, tt.want)
		}
		if got := s.FreeFrames(); got != 256-int(tt.want) {
			t.Errorf("FillFrames %d: %d frames free, want %d", tt.fill, got, 256-tt.want)
		}
		s.Close()
	}
}

// TestReuseUMEM checks Options.ReuseUMEM: Close keeps the UMEM mapped, the next Open with
// ReuseUMEM and the same size takes it back zeroed, an Open without ReuseUMEM or of another
// size does not, at most maxKeptUMEMs are kept, and ReleaseUMEMs unmaps them.
func TestReuseUMEM(t *testing.T) {
	b := newTestbed(t)
	if err := ReleaseUMEMs(); err != nil {
		t.Fatal(err)
	}
	open := func(opts Options) *Socket {
		t.Helper()
		var s *Socket
		var err error
		b.in(t, b.nsA, func() { s, err = Open(opts) })
		if err != nil {
			t.Fatalf("open %+v: %v", opts, err)
		}
		return s
	}
	closeSocket := func(s *Socket) {
		t.Helper()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	reuse := Options{Interface: b.ifA, NumFrames: 256, ReuseUMEM: true}

	first := open(reuse)
	addr := uintptr(unsafeAddr(first.umem))
	first.umem[0], first.umem[len(first.umem)-1] = 0xa5, 0x5a
	closeSocket(first)
	if KeptUMEMs() != 1 || len(mapped(t, []uintptr{addr})) != 1 {
		t.Fatalf("after Close with ReuseUMEM: %d kept, mapped %v; want 1, still mapped", KeptUMEMs(), mapped(t, []uintptr{addr}))
	}

	// One socket at a time: a veth queue takes one AF_XDP socket.
	plain := open(Options{Interface: b.ifA, NumFrames: 256})
	plainAddr := uintptr(unsafeAddr(plain.umem))
	closeSocket(plain)
	other := open(Options{Interface: b.ifA, NumFrames: 128, ReuseUMEM: true})
	otherAddr := uintptr(unsafeAddr(other.umem))
	closeSocket(other) // kept too: another size
	if plainAddr == addr || otherAddr == addr {
		t.Errorf("an Open without ReuseUMEM (%#x) or of another size (%#x) took the kept UMEM %#x", plainAddr, otherAddr, addr)
	}
	if KeptUMEMs() != 2 || len(mapped(t, []uintptr{plainAddr})) != 0 {
		t.Fatalf("after a socket without ReuseUMEM and one of another size: %d kept (want 2), the first still mapped: %v",
			KeptUMEMs(), mapped(t, []uintptr{plainAddr}) != nil)
	}

	second := open(reuse)
	if got := uintptr(unsafeAddr(second.umem)); got != addr {
		t.Errorf("second Open with ReuseUMEM mapped %#x, want the kept %#x", got, addr)
	}
	if second.umem[0] != 0 || second.umem[len(second.umem)-1] != 0 {
		t.Errorf("reused UMEM not zeroed: first byte %#x, last %#x", second.umem[0], second.umem[len(second.umem)-1])
	}
	if KeptUMEMs() != 1 {
		t.Errorf("%d kept while the second socket uses one, want 1", KeptUMEMs())
	}
	closeSocket(second)

	// No more than maxKeptUMEMs: the rest is unmapped.
	var extra [][]byte
	for range maxKeptUMEMs {
		m, err := mapUMEM(1<<16, true)
		if err != nil {
			t.Fatal(err)
		}
		extra = append(extra, m)
	}
	var unkept []uintptr
	for _, m := range extra {
		if KeptUMEMs() == maxKeptUMEMs {
			unkept = append(unkept, uintptr(unsafeAddr(m)))
		}
		if err := unmapUMEM(m, true); err != nil {
			t.Fatal(err)
		}
	}
	if KeptUMEMs() != maxKeptUMEMs || len(unkept) != 2 || len(mapped(t, unkept)) != 0 {
		t.Errorf("%d kept (want %d); %d given back beyond that, still mapped: %#x", KeptUMEMs(), maxKeptUMEMs, len(unkept), mapped(t, unkept))
	}
	var addrs []uintptr
	keptUMEMs.Lock()
	for _, m := range keptUMEMs.maps {
		addrs = append(addrs, uintptr(unsafeAddr(m)))
	}
	keptUMEMs.Unlock()
	if err := ReleaseUMEMs(); err != nil {
		t.Fatal(err)
	}
	if KeptUMEMs() != 0 {
		t.Errorf("%d kept after ReleaseUMEMs", KeptUMEMs())
	}
	if left := mapped(t, addrs); len(left) != 0 {
		t.Errorf("mappings left after ReleaseUMEMs at %#x", left)
	}
}
