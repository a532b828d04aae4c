package xdp

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stackgap/stackgap/bench"
	nsbed "github.com/stackgap/stackgap/internal/testbed"
	"github.com/stackgap/stackgap/internal/testbed/bedtest"
	"github.com/stackgap/stackgap/kernelpath"
)

// burstResult is what the burst test reflector did.
type burstResult struct {
	replied, dropped, bursts, largest int
	err                               error
}

// startBurstReflector reflects probes with ReflectBurst, as the engine's
// reflector does in a session without timestamping, from a goroutine locked
// to its thread. It declines the probes for which drop is true, so their
// frames must go back to the FILL ring unsent.
func startBurstReflector(conn bench.BurstReflector, drop func(seq uint64) bool) (stop func() burstResult) {
	var quit atomic.Bool
	done := make(chan burstResult, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var res burstResult
		reply := func(b []byte, rxUser int64) bool {
			p, err := bench.ParseProbe(b)
			switch {
			case err != nil:
				res.err = fmt.Errorf("reflector got a bad probe: %w", err)
				return false
			case rxUser == 0:
				res.err = errors.New("burst without a user RX stamp")
			case drop(p.Seq):
				res.dropped++
				return false
			}
			bench.MarkReply(b, bench.StampUnknown, 0)
			res.replied++
			return true
		}
		for !quit.Load() && res.err == nil {
			n, err := conn.ReflectBurst(time.Now().Add(20*time.Millisecond), reply)
			if errors.Is(err, bench.ErrTimeout) {
				continue
			}
			if err != nil {
				res.err = err
				break
			}
			res.bursts++
			res.largest = max(res.largest, n)
		}
		done <- res
	}()
	return func() burstResult {
		quit.Store(true)
		return <-done
	}
}

// TestPathReflectBurst sends windows of probes to a burst reflector, more
// probes in all than the UMEM has frames, over IPv4 and IPv6: every frame,
// answered or declined, must come back to the FILL ring; every reply must
// be a valid frame (the sender verifies its checksums) from the reflector's
// address to the sender's, with the reflector's changes; the replies of a
// burst go out together. Both ends keep their FILL ring only as deep
// as the window needs (FillFramesFor), and no probe is lost for it.
func TestPathReflectBurst(t *testing.T) {
	for _, ipv6 := range []bool{false, true} {
		t.Run(familyName(ipv6), func(t *testing.T) {
			tb := bedtest.New(t, nsbed.Options{})
			path := NewPath(PathOptions{})
			const window, token = 100, 0x7b
			spec := udpSpec(bench.WaitSpin)
			spec.Timestamping = false
			// Both ends keep their FILL ring just deep enough for the window.
			spec.Inflight = window
			ln, refl := listenIn(t, tb, nsbed.B, path, bench.ListenSpec{ConnSpec: spec, Local: netip.AddrPortFrom(addrOf(tb, nsbed.B, ipv6), 0)})
			local := addrOf(tb, nsbed.A, ipv6)
			sender := dialIn(t, tb, nsbed.A, path, bench.DialSpec{ConnSpec: spec, Local: local, Remote: netip.AddrPortFrom(addrOf(tb, nsbed.B, ipv6), ln.Port())})
			burst, ok := refl.(bench.BurstReflector)
			if !ok {
				t.Fatalf("%T does not implement bench.BurstReflector", refl)
			}
			stop := startBurstReflector(burst, func(seq uint64) bool { return seq%5 == 0 })

			windows := 3 * DefaultNumFrames / window
			probe := make([]byte, pathProbeSize)
			buf := make([]byte, bench.MaxProbeSize)
			seen := make(map[uint64]bool)
			runtime.LockOSThread()
			for w := range windows {
				want := 0
				for i := range window {
					seq := uint64(w*window + i)
					bench.MarshalProbe(probe, token, seq)
					if _, err := sender.Send(probe); err != nil {
						t.Fatalf("send %d: %v", seq, err)
					}
					if seq%5 != 0 {
						want++
					}
				}
				for range want {
					n, _, err := sender.Recv(buf, time.Now().Add(time.Second))
					if err != nil {
						t.Fatalf("window %d: %v after %d replies; reflector %v; sender %v", w, err, len(seen),
							refl.(bench.Reporter).Counters(), sender.(bench.Reporter).Counters())
					}
					p, err := bench.ParseProbe(buf[:n])
					switch {
					case err != nil:
						t.Fatalf("window %d: bad reply: %v", w, err)
					case n != pathProbeSize || p.Token != token || p.Flags&bench.FlagReply == 0 || p.Seq%5 == 0 || seen[p.Seq]:
						t.Fatalf("window %d: unexpected reply of %d bytes %+v (seen before: %v)", w, n, p, seen[p.Seq])
					}
					seen[p.Seq] = true
				}
			}
			runtime.UnlockOSThread()
			res := stop()
			if res.err != nil {
				t.Fatal(res.err)
			}
			n := windows * window
			if res.replied != len(seen) || res.dropped != n/5 {
				t.Errorf("reflector replied %d and declined %d, want %d and %d", res.replied, res.dropped, len(seen), n/5)
			}
			if got := refl.(interface{ RemoteAddr() netip.AddrPort }).RemoteAddr().Addr(); got != local {
				t.Errorf("reflector's RemoteAddr is %v, want the sender's %v", got, local)
			}
			sc := sender.(bench.Reporter).Counters()
			rc := refl.(bench.Reporter).Counters()
			for name, v := range map[string]uint64{
				"sender rx_bad_checksum": sc["rx_bad_checksum"], "sender rx_bad_frames": sc["rx_bad_frames"],
				"sender rx_foreign_frames": sc["rx_foreign_frames"], "reflector tx_errors": rc["tx_errors"],
				"reflector tx_unmatched_completions": rc["tx_unmatched_completions"], "reflector xsk_rx_dropped": rc["xsk_rx_dropped"],
				"reflector rx_bad_checksum": rc["rx_bad_checksum"],
			} {
				if v != 0 {
					t.Errorf("%s = %d, want 0 (sender %v, reflector %v)", name, v, sc, rc)
				}
			}
			if rc["rx_probes"] != uint64(n) || rc["tx_frames"] != uint64(len(seen)) || rc["rx_bursts"] != uint64(res.bursts) {
				t.Errorf("reflector counters %v: want rx_probes %d, tx_frames %d, rx_bursts %d", rc, n, len(seen), res.bursts)
			}
			// A kick the kernel answers with EAGAIN is retried and counted
			// again, so kicks are compared with frames, not with bursts.
			if res.largest < 2 || rc["xsk_tx_kicks"] >= rc["tx_frames"] {
				t.Errorf("%d bursts of up to %d probes, %d kicks for %d frames: want bursts of several probes, sent with fewer kicks than frames",
					res.bursts, res.largest, rc["xsk_tx_kicks"], rc["tx_frames"])
			}
			for _, c := range []bench.Conn{sender, refl} {
				want := fmt.Sprintf("FILL ring kept at %d of the %d UMEM frames", FillFramesFor(window), DefaultNumFrames)
				if notes := strings.Join(c.(bench.Reporter).Notes(), "\n"); !strings.Contains(notes, want) {
					t.Errorf("notes do not say %q:\n%s", want, notes)
				}
			}
			t.Logf("reflector: %d probes in %d bursts (largest %d), %d replies, %d kicks", n, res.bursts, res.largest, len(seen), rc["xsk_tx_kicks"])
		})
	}
}

// TestPathReflectBurstKernelSender reflects a kernel UDP socket's probes:
// over veth the kernel leaves their UDP checksum to an offload that never
// runs, so the burst reflector must compute the replies' checksums rather
// than adjust the requests', or the sender's kernel drops every reply.
func TestPathReflectBurstKernelSender(t *testing.T) {
	const n = 200
	for _, ipv6 := range []bool{false, true} {
		t.Run(familyName(ipv6), func(t *testing.T) {
			tb := bedtest.New(t, nsbed.Options{})
			spec := udpSpec(bench.WaitSpin)
			spec.Timestamping = false
			ln, refl := listenIn(t, tb, nsbed.B, NewPath(PathOptions{}), bench.ListenSpec{
				ConnSpec: spec, Local: netip.AddrPortFrom(addrOf(tb, nsbed.B, ipv6), 0)})
			sender := dialIn(t, tb, nsbed.A, kernelpath.NewPath(), bench.DialSpec{ConnSpec: udpSpec(bench.WaitBlock),
				Local: addrOf(tb, nsbed.A, ipv6), Remote: netip.AddrPortFrom(addrOf(tb, nsbed.B, ipv6), ln.Port())})
			stop := startBurstReflector(refl.(bench.BurstReflector), func(uint64) bool { return false })
			recs := pathPingPong(t, sender, n)
			res := stop()
			if res.err != nil || res.replied != n {
				t.Fatalf("reflector replied %d of %d: %v", res.replied, n, res.err)
			}
			for i, r := range recs {
				if r.replies != 1 {
					t.Fatalf("probe %d: %d replies", i, r.replies)
				}
			}
			c := refl.(bench.Reporter).Counters()
			if c["rx_bad_frames"] != 0 || c["rx_foreign_frames"] != 0 {
				t.Errorf("reflector counters %v: want no bad or foreign frames", c)
			}
			// veth offers checksum offload, so the kernel leaves every
			// probe's checksum to it.
			if c["rx_bad_checksum"] != n {
				t.Errorf("rx_bad_checksum = %d, want all %d kernel probes (checksum left to an offload)", c["rx_bad_checksum"], n)
			}
		})
	}
}

// TestPathReflectBurstJoins holds a burst of one probe in the reflector's
// hands until five more wait on its RX ring: they must join the burst, and
// all six replies leave with one kick.
func TestPathReflectBurstJoins(t *testing.T) {
	tb := bedtest.New(t, nsbed.Options{})
	spec := udpSpec(bench.WaitSpin)
	spec.Timestamping = false
	ln, refl := listenIn(t, tb, nsbed.B, NewPath(PathOptions{}), bench.ListenSpec{ConnSpec: spec, Local: netip.AddrPortFrom(addrOf(tb, nsbed.B, false), 0)})
	sender := dialIn(t, tb, nsbed.A, NewPath(PathOptions{}), bench.DialSpec{ConnSpec: spec, Local: addrOf(tb, nsbed.A, false),
		Remote: netip.AddrPortFrom(addrOf(tb, nsbed.B, false), ln.Port())})
	const token, joining = 0x7b, 5
	held, proceed := make(chan struct{}), make(chan struct{})
	type outcome struct {
		handed int
		err    error
	}
	done := make(chan outcome, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		first := true
		n, err := refl.(bench.BurstReflector).ReflectBurst(time.Now().Add(5*time.Second), func(b []byte, _ int64) bool {
			if first {
				first = false
				close(held)
				<-proceed
			}
			bench.MarkReply(b, bench.StampUnknown, 0)
			return true
		})
		done <- outcome{n, err}
	}()
	probe := make([]byte, pathProbeSize)
	send := func(seq uint64) {
		bench.MarshalProbe(probe, token, seq)
		if _, err := sender.Send(probe); err != nil {
			t.Fatalf("send %d: %v", seq, err)
		}
	}
	send(0)
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("the reflector got no probe")
	}
	for seq := range uint64(joining) {
		send(seq + 1)
	}
	// Give the five time to reach the reflector's RX ring: the XDP program
	// runs inside each send's kick, so they are there well before this.
	time.Sleep(50 * time.Millisecond)
	close(proceed)
	res := <-done
	if res.err != nil || res.handed != 1+joining {
		t.Fatalf("ReflectBurst handed %d probes (%v), want %d", res.handed, res.err, 1+joining)
	}
	buf := make([]byte, bench.MaxProbeSize)
	for range 1 + joining {
		if _, _, err := sender.Recv(buf, time.Now().Add(time.Second)); err != nil {
			t.Fatalf("reply: %v", err)
		}
	}
	rc := refl.(bench.Reporter).Counters()
	if rc["rx_bursts"] != 1 || rc["rx_joined"] != joining || rc["tx_frames"] != 1+joining || rc["xsk_tx_kicks"] != 1 {
		t.Errorf("reflector counters %v: want one burst of 6, 5 of them joined, sent with one kick", rc)
	}
}
