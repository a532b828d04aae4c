package kernelpath

import (
	"runtime"
	"testing"
	"time"

	"github.com/stackgap/stackgap/bench"
)

func discardStamp(uint64, bench.TxStampKind, int64) {}

// BenchmarkUDPRoundTrip measures one UDP ping-pong over loopback in a fresh
// namespace: Send, the reflector's Recv and Send, Recv, and with timestamping
// a TxStamps drain on both sides. The target is 0 allocs/op.
func BenchmarkUDPRoundTrip(b *testing.B) {
	for _, wait := range []bench.WaitStrategy{bench.WaitBlock, bench.WaitSpin} {
		for _, stamps := range []bool{false, true} {
			name := string(wait) + map[bool]string{false: "/plain", true: "/timestamped"}[stamps]
			b.Run(name, func(b *testing.B) {
				benchmarkRoundTrip(b, Options{Transport: UDP, Wait: wait, Timestamping: stamps})
			})
		}
	}
}

func benchmarkRoundTrip(b *testing.B, o Options) {
	l, sender, _ := openPair(b, o, loopback4)
	const stopSeq = ^uint64(0)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		c, err := l.Accept(time.Now().Add(10 * time.Second))
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		buf := make([]byte, 2048)
		for {
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
			if _, err := c.Send(buf[:n]); err != nil {
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
		if _, err := sender.Send(probe); err != nil {
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
