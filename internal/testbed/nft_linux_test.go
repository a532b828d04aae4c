package testbed

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stackgap/stackgap/internal/testutil"
	"golang.org/x/sys/unix"
)

// udpPair opens a receiver on B's IPv4 address and port and a sender in A connected to it. The
// receiver's buffer holds far more than the tests send, so only the nft rule drops datagrams.
func udpPair(t *testing.T, tb *Testbed, port uint16) (recv, send *net.UDPConn) {
	t.Helper()
	err := tb.Do(B, func() error {
		var err error
		recv, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(tb.AddrB4, port)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { recv.Close() })
	raw, err := recv.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
	}); err != nil || serr != nil {
		t.Fatalf("set receive buffer: %v, %v", err, serr)
	}
	err = tb.Do(A, func() error {
		var err error
		send, err = net.DialUDP("udp4", nil, recv.LocalAddr().(*net.UDPAddr))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { send.Close() })
	return recv, send
}

// sendAndCount sends n datagrams and returns how many arrive. It reads until the receiver has
// been idle for a while and arrived+dropped() reaches n, or for at most 5 seconds.
func sendAndCount(t *testing.T, recv, send *net.UDPConn, n int, dropped func() uint64) int {
	t.Helper()
	for i := range n {
		if _, err := send.Write([]byte{byte(i), byte(i >> 8)}); err != nil {
			t.Fatalf("send datagram %d: %v", i, err)
		}
	}
	received := 0
	buf := make([]byte, 16)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		recv.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := recv.Read(buf); err == nil {
			received++
			continue
		}
		if received+int(dropped()) >= n {
			break
		}
	}
	return received
}

func TestDropShareUDP(t *testing.T) {
	tb := newTestbed(t, Options{})
	testutil.RequireTool(t, "nft")
	const port, otherPort, n = 9000, 9001, 1000
	recv, send := udpPair(t, tb, port)
	otherRecv, otherSend := udpPair(t, tb, otherPort)

	drop, err := tb.DropShare(B, "udp", port, 30)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { drop.Remove() })
	droppedNow := func() uint64 {
		d, err := drop.Dropped()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := droppedNow(); d != 0 {
		t.Fatalf("rule dropped %d packets before any was sent", d)
	}

	received := sendAndCount(t, recv, send, n, droppedNow)
	dropped := droppedNow()
	if received+int(dropped) != n {
		t.Fatalf("received %d + dropped %d = %d, want exactly %d", received, dropped, received+int(dropped), n)
	}
	// 30% of 1000: mean 300, standard deviation 14.5; these bounds are more than 10 away.
	if dropped < 150 || dropped > 450 {
		t.Errorf("dropped %d of %d, want about 30%%", dropped, n)
	}
	t.Logf("30%% rule: received %d, dropped %d of %d", received, dropped, n)

	// Other ports are untouched.
	if got := sendAndCount(t, otherRecv, otherSend, 100, func() uint64 { return 0 }); got != 100 {
		t.Errorf("port %d: received %d of 100 with a rule for port %d", otherPort, got, port)
	}
	if d := droppedNow(); d != dropped {
		t.Errorf("counter moved from %d to %d for traffic to another port", dropped, d)
	}

	// After Remove nothing is dropped and the counter is gone.
	if err := drop.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := drop.Remove(); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if got := sendAndCount(t, recv, send, 200, func() uint64 { return 0 }); got != 200 {
		t.Errorf("received %d of 200 after Remove", got)
	}
	if _, err := drop.Dropped(); err == nil {
		t.Error("Dropped after Remove succeeded")
	}
}

func TestDropShareAllAndNone(t *testing.T) {
	tb := newTestbed(t, Options{})
	testutil.RequireTool(t, "nft")
	for _, tt := range []struct {
		percent      int
		wantReceived int
	}{{0, 200}, {100, 0}} {
		recv, send := udpPair(t, tb, 9100+uint16(tt.percent))
		drop, err := tb.Drop(B, DropRule{Proto: "udp", DstPort: 9100 + uint16(tt.percent), Percent: tt.percent})
		if err != nil {
			t.Fatal(err)
		}
		dropped := func() uint64 {
			d, err := drop.Dropped()
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
		got := sendAndCount(t, recv, send, 200, dropped)
		if got != tt.wantReceived || dropped() != uint64(200-tt.wantReceived) {
			t.Errorf("%d%% rule: received %d, dropped %d; want %d, %d", tt.percent, got, dropped(), tt.wantReceived, 200-tt.wantReceived)
		}
		if err := drop.Remove(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDropShareTCP(t *testing.T) {
	tb := newTestbed(t, Options{})
	testutil.RequireTool(t, "nft")
	const port = 9200
	var ln net.Listener
	err := tb.Do(B, func() error {
		var err error
		ln, err = net.Listen("tcp", netip.AddrPortFrom(tb.AddrB6, port).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	drop, err := tb.DropShare(B, "tcp", port, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer drop.Remove()

	err = tb.Do(A, func() error {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 300*time.Millisecond)
		if err == nil {
			c.Close()
			return errors.New("connected through a rule that drops every packet")
		}
		var netErr net.Error
		if !errors.As(err, &netErr) || !netErr.Timeout() {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := drop.Dropped(); err != nil || d == 0 {
		t.Errorf("Dropped() = %d, %v; want the SYNs counted", d, err)
	}
}

func TestDropInvalid(t *testing.T) {
	tb := newTestbed(t, Options{})
	for _, tt := range []struct {
		side    Side
		rule    DropRule
		wantErr string
	}{
		{A, DropRule{Proto: "sctp", Percent: 1}, "invalid protocol"},
		{B, DropRule{Proto: "udp", Percent: 200}, "invalid drop share"},
		{Side(7), DropRule{Proto: "udp", Percent: 1}, "invalid side"},
	} {
		if _, err := tb.Drop(tt.side, tt.rule); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("Drop(%v, %+v): %v, want error containing %q", tt.side, tt.rule, err, tt.wantErr)
		}
	}
}
