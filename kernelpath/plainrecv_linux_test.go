package kernelpath

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stackgap/stackgap/bench"
	"golang.org/x/sys/unix"
)

// TestPlainUDPReceive runs UDP without timestamping, where datagrams are read
// with recvfrom: replies reach the source of the last datagram, a datagram
// longer than the buffer is an error, and queue drops are still counted.
func TestPlainUDPReceive(t *testing.T) {
	for _, addr := range []netip.Addr{loopback4, loopback6} {
		for _, wait := range []bench.WaitStrategy{bench.WaitBlock, bench.WaitSpin} {
			t.Run(fmt.Sprintf("%s/%s", addr, wait), func(t *testing.T) {
				o := Options{Transport: UDP, Wait: wait}
				l, sender, _ := openPair(t, o, addr)
				reflector, err := l.Accept(time.Now().Add(time.Second))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { reflector.Close() })
				if !reflector.plainRecv() || !sender.plainRecv() {
					t.Fatal("UDP without timestamping does not receive with recvfrom")
				}
				p, buf := make([]byte, 64), make([]byte, 256)
				for i := range 3 {
					bench.MarshalProbe(p, 9, uint64(i))
					if _, err := sender.Send(p); err != nil {
						t.Fatal(err)
					}
					n, rx, err := reflector.Recv(buf, time.Now().Add(time.Second))
					if err != nil || n != len(p) || !bytes.Equal(buf[:n], p) || rx.User == 0 {
						t.Fatalf("reflector Recv: n %d, user %d, err %v; want the %d-byte probe", n, rx.User, err, len(p))
					}
					if got := reflector.RemoteAddr(); got != sender.LocalAddr() {
						t.Fatalf("reflector's peer %v, want the sender %v", got, sender.LocalAddr())
					}
					if _, err := reflector.Send(buf[:n]); err != nil {
						t.Fatal(err)
					}
					if n, _, err := sender.Recv(buf, time.Now().Add(time.Second)); err != nil || !bytes.Equal(buf[:n], p) {
						t.Fatalf("sender Recv: n %d, err %v; want the probe back", n, err)
					}
				}
				if _, err := sender.Send(make([]byte, 300)); err != nil {
					t.Fatal(err)
				}
				if _, _, err := reflector.Recv(buf, time.Now().Add(time.Second)); err == nil || !strings.Contains(err.Error(), "longer than") {
					t.Fatalf("Recv of a 300-byte datagram into 256 bytes: got %v, want a truncation error", err)
				}

				// Overflow the reflector's receive queue.
				if err := unix.SetsockoptInt(reflector.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1); err != nil {
					t.Fatal(err)
				}
				for range 256 {
					if _, err := sender.Send(p); err != nil {
						t.Fatal(err)
					}
				}
				if s := reflector.Stats(); s.RxQueueDrops == 0 || s.Recvs != 3 {
					t.Fatalf("after overflowing the receive queue: RxQueueDrops %d, Recvs %d; want drops and 3 receives", s.RxQueueDrops, s.Recvs)
				}
			})
		}
	}
}

// TestPlainTCPReceive runs TCP without timestamping, where the stream is read
// with recvfrom: probes travel both ways, several probes sent back to back
// are framed one per Recv, an idle stream times out, and the peer closing is
// io.EOF.
func TestPlainTCPReceive(t *testing.T) {
	for _, addr := range []netip.Addr{loopback4, loopback6} {
		for _, wait := range []bench.WaitStrategy{bench.WaitBlock, bench.WaitSpin} {
			t.Run(fmt.Sprintf("%s/%s", addr, wait), func(t *testing.T) {
				o := Options{Transport: TCP, Wait: wait}
				_, sender, reflector := openPair(t, o, addr)
				if !reflector.plainRecv() || !sender.plainRecv() {
					t.Fatal("TCP without timestamping does not receive with recvfrom")
				}
				buf := make([]byte, bench.MaxProbeSize)
				sizes := []int{bench.HeaderSize, 64, 1500, 3000}
				for i, size := range sizes {
					p := make([]byte, size)
					bench.MarshalProbe(p, 9, uint64(i))
					if _, err := sender.Send(p); err != nil {
						t.Fatal(err)
					}
					n, rx, err := reflector.Recv(buf, time.Now().Add(time.Second))
					if err != nil || !bytes.Equal(buf[:n], p) {
						t.Fatalf("reflector Recv: n %d, err %v; want the %d-byte probe", n, err, size)
					}
					if rx.User == 0 || rx.Software != 0 || rx.Hardware != 0 {
						t.Fatalf("reflector rx stamps %+v, want only User", rx)
					}
					if _, err := reflector.Send(buf[:n]); err != nil {
						t.Fatal(err)
					}
					if n, _, err := sender.Recv(buf, time.Now().Add(time.Second)); err != nil || !bytes.Equal(buf[:n], p) {
						t.Fatalf("sender Recv: n %d, err %v; want the probe back", n, err)
					}
				}

				// Back-to-back probes arrive in few reads; each Recv returns one.
				var burst [][]byte
				for i := range 20 {
					p := make([]byte, sizes[i%len(sizes)])
					bench.MarshalProbe(p, 9, uint64(100+i))
					if _, err := sender.Send(p); err != nil {
						t.Fatal(err)
					}
					burst = append(burst, p)
				}
				for i, want := range burst {
					n, _, err := reflector.Recv(buf, time.Now().Add(time.Second))
					if err != nil || !bytes.Equal(buf[:n], want) {
						t.Fatalf("burst probe %d: n %d, err %v; want the %d-byte probe", i, n, err, len(want))
					}
				}

				if _, _, err := reflector.Recv(buf, time.Now().Add(30*time.Millisecond)); !errors.Is(err, bench.ErrTimeout) {
					t.Fatalf("Recv on an idle stream: got %v, want bench.ErrTimeout", err)
				}
				if err := sender.Close(); err != nil {
					t.Fatal(err)
				}
				if _, _, err := reflector.Recv(buf, time.Now().Add(time.Second)); !errors.Is(err, io.EOF) {
					t.Fatalf("Recv after the peer closed: got %v, want io.EOF", err)
				}
				if s := reflector.Stats(); s.Recvs != uint64(len(sizes)+len(burst)) || s.RxMissingStamps != 0 {
					t.Fatalf("reflector stats %+v, want %d receives and no missing stamps", s, len(sizes)+len(burst))
				}
			})
		}
	}
}
