package kernelpath

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/stackgap/stackgap/bench"
)

// rawStreamPeer connects a plain TCP socket to a TCP Listener in a fresh
// namespace and returns it with the accepted Conn, so a test can write any
// byte stream at the Conn.
func rawStreamPeer(t *testing.T, o Options) (raw *net.TCPConn, c *Conn) {
	t.Helper()
	o.Transport = TCP
	inFreshNetns(t, func() error {
		l, err := Listen(netip.AddrPortFrom(loopback4, 0), o)
		if err != nil {
			return err
		}
		defer l.Close()
		nc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			return err
		}
		raw = nc.(*net.TCPConn)
		if c, err = l.Accept(time.Now().Add(5 * time.Second)); err != nil {
			raw.Close()
			return err
		}
		return nil
	})
	settleTimestamping(o)
	t.Cleanup(func() {
		raw.Close()
		c.Close()
	})
	return raw, c
}

// writeInPieces writes stream in pieces of the given sizes with a pause
// between them, so the reader sees probes split across reads.
func writeInPieces(w io.Writer, stream []byte, pieces []int, pause time.Duration) error {
	for i := 0; len(stream) > 0; i++ {
		n := min(pieces[i%len(pieces)], len(stream))
		if _, err := w.Write(stream[:n]); err != nil {
			return err
		}
		stream = stream[n:]
		time.Sleep(pause)
	}
	return nil
}

func TestTCPRecvFramesSplitProbes(t *testing.T) {
	for _, wait := range []bench.WaitStrategy{bench.WaitBlock, bench.WaitSpin} {
		t.Run(string(wait), func(t *testing.T) {
			raw, c := rawStreamPeer(t, Options{Wait: wait, Timestamping: true})
			stream, probes := probeStream(bench.HeaderSize, 64, 3000, bench.InBandSize, 100)
			errc := make(chan error, 1)
			go func() {
				err := writeInPieces(raw, stream, []int{1, 17, 5, 40, 2000, 3}, time.Millisecond)
				if err == nil {
					err = raw.CloseWrite()
				}
				errc <- err
			}()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			buf := make([]byte, 4096)
			for i, want := range probes {
				n, rx, err := c.Recv(buf, time.Now().Add(5*time.Second))
				if err != nil {
					t.Fatalf("probe %d: %v", i, err)
				}
				if !bytes.Equal(buf[:n], want) {
					t.Fatalf("probe %d: got %d bytes %x…, want %d bytes %x…", i, n, buf[:min(n, 20)], len(want), want[:20])
				}
				if rx.Software == 0 || rx.User < rx.Software {
					t.Errorf("probe %d: rx stamps %+v, want 0 < Software ≤ User", i, rx)
				}
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			_, _, err := c.Recv(buf, time.Now().Add(5*time.Second))
			if !errors.Is(err, io.EOF) {
				t.Fatalf("Recv after the peer closed: got %v, want io.EOF", err)
			}
			if got := c.Stats().Recvs; got != uint64(len(probes)) {
				t.Errorf("Stats.Recvs = %d, want %d", got, len(probes))
			}
		})
	}
}

func TestTCPRecvRejectsCorruptStream(t *testing.T) {
	raw, c := rawStreamPeer(t, Options{})
	good, _ := probeStream(64)
	if _, err := raw.Write(append(good, "not a probe at all"...)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	if _, _, err := c.Recv(buf, time.Now().Add(5*time.Second)); err != nil {
		t.Fatalf("the valid probe before the garbage: %v", err)
	}
	for range 2 {
		_, _, err := c.Recv(buf, time.Now().Add(5*time.Second))
		if !errors.Is(err, ErrCorruptStream) || !errors.Is(err, bench.ErrBadMagic) {
			t.Fatalf("Recv on garbage: got %v, want ErrCorruptStream wrapping bench.ErrBadMagic", err)
		}
	}
}

func TestTCPRecvTruncatedProbeAtClose(t *testing.T) {
	raw, c := rawStreamPeer(t, Options{})
	good, _ := probeStream(64)
	if _, err := raw.Write(good[:40]); err != nil {
		t.Fatal(err)
	}
	if err := raw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.Recv(make([]byte, 100), time.Now().Add(5*time.Second))
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Recv on a probe cut by close: got %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestRecvBufferTooSmall(t *testing.T) {
	for _, transport := range []Transport{UDP, TCP} {
		t.Run(string(transport), func(t *testing.T) {
			l, sender, reflector := openPair(t, Options{Transport: transport}, loopback4)
			p := make([]byte, 200)
			bench.MarshalProbe(p, 1, 0)
			if _, err := sender.Send(p); err != nil {
				t.Fatal(err)
			}
			if reflector == nil {
				var err error
				if reflector, err = l.Accept(time.Now().Add(5 * time.Second)); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { reflector.Close() })
			}
			if _, _, err := reflector.Recv(make([]byte, 100), time.Now().Add(5*time.Second)); err == nil {
				t.Fatal("Recv into a buffer smaller than the probe succeeded")
			}
			if transport == TCP {
				// The probe stays buffered: a big enough buffer gets it.
				n, _, err := reflector.Recv(make([]byte, 300), time.Now().Add(5*time.Second))
				if err != nil || n != len(p) {
					t.Fatalf("Recv with a big enough buffer: %d bytes, %v; want %d", n, err, len(p))
				}
			}
		})
	}
}
