package kernelpath

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stackgap/stackgap/bench"
	"golang.org/x/sys/unix"
)

var (
	loopback4 = netip.MustParseAddr("127.0.0.1")
	loopback6 = netip.MustParseAddr("::1")
)

// txRecord collects the TX stamps of one Conn by send index.
type txRecord struct {
	userTx []int64
	stamps map[uint64][txKinds]int64
	dups   int
}

func newTxRecord() *txRecord { return &txRecord{stamps: map[uint64][txKinds]int64{}} }

func (r *txRecord) report(index uint64, kind bench.TxStampKind, ts int64) {
	s := r.stamps[index]
	if s[kind] != 0 {
		r.dups++
	}
	s[kind] = ts
	r.stamps[index] = s
}

func (r *txRecord) complete(n int) bool {
	for i := range uint64(n) {
		s := r.stamps[i]
		if s[bench.TxSched] == 0 || s[bench.TxSoftware] == 0 {
			return false
		}
	}
	return true
}

// drain polls TxStamps until every send has both software stamps or a second passed.
func (r *txRecord) drain(c *Conn) error {
	end := time.Now().Add(time.Second)
	for !r.complete(len(r.userTx)) && time.Now().Before(end) {
		if err := c.TxStamps(r.report); err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// check verifies every send got TX_SCHED and TX_SOFTWARE once, in order.
func (r *txRecord) check(t *testing.T, who string) {
	t.Helper()
	if r.dups != 0 {
		t.Errorf("%s: %d duplicate TX stamps", who, r.dups)
	}
	if len(r.stamps) != len(r.userTx) {
		t.Errorf("%s: TX stamps for %d send indexes, want %d", who, len(r.stamps), len(r.userTx))
	}
	bad := 0
	for i, user := range r.userTx {
		s := r.stamps[uint64(i)]
		sched, sw := s[bench.TxSched], s[bench.TxSoftware]
		if sched == 0 || sw == 0 || user > sched || sched > sw {
			if bad++; bad <= 5 {
				t.Errorf("%s: send %d: userTx %d, tx_sched %+d, tx_software %+d (want 0 < userTx ≤ sched ≤ software)",
					who, i, user, sched-user, sw-user)
			}
		}
	}
	if bad > 5 {
		t.Errorf("%s: %d sends with bad TX stamps in all", who, bad)
	}
}

func checkStats(t *testing.T, who string, s Stats, n int) {
	t.Helper()
	want := Stats{Sends: uint64(n), Recvs: uint64(n), TxStamps: uint64(2 * n)}
	got := s
	got.PartialWrites, got.RxQueueDrops = 0, 0 // may happen legitimately
	if got != want {
		t.Errorf("%s: unexpected stats (-want +got):\n-%+v\n+%+v", who, want, got)
	}
}

func TestPingPong(t *testing.T) {
	const probes = 200
	for _, transport := range []Transport{UDP, TCP} {
		for _, addr := range []netip.Addr{loopback4, loopback6} {
			for _, wait := range []bench.WaitStrategy{bench.WaitBlock, bench.WaitSpin} {
				name := fmt.Sprintf("%s/%s/%s", transport, map[bool]string{true: "ipv4", false: "ipv6"}[addr.Is4()], wait)
				t.Run(name, func(t *testing.T) {
					pingPong(t, Options{Transport: transport, Wait: wait, Timestamping: true}, addr, probes)
				})
			}
		}
	}
}

// settleTimestamping gives the kernel time to turn RX stamping on: the first
// socket in the system to ask for RX stamps enables netstamp_needed_key through
// a work item (net/core/dev.c net_enable_timestamp), so packets right after
// can miss their stamp.
func settleTimestamping(o Options) {
	if o.Timestamping {
		time.Sleep(20 * time.Millisecond)
	}
}

// openPair creates, in a fresh namespace, a listener and a Conn dialled to it;
// for TCP it also accepts the reflector's Conn.
func openPair(t testing.TB, o Options, addr netip.Addr) (l *Listener, sender, reflector *Conn) {
	t.Helper()
	inFreshNetns(t, func() error {
		var err error
		if l, err = Listen(netip.AddrPortFrom(addr, 0), o); err != nil {
			return err
		}
		if sender, err = Dial(netip.Addr{}, netip.AddrPortFrom(addr, l.Port()), o); err != nil {
			l.Close()
			return err
		}
		if o.Transport == TCP {
			if reflector, err = l.Accept(time.Now().Add(5 * time.Second)); err != nil {
				l.Close()
				sender.Close()
				return err
			}
		}
		return nil
	})
	settleTimestamping(o)
	t.Cleanup(func() {
		for _, c := range []*Conn{sender, reflector} {
			if c != nil {
				if err := c.Close(); err != nil {
					t.Error(err)
				}
			}
		}
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return l, sender, reflector
}

func pingPong(t *testing.T, o Options, addr netip.Addr, n int) {
	l, sender, reflector := openPair(t, o, addr)
	const token = 0x5eed

	type result struct {
		conn *Conn
		tx   *txRecord
		err  error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		r := result{conn: reflector, tx: newTxRecord()}
		defer func() { done <- r }()
		if r.conn == nil {
			if r.conn, r.err = l.Accept(time.Now().Add(5 * time.Second)); r.err != nil {
				return
			}
			t.Cleanup(func() { r.conn.Close() })
		}
		buf := make([]byte, 2048)
		for i := range n {
			m, rx, err := r.conn.Recv(buf, time.Now().Add(5*time.Second))
			if err != nil {
				r.err = fmt.Errorf("reflector: probe %d: %w", i, err)
				return
			}
			if rx.Software == 0 || rx.User < rx.Software {
				r.err = fmt.Errorf("reflector: probe %d: rx stamps %+v (want 0 < Software ≤ User)", i, rx)
				return
			}
			bench.MarkReply(buf[:m], uint32(rx.User-rx.Software), 0)
			userTx, err := r.conn.Send(buf[:m])
			if err != nil {
				r.err = fmt.Errorf("reflector: reply %d: %w", i, err)
				return
			}
			r.tx.userTx = append(r.tx.userTx, userTx)
			if err := r.conn.TxStamps(r.tx.report); err != nil {
				r.err = err
				return
			}
		}
		r.err = r.tx.drain(r.conn)
	}()

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tx := newTxRecord()
	// Vary the size so TCP framing sees different lengths.
	sizes := []int{bench.HeaderSize, bench.InBandSize, 64, 200, 1400}
	probe, buf := make([]byte, 1400), make([]byte, 2048)
	var senderErr error
	for i := range n {
		p := probe[:sizes[i%len(sizes)]]
		bench.MarshalProbe(p, token, uint64(i))
		userTx, err := sender.Send(p)
		if err != nil {
			senderErr = fmt.Errorf("send %d: %w", i, err)
			break
		}
		tx.userTx = append(tx.userTx, userTx)
		m, rx, err := sender.Recv(buf, time.Now().Add(5*time.Second))
		if err != nil {
			senderErr = fmt.Errorf("reply %d: %w", i, err)
			break
		}
		got, err := bench.ParseProbe(buf[:m])
		if err != nil || got.Seq != uint64(i) || got.Token != token || got.Flags&bench.FlagReply == 0 || m != len(p) {
			senderErr = fmt.Errorf("reply %d: got %+v (%d bytes, err %v), want seq %d of %d bytes with the reply flag", i, got, m, err, i, len(p))
			break
		}
		if rx.Software == 0 || rx.User == 0 || rx.User < rx.Software || rx.Software < userTx {
			senderErr = fmt.Errorf("reply %d: rx stamps %+v, user tx %d (want userTx ≤ Software ≤ User)", i, rx, userTx)
			break
		}
		if err := sender.TxStamps(tx.report); err != nil {
			senderErr = err
			break
		}
	}
	if senderErr == nil {
		senderErr = tx.drain(sender)
	}
	r := <-done
	if senderErr != nil || r.err != nil {
		t.Fatal(errors.Join(senderErr, r.err))
	}
	tx.check(t, "sender")
	r.tx.check(t, "reflector")
	checkStats(t, "sender", sender.Stats(), n)
	checkStats(t, "reflector", r.conn.Stats(), n)
	if got := r.conn.RemoteAddr(); got != sender.LocalAddr() {
		t.Errorf("reflector's peer is %v, want the sender %v", got, sender.LocalAddr())
	}
	if got := sender.RemoteAddr(); got != netip.AddrPortFrom(addr, l.Port()) {
		t.Errorf("sender's peer is %v, want %v", got, netip.AddrPortFrom(addr, l.Port()))
	}
	active, err := sender.BusyPollActive()
	if err != nil {
		t.Error(err)
	}
	if active {
		t.Error("busy polling reported active on loopback, which has no NAPI id")
	}
}

func TestRecvTimeout(t *testing.T) {
	for _, transport := range []Transport{UDP, TCP} {
		for _, wait := range []bench.WaitStrategy{bench.WaitBlock, bench.WaitSpin} {
			t.Run(string(transport)+"/"+string(wait), func(t *testing.T) {
				o := Options{Transport: transport, Wait: wait, Timestamping: true}
				_, sender, _ := openPair(t, o, loopback4)
				const wait = 50 * time.Millisecond
				start := time.Now()
				_, _, err := sender.Recv(make([]byte, 100), start.Add(wait))
				elapsed := time.Since(start)
				if !errors.Is(err, bench.ErrTimeout) {
					t.Fatalf("Recv with nothing to receive: got error %v, want bench.ErrTimeout", err)
				}
				// Block mode checks the deadline every tick; allow scheduling noise.
				if elapsed < wait || elapsed > wait+blockTick+time.Second {
					t.Errorf("Recv timed out after %v, want about %v", elapsed, wait)
				}
				// A deadline already passed returns at once.
				start = time.Now()
				if _, _, err := sender.Recv(make([]byte, 100), start.Add(-time.Second)); !errors.Is(err, bench.ErrTimeout) {
					t.Fatalf("Recv with a past deadline: got %v, want bench.ErrTimeout", err)
				}
				if elapsed := time.Since(start); elapsed > blockTick/2 {
					t.Errorf("Recv with a past deadline took %v, want no wait", elapsed)
				}
			})
		}
	}
}

// closedPort returns a port on addr that nothing listens on.
func closedPort(t testing.TB, transport Transport, addr netip.Addr) uint16 {
	t.Helper()
	l, err := Listen(netip.AddrPortFrom(addr, 0), Options{Transport: transport})
	if err != nil {
		t.Fatal(err)
	}
	port := l.Port()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

func TestUDPRefused(t *testing.T) {
	for _, addr := range []netip.Addr{loopback4, loopback6} {
		t.Run(addr.String(), func(t *testing.T) {
			var c *Conn
			var port uint16
			inFreshNetns(t, func() error {
				port = closedPort(t, UDP, addr)
				var err error
				c, err = Dial(netip.Addr{}, netip.AddrPortFrom(addr, port), Options{Transport: UDP, Timestamping: true})
				return err
			})
			t.Cleanup(func() { c.Close() })
			want := fmt.Sprintf("peer %s refused (port unreachable)", netip.AddrPortFrom(addr, port))
			checkRefused := func(what string, err error) {
				t.Helper()
				var pe *PeerError
				if !errors.As(err, &pe) || !errors.Is(err, unix.ECONNREFUSED) || !strings.Contains(err.Error(), want) {
					t.Fatalf("%s: got error %v, want a *PeerError wrapping ECONNREFUSED saying %q", what, err, want)
				}
			}
			probe := make([]byte, 64)
			bench.MarshalProbe(probe, 1, 0)

			// 1. The pending socket error reaches Recv.
			if _, err := c.Send(probe); err != nil {
				t.Fatal(err)
			}
			_, _, err := c.Recv(make([]byte, 100), time.Now().Add(2*time.Second))
			checkRefused("Recv", err)

			// 2. The error queue reaches TxStamps; the entry matching the error
			// Recv already returned is not reported twice.
			if _, err := c.Send(probe); err != nil {
				t.Fatal(err)
			}
			var tx *txRecord = newTxRecord()
			err = c.TxStamps(tx.report)
			checkRefused("TxStamps", err)
			if err := c.TxStamps(tx.report); err != nil {
				t.Fatalf("second TxStamps: %v, want nil once the error was reported", err)
			}
			if len(tx.stamps) != 2 {
				t.Errorf("TX stamps for %d sends, want 2", len(tx.stamps))
			}
			if s := c.Stats(); s.ICMPErrors != 2 {
				t.Errorf("ICMP errors counted: %d, want 2", s.ICMPErrors)
			}

			// 3. The pending socket error reaches the next Send.
			if _, err := c.Send(probe); err != nil {
				t.Fatal(err)
			}
			_, err = c.Send(probe)
			checkRefused("Send", err)
		})
	}
}

func TestTCPDialRefused(t *testing.T) {
	var port uint16
	var err error
	inFreshNetns(t, func() error {
		port = closedPort(t, TCP, loopback4)
		var c *Conn
		c, err = Dial(netip.Addr{}, netip.AddrPortFrom(loopback4, port), Options{Transport: TCP})
		if err == nil {
			c.Close()
		}
		return nil
	})
	want := fmt.Sprintf("dial tcp 127.0.0.1:%d: connect: refused", port)
	if !errors.Is(err, unix.ECONNREFUSED) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Dial to a closed port: got %v, want ECONNREFUSED saying %q", err, want)
	}
}

func TestListenPortInUse(t *testing.T) {
	for _, transport := range []Transport{UDP, TCP} {
		t.Run(string(transport), func(t *testing.T) {
			var err error
			var port uint16
			inFreshNetns(t, func() error {
				l, lerr := Listen(netip.AddrPortFrom(loopback4, 0), Options{Transport: transport})
				if lerr != nil {
					return lerr
				}
				defer l.Close()
				port = l.Port()
				var l2 *Listener
				if l2, err = Listen(netip.AddrPortFrom(loopback4, port), Options{Transport: transport}); err == nil {
					l2.Close()
				}
				return nil
			})
			want := fmt.Sprintf("listen %s 127.0.0.1:%d: port %d already in use", transport, port, port)
			if !errors.Is(err, unix.EADDRINUSE) || !strings.Contains(err.Error(), want) {
				t.Fatalf("second Listen: got %v, want EADDRINUSE saying %q", err, want)
			}
		})
	}
}

func TestTCPAcceptTimeout(t *testing.T) {
	var l *Listener
	inFreshNetns(t, func() error {
		var err error
		l, err = Listen(netip.AddrPortFrom(loopback6, 0), Options{Transport: TCP})
		return err
	})
	t.Cleanup(func() { l.Close() })
	start := time.Now()
	if _, err := l.Accept(start.Add(20 * time.Millisecond)); !errors.Is(err, bench.ErrTimeout) {
		t.Fatalf("Accept with no peer: got %v, want bench.ErrTimeout", err)
	}
	if elapsed := time.Since(start); elapsed < 20*time.Millisecond || elapsed > time.Second {
		t.Errorf("Accept timed out after %v, want about 20ms", elapsed)
	}
}

func TestUDPAcceptReturnsAtOnce(t *testing.T) {
	var l *Listener
	inFreshNetns(t, func() error {
		var err error
		l, err = Listen(netip.AddrPortFrom(loopback4, 0), Options{Transport: UDP, Timestamping: true})
		return err
	})
	t.Cleanup(func() { l.Close() })
	c, err := l.Accept(time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.RemoteAddr().IsValid() {
		t.Errorf("RemoteAddr before any datagram = %v, want invalid", c.RemoteAddr())
	}
	if _, err := c.Send(make([]byte, 64)); err == nil || !strings.Contains(err.Error(), "no peer yet") {
		t.Errorf("Send before any datagram: got %v, want a no-peer error", err)
	}
}

// TestUDPSecondAcceptRestartsStampKeys checks that a reflector Conn accepted
// after an earlier one numbers its sends, and their stamps, from 0 again.
func TestUDPSecondAcceptRestartsStampKeys(t *testing.T) {
	l, sender, _ := openPair(t, Options{Transport: UDP, Timestamping: true}, loopback4)
	probe, buf := make([]byte, 64), make([]byte, 100)
	exchange := func(c *Conn, replies int) *txRecord {
		t.Helper()
		tx := newTxRecord()
		for i := range replies {
			bench.MarshalProbe(probe, 1, uint64(i))
			if _, err := sender.Send(probe); err != nil {
				t.Fatal(err)
			}
			n, _, err := c.Recv(buf, time.Now().Add(5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			userTx, err := c.Send(buf[:n])
			if err != nil {
				t.Fatal(err)
			}
			tx.userTx = append(tx.userTx, userTx)
			if _, _, err := sender.Recv(buf, time.Now().Add(5*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		return tx
	}
	first, err := l.Accept(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	exchange(first, 3) // its stamps stay unread on the shared socket
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second, err := l.Accept(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	tx := exchange(second, 2)
	if err := tx.drain(second); err != nil {
		t.Fatal(err)
	}
	tx.check(t, "second reflector")
	if s := second.Stats(); s.TxUnmatched != 0 || s.TxStamps != 4 {
		t.Errorf("second reflector: %d stamps reported, %d unmatched; want 4 and 0", s.TxStamps, s.TxUnmatched)
	}
}
