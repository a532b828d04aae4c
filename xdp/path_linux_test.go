package xdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
	"github.com/stackgap/stackgap/bench"
	nsbed "github.com/stackgap/stackgap/internal/testbed"
	"github.com/stackgap/stackgap/internal/testbed/bedtest"
	"github.com/stackgap/stackgap/internal/testutil"
	"github.com/stackgap/stackgap/kernelpath"
	"github.com/stackgap/stackgap/xdp/frame"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// pathProbeSize is the probe payload size of these tests: a 64-byte UDP
// payload, as in the figures of the test-machine notes.
const pathProbeSize = 64

func addrOf(tb *nsbed.Testbed, side nsbed.Side, ipv6 bool) netip.Addr {
	if ipv6 {
		return tb.Addr6(side)
	}
	return tb.Addr4(side)
}

func udpSpec(wait bench.WaitStrategy) bench.ConnSpec {
	return bench.ConnSpec{Transport: "udp", Wait: wait, Size: pathProbeSize, Timestamping: true}
}

// listenIn opens path's reflector end in side and accepts its Conn there.
func listenIn(t testing.TB, tb *nsbed.Testbed, side nsbed.Side, path bench.Path, spec bench.ListenSpec) (bench.Listener, bench.Conn) {
	t.Helper()
	var ln bench.Listener
	var conn bench.Conn
	err := tb.Do(side, func() error {
		var err error
		if ln, err = path.Listen(spec); err != nil {
			return err
		}
		conn, err = ln.Accept(time.Now().Add(time.Second))
		return err
	})
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		t.Fatalf("%s listen in %v: %v", path.Name(), side, err)
	}
	t.Cleanup(func() {
		conn.Close()
		ln.Close()
	})
	return ln, conn
}

// dialIn opens path's sender end in side.
func dialIn(t testing.TB, tb *nsbed.Testbed, side nsbed.Side, path bench.Path, spec bench.DialSpec) bench.Conn {
	t.Helper()
	var conn bench.Conn
	err := tb.Do(side, func() error {
		var err error
		conn, err = path.Dial(spec)
		return err
	})
	if err != nil {
		t.Fatalf("%s dial in %v: %v", path.Name(), side, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// udpPair opens an IPv4 UDP session with spec: the reflector's end on path
// refl in B, and the sender's end dialled on path send from A. Both are
// closed at cleanup.
func udpPair(t testing.TB, tb *nsbed.Testbed, send, refl bench.Path, spec bench.ConnSpec) (ln bench.Listener, reflector, sender bench.Conn) {
	t.Helper()
	ln, reflector = listenIn(t, tb, nsbed.B, refl, bench.ListenSpec{ConnSpec: spec, Local: netip.AddrPortFrom(tb.AddrB4, 0)})
	sender = dialIn(t, tb, nsbed.A, send, bench.DialSpec{ConnSpec: spec, Local: tb.AddrA4, Remote: netip.AddrPortFrom(tb.AddrB4, ln.Port())})
	return ln, reflector, sender
}

// reflectResult is what a test reflector saw.
type reflectResult struct {
	seqs     []uint64 // sequence numbers of the probes reflected, in order
	badStamp int      // probes whose XDP hook stamp was after the user stamp
	noHook   int      // probes without an XDP hook stamp
	txStamps int      // TX stamps reported
	eof      bool     // the peer closed the stream
	err      error
}

// startReflector reflects probes on conn from a goroutine locked to its
// thread until the returned stop function is called, or until the peer
// closes a stream (io.EOF): then it closes conn, as the engine does.
func startPathReflector(conn bench.Conn) (stop func() reflectResult) {
	stop, _ = startPathReflectorEnded(conn)
	return stop
}

// startPathReflectorEnded is startPathReflector that also returns a channel
// closed when the reflector ends by itself (the peer closed, or an error).
func startPathReflectorEnded(conn bench.Conn) (stop func() reflectResult, ended <-chan struct{}) {
	var quit atomic.Bool
	done := make(chan reflectResult, 1)
	endedCh := make(chan struct{})
	go func() {
		defer close(endedCh)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		res := reflectResult{seqs: make([]uint64, 0, 1<<16)}
		buf := make([]byte, bench.MaxProbeSize)
		onStamp := func(uint64, bench.TxStampKind, int64) { res.txStamps++ }
		for !quit.Load() {
			n, rx, err := conn.Recv(buf, time.Now().Add(20*time.Millisecond))
			if errors.Is(err, bench.ErrTimeout) {
				continue
			}
			if errors.Is(err, io.EOF) {
				res.eof = true
				if err := conn.Close(); err != nil {
					res.err = fmt.Errorf("reflector close after the peer closed: %w", err)
				}
				break
			}
			if err != nil {
				res.err = fmt.Errorf("reflector receive: %w", err)
				break
			}
			p, err := bench.ParseProbe(buf[:n])
			if err != nil {
				res.err = fmt.Errorf("reflector got a bad probe: %w", err)
				break
			}
			switch {
			case rx.XDPHook == 0:
				res.noHook++
			case rx.XDPHook > rx.User:
				res.badStamp++
			}
			if len(res.seqs) < cap(res.seqs) {
				res.seqs = append(res.seqs, p.Seq)
			}
			bench.MarkReply(buf[:n], bench.StampUnknown, 0)
			// Like the engine's reflector: hand the reply its user TX stamp
			// where the Conn takes one.
			if replier, ok := conn.(bench.StampedReplier); ok {
				err = replier.ReplyStamped(buf[:n], true, time.Now().UnixNano())
			} else {
				_, err = conn.Send(buf[:n])
			}
			if err != nil {
				res.err = fmt.Errorf("reflector send: %w", err)
				break
			}
			if err := conn.TxStamps(onStamp); err != nil {
				res.err = fmt.Errorf("reflector tx stamps: %w", err)
				break
			}
		}
		done <- res
	}()
	var once sync.Once
	var res reflectResult
	return func() reflectResult {
		once.Do(func() {
			quit.Store(true)
			res = <-done
		})
		return res
	}, endedCh
}

// probeRecord is one probe of a ping-pong, as the sender saw it.
type probeRecord struct {
	userTx, txStamp int64
	txKind          bench.TxStampKind
	rx              bench.RxStamps
	replies         int
}

// pingPong sends n probes on conn one at a time, waiting for each reply,
// on the calling goroutine locked to its thread.
func pathPingPong(t testing.TB, conn bench.Conn, n int) []probeRecord {
	t.Helper()
	return pathPingPongWithin(t, conn, n, 2*time.Second)
}

// pathPingPongWithin is pathPingPong with each probe's reply allowed to take
// up to perProbe.
func pathPingPongWithin(t testing.TB, conn bench.Conn, n int, perProbe time.Duration) []probeRecord {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const token = 0x5eed
	recs := make([]probeRecord, n)
	onStamp := func(index uint64, kind bench.TxStampKind, ts int64) {
		if index >= uint64(n) {
			t.Errorf("TX stamp for send index %d, only %d sends", index, n)
			return
		}
		if recs[index].txStamp != 0 && recs[index].txKind == kind {
			t.Errorf("send %d: second TX stamp of kind %v", index, kind)
		}
		recs[index].txStamp, recs[index].txKind = ts, kind
	}
	probe := make([]byte, pathProbeSize)
	buf := make([]byte, bench.MaxProbeSize)
	for seq := range uint64(n) {
		bench.MarshalProbe(probe, token, seq)
		userTx, err := conn.Send(probe)
		if err != nil {
			t.Fatalf("send probe %d: %v", seq, err)
		}
		recs[seq].userTx = userTx
		deadline := time.Now().Add(perProbe)
		for recs[seq].replies == 0 {
			m, rx, err := conn.Recv(buf, deadline)
			if err != nil {
				t.Fatalf("probe %d: receive: %v", seq, err)
			}
			p, err := bench.ParseProbe(buf[:m])
			switch {
			case err != nil:
				t.Fatalf("probe %d: bad reply: %v", seq, err)
			case p.Token != token || p.Flags&bench.FlagReply == 0 || p.Seq > seq:
				t.Fatalf("probe %d: unexpected reply %+v", seq, p)
			case m != pathProbeSize:
				t.Fatalf("probe %d: reply of %d bytes, want %d", seq, m, pathProbeSize)
			}
			recs[p.Seq].replies++
			recs[p.Seq].rx = rx
		}
		if err := conn.TxStamps(onStamp); err != nil {
			t.Fatalf("tx stamps: %v", err)
		}
	}
	return recs
}

// drainTxStamps collects the TX stamps still due until every send has one
// or a second passed.
func drainTxStamps(t testing.TB, conn bench.Conn, recs []probeRecord) {
	t.Helper()
	end := time.Now().Add(time.Second)
	for time.Now().Before(end) {
		missing := false
		for _, r := range recs {
			missing = missing || r.txStamp == 0
		}
		if !missing {
			return
		}
		err := conn.TxStamps(func(index uint64, kind bench.TxStampKind, ts int64) {
			if index < uint64(len(recs)) {
				recs[index].txStamp, recs[index].txKind = ts, kind
			}
		})
		if err != nil {
			t.Fatalf("tx stamps: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
}

// checkXDPSender checks an AF_XDP sender's records: one reply per probe,
// XDP hook and TX completion stamps present and in order.
func checkXDPSender(t *testing.T, recs []probeRecord) {
	t.Helper()
	bad := 0
	for i, r := range recs {
		var problem string
		switch {
		case r.replies != 1:
			problem = fmt.Sprintf("%d replies", r.replies)
		case r.txStamp == 0 || r.txKind != bench.TxCompletion:
			problem = fmt.Sprintf("TX stamp %d of kind %v", r.txStamp, r.txKind)
		case r.userTx > r.txStamp:
			problem = fmt.Sprintf("TX completion %d ns before user send", r.userTx-r.txStamp)
		case r.rx.XDPHook == 0 || r.rx.User == 0:
			problem = fmt.Sprintf("RX stamps %+v", r.rx)
		case r.rx.XDPHook > r.rx.User:
			problem = fmt.Sprintf("XDP hook stamp %d ns after the user stamp", r.rx.XDPHook-r.rx.User)
		case r.rx.XDPHook < r.userTx:
			problem = fmt.Sprintf("reply's XDP hook stamp %d ns before the probe was sent", r.userTx-r.rx.XDPHook)
		case r.rx.Hardware != 0 || r.rx.Software != 0:
			problem = fmt.Sprintf("unexpected stamps on veth: %+v", r.rx)
		}
		if problem != "" {
			if bad++; bad <= 5 {
				t.Errorf("probe %d: %s", i, problem)
			}
		}
	}
	if bad > 5 {
		t.Errorf("%d probes had problems", bad)
	}
}

func checkPathReflected(t *testing.T, res reflectResult, n int, xdpReflector bool) {
	t.Helper()
	if res.err != nil {
		t.Error(res.err)
	}
	want := make([]uint64, n)
	for i := range want {
		want[i] = uint64(i)
	}
	if !slices.Equal(res.seqs, want) {
		t.Errorf("reflector saw %d probes %v…, want each of 0..%d once in order", len(res.seqs), res.seqs[:min(len(res.seqs), 10)], n-1)
	}
	if xdpReflector && (res.noHook != 0 || res.badStamp != 0) {
		t.Errorf("reflector: %d probes without XDP hook stamp, %d with it after the user stamp", res.noHook, res.badStamp)
	}
	if xdpReflector && res.txStamps == 0 {
		t.Errorf("reflector got no TX stamps")
	}
}

func pathMedianRTT(recs []probeRecord) time.Duration {
	rtts := make([]int64, 0, len(recs))
	for _, r := range recs {
		if r.rx.User != 0 {
			rtts = append(rtts, r.rx.User-r.userTx)
		}
	}
	if len(rtts) == 0 {
		return 0
	}
	slices.Sort(rtts)
	return time.Duration(rtts[len(rtts)/2])
}

func TestPathPingPong(t *testing.T) {
	const n = 500
	for _, ipv6 := range []bool{false, true} {
		for _, wait := range []bench.WaitStrategy{bench.WaitPoll, bench.WaitSpin} {
			name := fmt.Sprintf("ipv4/%s", wait)
			if ipv6 {
				name = fmt.Sprintf("ipv6/%s", wait)
			}
			t.Run(name, func(t *testing.T) {
				tb := bedtest.New(t, nsbed.Options{})
				path := NewPath(PathOptions{})
				ln, refl := listenIn(t, tb, nsbed.B, path, bench.ListenSpec{
					ConnSpec: udpSpec(wait), Local: netip.AddrPortFrom(addrOf(tb, nsbed.B, ipv6), 0)})
				if _, err := refl.Send(make([]byte, pathProbeSize)); err == nil || !strings.Contains(err.Error(), "no peer yet") {
					t.Errorf("reflector Send before the first probe: %v, want a \"no peer yet\" error", err)
				}
				sender := dialIn(t, tb, nsbed.A, path, bench.DialSpec{ConnSpec: udpSpec(wait),
					Local: addrOf(tb, nsbed.A, ipv6), Remote: netip.AddrPortFrom(addrOf(tb, nsbed.B, ipv6), ln.Port())})
				stop := startPathReflector(refl)
				recs := pathPingPong(t, sender, n)
				drainTxStamps(t, sender, recs)
				res := stop()
				checkXDPSender(t, recs)
				checkPathReflected(t, res, n, true)
				t.Logf("xdp↔xdp %s: median RTT %v over %d probes", name, pathMedianRTT(recs), n)

				counters := sender.(bench.Reporter).Counters()
				for _, name := range []string{"rx_probes", "tx_frames", "tx_completions", "steer_redirected"} {
					if counters[name] < n {
						t.Errorf("sender counter %s = %d, want ≥ %d (counters %v)", name, counters[name], n, counters)
					}
				}
				for _, name := range []string{"rx_bad_frames", "rx_foreign_frames", "rx_missing_metadata", "rx_bad_checksum", "tx_unmatched_completions"} {
					if counters[name] != 0 {
						t.Errorf("sender counter %s = %d, want 0 (counters %v)", name, counters[name], counters)
					}
				}
				notes := strings.Join(sender.(bench.Reporter).Notes(), "\n")
				for _, want := range []string{"copy mode: zero-copy not supported by veth", "driver mode", "sw_completion (copy mode)"} {
					if !strings.Contains(notes, want) {
						t.Errorf("notes lack %q:\n%s", want, notes)
					}
				}
			})
		}
	}
}

// TestPathPingPongKernelBaseline runs the same ping-pong between two kernel
// path Conns, for the RTT comparison in the log.
func TestPathPingPongKernelBaseline(t *testing.T) {
	const n = 500
	tb := bedtest.New(t, nsbed.Options{})
	for _, wait := range []bench.WaitStrategy{bench.WaitBlock, bench.WaitSpin} {
		kernel := kernelpath.NewPath()
		_, refl, sender := udpPair(t, tb, kernel, kernel, udpSpec(wait))
		stop := startPathReflector(refl)
		recs := pathPingPong(t, sender, n)
		checkPathReflected(t, stop(), n, false)
		t.Logf("kernel↔kernel ipv4/%s: median RTT %v over %d probes", wait, pathMedianRTT(recs), n)
	}
}

// TestPathMixed proves the frames are real UDP the kernel accepts: an xdp
// sender against a kernel reflector, and a kernel sender against an xdp
// reflector.
func TestPathMixed(t *testing.T) {
	const n = 100
	for _, ipv6 := range []bool{false, true} {
		family := familyName(ipv6)
		t.Run(family+"/xdp-to-kernel", func(t *testing.T) {
			tb := bedtest.New(t, nsbed.Options{})
			ln, refl := listenIn(t, tb, nsbed.B, kernelpath.NewPath(), bench.ListenSpec{
				ConnSpec: udpSpec(bench.WaitBlock), Local: netip.AddrPortFrom(addrOf(tb, nsbed.B, ipv6), 0)})
			sender := dialIn(t, tb, nsbed.A, NewPath(PathOptions{}), bench.DialSpec{ConnSpec: udpSpec(bench.WaitPoll),
				Local: addrOf(tb, nsbed.A, ipv6), Remote: netip.AddrPortFrom(addrOf(tb, nsbed.B, ipv6), ln.Port())})
			stop := startPathReflector(refl)
			recs := pathPingPong(t, sender, n)
			drainTxStamps(t, sender, recs)
			checkPathReflected(t, stop(), n, false)
			checkXDPSender(t, recs)
			if c := sender.(bench.Reporter).Counters(); c["rx_bad_checksum"] != 0 || c["rx_bad_frames"] != 0 {
				t.Logf("kernel replies: %d with a checksum left to offload, %d bad", c["rx_bad_checksum"], c["rx_bad_frames"])
			}
		})
		t.Run(family+"/kernel-to-xdp", func(t *testing.T) {
			tb := bedtest.New(t, nsbed.Options{})
			ln, refl := listenIn(t, tb, nsbed.B, NewPath(PathOptions{}), bench.ListenSpec{
				ConnSpec: udpSpec(bench.WaitPoll), Local: netip.AddrPortFrom(addrOf(tb, nsbed.B, ipv6), 0)})
			sender := dialIn(t, tb, nsbed.A, kernelpath.NewPath(), bench.DialSpec{ConnSpec: udpSpec(bench.WaitBlock),
				Local: addrOf(tb, nsbed.A, ipv6), Remote: netip.AddrPortFrom(addrOf(tb, nsbed.B, ipv6), ln.Port())})
			stop := startPathReflector(refl)
			recs := pathPingPong(t, sender, n)
			checkPathReflected(t, stop(), n, true)
			for i, r := range recs {
				if r.replies != 1 {
					t.Fatalf("probe %d: %d replies", i, r.replies)
				}
			}
			c := refl.(bench.Reporter).Counters()
			t.Logf("xdp reflector: %d kernel probes with a checksum left to offload (veth CHECKSUM_PARTIAL)", c["rx_bad_checksum"])
			if c["rx_bad_frames"] != 0 || c["rx_foreign_frames"] != 0 {
				t.Errorf("xdp reflector counters %v: want no bad or foreign frames", c)
			}
		})
	}
}

// TestPathCoexistence checks that other traffic through the interfaces
// keeps working while both ends have an AF_XDP session open.
func TestPathCoexistence(t *testing.T) {
	tb := bedtest.New(t, nsbed.Options{})
	path := NewPath(PathOptions{})
	_, refl, sender := udpPair(t, tb, path, path, udpSpec(bench.WaitPoll))
	stop := startPathReflector(refl)
	defer stop()

	// TCP through both interfaces.
	var tcpLn net.Listener
	if err := tb.Do(nsbed.B, func() (err error) {
		tcpLn, err = net.Listen("tcp", netip.AddrPortFrom(tb.AddrB4, 0).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer tcpLn.Close()
	testutil.ServeEcho(tcpLn, nil)
	var tcpConn net.Conn
	if err := tb.Do(nsbed.A, func() (err error) {
		tcpConn, err = net.DialTimeout("tcp", tcpLn.Addr().String(), 2*time.Second)
		return err
	}); err != nil {
		t.Fatalf("tcp connect while af_xdp sessions are open: %v", err)
	}
	defer tcpConn.Close()
	tcpConn.SetDeadline(time.Now().Add(2 * time.Second))
	for i := range 20 {
		msg := []byte(fmt.Sprintf("hello %d", i))
		if _, err := tcpConn.Write(msg); err != nil {
			t.Fatalf("tcp write: %v", err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(tcpConn, got); err != nil || string(got) != string(msg) {
			t.Fatalf("tcp echo %d: %q, %v", i, got, err)
		}
	}

	for _, addr := range []netip.Addr{tb.AddrB4, tb.AddrB6} {
		if err := tb.Do(nsbed.A, func() error { return icmpEcho(addr, 3) }); err != nil {
			t.Errorf("ping %v while af_xdp sessions are open: %v", addr, err)
		}
	}

	recs := pathPingPong(t, sender, 50)
	drainTxStamps(t, sender, recs)
	checkXDPSender(t, recs)
	checkPathReflected(t, stop(), 50, true)
}

// icmpEcho sends count ICMP echo requests to addr from a raw socket of the
// calling thread's namespace and waits for each reply (what ping does).
func icmpEcho(addr netip.Addr, count int) error {
	family, proto, request, reply := unix.AF_INET, unix.IPPROTO_ICMP, byte(8), byte(0)
	if addr.Is6() {
		family, proto, request, reply = unix.AF_INET6, unix.IPPROTO_ICMPV6, 128, 129
	}
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return fmt.Errorf("raw icmp socket: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return err
	}
	var sa unix.Sockaddr = &unix.SockaddrInet6{Addr: addr.As16()}
	if addr.Is4() {
		sa = &unix.SockaddrInet4{Addr: addr.As4()}
	}
	const id = 0x5347
	buf := make([]byte, 1500)
	for seq := range count {
		msg := make([]byte, 8+16)
		msg[0] = request
		binary.BigEndian.PutUint16(msg[4:], id)
		binary.BigEndian.PutUint16(msg[6:], uint16(seq))
		if addr.Is4() { // the kernel computes ICMPv6 checksums itself
			var sum uint32
			for i := 0; i < len(msg); i += 2 {
				sum += uint32(binary.BigEndian.Uint16(msg[i:]))
			}
			for sum > 0xffff {
				sum = sum>>16 + sum&0xffff
			}
			binary.BigEndian.PutUint16(msg[2:], ^uint16(sum))
		}
		if err := unix.Sendto(fd, msg, 0, sa); err != nil {
			return fmt.Errorf("send echo request %d: %w", seq, err)
		}
		end := time.Now().Add(2 * time.Second)
		for {
			if time.Now().After(end) {
				return fmt.Errorf("no echo reply %d within 2s", seq)
			}
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return fmt.Errorf("receive echo reply %d: %w", seq, err)
			}
			icmp := buf[:n]
			if addr.Is4() && n > 20 { // raw IPv4 sockets return the IP header
				icmp = icmp[int(icmp[0]&0x0f)*4:]
			}
			if len(icmp) >= 8 && icmp[0] == reply && binary.BigEndian.Uint16(icmp[4:]) == id && binary.BigEndian.Uint16(icmp[6:]) == uint16(seq) {
				break
			}
		}
	}
	return nil
}

// xdpProgID is the XDP program id netlink reports for an interface of side.
func xdpProgID(t *testing.T, tb *nsbed.Testbed, side nsbed.Side, ifname string) uint32 {
	t.Helper()
	var id uint32
	if err := tb.Do(side, func() error {
		l, err := netlink.LinkByName(ifname)
		if err != nil {
			return err
		}
		if x := l.Attrs().Xdp; x != nil {
			id = x.ProgId
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return id
}

func openFDCount(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// portFree reports whether the UDP port can be bound on addr in side.
func portFree(t *testing.T, tb *nsbed.Testbed, side nsbed.Side, ap netip.AddrPort) error {
	t.Helper()
	return tb.Do(side, func() error {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// freePort returns a UDP port that is free on addr in side.
func freePort(t *testing.T, tb *nsbed.Testbed, side nsbed.Side, addr netip.Addr) uint16 {
	t.Helper()
	var port uint16
	if err := tb.Do(side, func() error {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		if err != nil {
			return err
		}
		port = c.LocalAddr().(*net.UDPAddr).AddrPort().Port()
		return c.Close()
	}); err != nil {
		t.Fatal(err)
	}
	return port
}

func TestPathCloseLeavesNothing(t *testing.T) {
	tb := bedtest.New(t, nsbed.Options{})
	fds := openFDCount(t)
	path := NewPath(PathOptions{})
	var ln bench.Listener
	var refl, sender bench.Conn
	if err := tb.Do(nsbed.B, func() (err error) {
		if ln, err = path.Listen(bench.ListenSpec{ConnSpec: udpSpec(bench.WaitPoll), Local: netip.AddrPortFrom(tb.AddrB6, 0)}); err != nil {
			return err
		}
		refl, err = ln.Accept(time.Time{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := tb.Do(nsbed.A, func() (err error) {
		sender, err = path.Dial(bench.DialSpec{ConnSpec: udpSpec(bench.WaitPoll), Local: tb.AddrA6, Remote: netip.AddrPortFrom(tb.AddrB6, ln.Port())})
		return err
	}); err != nil {
		refl.Close()
		t.Fatal(err)
	}
	if id := xdpProgID(t, tb, nsbed.B, tb.IfaceB); id == 0 {
		t.Error("no XDP program attached on the reflector's interface during the session")
	}
	reflPort := netip.AddrPortFrom(tb.AddrB6, ln.Port())
	sendPort := sender.(interface{ LocalAddr() netip.AddrPort }).LocalAddr()
	if err := portFree(t, tb, nsbed.B, reflPort); err == nil {
		t.Errorf("reflector port %v is not reserved during the session", reflPort)
	}
	if err := portFree(t, tb, nsbed.A, sendPort); err == nil {
		t.Errorf("sender port %v is not reserved during the session", sendPort)
	}
	stop := startPathReflector(refl)
	recs := pathPingPong(t, sender, 20)
	checkPathReflected(t, stop(), 20, true)
	_ = recs

	closeSession(t, sender, refl, ln)
	checkNothingLeft(t, tb, fds, reflPort, sendPort)

	// The queues are free for new sessions.
	ln2, _ := listenIn(t, tb, nsbed.B, path, bench.ListenSpec{ConnSpec: udpSpec(bench.WaitPoll), Local: reflPort})
	if ln2.Port() != reflPort.Port() {
		t.Errorf("listen on %v got port %d", reflPort, ln2.Port())
	}
}

// closeSession closes the sender's and the reflector's Conns and the
// listener, each twice and without error, and checks that the sender no
// longer sends.
func closeSession(t *testing.T, sender, refl bench.Conn, ln bench.Listener) {
	t.Helper()
	for _, c := range []io.Closer{sender, refl, ln} {
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("second close: %v", err)
		}
	}
	if _, err := sender.Send(make([]byte, pathProbeSize)); err == nil {
		t.Error("Send after Close succeeded")
	}
}

func checkNothingLeft(t *testing.T, tb *nsbed.Testbed, fds int, ports ...netip.AddrPort) {
	t.Helper()
	for _, side := range []nsbed.Side{nsbed.A, nsbed.B} {
		if id := xdpProgID(t, tb, side, tb.Iface(side)); id != 0 {
			t.Errorf("XDP program %d still attached to %s", id, tb.Iface(side))
		}
	}
	if got := openFDCount(t); got != fds {
		t.Errorf("%d file descriptors open, %d before", got, fds)
	}
	for i, ap := range ports {
		side := nsbed.B
		if i > 0 {
			side = nsbed.A
		}
		if ap.Port() != 0 {
			if err := portFree(t, tb, side, ap); err != nil {
				t.Errorf("port %v still taken: %v", ap, err)
			}
		}
	}
}

// extraIfaceName returns a name for another interface of the test: prefix
// and the testbed's random token, so parallel tests do not collide.
func extraIfaceName(tb *nsbed.Testbed, prefix string) string {
	return prefix + tb.IfaceB[len(tb.IfaceB)-10:len(tb.IfaceB)-2]
}

// addLinkIn adds link in side's namespace, sets it up (both ends, for a
// veth pair) and gives it addr/24.
func addLinkIn(t *testing.T, tb *nsbed.Testbed, side nsbed.Side, link netlink.Link, addr netip.Addr) {
	t.Helper()
	name := link.Attrs().Name
	up := []string{name}
	if v, ok := link.(*netlink.Veth); ok {
		up = append(up, v.PeerName)
	}
	if err := tb.Do(side, func() error {
		if err := netlink.LinkAdd(link); err != nil {
			return fmt.Errorf("add %s %s: %w", link.Type(), name, err)
		}
		for _, n := range up {
			l, err := netlink.LinkByName(n)
			if err != nil {
				return err
			}
			if err := netlink.LinkSetUp(l); err != nil {
				return err
			}
		}
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		return netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(24, 32)}})
	}); err != nil {
		t.Fatal(err)
	}
}

func TestPathErrors(t *testing.T) {
	tb := bedtest.New(t, nsbed.Options{})
	// A bridge without ports: Ethernet, one queue, no native XDP (this
	// kernel has no dummy driver).
	dummy := extraIfaceName(tb, "sgbr")
	dummyAddr := netip.MustParseAddr("198.18.1.1")
	addLinkIn(t, tb, nsbed.B, &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: dummy}}, dummyAddr)

	listen := func(o PathOptions, spec bench.ListenSpec) error {
		return tb.Do(nsbed.B, func() error {
			ln, err := NewPath(o).Listen(spec)
			if err == nil {
				ln.Close()
				return errors.New("listen succeeded")
			}
			return err
		})
	}
	spec := func(addr netip.Addr, port uint16) bench.ListenSpec {
		return bench.ListenSpec{ConnSpec: udpSpec(bench.WaitPoll), Local: netip.AddrPortFrom(addr, port)}
	}
	tests := []struct {
		name  string
		opts  PathOptions
		spec  func(port uint16) bench.ListenSpec
		want  []string
		is    error
		iface string
	}{
		{name: "no such address", spec: func(p uint16) bench.ListenSpec { return spec(netip.MustParseAddr("198.18.0.99"), p) },
			want: []string{"no interface has address 198.18.0.99"}},
		{name: "loopback", spec: func(p uint16) bench.ListenSpec { return spec(netip.MustParseAddr("127.0.0.1"), p) },
			want: []string{"lo is not an Ethernet device"}, is: ErrNotSupported},
		{name: "queue out of range", opts: PathOptions{Queue: 7}, spec: func(p uint16) bench.ListenSpec { return spec(tb.AddrB4, p) },
			want: []string{"invalid queue 7", "1 RX queue"}},
		{name: "zero-copy", opts: PathOptions{Mode: ModeZeroCopy}, spec: func(p uint16) bench.ListenSpec { return spec(tb.AddrB4, p) },
			want: []string{"zero-copy not supported by veth"}, is: ErrNotSupported},
		{name: "mtu", spec: func(p uint16) bench.ListenSpec {
			s := spec(tb.AddrB4, p)
			s.Size = 1480
			return s
		}, want: []string{"probe size 1480", "1508-byte IP packet", "MTU 1500", "frame capacity 3840"}},
		{name: "mtu ipv6", spec: func(p uint16) bench.ListenSpec {
			s := spec(tb.AddrB6, p)
			s.Size = 1460
			return s
		}, want: []string{"probe size 1460", "1508-byte IP packet", "MTU 1500"}},
		{name: "no native xdp", opts: PathOptions{SteerMode: SteerModeDriver}, spec: func(p uint16) bench.ListenSpec { return spec(dummyAddr, p) },
			want: []string{"does not support XDP in driver mode"}, iface: dummy},
		{name: "sctp", spec: func(p uint16) bench.ListenSpec {
			s := spec(tb.AddrB4, p)
			s.Transport = "sctp"
			return s
		}, want: []string{`transport "sctp" not supported by the af_xdp path`}},
		{name: "drop share", opts: PathOptions{DropPercent: 101}, spec: func(p uint16) bench.ListenSpec { return spec(tb.AddrB4, p) },
			want: []string{"invalid drop percentage 101"}},
		{name: "bad steer mode", opts: PathOptions{SteerMode: "native"}, spec: func(p uint16) bench.ListenSpec { return spec(tb.AddrB4, p) },
			want: []string{`invalid steering mode "native"`}},
		{name: "wildcard address", spec: func(p uint16) bench.ListenSpec { return spec(netip.IPv4Unspecified(), p) },
			want: []string{"needs a specific address"}},
		{name: "wait strategy", spec: func(p uint16) bench.ListenSpec {
			s := spec(tb.AddrB4, p)
			s.Wait = "sleep"
			return s
		}, want: []string{`wait strategy "sleep" not supported`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fds := openFDCount(t)
			s := tt.spec(0)
			port := uint16(0)
			if s.Local.Addr().IsValid() && !s.Local.Addr().IsUnspecified() && tt.name != "no such address" {
				port = freePort(t, tb, nsbed.B, s.Local.Addr())
			}
			err := listen(tt.opts, tt.spec(port))
			if err == nil {
				t.Fatal("listen succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
			if port != 0 {
				checkNothingLeft(t, tb, fds, netip.AddrPortFrom(s.Local.Addr(), port))
			} else {
				checkNothingLeft(t, tb, fds)
			}
			if tt.iface != "" {
				if id := xdpProgID(t, tb, nsbed.B, tt.iface); id != 0 {
					t.Errorf("XDP program %d left on %s", id, tt.iface)
				}
			}
		})
	}

	t.Run("foreign program", func(t *testing.T) {
		fds := openFDCount(t)
		var l link.Link
		if err := tb.Do(nsbed.B, func() (err error) {
			prog := steerForeignProgram(t, "foreign_xdp")
			l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: tb.IfindexB, Flags: link.XDPGenericMode})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		id := xdpProgID(t, tb, nsbed.B, tb.IfaceB)
		port := freePort(t, tb, nsbed.B, tb.AddrB4)
		err := listen(PathOptions{}, spec(tb.AddrB4, port))
		var attached *XDPProgramAttachedError
		if !errors.As(err, &attached) || attached.ID != id || !strings.Contains(err.Error(), "foreign_xdp") {
			t.Errorf("error %v, want an XDPProgramAttachedError naming program %d foreign_xdp", err, id)
		}
		if got := xdpProgID(t, tb, nsbed.B, tb.IfaceB); got != id {
			t.Errorf("foreign program %d replaced by %d", id, got)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		// steerForeignProgram's cleanup closes the program after this subtest;
		// count it as open now.
		checkNothingLeft(t, tb, fds+1, netip.AddrPortFrom(tb.AddrB4, port))
	})

	t.Run("dial no neighbour", func(t *testing.T) {
		fds := openFDCount(t)
		err := tb.Do(nsbed.A, func() error {
			c, err := NewPath(PathOptions{}).Dial(bench.DialSpec{ConnSpec: udpSpec(bench.WaitPoll), Local: tb.AddrA4,
				Remote: netip.AddrPortFrom(netip.MustParseAddr("198.18.0.77"), 9000)})
			if err == nil {
				c.Close()
				return errors.New("dial succeeded")
			}
			return err
		})
		if err == nil || !strings.Contains(err.Error(), "resolve the MAC address of 198.18.0.77") || !errors.Is(err, frame.ErrNoNeighbour) {
			t.Errorf("error %v, want a neighbour resolution failure", err)
		}
		checkNothingLeft(t, tb, fds)
	})
}

func TestPathOneSessionPerQueue(t *testing.T) {
	tb := bedtest.New(t, nsbed.Options{})
	path := NewPath(PathOptions{})
	listenIn(t, tb, nsbed.B, path, bench.ListenSpec{ConnSpec: udpSpec(bench.WaitPoll), Local: netip.AddrPortFrom(tb.AddrB4, 0)})
	fds := openFDCount(t)
	progID := xdpProgID(t, tb, nsbed.B, tb.IfaceB)
	for _, addr := range []netip.Addr{tb.AddrB4, tb.AddrB6} {
		err := tb.Do(nsbed.B, func() error {
			ln, err := NewPath(PathOptions{}).Listen(bench.ListenSpec{ConnSpec: udpSpec(bench.WaitPoll), Local: netip.AddrPortFrom(addr, 0)})
			if err == nil {
				ln.Close()
				return errors.New("second listen succeeded")
			}
			return err
		})
		want := fmt.Sprintf("an AF_XDP session is already running on %s queue 0 in this process", tb.IfaceB)
		if err == nil || !errors.Is(err, ErrSessionBusy) || !strings.Contains(err.Error(), want) {
			t.Errorf("second session on %v: %v, want %q", addr, err, want)
		}
	}
	if got := openFDCount(t); got != fds {
		t.Errorf("refused sessions left %d file descriptors", got-fds)
	}
	if got := xdpProgID(t, tb, nsbed.B, tb.IfaceB); got != progID {
		t.Errorf("the live session's program %d became %d", progID, got)
	}
	// The other end of the veth pair is another interface: a session there works.
	dialIn(t, tb, nsbed.A, path, bench.DialSpec{ConnSpec: udpSpec(bench.WaitPoll), Local: tb.AddrA4, Remote: netip.AddrPortFrom(tb.AddrB4, 9)})
}

// capture reads the frames arriving on an interface with an AF_PACKET
// socket opened in the calling thread's namespace.
type capture struct{ fd int }

func openCapture(ifindex int) (*capture, error) {
	proto := int(htons(unix.ETH_P_ALL))
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &capture{fd: fd}, nil
}

// openCaptureIn opens a capture on the veth end in side; the caller closes it.
func openCaptureIn(t *testing.T, tb *nsbed.Testbed, side nsbed.Side) *capture {
	t.Helper()
	var capt *capture
	if err := tb.Do(side, func() (err error) {
		capt, err = openCapture(tb.Ifindex(side))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return capt
}

// listenUDPIn opens a kernel UDP socket on addr, any port, in side; the
// caller closes it.
func listenUDPIn(t *testing.T, tb *nsbed.Testbed, side nsbed.Side, addr netip.Addr) *net.UDPConn {
	t.Helper()
	var conn *net.UDPConn
	if err := tb.Do(side, func() (err error) {
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return conn
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// next returns the next UDP frame to port captured by c.
func (c *capture) next(port uint16, timeout time.Duration) ([]byte, error) {
	return c.nextMatching(timeout, fmt.Sprintf("UDP frame to port %d", port), func(p frame.Packet) bool {
		return p.Protocol == frame.ProtocolUDP && p.DstPort == port
	})
}

// nextMatching returns a copy of the next frame arriving at c that parses
// (checksums unverified) and matches; what names it in the error when none
// comes within timeout.
func (c *capture) nextMatching(timeout time.Duration, what string, match func(frame.Packet) bool) ([]byte, error) {
	end := time.Now().Add(timeout)
	buf := make([]byte, 4096)
	for time.Now().Before(end) {
		n, from, err := unix.Recvfrom(c.fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if p, err := frame.ParseUnverified(buf[:n]); err == nil && match(p) {
			return slices.Clone(buf[:n]), nil
		}
	}
	return nil, fmt.Errorf("no %s within %v", what, timeout)
}

func (c *capture) close() { unix.Close(c.fd) }

// probeFrameLayout is what must match between a kernel-path and an xdp-path
// frame. Fields that legitimately differ are left out: the IPv4 ID of a
// connected sender (a random seed), the IPv6 flow label's value, the
// sender's source port and the checksums.
type probeFrameLayout struct {
	SrcMAC, DstMAC string
	EtherType      uint16
	Src, Dst       netip.Addr
	DstPort        uint16
	Proto, Hop, TC uint8
	DF             bool
	IPHeader0      byte
	IPLen, UDPLen  uint16
	Payload        int
	FlowLabelSet   bool
	ChecksumSet    bool
}

func layoutOf(f []byte, p frame.Packet) probeFrameLayout {
	ip := f[frame.EthernetHeaderLen:]
	l := probeFrameLayout{SrcMAC: p.SrcMAC.String(), DstMAC: p.DstMAC.String(), EtherType: binary.BigEndian.Uint16(f[12:]),
		Src: p.Src, Dst: p.Dst, DstPort: p.DstPort, Proto: p.Protocol, Hop: p.HopLimit, TC: p.TrafficClass,
		DF: p.DontFragment, IPHeader0: ip[0], Payload: len(p.Payload), FlowLabelSet: p.FlowLabel != 0}
	udp := ip[frame.IPv4HeaderLen:]
	l.IPLen = binary.BigEndian.Uint16(ip[2:])
	if p.Src.Is6() {
		udp = ip[frame.IPv6HeaderLen:]
		l.IPLen = binary.BigEndian.Uint16(ip[4:])
	}
	l.UDPLen = binary.BigEndian.Uint16(udp[4:])
	l.ChecksumSet = binary.BigEndian.Uint16(udp[6:]) != 0
	return l
}

// compareFrames checks that the xdp frame verifies and has the kernel
// frame's length and header layout.
func compareFrames(t *testing.T, kf, xf []byte) {
	t.Helper()
	if len(kf) != len(xf) {
		t.Errorf("kernel frame %d bytes, xdp frame %d bytes", len(kf), len(xf))
	}
	xp, err := frame.Parse(xf)
	if err != nil {
		t.Fatalf("xdp frame does not verify: %v", err)
	}
	kp, err := frame.ParseUnverified(kf)
	if err != nil {
		t.Fatal(err)
	}
	if k, x := layoutOf(kf, kp), layoutOf(xf, xp); k != x {
		t.Errorf("header layouts differ:\nkernel %+v\nxdp    %+v", k, x)
	}
	hdr := frame.EthernetHeaderLen + udpHeaderBytes(xp.Src)
	t.Logf("kernel frame % x", kf[:hdr])
	t.Logf("xdp    frame % x", xf[:hdr])
}

// TestPathFrameIdentity captures, at the peer, a probe sent by a
// kernel-path sender and one sent by an xdp-path sender, and the replies of
// a kernel-path and an xdp-path reflector, and compares their headers.
func TestPathFrameIdentity(t *testing.T) {
	probe := make([]byte, pathProbeSize)
	bench.MarshalProbe(probe, 1, 0)
	paths := []bench.Path{kernelpath.NewPath(), NewPath(PathOptions{})}
	for _, ipv6 := range []bool{false, true} {
		family := map[bool]string{false: "ipv4", true: "ipv6"}[ipv6]
		t.Run(family+"/sender", func(t *testing.T) {
			tb := bedtest.New(t, nsbed.Options{})
			local, remoteAddr := addrOf(tb, nsbed.A, ipv6), addrOf(tb, nsbed.B, ipv6)
			sink := listenUDPIn(t, tb, nsbed.B, remoteAddr)
			defer sink.Close()
			capt := openCaptureIn(t, tb, nsbed.B)
			defer capt.close()
			remote := sink.LocalAddr().(*net.UDPAddr).AddrPort()
			frames := map[string][]byte{}
			for _, path := range paths {
				// block and poll are the two paths' equal strategies
				conn := dialIn(t, tb, nsbed.A, path, bench.DialSpec{ConnSpec: udpSpec(bench.WaitBlock), Local: local, Remote: remote})
				if _, err := conn.Send(probe); err != nil {
					t.Fatalf("%s send: %v", path.Name(), err)
				}
				f, err := capt.next(remote.Port(), 2*time.Second)
				if err != nil {
					t.Fatalf("%s: %v", path.Name(), err)
				}
				frames[path.Name()] = f
				conn.Close()
			}
			compareFrames(t, frames["kernel"], frames["xdp"])
		})
		t.Run(family+"/reflector", func(t *testing.T) {
			tb := bedtest.New(t, nsbed.Options{})
			src := listenUDPIn(t, tb, nsbed.A, addrOf(tb, nsbed.A, ipv6))
			defer src.Close()
			capt := openCaptureIn(t, tb, nsbed.A)
			defer capt.close()
			srcPort := src.LocalAddr().(*net.UDPAddr).AddrPort().Port()
			frames := map[string][]byte{}
			for _, path := range paths {
				ln, refl := listenIn(t, tb, nsbed.B, path, bench.ListenSpec{ConnSpec: udpSpec(bench.WaitBlock),
					Local: netip.AddrPortFrom(addrOf(tb, nsbed.B, ipv6), 0)})
				to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(addrOf(tb, nsbed.B, ipv6), ln.Port()))
				if _, err := src.WriteToUDP(probe, to); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, bench.MaxProbeSize)
				n, _, err := refl.Recv(buf, time.Now().Add(2*time.Second))
				if err != nil {
					t.Fatalf("%s reflector receive: %v", path.Name(), err)
				}
				bench.MarkReply(buf[:n], 0, 0)
				if _, err := refl.Send(buf[:n]); err != nil {
					t.Fatalf("%s reflector send: %v", path.Name(), err)
				}
				f, err := capt.next(srcPort, 2*time.Second)
				if err != nil {
					t.Fatalf("%s: %v", path.Name(), err)
				}
				frames[path.Name()] = f
				refl.Close()
				ln.Close()
			}
			compareFrames(t, frames["kernel"], frames["xdp"])
		})
	}
}

// pinger makes probe round trips on a sender; a reflector must be running.
// Its round trips allocate nothing beyond what the Conn allocates.
type pinger struct {
	sender     bench.Conn
	probe, buf []byte
	onStamp    func(uint64, bench.TxStampKind, int64)
}

func newPinger(sender bench.Conn) *pinger {
	probe := make([]byte, pathProbeSize)
	bench.MarshalProbe(probe, 7, 0)
	return &pinger{sender: sender, probe: probe, buf: make([]byte, bench.MaxProbeSize), onStamp: func(uint64, bench.TxStampKind, int64) {}}
}

// roundTrip sends the probe, receives the reply (waiting up to a second)
// and collects the TX stamps, and returns the round trip by the user stamps.
func (p *pinger) roundTrip() (rtt int64, err error) {
	userTx, err := p.sender.Send(p.probe)
	if err != nil {
		return 0, err
	}
	_, rx, err := p.sender.Recv(p.buf, time.Now().Add(time.Second))
	if err != nil {
		return 0, err
	}
	if err := p.sender.TxStamps(p.onStamp); err != nil {
		return 0, err
	}
	return rx.User - userTx, nil
}

// checkRoundTripAllocs checks, on a locked thread, that a probe round trip
// on sender (Send, Recv, TxStamps) allocates nothing.
func checkRoundTripAllocs(t *testing.T, sender bench.Conn) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p := newPinger(sender)
	var failed error
	roundTrip := func() {
		if _, err := p.roundTrip(); err != nil && failed == nil {
			failed = err
		}
	}
	for range 100 {
		roundTrip()
	}
	allocs := testing.AllocsPerRun(2000, roundTrip)
	if failed != nil {
		t.Fatal(failed)
	}
	if allocs != 0 {
		t.Errorf("%v allocations per round trip, want 0", allocs)
	}
}

// benchPingPong times b.N probe round trips on sender from a locked thread
// and reports the median and 99th percentile round trip.
func benchPingPong(b *testing.B, sender bench.Conn) {
	b.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p := newPinger(sender)
	rtts := make([]int64, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		rtt, err := p.roundTrip()
		if err != nil {
			b.Fatal(err)
		}
		rtts = append(rtts, rtt)
	}
	b.StopTimer()
	slices.Sort(rtts)
	b.ReportMetric(float64(rtts[len(rtts)/2]), "p50-ns")
	b.ReportMetric(float64(rtts[len(rtts)*99/100]), "p99-ns")
}

// TestPathNoAllocs checks that a probe round trip (Send, Recv, TxStamps on
// both ends) allocates nothing.
func TestPathNoAllocs(t *testing.T) {
	tb := bedtest.New(t, nsbed.Options{})
	path := NewPath(PathOptions{})
	_, refl, sender := udpPair(t, tb, path, path, udpSpec(bench.WaitPoll))
	stop := startPathReflector(refl)
	defer stop()
	checkRoundTripAllocs(t, sender)
	if res := stop(); res.err != nil {
		t.Error(res.err)
	}
}

// BenchmarkPathPingPong measures one probe round trip between two Conns of
// the same path in two namespaces (veth), each end on its own locked thread,
// and reports the median and 99th percentile round trip.
func BenchmarkPathPingPong(b *testing.B) {
	benchEachPath(b, func(b *testing.B, tb *nsbed.Testbed, path bench.Path, wait bench.WaitStrategy) (bench.Conn, func()) {
		_, refl, sender := udpPair(b, tb, path, path, udpSpec(wait))
		stop := startPathReflector(refl)
		return sender, func() {
			if res := stop(); res.err != nil {
				b.Error(res.err)
			}
		}
	})
}

// benchEachPath runs benchPingPong as a sub-benchmark, on a fresh testbed,
// for each path and wait strategy the ping-pong benchmarks compare. connect
// opens the sender's Conn in A and starts a reflector in B; end, called when
// the sub-benchmark ends, stops the reflector.
func benchEachPath(b *testing.B, connect func(b *testing.B, tb *nsbed.Testbed, path bench.Path, wait bench.WaitStrategy) (sender bench.Conn, end func())) {
	for _, tc := range []struct {
		path bench.Path
		wait bench.WaitStrategy
	}{
		{kernelpath.NewPath(), bench.WaitBlock},
		{NewPath(PathOptions{}), bench.WaitPoll},
		{kernelpath.NewPath(), bench.WaitSpin},
		{NewPath(PathOptions{}), bench.WaitSpin},
	} {
		b.Run(tc.path.Name()+"/"+string(tc.wait), func(b *testing.B) {
			tb := bedtest.New(b, nsbed.Options{})
			sender, end := connect(b, tb, tc.path, tc.wait)
			defer end()
			benchPingPong(b, sender)
		})
	}
}

func TestRegistryClaims(t *testing.T) {
	key := queueKey{ifaceKey{netnsDev: 1, netnsIno: 0xfeed, ifindex: 7}, 0}
	if err := claimQueue(key, "eth9"); err != nil {
		t.Fatal(err)
	}
	err := claimQueue(key, "eth9")
	want := "an AF_XDP session is already running on eth9 queue 0 in this process"
	if !errors.Is(err, ErrSessionBusy) || err.Error() != want {
		t.Errorf("second claim: %v, want %q", err, want)
	}
	other := key
	other.queue = 1
	if err := claimQueue(other, "eth9"); err != nil {
		t.Errorf("claim of another queue: %v", err)
	}
	releaseQueue(other)
	flow := Flow{Proto: syscall.IPPROTO_UDP, DstPort: 4000}
	if err := claimFlow(key, flow, "eth9"); err != nil {
		t.Fatal(err)
	}
	if err := claimFlow(other, flow, "eth9"); !errors.Is(err, ErrSessionBusy) {
		t.Errorf("same flow on the same interface from another queue: %v, want ErrSessionBusy", err)
	}
	if err := claimFlow(key, Flow{IPv6: true, Proto: syscall.IPPROTO_UDP, DstPort: 4000}, "eth9"); err != nil {
		t.Errorf("IPv6 flow on the same port: %v", err)
	}
	releaseFlow(key, Flow{IPv6: true, Proto: syscall.IPPROTO_UDP, DstPort: 4000})
	releaseFlow(key, flow)
	releaseQueue(key)
	if err := claimQueue(key, "eth9"); err != nil {
		t.Errorf("claim after release: %v", err)
	}
	releaseQueue(key)
}

// TestPathHardwareRXOnVeth runs a session with the device-bound steering
// program and busy polling asked for: on veth both are accepted, neither
// gives anything, and the notes say so.
func TestPathHardwareRXOnVeth(t *testing.T) {
	tb := bedtest.New(t, nsbed.Options{})
	path := NewPath(PathOptions{HardwareRX: true})
	spec := udpSpec(bench.WaitPoll)
	spec.BusyPoll = 50 * time.Microsecond
	_, refl, sender := udpPair(t, tb, path, path, spec)
	stop := startPathReflector(refl)
	recs := pathPingPong(t, sender, 50)
	drainTxStamps(t, sender, recs)
	checkPathReflected(t, stop(), 50, true)
	checkXDPSender(t, recs) // includes: no hardware stamp on veth
	notes := strings.Join(sender.(bench.Reporter).Notes(), "\n")
	for _, want := range []string{
		"steering program attached in driver mode",
		"NIC RX hardware stamps unavailable: veth: bpf_xdp_metadata_rx_timestamp returns no stamp",
		"busy polling requested but inert",
		"NIC hardware stamps cannot be converted to CLOCK_REALTIME, so none are reported:",
		"no PTP hardware clock",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
}

// TestPathSharedSteering opens sessions on two queues of one interface: they
// share one steering program, which stays until the last one closes.
func TestPathSharedSteering(t *testing.T) {
	tb := bedtest.New(t, nsbed.Options{})
	// A two-queue veth pair inside B, addressed on one end.
	name := extraIfaceName(tb, "sgq")
	addr := netip.MustParseAddr("198.18.2.1")
	addLinkIn(t, tb, nsbed.B, &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name + "a", NumTxQueues: 2, NumRxQueues: 2},
		PeerName: name + "b", PeerNumTxQueues: 2, PeerNumRxQueues: 2}, addr)
	fds := openFDCount(t)
	var lns []bench.Listener
	for q := range 2 {
		err := tb.Do(nsbed.B, func() error {
			ln, err := NewPath(PathOptions{Queue: q}).Listen(bench.ListenSpec{ConnSpec: udpSpec(bench.WaitPoll), Local: netip.AddrPortFrom(addr, 0)})
			if err != nil {
				return err
			}
			lns = append(lns, ln)
			return nil
		})
		if err != nil {
			t.Fatalf("listen on queue %d: %v", q, err)
		}
	}
	first := xdpProgID(t, tb, nsbed.B, name+"a")
	if first == 0 {
		t.Fatal("no steering program attached")
	}
	notes := strings.Join(lns[1].(*listener).s.Notes(), "\n")
	if !strings.Contains(notes, "shared with an earlier session") {
		t.Errorf("second session's notes do not say the program is shared:\n%s", notes)
	}
	if err := lns[0].Close(); err != nil {
		t.Fatal(err)
	}
	if got := xdpProgID(t, tb, nsbed.B, name+"a"); got != first {
		t.Errorf("after the first session closed the program is %d, want %d still attached", got, first)
	}
	if err := lns[1].Close(); err != nil {
		t.Fatal(err)
	}
	if got := xdpProgID(t, tb, nsbed.B, name+"a"); got != 0 {
		t.Errorf("program %d still attached after the last session closed", got)
	}
	if got := openFDCount(t); got != fds {
		t.Errorf("%d file descriptors open, %d before", got, fds)
	}
}

// TestPathDialWithoutLocal dials with no local address: the route to the
// reflector picks the interface and source address.
func TestPathDialWithoutLocal(t *testing.T) {
	tb := bedtest.New(t, nsbed.Options{})
	for _, remote := range []netip.Addr{tb.AddrB4, tb.AddrB6} {
		ln, refl := listenIn(t, tb, nsbed.B, kernelpath.NewPath(), bench.ListenSpec{ConnSpec: udpSpec(bench.WaitBlock), Local: netip.AddrPortFrom(remote, 0)})
		sender := dialIn(t, tb, nsbed.A, NewPath(PathOptions{}), bench.DialSpec{ConnSpec: udpSpec(bench.WaitPoll), Remote: netip.AddrPortFrom(remote, ln.Port())})
		wantLocal := tb.AddrA4
		if remote.Is6() {
			wantLocal = tb.AddrA6
		}
		if got := sender.(interface{ LocalAddr() netip.AddrPort }).LocalAddr(); got.Addr() != wantLocal || got.Port() == 0 {
			t.Errorf("local address %v, want %v with a port", got, wantLocal)
		}
		stop := startPathReflector(refl)
		recs := pathPingPong(t, sender, 10)
		checkPathReflected(t, stop(), 10, false)
		drainTxStamps(t, sender, recs)
		checkXDPSender(t, recs)
		sender.Close()
	}
}
