package xdp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	nsbed "github.com/stackgap/stackgap/internal/testbed"
	"github.com/stackgap/stackgap/internal/testbed/bedtest"
	"github.com/stackgap/stackgap/xdp/frame"
)

// IFLA_XDP_ATTACHED values (include/uapi/linux/if_link.h).
const (
	steerAttachedDriver  = 1
	steerAttachedGeneric = 2
)

// newSteerBed creates a testbed whose side A, the host the steering program
// is attached to, holds the test's goroutine for the rest of the test; B is
// the peer that sends.
func newSteerBed(t *testing.T) *nsbed.Testbed {
	t.Helper()
	tb := bedtest.New(t, nsbed.Options{})
	bedtest.Enter(t, tb, nsbed.A)
	return tb
}

func steerHostXDP(t *testing.T, ifname string) *netlink.LinkXdp {
	t.Helper()
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		t.Fatalf("find %s: %v", ifname, err)
	}
	if l.Attrs().Xdp == nil {
		return &netlink.LinkXdp{}
	}
	return l.Attrs().Xdp
}

// steerCheckDetached asserts that ifname has no XDP program, by netlink and by `ip link show`.
func steerCheckDetached(t *testing.T, ifname string) {
	t.Helper()
	if x := steerHostXDP(t, ifname); x.Attached || x.ProgId != 0 {
		t.Errorf("%s still has XDP program id %d (attach mode %d)", ifname, x.ProgId, x.AttachMode)
	}
	out, err := exec.Command("ip", "link", "show", "dev", ifname).CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show %s: %v: %s", ifname, err, out)
	}
	if strings.Contains(string(out), "xdp") {
		t.Errorf("ip link show still shows xdp:\n%s", out)
	}
}

func TestAttachSteeringModes(t *testing.T) {
	tb := newSteerBed(t)
	tests := []struct {
		name         string
		opts         SteerOptions
		wantMode     string
		wantAttached uint32
		wantHW       bool
	}{
		{"driver", SteerOptions{Mode: SteerModeDriver}, SteerModeDriver, steerAttachedDriver, false},
		{"driver hardware rx", SteerOptions{Mode: SteerModeDriver, HardwareRX: true}, SteerModeDriver, steerAttachedDriver, true},
		{"generic", SteerOptions{Mode: SteerModeGeneric}, SteerModeGeneric, steerAttachedGeneric, false},
		{"auto", SteerOptions{}, SteerModeDriver, steerAttachedDriver, false},
		{"auto hardware rx", SteerOptions{Mode: SteerModeAuto, HardwareRX: true}, SteerModeDriver, steerAttachedDriver, true},
	}
	for _, tt := range tests {
		tt.opts.Ifindex = tb.IfindexA
		s, err := AttachSteering(tt.opts)
		if err != nil {
			t.Fatalf("%s: AttachSteering(%+v): %v", tt.name, tt.opts, err)
		}
		if s.Mode() != tt.wantMode || s.Fallback() != "" || s.HardwareRX() != tt.wantHW {
			t.Errorf("%s: mode %q fallback %q hardware rx %v, want %q, \"\", %v", tt.name, s.Mode(), s.Fallback(), s.HardwareRX(), tt.wantMode, tt.wantHW)
		}
		id, err := s.ProgramID()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if x := steerHostXDP(t, tb.IfaceA); x.ProgId != uint32(id) || x.AttachMode != tt.wantAttached {
			t.Errorf("%s: netlink shows program %d mode %d, want %d mode %d", tt.name, x.ProgId, x.AttachMode, id, tt.wantAttached)
		}
		steerCheckMisuse(t, s)
		if err := s.Close(); err != nil {
			t.Errorf("%s: close: %v", tt.name, err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("%s: second close: %v", tt.name, err)
		}
		if err := s.AddFlow(Flow{Proto: syscall.IPPROTO_UDP, DstPort: 1}, FlowOptions{}); !errors.Is(err, errSteeringClosed) {
			t.Errorf("%s: AddFlow after Close: %v", tt.name, err)
		}
		if _, err := s.Stats(); !errors.Is(err, errSteeringClosed) {
			t.Errorf("%s: Stats after Close: %v", tt.name, err)
		}
		steerCheckDetached(t, tb.IfaceA)
		if _, err := ebpf.NewProgramFromID(id); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: program %d still loaded after Close (err %v)", tt.name, id, err)
		}
	}
}

// steerCheckMisuse checks the errors of invalid calls on a live Steering.
func steerCheckMisuse(t *testing.T, s *Steering) {
	t.Helper()
	udp, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(udp)
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"negative queue", s.Register(-1, udp), "queue -1 out of range [0, 256)"},
		{"queue too large", s.Register(256, udp), "queue 256 out of range [0, 256)"},
		{"negative fd", s.Register(0, -1), "invalid fd -1"},
		{"not an af_xdp socket", s.Register(0, udp), fmt.Sprintf("register af_xdp socket fd %d for queue 0: ", udp)},
		{"unregister out of range", s.Unregister(300), "queue 300 out of range"},
		{"icmp flow", s.AddFlow(Flow{Proto: syscall.IPPROTO_ICMP, DstPort: 7}, FlowOptions{}), "protocol must be UDP (17) or TCP (6)"},
		{"negative drop share", s.SetDropPercent(-1), "invalid drop percentage -1: want 0 to 100"},
		{"drop share above 100", s.SetDropPercent(101), "invalid drop percentage 101: want 0 to 100"},
	} {
		if tt.err == nil || !strings.Contains(tt.err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one containing %q", tt.name, tt.err, tt.want)
		}
	}
	if err := s.Unregister(3); err != nil {
		t.Errorf("Unregister of an empty slot: %v", err)
	}
	if err := s.RemoveFlow(Flow{Proto: syscall.IPPROTO_TCP, DstPort: 9}); err != nil {
		t.Errorf("RemoveFlow of an absent flow: %v", err)
	}
	if p, err := s.DropPercent(); err != nil || p != 0 {
		t.Errorf("DropPercent of a fresh program: %d, %v; want 0", p, err)
	}
	st, err := s.Stats()
	if err != nil {
		t.Errorf("Stats: %v", err)
	}
	t.Logf("fresh program stats %+v", st)
}

// attachSteeringWithXSK attaches the steering program in driver mode to the
// test host's interface and registers a fresh AF_XDP socket for queue 0.
func attachSteeringWithXSK(t *testing.T, tb *nsbed.Testbed) (*Steering, *steerXSK) {
	t.Helper()
	s, err := AttachSteering(SteerOptions{Ifindex: tb.IfindexA, Mode: SteerModeDriver})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	xsk := newSteerXSK(t, tb.IfindexA)
	if err := s.Register(0, xsk.fd); err != nil {
		t.Fatal(err)
	}
	return s, xsk
}

// TestSteeringDrop checks the emulated loss: the share set with
// SetDropPercent of live probe-flow frames is dropped and counted, nothing
// else is touched.
func TestSteeringDrop(t *testing.T) {
	tb := newSteerBed(t)
	const probePort, otherPort = 4100, 4101
	s, xsk := attachSteeringWithXSK(t, tb)
	if err := s.AddFlow(Flow{Proto: syscall.IPPROTO_UDP, DstPort: probePort}, FlowOptions{}); err != nil {
		t.Fatal(err)
	}
	host, hostOther := steerUDPSocket(t, false, probePort), steerUDPSocket(t, false, otherPort)
	var peer int
	bedtest.In(t, tb, nsbed.B, func() { peer = steerUDPSocket(t, false, 0) })
	send := func(p []byte, port int) {
		t.Helper()
		if err := unix.Sendto(peer, p, 0, steerSockaddr(tb.AddrA4, port)); err != nil {
			t.Fatalf("send to port %d: %v", port, err)
		}
	}
	stats := func() SteerStats {
		t.Helper()
		st, err := s.Stats()
		if err != nil {
			t.Fatal(err)
		}
		return st
	}

	// 100%: every probe dropped and counted; other traffic untouched.
	if err := s.SetDropPercent(100); err != nil {
		t.Fatal(err)
	}
	if p, err := s.DropPercent(); err != nil || p != 100 {
		t.Fatalf("DropPercent after SetDropPercent(100): %d, %v", p, err)
	}
	for i := range 5 {
		send(steerProbe(uint64(i)), probePort)
	}
	plain := []byte("not a probe, just udp")
	send(plain, probePort)
	steerRecvKernel(t, host, plain, "non-probe to a live flow while dropping")
	other := steerProbe(9)
	send(other, otherPort)
	steerRecvKernel(t, hostOther, other, "probe to another port while dropping")
	if f, _, ok := xsk.receive(50 * time.Millisecond); ok {
		t.Errorf("frame reached the AF_XDP socket at 100%% drop: %x", f)
	}
	if st := stats(); st.Dropped != 5 || st.Redirected != 0 || st.NotProbe != 1 {
		t.Errorf("stats after 5 probes at 100%% drop: %+v, want Dropped 5, Redirected 0, NotProbe 1", st)
	}

	// 50%: every probe is either redirected or dropped, never both; the
	// share is random, so only check that both happen.
	if err := s.SetDropPercent(50); err != nil {
		t.Fatal(err)
	}
	const n = 60
	received := 0
	for i := range n {
		before := stats()
		send(steerProbe(uint64(100+i)), probePort)
		deadline := time.Now().Add(2 * time.Second)
		for {
			if _, _, ok := xsk.receive(time.Millisecond); ok {
				received++
				break
			}
			if stats().Dropped > before.Dropped {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("probe %d neither arrived nor was counted dropped", i)
			}
		}
	}
	st := stats()
	dropped := int(st.Dropped - 5)
	if received+dropped != n || received == 0 || dropped == 0 || int(st.Redirected) != received {
		t.Errorf("at 50%%: %d received, %d dropped of %d (stats %+v)", received, dropped, n, st)
	}
	t.Logf("at 50%%: %d of %d dropped", dropped, n)

	// 0%: off again.
	if err := s.SetDropPercent(0); err != nil {
		t.Fatal(err)
	}
	before := stats()
	probe := steerProbe(1000)
	send(probe, probePort)
	if f, _, ok := xsk.receive(2 * time.Second); !ok || len(f) == 0 {
		t.Error("probe did not arrive with the drop share back at 0")
	}
	if st := stats(); st.Dropped != before.Dropped {
		t.Errorf("dropped %d frames at 0%%", st.Dropped-before.Dropped)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.SetDropPercent(10); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("SetDropPercent after Close: %v, want a closed error", err)
	}
}

// TestSteeringFlowWithoutMetadata checks FlowOptions.NoMetadata: the flow's
// probes are still redirected, with nothing written in front of them and no
// metadata failure counted; adding the flow again with metadata brings it
// back for the next probe.
func TestSteeringFlowWithoutMetadata(t *testing.T) {
	tb := newSteerBed(t)
	const probePort = 4200
	s, xsk := attachSteeringWithXSK(t, tb)
	flow := Flow{Proto: syscall.IPPROTO_UDP, DstPort: probePort}
	var peer int
	bedtest.In(t, tb, nsbed.B, func() { peer = steerUDPSocket(t, false, 0) })
	probe := func(seq uint64) (meta []byte) {
		t.Helper()
		if err := unix.Sendto(peer, steerProbe(seq), 0, steerSockaddr(tb.AddrA4, probePort)); err != nil {
			t.Fatal(err)
		}
		_, meta, ok := xsk.receive(2 * time.Second)
		if !ok {
			t.Fatalf("probe %d did not reach the AF_XDP socket", seq)
		}
		return meta
	}

	if err := s.AddFlow(flow, FlowOptions{NoMetadata: true}); err != nil {
		t.Fatal(err)
	}
	for seq := range uint64(3) {
		if m, ok := ParseSteerMeta(probe(seq)); ok {
			t.Errorf("probe %d of a flow without metadata has metadata %+v", seq, m)
		}
	}
	if err := s.AddFlow(flow, FlowOptions{}); err != nil {
		t.Fatal(err)
	}
	if m, ok := ParseSteerMeta(probe(3)); !ok || m.XDPTAI == 0 {
		t.Errorf("probe after adding the flow with metadata: metadata %+v, valid %v", m, ok)
	}

	// Flows share the words of the flows map: adding and removing a
	// neighbour leaves this flow as it was.
	neighbour := Flow{Proto: syscall.IPPROTO_UDP, DstPort: probePort + 1}
	word, _ := flow.slot()
	if w, _ := neighbour.slot(); w != word {
		t.Fatalf("flows on ports %d and %d in words %d and %d: the test needs one word", probePort, probePort+1, word, w)
	}
	if err := s.AddFlow(neighbour, FlowOptions{NoMetadata: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveFlow(neighbour); err != nil {
		t.Fatal(err)
	}
	if m, ok := ParseSteerMeta(probe(4)); !ok || m.XDPTAI == 0 {
		t.Errorf("probe after a neighbour flow came and went: metadata %+v, valid %v", m, ok)
	}
	if err := s.RemoveFlow(flow); err != nil {
		t.Fatal(err)
	}
	if err := unix.Sendto(peer, steerProbe(5), 0, steerSockaddr(tb.AddrA4, probePort)); err != nil {
		t.Fatal(err)
	}
	if f, _, ok := xsk.receive(100 * time.Millisecond); ok {
		t.Errorf("probe of a removed flow reached the AF_XDP socket: %x", f)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Redirected != 5 || st.MetaFailed != 0 || st.Passed == 0 {
		t.Errorf("stats %+v, want Redirected 5, MetaFailed 0, the removed flow's probe passed", st)
	}
}

// TestSteeringRunTime: while the kernel keeps BPF run-time statistics, Stats
// reports how many frames the program ran for and the time it took.
func TestSteeringRunTime(t *testing.T) {
	tb := newSteerBed(t)
	const probePort, n = 4210, 20
	s, xsk := attachSteeringWithXSK(t, tb)
	if err := s.AddFlow(Flow{Proto: syscall.IPPROTO_UDP, DstPort: probePort}, FlowOptions{NoMetadata: true}); err != nil {
		t.Fatal(err)
	}
	var peer int
	bedtest.In(t, tb, nsbed.B, func() { peer = steerUDPSocket(t, false, 0) })
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		t.Fatalf("enable BPF run-time statistics (kernel 5.8 and later): %v", err)
	}
	defer stats.Close()
	before, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	for seq := range uint64(n) {
		if err := unix.Sendto(peer, steerProbe(seq), 0, steerSockaddr(tb.AddrA4, probePort)); err != nil {
			t.Fatal(err)
		}
		if _, _, ok := xsk.receive(2 * time.Second); !ok {
			t.Fatalf("probe %d did not reach the AF_XDP socket", seq)
		}
	}
	after, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if runs := after.Runs - before.Runs; runs < n || after.RunTime <= before.RunTime {
		t.Errorf("program ran %d times for %v over %d probes, want at least %d runs and some time",
			runs, after.RunTime-before.RunTime, n, n)
	}
}

func TestAttachSteeringFallbackAndErrors(t *testing.T) {
	tb := newSteerBed(t)
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	loIdx := lo.Attrs().Index

	// loopback has no native XDP: auto falls back to generic and says why
	s, err := AttachSteering(SteerOptions{Ifindex: loIdx, HardwareRX: true})
	if err != nil {
		t.Fatalf("auto on lo: %v", err)
	}
	if s.Mode() != SteerModeGeneric || s.HardwareRX() || !strings.Contains(s.Fallback(), "lo does not support XDP in driver mode") || !strings.Contains(s.Fallback(), "hardware RX timestamps are unavailable") {
		t.Errorf("auto on lo: mode %q hardware rx %v fallback %q", s.Mode(), s.HardwareRX(), s.Fallback())
	}
	if x := steerHostXDP(t, "lo"); x.AttachMode != steerAttachedGeneric {
		t.Errorf("lo attach mode %d, want generic", x.AttachMode)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	steerCheckDetached(t, "lo")

	for _, tt := range []struct {
		opts SteerOptions
		want string
	}{
		{SteerOptions{Ifindex: loIdx, Mode: SteerModeDriver}, "lo does not support XDP in driver mode"},
		{SteerOptions{Ifindex: loIdx, Mode: SteerModeDriver, HardwareRX: true}, "lo does not support XDP in driver mode"},
		{SteerOptions{Ifindex: 99999}, "unknown interface index 99999"},
		{SteerOptions{Ifindex: 0}, "invalid interface index: 0"},
		{SteerOptions{Ifindex: tb.IfindexA, Mode: "native"}, `invalid mode "native"`},
		{SteerOptions{Ifindex: tb.IfindexA, Mode: SteerModeGeneric, HardwareRX: true}, "hardware RX timestamps need driver mode"},
	} {
		s, err := AttachSteering(tt.opts)
		if err == nil {
			s.Close()
			t.Errorf("AttachSteering(%+v) succeeded, want error %q", tt.opts, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("AttachSteering(%+v): error %q, want it to contain %q", tt.opts, err, tt.want)
		}
	}
	steerCheckDetached(t, "lo")
	steerCheckDetached(t, tb.IfaceA)
}

// steerForeignProgram loads a minimal XDP_PASS program named name.
func steerForeignProgram(t *testing.T, name string) *ebpf.Program {
	t.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: name, Type: ebpf.XDP, License: "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()},
	})
	if err != nil {
		t.Fatalf("load foreign program: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestAttachSteeringRefusesAttachedProgram(t *testing.T) {
	tb := newSteerBed(t)
	host, err := netlink.LinkByName(tb.IfaceA)
	if err != nil {
		t.Fatal(err)
	}
	for _, how := range []string{"bpf_link driver", "bpf_link generic", "netlink generic"} {
		foreign := steerForeignProgram(t, "foreign_xdp")
		info, err := foreign.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		var detach func() error
		switch how {
		case "bpf_link driver", "bpf_link generic":
			flags := link.XDPDriverMode
			if how == "bpf_link generic" {
				flags = link.XDPGenericMode
			}
			l, err := link.AttachXDP(link.XDPOptions{Program: foreign, Interface: tb.IfindexA, Flags: flags})
			if err != nil {
				t.Fatalf("%s: attach foreign program: %v", how, err)
			}
			detach = l.Close
		case "netlink generic":
			if err := netlink.LinkSetXdpFdWithFlags(host, foreign.FD(), unix.XDP_FLAGS_SKB_MODE); err != nil {
				t.Fatalf("%s: attach foreign program: %v", how, err)
			}
			detach = func() error { return netlink.LinkSetXdpFdWithFlags(host, -1, unix.XDP_FLAGS_SKB_MODE) }
		}
		for _, mode := range []string{SteerModeAuto, SteerModeDriver, SteerModeGeneric} {
			s, err := AttachSteering(SteerOptions{Ifindex: tb.IfindexA, Mode: mode})
			if err == nil {
				s.Close()
				t.Fatalf("%s: AttachSteering in %s mode succeeded over a foreign program", how, mode)
			}
			want := fmt.Sprintf("%s already has XDP program id %d (name foreign_xdp) attached; stackgap never detaches another program", tb.IfaceA, id)
			var attached *XDPProgramAttachedError
			if !errors.As(err, &attached) || err.Error() != want {
				t.Errorf("%s, %s mode: error %q, want %q", how, mode, err, want)
			}
			if x := steerHostXDP(t, tb.IfaceA); x.ProgId != uint32(id) {
				t.Errorf("%s, %s mode: foreign program %d no longer attached (netlink prog id %d)", how, mode, id, x.ProgId)
			}
		}
		if err := detach(); err != nil {
			t.Fatalf("%s: detach foreign program: %v", how, err)
		}
		steerCheckDetached(t, tb.IfaceA)
	}
}

// steerXSK is a minimal copy-mode AF_XDP socket with an RX ring only, written
// here so these tests do not depend on the package's socket code.
type steerXSK struct {
	fd               int
	umem             []byte
	rxMap, fillMap   []byte
	rxProd, rxCons   *uint32
	fillProd         *uint32
	rxDescs          unsafe.Pointer
	fillDescs        unsafe.Pointer
	fillHead, rxTail uint32
}

const (
	steerXSKFrames    = 16
	steerXSKFrameSize = 4096
)

func newSteerXSK(t *testing.T, ifindex int) *steerXSK {
	t.Helper()
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket(AF_XDP): %v", err)
	}
	x := &steerXSK{fd: fd}
	t.Cleanup(func() {
		unix.Close(x.fd)
		for _, m := range [][]byte{x.rxMap, x.fillMap, x.umem} {
			if m != nil {
				unix.Munmap(m)
			}
		}
	})
	if x.umem, err = unix.Mmap(-1, 0, steerXSKFrames*steerXSKFrameSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE); err != nil {
		t.Fatalf("mmap umem: %v", err)
	}
	reg := unix.XDPUmemReg{Addr: uint64(uintptr(unsafe.Pointer(&x.umem[0]))), Len: uint64(len(x.umem)), Size: steerXSKFrameSize}
	if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_UMEM_REG, uintptr(unsafe.Pointer(&reg)), unsafe.Sizeof(reg), 0); e != 0 {
		t.Fatalf("setsockopt(XDP_UMEM_REG): %v", e)
	}
	for _, opt := range []int{unix.XDP_UMEM_FILL_RING, unix.XDP_UMEM_COMPLETION_RING, unix.XDP_RX_RING} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, opt, steerXSKFrames); err != nil {
			t.Fatalf("setsockopt(SOL_XDP, %d): %v", opt, err)
		}
	}
	var off unix.XDPMmapOffsets
	size := uint32(unsafe.Sizeof(off))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS, uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&size)), 0); e != 0 {
		t.Fatalf("getsockopt(XDP_MMAP_OFFSETS): %v", e)
	}
	if x.rxMap, err = unix.Mmap(fd, unix.XDP_PGOFF_RX_RING, int(off.Rx.Desc)+steerXSKFrames*16, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		t.Fatalf("mmap rx ring: %v", err)
	}
	if x.fillMap, err = unix.Mmap(fd, unix.XDP_UMEM_PGOFF_FILL_RING, int(off.Fr.Desc)+steerXSKFrames*8, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		t.Fatalf("mmap fill ring: %v", err)
	}
	x.rxProd = (*uint32)(unsafe.Pointer(&x.rxMap[off.Rx.Producer]))
	x.rxCons = (*uint32)(unsafe.Pointer(&x.rxMap[off.Rx.Consumer]))
	x.rxDescs = unsafe.Pointer(&x.rxMap[off.Rx.Desc])
	x.fillProd = (*uint32)(unsafe.Pointer(&x.fillMap[off.Fr.Producer]))
	x.fillDescs = unsafe.Pointer(&x.fillMap[off.Fr.Desc])
	for i := range steerXSKFrames {
		x.fill(uint64(i * steerXSKFrameSize))
	}
	if err := unix.Bind(fd, &unix.SockaddrXDP{Flags: unix.XDP_COPY, Ifindex: uint32(ifindex), QueueID: 0}); err != nil {
		t.Fatalf("bind AF_XDP socket to ifindex %d queue 0: %v", ifindex, err)
	}
	return x
}

func (x *steerXSK) fill(addr uint64) {
	*(*uint64)(unsafe.Add(x.fillDescs, 8*(x.fillHead%steerXSKFrames))) = addr
	x.fillHead++
	atomic.StoreUint32(x.fillProd, x.fillHead)
}

// receive waits up to timeout for one frame and returns a copy of it and of
// the SteerMetaSize bytes before it, then clears the metadata as consumers must.
func (x *steerXSK) receive(timeout time.Duration) (frame, meta []byte, ok bool) {
	deadline := time.Now().Add(timeout)
	for atomic.LoadUint32(x.rxProd) == x.rxTail {
		if time.Now().After(deadline) {
			return nil, nil, false
		}
		unix.Poll([]unix.PollFd{{Fd: int32(x.fd), Events: unix.POLLIN}}, 10)
	}
	d := (*Desc)(unsafe.Add(x.rxDescs, 16*(x.rxTail%steerXSKFrames)))
	frame = append([]byte(nil), x.umem[d.Addr:d.Addr+uint64(d.Len)]...)
	meta = append([]byte(nil), x.umem[d.Addr-SteerMetaSize:d.Addr]...)
	ClearSteerMeta(x.umem[d.Addr-SteerMetaSize : d.Addr])
	x.rxTail++
	atomic.StoreUint32(x.rxCons, x.rxTail)
	x.fill(d.Addr &^ (steerXSKFrameSize - 1))
	return frame, meta, true
}

func steerUDPSocket(t *testing.T, v6 bool, bindPort int) int {
	t.Helper()
	domain := unix.AF_INET
	var sa unix.Sockaddr = &unix.SockaddrInet4{Port: bindPort}
	if v6 {
		domain, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: bindPort}
	}
	fd, err := unix.Socket(domain, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("udp socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if v6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		t.Fatalf("bind udp port %d: %v", bindPort, err)
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 2}); err != nil {
		t.Fatal(err)
	}
	return fd
}

func steerSockaddr(a netip.Addr, port int) unix.Sockaddr {
	if a.Is4() {
		return &unix.SockaddrInet4{Addr: a.As4(), Port: port}
	}
	return &unix.SockaddrInet6{Addr: a.As16(), Port: port}
}

func steerProbe(seq uint64) []byte {
	p := make([]byte, 26)
	binary.BigEndian.PutUint16(p[0:2], 0x5347) // bench.ProbeMagic
	p[2] = 1                                   // bench.ProbeVersion
	binary.BigEndian.PutUint32(p[4:8], 0xfeedbeef)
	binary.BigEndian.PutUint64(p[8:16], seq)
	binary.BigEndian.PutUint16(p[16:18], uint16(len(p)))
	return p
}

func steerRecvKernel(t *testing.T, fd int, want []byte, what string) {
	t.Helper()
	buf := make([]byte, 65536)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		t.Errorf("%s: kernel socket did not receive it: %v", what, err)
		return
	}
	if !bytes.Equal(buf[:n], want) {
		t.Errorf("%s: kernel socket received %d bytes (%.40x…), want %d (%.40x…)", what, n, buf[:n], len(want), want)
	}
}

// steerPing sends one ICMP echo request from a raw socket and waits for the reply.
func steerPing(t *testing.T, fd int, dst netip.Addr) {
	t.Helper()
	req := []byte{8, 0, 0, 0, 0x12, 0x34, 0, 1, 's', 'g'}
	sum := uint32(0)
	for i := 0; i < len(req); i += 2 {
		sum += uint32(req[i])<<8 | uint32(req[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(req[2:4], ^uint16(sum))
	if err := unix.Sendto(fd, req, 0, steerSockaddr(dst, 0)); err != nil {
		t.Fatalf("send echo request: %v", err)
	}
	buf := make([]byte, 1500)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			t.Errorf("ping %v: no echo reply: %v", dst, err)
			return
		}
		ihl := int(buf[0]&0xf) * 4
		if n >= ihl+8 && buf[ihl] == 0 && buf[ihl+4] == 0x12 && buf[ihl+5] == 0x34 {
			return
		}
	}
}

func TestSteeringRedirectsOnlyProbes(t *testing.T) {
	for _, opts := range []SteerOptions{
		{Mode: SteerModeDriver, HardwareRX: true},
		{Mode: SteerModeDriver},
		{Mode: SteerModeGeneric},
	} {
		name := opts.Mode
		if opts.HardwareRX {
			name += "+hw"
		}
		t.Run(name, func(t *testing.T) { testSteeringRedirects(t, opts) })
	}
}

func testSteeringRedirects(t *testing.T, opts SteerOptions) {
	tb := newSteerBed(t)
	const probePort, otherPort, tcpPort = 4000, 4001, 5000
	taiOffset, err := MeasureTAIOffset()
	if err != nil {
		t.Fatal(err)
	}

	opts.Ifindex = tb.IfindexA
	s, err := AttachSteering(opts)
	if err != nil {
		t.Fatalf("AttachSteering(%+v): %v", opts, err)
	}
	t.Cleanup(func() { s.Close() })
	xsk := newSteerXSK(t, tb.IfindexA)
	if err := s.Register(0, xsk.fd); err != nil {
		t.Fatal(err)
	}
	for _, f := range []Flow{
		{Proto: syscall.IPPROTO_UDP, DstPort: probePort},
		{IPv6: true, Proto: syscall.IPPROTO_UDP, DstPort: probePort},
		{Proto: syscall.IPPROTO_TCP, DstPort: tcpPort},
	} {
		if err := s.AddFlow(f, FlowOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// kernel sockets on the host side, senders on the peer side
	host4, host6 := steerUDPSocket(t, false, probePort), steerUDPSocket(t, true, probePort)
	hostOther := steerUDPSocket(t, false, otherPort)
	var peer4, peer6, peerPing, peerTCP int
	bedtest.In(t, tb, nsbed.B, func() {
		peer4, peer6 = steerUDPSocket(t, false, 0), steerUDPSocket(t, true, 0)
		if peerPing, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP); err != nil {
			t.Fatalf("raw icmp socket: %v", err)
		}
		t.Cleanup(func() { unix.Close(peerPing) })
		if err := unix.SetsockoptTimeval(peerPing, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 2}); err != nil {
			t.Fatal(err)
		}
		if peerTCP, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(peerTCP) })
	})
	send := func(fd int, p []byte, dst netip.Addr, port int) {
		t.Helper()
		if err := unix.Sendto(fd, p, 0, steerSockaddr(dst, port)); err != nil {
			t.Fatalf("send to %v port %d: %v", dst, port, err)
		}
	}
	expectXSK := func(what string, check func(frame []byte) bool, sent time.Time) {
		t.Helper()
		frame, meta, ok := xsk.receive(2 * time.Second)
		if !ok {
			t.Fatalf("%s: nothing arrived on the AF_XDP socket", what)
		}
		if !check(frame) {
			t.Fatalf("%s: unexpected frame on the AF_XDP socket: %x", what, frame)
		}
		m, ok := ParseSteerMeta(meta)
		if !ok {
			t.Fatalf("%s: no valid metadata before the frame: %x", what, meta)
		}
		got := time.Unix(0, TAIToRealtime(m.XDPTAI, taiOffset))
		if got.Before(sent.Add(-time.Second)) || got.After(time.Now().Add(time.Second)) {
			t.Errorf("%s: XDP stamp %v (TAI %d, offset %v) not near the send time %v", what, got, m.XDPTAI, taiOffset, sent)
		}
		wantErr := syscall.EOPNOTSUPP
		if opts.HardwareRX {
			wantErr = 0 // veth: 0 with a zero stamp
		}
		if m.HardwareErr != wantErr || m.Hardware != 0 {
			t.Errorf("%s: hardware stamp %d err %v, want 0 err %v", what, m.Hardware, m.HardwareErr, wantErr)
		}
		t.Logf("%s: %d-byte frame, xdp stamp %v after send, hw %d (err %v)", what, len(frame), got.Sub(sent), m.Hardware, m.HardwareErr)
	}
	expectNoXSK := func(what string) {
		t.Helper()
		if frame, _, ok := xsk.receive(50 * time.Millisecond); ok {
			t.Errorf("%s: unexpected frame on the AF_XDP socket: %x", what, frame)
		}
	}
	udpPayloadIs := func(want []byte) func([]byte) bool {
		return func(f []byte) bool {
			// A kernel sender on veth leaves the UDP checksum to an offload that never runs.
			p, err := frame.ParseUnverified(f)
			return err == nil && p.Protocol == syscall.IPPROTO_UDP && p.DstPort == probePort && bytes.Equal(p.Payload, want)
		}
	}

	var want SteerStats
	passedAtLeast := uint64(0)

	// 1. probes to live flows are redirected, IPv4 and IPv6
	probe := steerProbe(1)
	sent := time.Now()
	send(peer4, probe, tb.AddrA4, probePort)
	expectXSK("ipv4 probe", udpPayloadIs(probe), sent)
	want.Redirected++
	probe6 := steerProbe(2)
	sent = time.Now()
	send(peer6, probe6, tb.AddrA6, probePort)
	expectXSK("ipv6 probe", udpPayloadIs(probe6), sent)
	want.Redirected++

	// 2. non-probe to a live UDP flow goes to the kernel
	plain := []byte("not a probe, just udp")
	send(peer4, plain, tb.AddrA4, probePort)
	steerRecvKernel(t, host4, plain, "ipv4 non-probe")
	send(peer6, plain, tb.AddrA6, probePort)
	steerRecvKernel(t, host6, plain, "ipv6 non-probe")
	wrongVersion := steerProbe(3)
	wrongVersion[2] = 2
	send(peer4, wrongVersion, tb.AddrA4, probePort)
	steerRecvKernel(t, host4, wrongVersion, "probe with version 2")
	short := []byte{0x53, 0x47}
	send(peer4, short, tb.AddrA4, probePort)
	steerRecvKernel(t, host4, short, "magic without version")
	want.NotProbe += 4
	passedAtLeast += 4

	// 3. a probe to a port that is not a live flow goes to the kernel
	other := steerProbe(4)
	send(peer4, other, tb.AddrA4, otherPort)
	steerRecvKernel(t, hostOther, other, "probe to another port")
	passedAtLeast++

	// 4. ICMP is passed
	steerPing(t, peerPing, tb.AddrA4)
	passedAtLeast += 1
	expectNoXSK("after kernel traffic")

	// 4b. IPv4 fragments are passed, even of a probe; the kernel reassembles them
	big := append(steerProbe(10), make([]byte, 3000)...)
	binary.BigEndian.PutUint16(big[16:18], uint16(len(big)))
	send(peer4, big, tb.AddrA4, probePort)
	steerRecvKernel(t, host4, big, "fragmented probe")
	passedAtLeast += 3
	expectNoXSK("after fragments")

	// 4c. IPv4 options (IHL 6) are skipped
	bedtest.In(t, tb, nsbed.B, func() {
		if err := unix.SetsockoptString(peer4, unix.IPPROTO_IP, unix.IP_OPTIONS, "\x01\x01\x01\x00"); err != nil {
			t.Fatalf("set IP_OPTIONS: %v", err)
		}
	})
	probe = steerProbe(11)
	sent = time.Now()
	send(peer4, probe, tb.AddrA4, probePort)
	expectXSK("ipv4 probe with options", func(f []byte) bool { return f[14] == 0x46 && udpPayloadIs(probe)(f) }, sent)
	want.Redirected++
	if err := unix.SetsockoptString(peer4, unix.IPPROTO_IP, unix.IP_OPTIONS, ""); err != nil {
		t.Fatalf("clear IP_OPTIONS: %v", err)
	}

	// 4d. one VLAN tag is skipped. This kernel has no 802.1Q devices, so the
	// peer injects the tagged frame through a packet socket.
	hostLink, err := netlink.LinkByIndex(tb.IfindexA)
	if err != nil {
		t.Fatal(err)
	}
	var peerMAC net.HardwareAddr
	var peerRaw int
	bedtest.In(t, tb, nsbed.B, func() {
		peerLink, err := netlink.LinkByIndex(tb.IfindexB)
		if err != nil {
			t.Fatal(err)
		}
		peerMAC = peerLink.Attrs().HardwareAddr
		if peerRaw, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
			t.Fatalf("packet socket: %v", err)
		}
	})
	t.Cleanup(func() { unix.Close(peerRaw) })
	probe = steerProbe(12)
	hdr := frame.Header{SrcMAC: peerMAC, DstMAC: hostLink.Attrs().HardwareAddr, Src: tb.AddrB4, Dst: tb.AddrA4, SrcPort: 40000, DstPort: probePort}
	untagged := make([]byte, 128)
	n, err := frame.BuildUDP(untagged, &hdr, probe)
	if err != nil {
		t.Fatal(err)
	}
	tagged := append(append(append([]byte(nil), untagged[:12]...), 0x81, 0x00, 0x00, 100), untagged[12:n]...)
	sent = time.Now()
	if err := unix.Sendto(peerRaw, tagged, 0, &unix.SockaddrLinklayer{Ifindex: tb.IfindexB, Halen: 6}); err != nil {
		t.Fatalf("inject vlan-tagged frame: %v", err)
	}
	expectXSK("vlan-tagged probe", func(f []byte) bool {
		p, err := frame.Parse(f)
		return err == nil && p.Tagged && p.VLAN == 100 && bytes.Equal(p.Payload, probe)
	}, sent)
	want.Redirected++

	// 5. every segment of a live TCP flow is redirected: the SYN here
	sent = time.Now()
	if err := unix.Connect(peerTCP, steerSockaddr(tb.AddrA4, tcpPort)); !errors.Is(err, unix.EINPROGRESS) {
		t.Fatalf("tcp connect: %v, want EINPROGRESS", err)
	}
	expectXSK("tcp syn", func(f []byte) bool {
		// Ethernet 14 + IPv4 20: TCP destination port and flags
		return len(f) >= 54 && f[23] == syscall.IPPROTO_TCP && binary.BigEndian.Uint16(f[36:38]) == tcpPort && f[47]&0x02 != 0
	}, sent)
	want.Redirected++

	// 6. no socket registered for the queue: probes go to the kernel
	if err := s.Unregister(0); err != nil {
		t.Fatal(err)
	}
	if err := s.Unregister(0); err != nil {
		t.Errorf("second Unregister: %v", err)
	}
	probe = steerProbe(5)
	send(peer4, probe, tb.AddrA4, probePort)
	steerRecvKernel(t, host4, probe, "probe without a registered socket")
	want.NoSocket++
	passedAtLeast++
	if err := s.Register(0, xsk.fd); err != nil {
		t.Fatal(err)
	}

	// 7. removed flows are no longer redirected
	f4 := Flow{Proto: syscall.IPPROTO_UDP, DstPort: probePort}
	if err := s.RemoveFlow(f4); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveFlow(f4); err != nil {
		t.Errorf("second RemoveFlow: %v", err)
	}
	probe = steerProbe(6)
	send(peer4, probe, tb.AddrA4, probePort)
	steerRecvKernel(t, host4, probe, "probe to a removed flow")
	passedAtLeast++
	expectNoXSK("after removed flow")

	// The TCP SYN is retransmitted after 1 s; count only what is certain.
	got, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if got.Redirected < want.Redirected || got.Redirected > want.Redirected+2 || got.NotProbe != want.NotProbe ||
		got.NoSocket != want.NoSocket || got.MetaFailed != 0 || got.Passed < passedAtLeast {
		t.Errorf("stats %+v, want %+v with Passed >= %d and at most 2 TCP retransmissions", got, want, passedAtLeast)
	}
	t.Logf("stats %+v", got)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	steerCheckDetached(t, tb.IfaceA)
}
