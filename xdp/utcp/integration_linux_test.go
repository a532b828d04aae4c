package utcp_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/safchain/ethtool"
	"golang.org/x/sys/unix"

	"github.com/stackgap/stackgap/bench"
	"github.com/stackgap/stackgap/internal/testbed"
	"github.com/stackgap/stackgap/internal/testbed/bedtest"
	"github.com/stackgap/stackgap/xdp"
	"github.com/stackgap/stackgap/xdp/frame"
	"github.com/stackgap/stackgap/xdp/utcp"
)

// captured is one TCP segment seen on the peer's interface.
type captured struct {
	srcPort   uint16
	flags     uint8
	hdrLen    int
	layout    string // option kinds and lengths
	payload   int
	frameSize int
}

func optionLayout(opts []byte) string {
	var parts []string
	for len(opts) > 0 {
		if opts[0] <= 1 { // End, NOP
			parts = append(parts, strconv.Itoa(int(opts[0])))
			if opts[0] == 0 {
				break
			}
			opts = opts[1:]
			continue
		}
		if len(opts) < 2 || opts[1] < 2 || int(opts[1]) > len(opts) {
			parts = append(parts, "?")
			break
		}
		parts = append(parts, fmt.Sprintf("%d/%d", opts[0], opts[1]))
		opts = opts[opts[1]:]
	}
	return strings.Join(parts, ",")
}

// startCapture records TCP segments to port arriving on ifindex (a packet
// socket in the calling thread's namespace) until the returned stop is called.
func startCapture(t *testing.T, ifindex int, port uint16) (stop func() []captured) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		t.Fatalf("packet socket: %v", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		unix.Close(fd)
		t.Fatalf("bind packet socket: %v", err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 50_000})
	done := make(chan struct{})
	result := make(chan []captured, 1)
	go func() {
		var segs []captured
		buf := make([]byte, 65536)
		for {
			select {
			case <-done:
				result <- segs
				return
			default:
			}
			n, from, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			p, err := frame.ParseUnverified(buf[:n])
			if err != nil || p.Protocol != frame.ProtocolTCP || p.DstPort != port {
				continue
			}
			segs = append(segs, captured{srcPort: p.SrcPort, flags: p.TCP.Flags, hdrLen: frame.TCPHeaderLen + len(p.TCP.Options),
				layout: optionLayout(p.TCP.Options), payload: len(p.Payload), frameSize: n})
		}
	}()
	var segs []captured
	stopped := false
	stop = func() []captured {
		if !stopped {
			stopped = true
			close(done)
			segs = <-result
			unix.Close(fd)
		}
		return segs
	}
	t.Cleanup(func() { stop() })
	return stop
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// echoServer answers every probe on every accepted connection with the same
// bytes, reply flag set, until the peer closes; errors go to errs.
func echoServer(l net.Listener, errs chan<- error) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			r := bufio.NewReader(c)
			hdr := make([]byte, bench.HeaderSize)
			for {
				if _, err := io.ReadFull(r, hdr); err != nil {
					if !errors.Is(err, io.EOF) {
						errs <- fmt.Errorf("server read: %w", err)
					}
					errs <- nil
					return
				}
				n, err := bench.ProbeLength(hdr)
				if err != nil {
					errs <- err
					return
				}
				p := make([]byte, n)
				copy(p, hdr)
				if _, err := io.ReadFull(r, p[bench.HeaderSize:]); err != nil {
					errs <- fmt.Errorf("server read: %w", err)
					return
				}
				p[3] |= bench.FlagReply
				if _, err := c.Write(p); err != nil {
					errs <- fmt.Errorf("server write: %w", err)
					return
				}
			}
		}()
	}
}

// xskConn drives an Endpoint over an AF_XDP socket.
type xskConn struct {
	t     *testing.T
	sock  *xdp.Socket
	e     *utcp.Endpoint
	hdr   frame.Header
	start time.Time
	descs [64]xdp.Desc
	comps [64]xdp.Completion
	emit  func(utcp.Segment) error
	ours  []captured // every segment we sent
}

func (x *xskConn) now() int64 { return int64(time.Since(x.start)) + int64(time.Hour) }

func newXSKConn(t *testing.T, sock *xdp.Socket, e *utcp.Endpoint, hdr frame.Header) *xskConn {
	x := &xskConn{t: t, sock: sock, e: e, hdr: hdr, start: time.Now()}
	capacity := int(sock.Info().FrameCapacity)
	x.emit = func(seg utcp.Segment) error {
		addr, ok := x.sock.AllocFrame()
		if !ok {
			return errors.New("no free umem frame")
		}
		n, err := utcp.BuildFrame(x.sock.Frame(addr, capacity), &x.hdr, seg)
		if err != nil {
			x.sock.FreeFrame(addr)
			return err
		}
		if _, err := x.sock.Transmit([]xdp.Desc{{Addr: addr, Len: uint32(n)}}, false); err != nil {
			x.sock.FreeFrame(addr)
			return err
		}
		x.ours = append(x.ours, captured{srcPort: seg.Src.Port(), flags: seg.Flags, hdrLen: frame.TCPHeaderLen + len(seg.Options),
			layout: optionLayout(seg.Options), payload: len(seg.Payload), frameSize: n})
		return nil
	}
	return x
}

// step sends what is due, waits up to wait for frames, and feeds them in.
func (x *xskConn) step(wait time.Duration) {
	t := x.t
	if err := x.e.Output(x.now(), x.emit); err != nil {
		t.Fatalf("output: %v", err)
	}
	n, err := x.sock.Complete(x.comps[:])
	if err != nil {
		t.Fatalf("complete: %v", err)
	}
	for _, c := range x.comps[:n] {
		x.sock.FreeFrame(c.Addr)
	}
	if next := x.e.NextTimer(); next != 0 {
		wait = min(wait, max(time.Duration(next-x.now()), 0))
	}
	if _, err := x.sock.WaitReceive(xdp.WaitPoll, wait); err != nil {
		t.Fatalf("wait: %v", err)
	}
	n, err = x.sock.Receive(x.descs[:])
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	for _, d := range x.descs[:n] {
		// A kernel sender on veth leaves the TCP checksum to an offload that never runs.
		p, err := frame.ParseUnverified(x.sock.Frame(d.Addr, int(d.Len)))
		if err == nil {
			if seg, ok := utcp.FromPacket(&p); ok {
				x.e.Input(seg, x.now())
			}
		}
		x.sock.FreeFrame(d.Addr)
	}
	if _, err := x.sock.Refill(max(0, x.sock.FreeFrames()-64)); err != nil {
		t.Fatalf("refill: %v", err)
	}
	if err := x.e.Output(x.now(), x.emit); err != nil {
		t.Fatalf("output: %v", err)
	}
}

func (x *xskConn) until(what string, timeout time.Duration, cond func() bool) {
	x.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			x.t.Fatalf("%s: not reached within %v (state %v, err %v, stats %+v)", what, timeout, x.e.State(), x.e.Err(), x.e.Stats())
		}
		x.step(5 * time.Millisecond)
	}
}

// TestKernelPeer connects the endpoint, on an AF_XDP socket, to an ordinary
// kernel TCP server in another namespace: handshake, 1000 request/response
// probes, orderly close. The kernel must see a clean connection, and the
// endpoint's segments must have the kernel client's header and option layout.
func TestKernelPeer(t *testing.T) {
	// Side A is the host, where the endpoint runs and the test's goroutine
	// stays; B is the peer with the kernel server.
	tb := bedtest.New(t, testbed.Options{})
	bedtest.Enter(t, tb, testbed.A)
	hostIP, peerIP := tb.AddrA4, tb.AddrB4
	const serverPort = 7000
	// The kernel must not touch the probe flow's port: reserve it.
	reserve, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(reserve) })
	if err := unix.Bind(reserve, &unix.SockaddrInet4{Addr: hostIP.As4()}); err != nil {
		t.Fatalf("reserve a port: %v", err)
	}
	sa, err := unix.Getsockname(reserve)
	if err != nil {
		t.Fatal(err)
	}
	localPort := uint16(sa.(*unix.SockaddrInet4).Port)

	// Kernel-sent segments must be single MTU-sized frames to compare sizes.
	et, err := ethtool.NewEthtool()
	if err != nil {
		t.Fatalf("ethtool: %v", err)
	}
	defer et.Close()
	if err := et.Change(tb.IfaceA, map[string]bool{"tx-tcp-segmentation": false, "tx-generic-segmentation": false}); err != nil {
		t.Fatalf("turn off segmentation offloads on %s: %v", tb.IfaceA, err)
	}

	var listener net.Listener
	var stopCapture func() []captured
	var before map[string]int64
	bedtest.In(t, tb, testbed.B, func() {
		if listener, err = net.Listen("tcp4", netip.AddrPortFrom(peerIP, serverPort).String()); err != nil {
			t.Fatalf("listen: %v", err)
		}
		stopCapture = startCapture(t, tb.IfindexB, serverPort)
	})
	before = bedtest.TCPCounters(t, tb, testbed.B)
	t.Cleanup(func() { listener.Close() })
	serverErrs := make(chan error, 16)
	go echoServer(listener, serverErrs)

	steer, err := xdp.AttachSteering(xdp.SteerOptions{Ifindex: tb.IfindexA, Mode: xdp.SteerModeDriver})
	if err != nil {
		t.Fatalf("attach steering: %v", err)
	}
	t.Cleanup(func() { steer.Close() })
	sock, err := xdp.Open(xdp.Options{Interface: tb.IfaceA, Mode: xdp.ModeCopy, NumFrames: 1024, FillRingSize: 512,
		CompletionRingSize: 512, RxRingSize: 512, TxRingSize: 512, NoTxMetadata: true})
	if err != nil {
		t.Fatalf("open af_xdp socket: %v", err)
	}
	t.Cleanup(func() { sock.Close() })
	if _, err := sock.Refill(512); err != nil {
		t.Fatal(err)
	}
	if err := steer.Register(0, sock.FD()); err != nil {
		t.Fatal(err)
	}
	if err := steer.AddFlow(xdp.Flow{Proto: syscall.IPPROTO_TCP, DstPort: localPort}, xdp.FlowOptions{}); err != nil {
		t.Fatal(err)
	}

	e, err := utcp.NewClient(utcp.Config{Local: netip.AddrPortFrom(hostIP, localPort), Remote: netip.AddrPortFrom(peerIP, serverPort)})
	if err != nil {
		t.Fatal(err)
	}
	x := newXSKConn(t, sock, e, frame.Header{SrcMAC: tb.MACA, DstMAC: tb.MACB, IPv4ID: uint16(rand.Uint32())})
	x.until("established", 5*time.Second, e.Established)
	t.Logf("connected: srtt %v rto %v, peer window scale %d, mss %d", time.Duration(e.SRTT()), time.Duration(e.RTO()), e.PeerWindowScale(), e.SendMSS())

	compareSizes := []int{18, 100, 1000, 1448, 1460}
	const count = 1000
	rtts := make([]time.Duration, 0, count)
	for i := range count {
		size := 18 + (i*131)%(1460-18+1)
		if i < len(compareSizes) {
			size = compareSizes[i]
		}
		req := utcp.Probe(size, uint64(i))
		if err := e.Send(req); err != nil {
			t.Fatalf("probe %d: send: %v", i, err)
		}
		sent := time.Now()
		var answer []byte
		x.until("answer", 5*time.Second, func() bool {
			buf := e.Peek()
			if len(buf) < size {
				return false
			}
			answer = make([]byte, size)
			e.Read(answer)
			return true
		})
		rtts = append(rtts, time.Since(sent))
		want := bytes.Clone(req)
		want[3] |= bench.FlagReply
		if !bytes.Equal(answer, want) {
			t.Fatalf("probe %d: answer %x, want %x", i, answer, want)
		}
	}
	e.Close()
	x.until("closed", 5*time.Second, func() bool { return e.State() == utcp.StateTimeWait || e.State() == utcp.StateClosed })
	if err := <-serverErrs; err != nil {
		t.Errorf("kernel server: %v", err)
	}
	st := e.Stats()
	t.Logf("endpoint stats %+v", st)
	t.Logf("round trips: first %v, median of %d %v", rtts[0], len(rtts), median(rtts))
	if e.Err() != nil || st.RSTsReceived != 0 || st.RSTsSent != 0 {
		t.Errorf("endpoint error %v, stats %+v", e.Err(), st)
	}

	// A kernel client sends the same probes to the same server.
	kc, err := net.Dial("tcp4", netip.AddrPortFrom(peerIP, serverPort).String())
	if err != nil {
		t.Fatalf("kernel client: %v", err)
	}
	kernelPort := uint16(kc.LocalAddr().(*net.TCPAddr).Port)
	for i, size := range compareSizes {
		req := utcp.Probe(size, uint64(i))
		if _, err := kc.Write(req); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(kc, make([]byte, size)); err != nil {
			t.Fatal(err)
		}
	}
	kc.Close()
	if err := <-serverErrs; err != nil {
		t.Errorf("kernel server (kernel client): %v", err)
	}
	time.Sleep(100 * time.Millisecond)

	after := bedtest.TCPCounters(t, tb, testbed.B)
	for _, c := range []string{"RetransSegs", "OutRsts", "EstabResets", "InErrs", "AttemptFails"} {
		if after[c] != before[c] {
			t.Errorf("peer kernel TCP counter %s went from %d to %d", c, before[c], after[c])
		}
	}
	if after["PassiveOpens"]-before["PassiveOpens"] != 2 {
		t.Errorf("peer kernel accepted %d connections, want 2", after["PassiveOpens"]-before["PassiveOpens"])
	}

	segs := stopCapture()
	var kernel, seen []captured
	for _, s := range segs {
		switch s.srcPort {
		case kernelPort:
			kernel = append(kernel, s)
		case localPort:
			seen = append(seen, s)
		}
	}
	if len(seen) != len(x.ours) {
		t.Errorf("peer captured %d of our %d segments", len(seen), len(x.ours))
	}
	// SYN: same option layout and header length.
	if len(kernel) == 0 || len(seen) == 0 {
		t.Fatalf("captured %d kernel and %d endpoint segments", len(kernel), len(seen))
	}
	t.Logf("SYN: kernel %d-byte header [%s], ours %d-byte header [%s]", kernel[0].hdrLen, kernel[0].layout, seen[0].hdrLen, seen[0].layout)
	if kernel[0].flags != frame.TCPSyn || seen[0].flags != frame.TCPSyn || kernel[0].hdrLen != seen[0].hdrLen || kernel[0].layout != seen[0].layout || kernel[0].frameSize != seen[0].frameSize {
		t.Errorf("SYN differs: kernel %+v, ours %+v", kernel[0], seen[0])
	}
	data := func(cs []captured) []captured {
		var out []captured
		for _, c := range cs {
			if c.payload > 0 {
				out = append(out, c)
			}
		}
		return out
	}
	kd, od := data(kernel), data(seen)
	if len(kd) < 6 || len(od) < 6 {
		t.Fatalf("captured %d kernel and %d endpoint data segments", len(kd), len(od))
	}
	for i := range 6 { // 18, 100, 1000, 1448, 1448+12
		k, o := kd[i], od[i]
		t.Logf("data %d: kernel %d+%d bytes [%s] frame %d, ours %d+%d bytes [%s] frame %d", i, k.hdrLen, k.payload, k.layout, k.frameSize, o.hdrLen, o.payload, o.layout, o.frameSize)
		if k.hdrLen != o.hdrLen || k.layout != o.layout || k.payload != o.payload || k.frameSize != o.frameSize || k.flags != o.flags {
			t.Errorf("data segment %d differs: kernel %+v, ours %+v", i, k, o)
		}
	}
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}
