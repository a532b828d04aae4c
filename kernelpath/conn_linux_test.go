package kernelpath

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
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
	// every: send i asked for stamps when i%every == 0 (0: none did).
	every  int
	stamps map[uint64][txKinds]int64
	dups   int
}

func newTxRecord() *txRecord { return newSampledTxRecord(1) }

func newSampledTxRecord(every int) *txRecord {
	return &txRecord{every: every, stamps: map[uint64][txKinds]int64{}}
}

// stamped reports whether send i asks for stamps.
func (r *txRecord) stamped(i int) bool { return r.every > 0 && i%r.every == 0 }

func (r *txRecord) report(index uint64, kind bench.TxStampKind, ts int64) {
	s := r.stamps[index]
	if s[kind] != 0 {
		r.dups++
	}
	s[kind] = ts
	r.stamps[index] = s
}

func (r *txRecord) complete(n int) bool {
	for i := range n {
		s := r.stamps[uint64(i)]
		if r.stamped(i) && (s[bench.TxSched] == 0 || s[bench.TxSoftware] == 0) {
			return false
		}
	}
	return true
}

// drain polls TxStamps until every stamped send has both software stamps or a second passed.
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

// stampedCount is how many of the sends so far asked for stamps.
func (r *txRecord) stampedCount() int {
	n := 0
	for i := range r.userTx {
		if r.stamped(i) {
			n++
		}
	}
	return n
}

// check verifies every stamped send got TX_SCHED and TX_SOFTWARE once, in
// order, and no other send got any.
func (r *txRecord) check(t *testing.T, who string) {
	t.Helper()
	if r.dups != 0 {
		t.Errorf("%s: %d duplicate TX stamps", who, r.dups)
	}
	if want := r.stampedCount(); len(r.stamps) != want {
		t.Errorf("%s: TX stamps for %d send indexes, want %d", who, len(r.stamps), want)
	}
	bad := 0
	for i, user := range r.userTx {
		s, got := r.stamps[uint64(i)]
		if !r.stamped(i) {
			if got {
				t.Errorf("%s: send %d did not ask for stamps but got %v", who, i, s)
			}
			continue
		}
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

// checkStats compares the counters of a Conn that made n exchanges, stamped
// of them asking for stamps, with what a clean run gives.
func checkStats(t *testing.T, who string, s Stats, n, stamped int) {
	t.Helper()
	want := Stats{Sends: uint64(n), Recvs: uint64(n), StampedSends: uint64(stamped), TxStamps: uint64(2 * stamped)}
	got := s
	got.PartialWrites, got.RxQueueDrops, got.ErrQueueReads = 0, 0, 0 // may happen legitimately; reads checked apart
	if got != want {
		t.Errorf("%s: unexpected stats (-want +got):\n-%+v\n+%+v", who, want, got)
	}
	// Two stamps per stamped send, plus at most one read that finds the queue
	// empty per TxStamps call made while stamps were outstanding.
	if s.ErrQueueReads < uint64(2*stamped) || s.ErrQueueReads > uint64(3*stamped)+100 {
		t.Errorf("%s: %d error-queue reads for %d stamped sends, want 2 per stamped send and few more", who, s.ErrQueueReads, stamped)
	}
}

// txStampsCounted calls TxStamps and fails the test when it read the error
// queue although no stamp was outstanding and no ICMP error pending.
func txStampsCounted(c *Conn, report func(uint64, bench.TxStampKind, int64)) error {
	idle := c.icmpDup == 0 && !c.awaitingStamps()
	before := c.stats.ErrQueueReads
	if err := c.TxStamps(report); err != nil {
		return err
	}
	if idle && c.stats.ErrQueueReads != before {
		return fmt.Errorf("TxStamps made %d error-queue reads with no stamp outstanding", c.stats.ErrQueueReads-before)
	}
	return nil
}

func TestPingPong(t *testing.T) {
	const probes = 200
	for _, transport := range []Transport{UDP, TCP} {
		for _, addr := range []netip.Addr{loopback4, loopback6} {
			for _, wait := range []bench.WaitStrategy{bench.WaitBlock, bench.WaitSpin} {
				for _, every := range []int{1, 2, 0} {
					name := fmt.Sprintf("%s/%s/%s/stamp-every-%d", transport, map[bool]string{true: "ipv4", false: "ipv6"}[addr.Is4()], wait, every)
					t.Run(name, func(t *testing.T) {
						pingPong(t, Options{Transport: transport, Wait: wait, Timestamping: true}, addr, probes, every)
					})
				}
			}
		}
	}
}

// TestPingPongFallbackKeys runs sampled stamping with the kernel's own key
// counter, as on kernels without SCM_TS_OPT_ID.
func TestPingPongFallbackKeys(t *testing.T) {
	for _, addr := range []netip.Addr{loopback4, loopback6} {
		t.Run(addr.String(), func(t *testing.T) {
			pingPongWith(t, Options{Transport: UDP, Timestamping: true}, addr, 200, 3, func(c *Conn) { c.keyBySend = false })
		})
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

// pingPong exchanges n probes; send i of either side asks for stamps when
// i%stampEvery == 0 (0: never).
func pingPong(t *testing.T, o Options, addr netip.Addr, n, stampEvery int) {
	pingPongWith(t, o, addr, n, stampEvery, func(*Conn) {})
}

func pingPongWith(t *testing.T, o Options, addr netip.Addr, n, stampEvery int, adjust func(*Conn)) {
	l, sender, reflector := openPair(t, o, addr)
	adjust(sender)
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
		r := result{conn: reflector, tx: newSampledTxRecord(stampEvery)}
		defer func() { done <- r }()
		if r.conn == nil {
			if r.conn, r.err = l.Accept(time.Now().Add(5 * time.Second)); r.err != nil {
				return
			}
			t.Cleanup(func() { r.conn.Close() })
		}
		adjust(r.conn)
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
			var userTx int64
			if i%2 == 1 {
				// As the reflector loop does: its own clock read, handed over.
				userTx = r.conn.clock.Now()
				err = r.conn.ReplyStamped(buf[:m], r.tx.stamped(i), userTx)
			} else {
				userTx, err = r.conn.SendStamped(buf[:m], r.tx.stamped(i))
			}
			if err != nil {
				r.err = fmt.Errorf("reflector: reply %d: %w", i, err)
				return
			}
			r.tx.userTx = append(r.tx.userTx, userTx)
			if err := txStampsCounted(r.conn, r.tx.report); err != nil {
				r.err = err
				return
			}
		}
		r.err = r.tx.drain(r.conn)
	}()

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tx := newSampledTxRecord(stampEvery)
	// Vary the size so TCP framing sees different lengths.
	sizes := []int{bench.HeaderSize, bench.InBandSize, 64, 200, 1400}
	probe, buf := make([]byte, 1400), make([]byte, 2048)
	var senderErr error
	for i := range n {
		p := probe[:sizes[i%len(sizes)]]
		bench.MarshalProbe(p, token, uint64(i))
		userTx, err := sender.SendStamped(p, tx.stamped(i))
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
		if err := txStampsCounted(sender, tx.report); err != nil {
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
	checkStats(t, "sender", sender.Stats(), n, tx.stampedCount())
	checkStats(t, "reflector", r.conn.Stats(), n, r.tx.stampedCount())
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

// TestUDPRefused checks that an ICMP error on a connected UDP socket reaches
// the caller exactly once, whether or not the sends asked for stamps, and
// that TxStamps then reads the error queue only to remove it.
func TestUDPRefused(t *testing.T) {
	for _, stamp := range []bool{true, false} {
		for _, addr := range []netip.Addr{loopback4, loopback6} {
			t.Run(fmt.Sprintf("%s/stamped=%v", addr, stamp), func(t *testing.T) {
				udpRefused(t, addr, stamp)
			})
		}
	}
}

func udpRefused(t *testing.T, addr netip.Addr, stamp bool) {
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
	tx := newTxRecord()
	quiet := func(what string) {
		t.Helper()
		before := c.Stats().ErrQueueReads
		if err := c.TxStamps(tx.report); err != nil {
			t.Fatalf("%s: TxStamps: %v, want nil", what, err)
		}
		if n := c.Stats().ErrQueueReads - before; n != 0 {
			t.Fatalf("%s: TxStamps read the error queue %d times, want none", what, n)
		}
	}

	// 1. The pending socket error reaches Recv.
	if _, err := c.SendStamped(probe, stamp); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.Recv(make([]byte, 100), time.Now().Add(2*time.Second))
	checkRefused("Recv", err)

	// 2. TxStamps removes the queued copy of that error without reporting it
	// again; after that it makes no system call.
	if err := c.TxStamps(tx.report); err != nil {
		t.Fatalf("TxStamps after Recv reported the error: %v, want nil", err)
	}
	quiet("after the first error")

	// 3. The next error reaches TxStamps (while it reads stamps) or else the
	// next Send, once.
	if _, err := c.SendStamped(probe, stamp); err != nil {
		t.Fatal(err)
	}
	err = c.TxStamps(tx.report)
	if err == nil {
		_, err = c.SendStamped(probe, stamp)
	}
	checkRefused("TxStamps or the next Send", err)
	if err := c.TxStamps(tx.report); err != nil {
		t.Fatalf("TxStamps after the second error: %v, want nil once the error was reported", err)
	}
	quiet("after the second error")

	if s := c.Stats(); s.ICMPErrors != 2 {
		t.Errorf("ICMP errors read from the error queue: %d, want 2", s.ICMPErrors)
	}
	wantStamped := map[bool]int{true: 2, false: 0}[stamp]
	if len(tx.stamps) != wantStamped {
		t.Errorf("TX stamps for %d sends, want %d", len(tx.stamps), wantStamped)
	}
}

// TestUnstampedSendsQueueNothing checks on this kernel that a send that does
// not ask for stamps leaves nothing on the error queue although the socket has
// timestamping (RX, OPT_ID) on, and that sampled UDP sends carry their Send
// index as the key (SCM_TS_OPT_ID) or, without it, the kernel's count of
// stamped sends.
func TestUnstampedSendsQueueNothing(t *testing.T) {
	for _, transport := range []Transport{UDP, TCP} {
		for _, addr := range []netip.Addr{loopback4, loopback6} {
			t.Run(fmt.Sprintf("%s/%s", transport, addr), func(t *testing.T) {
				_, sender, _ := openPair(t, Options{Transport: transport, Timestamping: true}, addr)
				p := make([]byte, 64)
				for i := range 8 {
					bench.MarshalProbe(p, 7, uint64(i))
					if _, err := sender.SendStamped(p, false); err != nil {
						t.Fatal(err)
					}
				}
				time.Sleep(10 * time.Millisecond)
				_, _, _, _, errno := sender.recvmsg(nil, sender.errControl[:], unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT, false)
				if errno != unix.EAGAIN {
					t.Fatalf("error queue after 8 unstamped sends: got %v, want EAGAIN (empty)", errno)
				}
			})
		}
	}
}

func TestSampledUDPKeys(t *testing.T) {
	for _, keyBySend := range []bool{true, false} {
		t.Run(fmt.Sprintf("keyBySend=%v", keyBySend), func(t *testing.T) {
			_, sender, _ := openPair(t, Options{Transport: UDP, Timestamping: true}, loopback4)
			sender.keyBySend = keyBySend
			p := make([]byte, 64)
			for i := range 8 {
				bench.MarshalProbe(p, 7, uint64(i))
				if _, err := sender.SendStamped(p, i%2 == 0); err != nil {
					t.Fatal(err)
				}
			}
			if !sender.keyBySend && keyBySend {
				t.Fatal("the kernel refused SCM_TS_OPT_ID; this test machine runs 6.13 or later, which has it")
			}
			want := []uint32{0, 1, 2, 3}
			if keyBySend {
				want = []uint32{0, 2, 4, 6}
			}
			keys := rawKeys(t, sender, 8)
			for _, info := range []uint32{unix.SCM_TSTAMP_SCHED, unix.SCM_TSTAMP_SND} {
				if got := keys[info]; !slices.Equal(got, want) {
					t.Errorf("keys of SCM_TSTAMP %d: got %v, want %v", info, got, want)
				}
			}
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
