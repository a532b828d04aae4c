package xdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stackgap/stackgap/bench"
	nsbed "github.com/stackgap/stackgap/internal/testbed"
	"github.com/stackgap/stackgap/internal/testbed/bedtest"
	"github.com/stackgap/stackgap/kernelpath"
	"github.com/stackgap/stackgap/xdp/frame"
	"github.com/stackgap/stackgap/xdp/utcp"
)

func tcpSpec(wait bench.WaitStrategy) bench.ConnSpec {
	return bench.ConnSpec{Transport: "tcp", Wait: wait, Size: pathProbeSize, Timestamping: true}
}

func familyName(ipv6 bool) string {
	if ipv6 {
		return "ipv6"
	}
	return "ipv4"
}

// tcpPair opens a TCP session: the reflector's end on path refl in B,
// accepted the way the engine does (Accept with 50 ms deadlines) while the
// sender dials from A on path send. Both Conns are closed at cleanup.
func tcpPair(t testing.TB, tb *nsbed.Testbed, send, refl bench.Path, ipv6 bool, wait bench.WaitStrategy) (ln bench.Listener, reflector, sender bench.Conn) {
	t.Helper()
	if err := tb.Do(nsbed.B, func() (err error) {
		ln, err = refl.Listen(bench.ListenSpec{ConnSpec: tcpSpec(wait), Local: netip.AddrPortFrom(addrOf(tb, nsbed.B, ipv6), 0)})
		return err
	}); err != nil {
		t.Fatalf("%s listen: %v", refl.Name(), err)
	}
	t.Cleanup(func() { ln.Close() })
	type accepted struct {
		conn bench.Conn
		err  error
	}
	done := make(chan accepted, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		end := time.Now().Add(10 * time.Second)
		for {
			c, err := ln.Accept(time.Now().Add(50 * time.Millisecond))
			if errors.Is(err, bench.ErrTimeout) && time.Now().Before(end) {
				continue
			}
			done <- accepted{c, err}
			return
		}
	}()
	dialErr := tb.Do(nsbed.A, func() (err error) {
		sender, err = send.Dial(bench.DialSpec{ConnSpec: tcpSpec(wait), Local: addrOf(tb, nsbed.A, ipv6),
			Remote: netip.AddrPortFrom(addrOf(tb, nsbed.B, ipv6), ln.Port())})
		return err
	})
	if dialErr == nil {
		t.Cleanup(func() { sender.Close() })
	}
	// Like the engine's sender, keep the sender's end running (receiving)
	// while the reflector accepts: when the handshake's last ACK is lost,
	// the sender must answer the retransmitted SYN-ACK.
	var a accepted
	buf := make([]byte, bench.MaxProbeSize)
	for waiting := true; waiting; {
		select {
		case a = <-done:
			waiting = false
		default:
			if dialErr != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			if _, _, err := sender.Recv(buf, time.Now().Add(10*time.Millisecond)); !errors.Is(err, bench.ErrTimeout) {
				t.Errorf("sender receive before the first probe: %v", err)
			}
		}
	}
	if a.err == nil {
		t.Cleanup(func() { a.conn.Close() })
	}
	if dialErr != nil || a.err != nil {
		t.Fatalf("%s dial: %v; %s accept: %v", send.Name(), dialErr, refl.Name(), a.err)
	}
	return ln, a.conn, sender
}

// startTCPReflector starts a test reflector on conn that ends by itself
// when the peer closes the stream.
func startTCPReflector(conn bench.Conn) *tcpReflector {
	stop, ended := startPathReflectorEnded(conn)
	return &tcpReflector{stop: stop, ended: ended}
}

type tcpReflector struct {
	stop  func() reflectResult
	ended <-chan struct{}
}

// closeTCPSender closes the sender while the reflector still runs (it ends
// on io.EOF and closes its end), the way the engine ends a phase.
func closeTCPSender(t *testing.T, sender bench.Conn, r *tcpReflector) reflectResult {
	t.Helper()
	start := time.Now()
	if err := sender.Close(); err != nil {
		t.Errorf("sender close: %v", err)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("sender close took %v: the FIN exchange did not complete", d)
	}
	select {
	case <-r.ended:
	case <-time.After(2 * time.Second):
	}
	res := r.stop()
	if !res.eof {
		t.Error("the reflector did not see the end of the stream (io.EOF)")
	}
	return res
}

// checkKernelSawCleanConnection compares a kernel's TCP counters before and
// after one connection: opened once, no resets, retransmissions or errors.
func checkKernelSawCleanConnection(t *testing.T, before, after map[string]int64, opens string) {
	t.Helper()
	for _, c := range []string{"RetransSegs", "OutRsts", "EstabResets", "InErrs", "AttemptFails", "InCsumErrors"} {
		if after[c] != before[c] {
			t.Errorf("kernel TCP counter %s went from %d to %d", c, before[c], after[c])
		}
	}
	if d := after[opens] - before[opens]; d != 1 {
		t.Errorf("kernel TCP counter %s went up by %d, want 1", opens, d)
	}
}

// checkCleanTCPCounters checks an xdp TCP Conn's counters after a loss-free run.
func checkCleanTCPCounters(t *testing.T, who string, conn bench.Conn, n int) {
	t.Helper()
	c := conn.(bench.Reporter).Counters()
	for _, name := range []string{"tcp_retransmits", "tcp_timeouts", "tcp_rsts_sent", "tcp_rsts_received", "tcp_dup_acks_sent",
		"tcp_dup_acks_received", "rx_bad_frames", "rx_foreign_frames", "rx_missing_metadata", "tx_unmatched_completions",
		"tcp_tx_unstamped_probes", "tcp_tx_untracked_probes", "tcp_tx_unroutable", "tx_errors", "steer_dropped"} {
		if c[name] != 0 {
			t.Errorf("%s counter %s = %d, want 0 (counters %v)", who, name, c[name], c)
		}
	}
	for _, name := range []string{"rx_probes", "tcp_data_segments_sent", "tcp_segments_received"} {
		if c[name] < uint64(n) {
			t.Errorf("%s counter %s = %d, want ≥ %d (counters %v)", who, name, c[name], n, c)
		}
	}
	if want := uint64(n * pathProbeSize); c["tcp_bytes_sent"] != want || c["tcp_bytes_delivered"] != want {
		t.Errorf("%s sent %d and delivered %d stream bytes, want %d each", who, c["tcp_bytes_sent"], c["tcp_bytes_delivered"], want)
	}
}

func TestPathTCPPingPong(t *testing.T) {
	const n = 500
	for _, ipv6 := range []bool{false, true} {
		for _, wait := range []bench.WaitStrategy{bench.WaitPoll, bench.WaitSpin} {
			name := familyName(ipv6) + "/" + string(wait)
			t.Run(name, func(t *testing.T) {
				tb := bedtest.New(t, nsbed.Options{})
				path := NewPath(PathOptions{})
				_, refl, sender := tcpPair(t, tb, path, path, ipv6, wait)
				if s, ok := sender.(*tcpConn); !ok || s.State() != utcp.StateEstablished {
					t.Fatalf("sender conn %T not established", sender)
				}
				rr := startTCPReflector(refl)
				recs := pathPingPong(t, sender, n)
				drainTxStamps(t, sender, recs)
				checkXDPSender(t, recs)
				checkCleanTCPCounters(t, "sender", sender, n)
				notes := strings.Join(sender.(bench.Reporter).Notes(), "\n")
				for _, want := range []string{"tcp: userspace endpoint (utcp), MSS " + map[bool]string{false: "1460", true: "1440"}[ipv6], "sw_completion (copy mode)"} {
					if !strings.Contains(notes, want) {
						t.Errorf("notes lack %q:\n%s", want, notes)
					}
				}
				res := closeTCPSender(t, sender, rr)
				checkPathReflected(t, res, n, true)
				// The reflector's Conn is its goroutine's until it ended.
				checkCleanTCPCounters(t, "reflector", refl, n)
				t.Logf("xdp↔xdp tcp %s: median RTT %v over %d probes", name, pathMedianRTT(recs), n)
				if st := sender.(*tcpConn).State(); st != utcp.StateTimeWait && st != utcp.StateClosed {
					t.Errorf("sender state after close %v", st)
				}
				if st := refl.(*tcpConn).State(); st != utcp.StateClosed {
					t.Errorf("reflector state after close %v", st)
				}
			})
		}
	}
}

// TestPathTCPKernelBaseline runs the same TCP ping-pong between two kernel
// path Conns, for the RTT comparison in the log.
func TestPathTCPKernelBaseline(t *testing.T) {
	const n = 500
	for _, wait := range []bench.WaitStrategy{bench.WaitBlock, bench.WaitSpin} {
		tb := bedtest.New(t, nsbed.Options{})
		kernel := kernelpath.NewPath()
		_, refl, sender := tcpPair(t, tb, kernel, kernel, false, wait)
		rr := startTCPReflector(refl)
		recs := pathPingPong(t, sender, n)
		checkPathReflected(t, closeTCPSender(t, sender, rr), n, false)
		t.Logf("kernel↔kernel tcp ipv4/%s: median RTT %v over %d probes", wait, pathMedianRTT(recs), n)
	}
}

// TestPathTCPMixed proves the segments are real TCP a kernel accepts: an
// xdp sender against a kernel reflector and a kernel sender against an xdp
// reflector, each kernel seeing one clean connection. (Both paths wait
// alike: the xdp path's block is poll.)
func TestPathTCPMixed(t *testing.T) {
	const n = 200
	for _, ipv6 := range []bool{false, true} {
		t.Run(familyName(ipv6)+"/xdp-to-kernel", func(t *testing.T) {
			tb := bedtest.New(t, nsbed.Options{})
			before := bedtest.TCPCounters(t, tb, nsbed.B)
			_, refl, sender := tcpPair(t, tb, NewPath(PathOptions{}), kernelpath.NewPath(), ipv6, bench.WaitBlock)
			rr := startTCPReflector(refl)
			recs := pathPingPong(t, sender, n)
			drainTxStamps(t, sender, recs)
			checkXDPSender(t, recs)
			checkCleanTCPCounters(t, "xdp sender", sender, n)
			checkPathReflected(t, closeTCPSender(t, sender, rr), n, false)
			time.Sleep(50 * time.Millisecond)
			checkKernelSawCleanConnection(t, before, bedtest.TCPCounters(t, tb, nsbed.B), "PassiveOpens")
			t.Logf("xdp sender → kernel reflector: median RTT %v", pathMedianRTT(recs))
		})
		t.Run(familyName(ipv6)+"/kernel-to-xdp", func(t *testing.T) {
			tb := bedtest.New(t, nsbed.Options{})
			before := bedtest.TCPCounters(t, tb, nsbed.A)
			_, refl, sender := tcpPair(t, tb, kernelpath.NewPath(), NewPath(PathOptions{}), ipv6, bench.WaitBlock)
			rr := startTCPReflector(refl)
			recs := pathPingPong(t, sender, n)
			for i, r := range recs {
				if r.replies != 1 {
					t.Fatalf("probe %d: %d replies", i, r.replies)
				}
			}
			checkPathReflected(t, closeTCPSender(t, sender, rr), n, true)
			checkCleanTCPCounters(t, "xdp reflector", refl, n)
			time.Sleep(50 * time.Millisecond)
			checkKernelSawCleanConnection(t, before, bedtest.TCPCounters(t, tb, nsbed.A), "ActiveOpens")
			c := refl.(bench.Reporter).Counters()
			t.Logf("kernel sender → xdp reflector: median RTT %v; %d segments with a checksum left to offload (veth CHECKSUM_PARTIAL)", pathMedianRTT(recs), c["rx_bad_checksum"])
		})
	}
}

// TestPathUDPDrop drops 10% of the probes at the reflector's steering
// program: exactly the probes the program dropped never come back.
func TestPathUDPDrop(t *testing.T) {
	const n = 400
	tb := bedtest.New(t, nsbed.Options{})
	_, refl, sender := udpPair(t, tb, NewPath(PathOptions{}), NewPath(PathOptions{DropPercent: 10}), udpSpec(bench.WaitPoll))
	stop := startPathReflector(refl)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	probe := make([]byte, pathProbeSize)
	buf := make([]byte, bench.MaxProbeSize)
	lost := 0
	for seq := range uint64(n) {
		bench.MarshalProbe(probe, 1, seq)
		if _, err := sender.Send(probe); err != nil {
			t.Fatal(err)
		}
		m, _, err := sender.Recv(buf, time.Now().Add(100*time.Millisecond))
		switch {
		case errors.Is(err, bench.ErrTimeout):
			lost++
		case err != nil:
			t.Fatal(err)
		default:
			if p, err := bench.ParseProbe(buf[:m]); err != nil || p.Seq != seq {
				t.Fatalf("probe %d: reply %+v, %v", seq, p, err)
			}
		}
	}
	res := stop()
	if res.err != nil {
		t.Error(res.err)
	}
	c := refl.(bench.Reporter).Counters()
	t.Logf("%d of %d probes lost; reflector steering dropped %d", lost, n, c["steer_dropped"])
	if lost == 0 || uint64(lost) != c["steer_dropped"] || len(res.seqs) != n-lost {
		t.Errorf("%d probes lost, the steering program dropped %d, the reflector saw %d of %d", lost, c["steer_dropped"], len(res.seqs), n)
	}
	if sc := sender.(bench.Reporter).Counters(); sc["steer_dropped"] != 0 {
		t.Errorf("the sender's steering dropped %d frames, want 0", sc["steer_dropped"])
	}
	if notes := strings.Join(refl.(bench.Reporter).Notes(), "\n"); !strings.Contains(notes, "emulated loss: the steering program on "+tb.IfaceB+" drops 10%") {
		t.Errorf("reflector notes do not mention the emulated loss:\n%s", notes)
	}
	if notes := strings.Join(sender.(bench.Reporter).Notes(), "\n"); strings.Contains(notes, "emulated loss") {
		t.Errorf("sender notes mention emulated loss:\n%s", notes)
	}
}

// TestPathTCPReset checks that a reset connection ends the peer's Recv
// with an error wrapping utcp.ErrReset.
func TestPathTCPReset(t *testing.T) {
	tb := bedtest.New(t, nsbed.Options{})
	path := NewPath(PathOptions{})
	_, refl, sender := tcpPair(t, tb, path, path, false, bench.WaitPoll)
	rr := startTCPReflector(refl)
	pathPingPong(t, sender, 5)
	s := sender.(*tcpConn)
	s.e.Abort()
	if err := s.output(time.Now()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-rr.ended:
	case <-time.After(2 * time.Second):
		t.Fatal("the reflector did not end after the reset")
	}
	res := rr.stop()
	if !errors.Is(res.err, utcp.ErrReset) {
		t.Errorf("reflector error %v, want one wrapping %v", res.err, utcp.ErrReset)
	}
	if c := refl.(bench.Reporter).Counters(); c["tcp_rsts_received"] != 1 {
		t.Errorf("reflector counted %d RSTs received, want 1", c["tcp_rsts_received"])
	}
	if _, _, err := sender.Recv(make([]byte, 100), time.Now().Add(10*time.Millisecond)); !errors.Is(err, utcp.ErrAborted) {
		t.Errorf("sender Recv after Abort: %v, want one wrapping %v", err, utcp.ErrAborted)
	}
}

// TestPathTCPDrop drops 10% of the frames arriving at the reflector's
// steering program: TCP retransmits, and every probe is still delivered
// exactly once, in order.
func TestPathTCPDrop(t *testing.T) {
	const n = 150
	tb := bedtest.New(t, nsbed.Options{})
	_, refl, sender := tcpPair(t, tb, NewPath(PathOptions{}), NewPath(PathOptions{DropPercent: 10}), false, bench.WaitPoll)
	rr := startTCPReflector(refl)
	// A segment dropped k times in a row is retransmitted after 200 ms
	// (MinRTO) doubled each time: 200 ms x (2^k - 1) in all. 13 s covers
	// six drops in a row, which at 10 % happen once in 10^6 probes; 2 s
	// covered only three and failed about one run in 70.
	recs := pathPingPongWithin(t, sender, n, 13*time.Second)
	drainTxStamps(t, sender, recs)
	checkXDPSender(t, recs)
	sc := sender.(bench.Reporter).Counters()
	res := closeTCPSender(t, sender, rr)
	rc := refl.(bench.Reporter).Counters()
	checkPathReflected(t, res, n, true)
	t.Logf("reflector steering dropped %d frames; sender retransmits %d, timeouts %d; reflector dup acks sent %d",
		rc["steer_dropped"], sc["tcp_retransmits"], sc["tcp_timeouts"], rc["tcp_dup_acks_sent"])
	if rc["steer_dropped"] == 0 || sc["tcp_retransmits"] == 0 || sc["tcp_timeouts"] == 0 {
		t.Errorf("steering dropped %d, sender retransmitted %d times (%d timeouts): want all > 0", rc["steer_dropped"], sc["tcp_retransmits"], sc["tcp_timeouts"])
	}
	if rc["rx_probes"] != n || sc["rx_probes"] != n {
		t.Errorf("reflector received %d probes, sender %d replies; want %d each", rc["rx_probes"], sc["rx_probes"], n)
	}
}

// tcpPortFree reports whether the TCP port can be bound on ap in side.
func tcpPortFree(tb *nsbed.Testbed, side nsbed.Side, ap netip.AddrPort) error {
	return tb.Do(side, func() error {
		l, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(ap))
		if err != nil {
			return err
		}
		return l.Close()
	})
}

func TestPathTCPCloseLeavesNothing(t *testing.T) {
	tb := bedtest.New(t, nsbed.Options{})
	fds := openFDCount(t)
	path := NewPath(PathOptions{})
	ln, refl, sender := tcpPair(t, tb, path, path, true, bench.WaitPoll)
	reflPort := netip.AddrPortFrom(tb.AddrB6, ln.Port())
	sendPort := sender.(*tcpConn).LocalAddr()
	for _, p := range []struct {
		side nsbed.Side
		ap   netip.AddrPort
	}{{nsbed.B, reflPort}, {nsbed.A, sendPort}} {
		if err := tcpPortFree(tb, p.side, p.ap); err == nil {
			t.Errorf("tcp port %v is not reserved during the session", p.ap)
		}
	}
	rr := startTCPReflector(refl)
	pathPingPong(t, sender, 20)
	checkPathReflected(t, closeTCPSender(t, sender, rr), 20, true)
	closeSession(t, sender, refl, ln)
	if _, _, err := sender.Recv(make([]byte, 100), time.Now()); err == nil {
		t.Error("Recv after Close succeeded")
	}
	if c := sender.(bench.Reporter).Counters(); c["tcp_data_segments_sent"] < 20 {
		t.Errorf("counters after close: %v", c)
	}
	checkNothingLeft(t, tb, fds)
	for _, p := range []struct {
		side nsbed.Side
		ap   netip.AddrPort
	}{{nsbed.B, reflPort}, {nsbed.A, sendPort}} {
		if err := tcpPortFree(tb, p.side, p.ap); err != nil {
			t.Errorf("tcp port %v still taken: %v", p.ap, err)
		}
	}
}

// TestPathTCPDialErrors checks the handshake failures: a closed port
// (the kernel answers RST) and a listener that never accepts (timeout).
func TestPathTCPDialErrors(t *testing.T) {
	tb := bedtest.New(t, nsbed.Options{})
	fds := openFDCount(t)
	path := NewPath(PathOptions{})
	dial := func(port uint16) error {
		return tb.Do(nsbed.A, func() error {
			c, err := path.Dial(bench.DialSpec{ConnSpec: tcpSpec(bench.WaitPoll), Local: tb.AddrA4, Remote: netip.AddrPortFrom(tb.AddrB4, port)})
			if err == nil {
				c.Close()
			}
			return err
		})
	}
	closedPort := freePort(t, tb, nsbed.B, tb.AddrB4)
	err := dial(closedPort)
	if want := fmt.Sprintf("tcp handshake with %v refused (RST)", netip.AddrPortFrom(tb.AddrB4, closedPort)); err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, utcp.ErrRefused) {
		t.Errorf("dial of a closed port: %v, want %q", err, want)
	}
	checkNothingLeft(t, tb, fds)

	var ln bench.Listener
	if err := tb.Do(nsbed.B, func() (err error) {
		ln, err = path.Listen(bench.ListenSpec{ConnSpec: tcpSpec(bench.WaitPoll), Local: netip.AddrPortFrom(tb.AddrB4, 0)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = dial(ln.Port())
	if want := fmt.Sprintf("tcp handshake with %v timed out after 5s", netip.AddrPortFrom(tb.AddrB4, ln.Port())); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("dial of a listener that never accepts: %v, want %q", err, want)
	}
	if d := time.Since(start); d < 4*time.Second || d > 8*time.Second {
		t.Errorf("the handshake timed out after %v, want about %v", d, tcpHandshakeTimeout)
	}
	if err := ln.Close(); err != nil {
		t.Error(err)
	}
	checkNothingLeft(t, tb, fds)
}

// tcpSegment is what must match between a kernel and an xdp TCP data
// segment. Fields that legitimately differ are left out: ports, sequence
// and acknowledgment numbers, timestamps, the IPv4 ID, the flow label's
// value, the window value and the checksums.
type tcpSegment struct {
	Frame, IPHeader0, TCPHeader int
	EtherType                   uint16
	Hop, TC, Flags              uint8
	DF, FlowLabelSet            bool
	Options                     string
	Payload                     int
}

func tcpSegmentOf(f []byte, p frame.Packet) tcpSegment {
	var kinds []string
	for o := p.TCP.Options; len(o) > 0; {
		if o[0] <= 1 {
			kinds = append(kinds, strconv.Itoa(int(o[0])))
			o = o[1:]
			continue
		}
		if len(o) < 2 || o[1] < 2 || int(o[1]) > len(o) {
			kinds = append(kinds, "?")
			break
		}
		kinds = append(kinds, fmt.Sprintf("%d/%d", o[0], o[1]))
		o = o[o[1]:]
	}
	return tcpSegment{Frame: len(f), IPHeader0: int(f[frame.EthernetHeaderLen]), TCPHeader: frame.TCPHeaderLen + len(p.TCP.Options),
		EtherType: binary.BigEndian.Uint16(f[12:]), Hop: p.HopLimit, TC: p.TrafficClass, Flags: p.TCP.Flags,
		DF: p.DontFragment, FlowLabelSet: p.FlowLabel != 0, Options: strings.Join(kinds, ","), Payload: len(p.Payload)}
}

// nextTCPData returns the next TCP frame with payload to port captured by c.
func (c *capture) nextTCPData(port uint16, timeout time.Duration) ([]byte, error) {
	return c.nextMatching(timeout, fmt.Sprintf("TCP data segment to port %d", port), func(p frame.Packet) bool {
		return p.Protocol == frame.ProtocolTCP && p.DstPort == port && len(p.Payload) > 0
	})
}

// compareTCPSegments checks that the xdp segment verifies and has the
// kernel segment's size and layout.
func compareTCPSegments(t *testing.T, kf, xf []byte) {
	t.Helper()
	xp, err := frame.Parse(xf)
	if err != nil {
		t.Fatalf("xdp segment does not verify: %v", err)
	}
	kp, err := frame.ParseUnverified(kf)
	if err != nil {
		t.Fatal(err)
	}
	k, x := tcpSegmentOf(kf, kp), tcpSegmentOf(xf, xp)
	t.Logf("kernel %+v", k)
	t.Logf("xdp    %+v", x)
	if k != x {
		t.Errorf("TCP data segments differ:\nkernel %+v\nxdp    %+v", k, x)
	}
}

// TestPathTCPFrameIdentity captures, in the peer's namespace, the first
// probe segment of a kernel-path and an xdp-path TCP sender, and the first
// reply segment of a kernel-path and an xdp-path TCP reflector, and
// compares their sizes and layouts.
func TestPathTCPFrameIdentity(t *testing.T) {
	for _, ipv6 := range []bool{false, true} {
		t.Run(familyName(ipv6)+"/sender", func(t *testing.T) {
			tb := bedtest.New(t, nsbed.Options{})
			capt := openCaptureIn(t, tb, nsbed.B)
			defer capt.close()
			segs := map[string][]byte{}
			for _, path := range []bench.Path{kernelpath.NewPath(), NewPath(PathOptions{})} {
				ln, refl, sender := tcpPair(t, tb, path, kernelpath.NewPath(), ipv6, bench.WaitBlock)
				rr := startTCPReflector(refl)
				pathPingPong(t, sender, 1)
				f, err := capt.nextTCPData(ln.Port(), 2*time.Second)
				if err != nil {
					t.Fatalf("%s: %v", path.Name(), err)
				}
				segs[path.Name()] = f
				closeTCPSender(t, sender, rr)
			}
			compareTCPSegments(t, segs["kernel"], segs["xdp"])
		})
		t.Run(familyName(ipv6)+"/reflector", func(t *testing.T) {
			tb := bedtest.New(t, nsbed.Options{})
			capt := openCaptureIn(t, tb, nsbed.A)
			defer capt.close()
			segs := map[string][]byte{}
			for _, path := range []bench.Path{kernelpath.NewPath(), NewPath(PathOptions{})} {
				_, refl, sender := tcpPair(t, tb, kernelpath.NewPath(), path, ipv6, bench.WaitBlock)
				senderPort := sender.(interface{ LocalAddr() netip.AddrPort }).LocalAddr().Port()
				rr := startTCPReflector(refl)
				pathPingPong(t, sender, 1)
				f, err := capt.nextTCPData(senderPort, 2*time.Second)
				if err != nil {
					t.Fatalf("%s: %v", path.Name(), err)
				}
				segs[path.Name()] = f
				closeTCPSender(t, sender, rr)
			}
			compareTCPSegments(t, segs["kernel"], segs["xdp"])
		})
	}
}

// TestPathTCPNoAllocs checks that a TCP probe round trip (Send, Recv,
// TxStamps on both ends) allocates nothing.
func TestPathTCPNoAllocs(t *testing.T) {
	tb := bedtest.New(t, nsbed.Options{})
	path := NewPath(PathOptions{})
	_, refl, sender := tcpPair(t, tb, path, path, false, bench.WaitPoll)
	rr := startTCPReflector(refl)
	checkRoundTripAllocs(t, sender)
	if res := closeTCPSender(t, sender, rr); res.err != nil {
		t.Error(res.err)
	}
}

// BenchmarkPathTCPPingPong measures one TCP probe round trip between two
// Conns of the same path in two namespaces (veth), each end on its own
// locked thread, and reports the median and 99th percentile round trip.
func BenchmarkPathTCPPingPong(b *testing.B) {
	benchEachPath(b, func(b *testing.B, tb *nsbed.Testbed, path bench.Path, wait bench.WaitStrategy) (bench.Conn, func()) {
		_, refl, sender := tcpPair(b, tb, path, path, false, wait)
		rr := startTCPReflector(refl)
		return sender, func() { sender.Close(); rr.stop() }
	})
}

// TestPathTCPLargeProbes sends probes that span several segments (up to
// bench.MaxProbeSize) to a kernel and to an xdp reflector: every reply
// comes back whole and equal, and every Send gets one TX stamp (the frame
// with the probe's last byte).
func TestPathTCPLargeProbes(t *testing.T) {
	sizes := []int{bench.HeaderSize, 1448, 1449, 2896, 3000, 9000, 20000, bench.MaxProbeSize, 100}
	for _, reflPath := range []bench.Path{kernelpath.NewPath(), NewPath(PathOptions{})} {
		t.Run("to-"+reflPath.Name(), func(t *testing.T) {
			tb := bedtest.New(t, nsbed.Options{})
			_, refl, sender := tcpPair(t, tb, NewPath(PathOptions{}), reflPath, false, bench.WaitBlock)
			rr := startTCPReflector(refl)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			buf := make([]byte, bench.MaxProbeSize)
			stamps := make([]int, len(sizes))
			onStamp := func(index uint64, kind bench.TxStampKind, ts int64) {
				if index >= uint64(len(stamps)) || kind != bench.TxCompletion || ts == 0 {
					t.Errorf("unexpected TX stamp: index %d kind %v ts %d", index, kind, ts)
					return
				}
				stamps[index]++
			}
			for i, size := range sizes {
				probe := make([]byte, size)
				bench.MarshalProbe(probe, 3, uint64(i))
				for j := bench.HeaderSize; j < size; j++ {
					probe[j] = byte(j * 7)
				}
				userTx, err := sender.Send(probe)
				if err != nil {
					t.Fatalf("send %d bytes: %v", size, err)
				}
				n, rx, err := sender.Recv(buf, time.Now().Add(5*time.Second))
				if err != nil {
					t.Fatalf("receive the %d-byte reply: %v", size, err)
				}
				want := slices.Clone(probe)
				bench.MarkReply(want, bench.StampUnknown, 0)
				// The reflector's in-band stamps (bytes 18 to 26) are its own.
				tail := min(size, bench.InBandSize)
				if n != size || !slices.Equal(buf[:bench.HeaderSize], want[:bench.HeaderSize]) || !slices.Equal(buf[tail:n], want[tail:]) {
					t.Fatalf("%d-byte probe: reply of %d bytes differs", size, n)
				}
				if rx.User < userTx || rx.XDPHook == 0 || rx.XDPHook > rx.User {
					t.Errorf("%d-byte probe: stamps userTx %d rx %+v out of order", size, userTx, rx)
				}
				if err := sender.TxStamps(onStamp); err != nil {
					t.Fatal(err)
				}
			}
			drainEnd := time.Now().Add(time.Second)
			for slices.Contains(stamps, 0) && time.Now().Before(drainEnd) {
				if err := sender.TxStamps(onStamp); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Millisecond)
			}
			for i, n := range stamps {
				if n != 1 {
					t.Errorf("send %d (%d bytes): %d TX stamps, want 1", i, sizes[i], n)
				}
			}
			c := sender.(bench.Reporter).Counters()
			if c["tcp_retransmits"] != 0 || c["tcp_tx_unstamped_probes"] != 0 || c["tx_errors"] != 0 {
				t.Errorf("sender counters %v", c)
			}
			res := closeTCPSender(t, sender, rr)
			if res.err != nil || len(res.seqs) != len(sizes) {
				t.Errorf("reflector saw %d probes, error %v", len(res.seqs), res.err)
			}
		})
	}
}
