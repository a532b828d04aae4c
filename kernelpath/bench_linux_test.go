package kernelpath

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stackgap/stackgap/bench"
)

func discardStamp(uint64, bench.TxStampKind, int64) {}

// BenchmarkRoundTrip measures one ping-pong over loopback in a fresh
// namespace: Send, the reflector's Recv and Send, Recv, and a TxStamps call on
// both sides. "stamp-every-N": every Nth send of each side asks for TX stamps
// (0: timestamping off). The target is 0 allocs/op.
func BenchmarkRoundTrip(b *testing.B) {
	for _, transport := range []Transport{UDP, TCP} {
		for _, wait := range []bench.WaitStrategy{bench.WaitBlock, bench.WaitSpin} {
			for _, every := range []int{0, 1, 2} {
				name := fmt.Sprintf("%s/%s/stamp-every-%d", transport, wait, every)
				b.Run(name, func(b *testing.B) {
					benchmarkRoundTrip(b, Options{Transport: transport, Wait: wait, Timestamping: every > 0}, every)
				})
			}
		}
	}
}

func benchmarkRoundTrip(b *testing.B, o Options, every int) {
	stamp := func(i uint64) bool { return every > 0 && i%uint64(every) == 0 }
	l, sender, reflector := openPair(b, o, loopback4)
	const stopSeq = ^uint64(0)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		c := reflector // TCP: accepted by openPair, which closes it
		if c == nil {
			var err error
			if c, err = l.Accept(time.Now().Add(10 * time.Second)); err != nil {
				done <- err
				return
			}
			defer c.Close()
		}
		buf := make([]byte, 2048)
		for i := uint64(0); ; i++ {
			n, _, err := c.Recv(buf, time.Now().Add(10*time.Second))
			if err != nil {
				done <- err
				return
			}
			p, err := bench.ParseProbe(buf[:n])
			if err != nil || p.Seq == stopSeq {
				done <- err
				return
			}
			bench.MarkReply(buf[:n], 0, 0)
			if _, err := c.SendStamped(buf[:n], stamp(i)); err != nil {
				done <- err
				return
			}
			if err := c.TxStamps(discardStamp); err != nil {
				done <- err
				return
			}
		}
	}()

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	probe, buf := make([]byte, 64), make([]byte, 2048)
	bench.MarshalProbe(probe, 1, 0)
	var seq uint64
	b.ReportAllocs()
	for b.Loop() {
		bench.SetProbeSeq(probe, seq)
		seq++
		if _, err := sender.SendStamped(probe, stamp(seq-1)); err != nil {
			b.Fatal(err)
		}
		if _, _, err := sender.Recv(buf, time.Now().Add(10*time.Second)); err != nil {
			b.Fatal(err)
		}
		if err := sender.TxStamps(discardStamp); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	bench.SetProbeSeq(probe, stopSeq)
	if _, err := sender.Send(probe); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
