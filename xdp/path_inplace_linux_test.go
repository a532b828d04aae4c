package xdp

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stackgap/stackgap/bench"
	nsbed "github.com/stackgap/stackgap/internal/testbed"
	"github.com/stackgap/stackgap/internal/testbed/bedtest"
)

// inPlaceResult is what the in-place test reflector did.
type inPlaceResult struct {
	replied, dropped, stampedReplies, txStamps int
	err                                        error
}

// startInPlaceReflector reflects probes with RecvInPlace and ReplyInPlace,
// as the engine's reflector does, from a goroutine locked to its thread. It
// drops (does not answer) probes for which drop is true, so the next receive
// must recycle the frame it holds, and asks for a TX stamp on every even one
// it answers.
func startInPlaceReflector(conn bench.InPlaceConn, drop func(seq uint64) bool) (stop func() inPlaceResult) {
	var quit atomic.Bool
	done := make(chan inPlaceResult, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var res inPlaceResult
		onStamp := func(uint64, bench.TxStampKind, int64) { res.txStamps++ }
		for !quit.Load() {
			b, _, err := conn.RecvInPlace(time.Now().Add(20 * time.Millisecond))
			if errors.Is(err, bench.ErrTimeout) {
				continue
			}
			if err != nil {
				res.err = err
				break
			}
			p, err := bench.ParseProbe(b)
			if err != nil {
				res.err = fmt.Errorf("reflector got a bad probe: %w", err)
				break
			}
			if drop(p.Seq) {
				res.dropped++
				continue
			}
			bench.MarkReply(b, 0, 0)
			stamp := p.Seq%2 == 0
			if err := conn.ReplyInPlace(stamp, time.Now().UnixNano()); err != nil {
				res.err = err
				break
			}
			res.replied++
			if stamp {
				res.stampedReplies++
			}
			if err := conn.TxStamps(onStamp); err != nil {
				res.err = err
				break
			}
		}
		// The last completions.
		for end := time.Now().Add(time.Second); res.txStamps < res.stampedReplies && time.Now().Before(end); time.Sleep(time.Millisecond) {
			if err := conn.TxStamps(onStamp); err != nil && res.err == nil {
				res.err = err
			}
		}
		if err := conn.ReplyInPlace(false, time.Now().UnixNano()); err == nil && res.err == nil {
			res.err = errors.New("ReplyInPlace with no probe held succeeded")
		}
		done <- res
	}()
	return func() inPlaceResult {
		quit.Store(true)
		return <-done
	}
}

// TestPathReflectInPlace runs an AF_XDP reflector that answers probes in the
// frames they arrived in, for more probes than the UMEM has frames: every
// frame lent out, answered or dropped, must come back to the FILL ring, the
// replies must be valid frames with the reflector's changes, and only the
// replies that asked for a TX stamp get one.
func TestPathReflectInPlace(t *testing.T) {
	tb := bedtest.New(t, nsbed.Options{})
	path := NewPath(PathOptions{})
	spec := udpSpec(bench.WaitSpin)
	_, refl, sender := udpPair(t, tb, path, path, spec)
	inPlace, ok := refl.(bench.InPlaceConn)
	if !ok {
		t.Fatalf("%T does not implement bench.InPlaceConn", refl)
	}
	stop := startInPlaceReflector(inPlace, func(seq uint64) bool { return seq%5 == 0 })

	n := 3 * DefaultNumFrames
	const token = 0x1a2b
	probe := make([]byte, pathProbeSize)
	buf := make([]byte, bench.MaxProbeSize)
	runtime.LockOSThread()
	answered := 0
	for seq := range uint64(n) {
		bench.MarshalProbe(probe, token, seq)
		if _, err := sender.Send(probe); err != nil {
			t.Fatalf("send %d: %v", seq, err)
		}
		if seq%5 == 0 {
			continue // the reflector drops it
		}
		got, _, err := sender.Recv(buf, time.Now().Add(time.Second))
		if err != nil {
			t.Fatalf("reply to probe %d: %v (after %d answered); reflector counters %v; sender counters %v", seq, err, answered, refl.(bench.Reporter).Counters(), sender.(bench.Reporter).Counters())
		}
		p, err := bench.ParseProbe(buf[:got])
		switch {
		case err != nil:
			t.Fatalf("reply to probe %d: %v", seq, err)
		case got != pathProbeSize || p.Seq != seq || p.Token != token || p.Flags&bench.FlagReply == 0:
			t.Fatalf("reply to probe %d: %d bytes, seq %d, token %#x, flags %#x", seq, got, p.Seq, p.Token, p.Flags)
		}
		answered++
	}
	runtime.UnlockOSThread()
	res := stop()
	if res.err != nil {
		t.Fatal(res.err)
	}
	if res.replied != answered || res.dropped != (n+4)/5 {
		t.Errorf("reflector replied %d and dropped %d, want %d and %d", res.replied, res.dropped, answered, (n+4)/5)
	}
	if res.txStamps != res.stampedReplies {
		t.Errorf("reflector got %d TX stamps for %d stamped replies", res.txStamps, res.stampedReplies)
	}
	sc := sender.(bench.Reporter).Counters()
	rc := refl.(bench.Reporter).Counters()
	for name, v := range map[string]uint64{
		"sender rx_bad_checksum": sc["rx_bad_checksum"], "sender rx_bad_frames": sc["rx_bad_frames"],
		"sender rx_foreign_frames": sc["rx_foreign_frames"], "reflector tx_missing_stamps": rc["tx_missing_stamps"],
		"reflector tx_errors": rc["tx_errors"], "reflector xsk_rx_dropped": rc["xsk_rx_dropped"],
	} {
		if v != 0 {
			t.Errorf("%s = %d, want 0 (sender %v, reflector %v)", name, v, sc, rc)
		}
	}
}

// TestPathNoTimestamping checks that a session opened without timestamping
// declares no TX stamps, asks for none and counts none missing.
func TestPathNoTimestamping(t *testing.T) {
	tb := bedtest.New(t, nsbed.Options{})
	path := NewPath(PathOptions{})
	spec := udpSpec(bench.WaitPoll)
	spec.Timestamping = false
	_, refl, sender := udpPair(t, tb, path, path, spec)
	if set := sender.(bench.StampDeclarer).Stamps(); len(set.Tx) != 0 || len(set.Rx) != 0 {
		t.Errorf("declared stamps %+v without timestamping", set)
	}
	stop := startPathReflector(refl)
	recs := pathPingPong(t, sender, 100)
	res := stop()
	if res.err != nil || len(res.seqs) != 100 {
		t.Errorf("reflector reflected %d of 100 probes: %v", len(res.seqs), res.err)
	}
	if len(recs) != 100 || recs[99].rx.User == 0 {
		t.Errorf("sender got no reply to its last probe")
	}
	for i, r := range recs {
		if r.rx.XDPHook != 0 {
			t.Fatalf("probe %d: XDP hook stamp %d without timestamping", i, r.rx.XDPHook)
		}
	}
	stamps := 0
	for range 20 {
		if err := sender.TxStamps(func(uint64, bench.TxStampKind, int64) { stamps++ }); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if stamps != 0 || res.txStamps != 0 {
		t.Errorf("TX stamps without timestamping: sender %d, reflector %d", stamps, res.txStamps)
	}
	for _, c := range []bench.Conn{sender, refl} {
		if got := c.(bench.Reporter).Counters(); got["tx_missing_stamps"] != 0 || got["rx_missing_metadata"] != 0 || got["tx_completions"] < 100 {
			t.Errorf("counters %v: want tx_completions ≥ 100, no tx_missing_stamps, no rx_missing_metadata", got)
		}
		if notes := strings.Join(c.(bench.Reporter).Notes(), "\n"); !strings.Contains(notes, "timestamping off") {
			t.Errorf("notes do not say timestamping is off:\n%s", notes)
		}
	}
}

// TestPathReflectInPlaceBatches lets probes pile up on the reflector's RX
// ring before it starts: it must answer each of them, kicking the kernel
// once per batch rather than once per reply.
func TestPathReflectInPlaceBatches(t *testing.T) {
	tb := bedtest.New(t, nsbed.Options{})
	path := NewPath(PathOptions{})
	spec := udpSpec(bench.WaitSpin)
	_, refl, sender := udpPair(t, tb, path, path, spec)
	const bursts, burst = 20, 100
	probe := make([]byte, pathProbeSize)
	buf := make([]byte, bench.MaxProbeSize)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var stop func() inPlaceResult
	seen := make(map[uint64]bool)
	for b := range bursts {
		for i := range burst {
			bench.MarshalProbe(probe, 7, uint64(b*burst+i))
			if _, err := sender.Send(probe); err != nil {
				t.Fatal(err)
			}
		}
		if stop == nil {
			// The first burst waits on the RX ring before the reflector runs.
			stop = startInPlaceReflector(refl.(bench.InPlaceConn), func(uint64) bool { return false })
		}
		for range burst {
			n, _, err := sender.Recv(buf, time.Now().Add(time.Second))
			if err != nil {
				t.Fatalf("burst %d: %d replies, then %v", b, len(seen)-b*burst, err)
			}
			p, err := bench.ParseProbe(buf[:n])
			if err != nil || p.Flags&bench.FlagReply == 0 || seen[p.Seq] {
				t.Fatalf("burst %d: bad or repeated reply %+v: %v", b, p, err)
			}
			seen[p.Seq] = true
		}
	}
	res := stop()
	if res.err != nil || res.replied != bursts*burst {
		t.Fatalf("reflector replied %d of %d: %v", res.replied, bursts*burst, res.err)
	}
	c := refl.(bench.Reporter).Counters()
	if c["tx_frames"] != bursts*burst || c["xsk_tx_kicks"] >= c["tx_frames"] {
		t.Errorf("reflector sent %d frames with %d kicks: want all %d, in batches", c["tx_frames"], c["xsk_tx_kicks"], bursts*burst)
	}
	t.Logf("reflector: %d frames, %d kicks", c["tx_frames"], c["xsk_tx_kicks"])
}

// TestPathSendDeferred sends probes in batches, one kick each, the way the
// engine's sender fills a window of many probes in flight, and takes the
// replies once Pending says they wait.
func TestPathSendDeferred(t *testing.T) {
	tb := bedtest.New(t, nsbed.Options{})
	path := NewPath(PathOptions{})
	_, refl, sender := udpPair(t, tb, path, path, udpSpec(bench.WaitSpin))
	batch, ok := sender.(bench.BatchConn)
	if !ok {
		t.Fatalf("%T does not implement bench.BatchConn", sender)
	}
	stop := startPathReflector(refl)
	const batches, size = 50, 40 // 40 > one kick's 32: the Conn kicks on its own once
	probe := make([]byte, pathProbeSize)
	buf := make([]byte, bench.MaxProbeSize)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for b := range batches {
		for i := range size {
			bench.MarshalProbe(probe, 9, uint64(b*size+i))
			if _, err := batch.SendDeferred(probe, i == 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := batch.Flush(); err != nil {
			t.Fatal(err)
		}
		for i := range size {
			if i == size-1 {
				deadline := time.Now().Add(time.Second)
				for !batch.Pending() && time.Now().Before(deadline) {
				}
				if !batch.Pending() {
					t.Fatalf("batch %d: the last reply never showed as pending", b)
				}
			}
			n, _, err := sender.Recv(buf, time.Now().Add(time.Second))
			if err != nil {
				t.Fatalf("batch %d reply %d: %v", b, i, err)
			}
			if p, err := bench.ParseProbe(buf[:n]); err != nil || p.Seq/size != uint64(b) {
				t.Fatalf("batch %d: reply %+v: %v", b, p, err)
			}
		}
	}
	if res := stop(); res.err != nil || len(res.seqs) != batches*size {
		t.Fatalf("reflector reflected %d of %d: %v", len(res.seqs), batches*size, res.err)
	}
	c := sender.(bench.Reporter).Counters()
	if c["tx_frames"] != batches*size || c["xsk_tx_kicks"] > 2*batches {
		t.Errorf("sender sent %d frames with %d kicks, want %d frames with at most %d kicks", c["tx_frames"], c["xsk_tx_kicks"], batches*size, 2*batches)
	}
	if batch.Pending() {
		t.Error("Pending with nothing left to receive")
	}
}
