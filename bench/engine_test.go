package bench_test

// Engine tests over loopback in the test's own network namespace: the real
// reflector and sender loops with kernel sockets, no privileges needed.

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stackgap/stackgap/bench"
	"github.com/stackgap/stackgap/internal/testutil"
	"github.com/stackgap/stackgap/kernelpath"
)

var loopback = netip.MustParseAddr("127.0.0.1")

func paths() map[string]bench.Path { return map[string]bench.Path{"kernel": kernelpath.NewPath()} }

// startReflector serves on an ephemeral loopback port until the test ends.
func startReflector(t *testing.T, o bench.ReflectorOptions) netip.AddrPort {
	t.Helper()
	o.Paths = paths()
	r, err := bench.NewReflector(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return within 10s of cancel")
		}
	})
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

func dial(t *testing.T, peer netip.AddrPort, o bench.ClientOptions) *bench.Client {
	t.Helper()
	cl, err := bench.Dial(context.Background(), peer, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func session(token uint32) bench.SessionParams {
	return bench.SessionParams{Path: "kernel", Transport: "udp", Size: 64, Duration: 5 * time.Second,
		Token: token, Wait: bench.WaitBlock, CPU: -1, Timestamping: true}
}

func TestRunCountsEveryProbe(t *testing.T) {
	peer := startReflector(t, bench.ReflectorOptions{})
	for _, tt := range []struct {
		name     string
		inflight int
		wait     bench.WaitStrategy
		size     int
	}{
		{"block", 1, bench.WaitBlock, 64},
		{"spin", 1, bench.WaitSpin, 64},
		{"inflight 16", 16, bench.WaitBlock, 64},
		{"out-of-band stamps", 4, bench.WaitBlock, bench.HeaderSize},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rd, err := bench.Run(context.Background(), bench.RunOptions{
				Peer: peer, Count: 2000, Warmup: 100, Inflight: tt.inflight, Wait: tt.wait, Size: tt.size, CPU: -1, ReflectorCPU: -1,
			}, paths(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(rd.Phases) != 2 {
				t.Fatalf("%d phases, want udp and tcp", len(rd.Phases))
			}
			for _, pd := range rd.Phases {
				c := pd.Phase.Counters
				if c.Sent != 2000 || c.Received != 2000 || c.Lost+c.Duplicated+c.Late != 0 || c.WarmupReceived != 100 {
					t.Errorf("%s: counters %+v", pd.Phase.Transport, c)
				}
				for _, s := range pd.Series {
					// With several probes in flight TCP may coalesce two
					// writes into one segment; the kernel then stamps only
					// the last. Such probes must be counted as missing.
					var missed uint64
					if pd.Phase.Transport == "tcp" && tt.inflight > 1 && strings.HasPrefix(s.Name, "tx.") {
						m := c.Missing
						if s.Host == "reflector" {
							m = map[string]uint64{"tx_sched": c.Reflector["missing_tx_sched"], "tx_software": c.Reflector["missing_tx_software"]}
						}
						missed = max(m["tx_sched"], m["tx_software"])
					}
					want := expectedCount(s.Host, s.Name, 2000)
					if s.Count() > want || s.Count()+missed < want {
						t.Errorf("%s: %s.%s has %d values and %d missing stamps, want %d", pd.Phase.Transport, s.Host, s.Name, s.Count(), missed, want)
					}
				}
			}
		})
	}
}

// expectedCount is how many of count measured probes a histogram holds with
// the default sampling (every 2nd probe stamped): TX segments and the
// stamped round trip have the stamped half, the plain round trip the other
// half, everything else every probe.
func expectedCount(host, name string, count uint64) uint64 {
	switch {
	case strings.HasPrefix(name, "tx."), host == "sender" && strings.HasPrefix(name, "rtt"):
		return count / 2
	}
	return count
}

func TestReflectorLimits(t *testing.T) {
	peer := startReflector(t, bench.ReflectorOptions{MaxSessions: 1, MaxDuration: time.Minute, IdleTimeout: 300 * time.Millisecond})
	first := dial(t, peer, bench.ClientOptions{})
	if _, _, err := first.Open(session(1)); err != nil {
		t.Fatal(err)
	}
	var re *bench.RemoteError
	second := dial(t, peer, bench.ClientOptions{})
	if _, _, err := second.Open(session(2)); !errors.As(err, &re) || re.Code != bench.CodeLimit || !strings.Contains(err.Error(), "--max-sessions") {
		t.Fatalf("second session: %v", err)
	}
	long := session(3)
	long.Duration = time.Hour
	if _, _, err := second.Open(long); !errors.As(err, &re) || !strings.Contains(err.Error(), "exceeds the reflector's limit") {
		t.Fatalf("long session: %v", err)
	}
	// The first session receives nothing: it ends by idle timeout and says so.
	time.Sleep(600 * time.Millisecond)
	rep, err := first.CloseSession()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(rep.Notes, ";"), "idle timeout") {
		t.Fatalf("idle session notes: %q", rep.Notes)
	}
	// Its slot is free again. (The second connection, silent for longer
	// than the idle timeout, was closed by the reflector: dial again.)
	third := dial(t, peer, bench.ClientOptions{})
	if _, _, err := third.Open(session(4)); err != nil {
		t.Fatalf("after the first session closed: %v", err)
	}
}

func TestReflectorRejects(t *testing.T) {
	peer := startReflector(t, bench.ReflectorOptions{})
	cl := dial(t, peer, bench.ClientOptions{})
	for _, tt := range []struct {
		name   string
		mutate func(*bench.SessionParams)
		want   string
	}{
		{"path", func(p *bench.SessionParams) { p.Path = "dpdk" }, `path "dpdk" not served`},
		{"transport", func(p *bench.SessionParams) { p.Transport = "sctp" }, `unknown transport "sctp"`},
		{"size", func(p *bench.SessionParams) { p.Size = 5 }, "probe size 5 out of range"},
		{"duration", func(p *bench.SessionParams) { p.Duration = 0 }, "must be positive"},
		{"inflight", func(p *bench.SessionParams) { p.Inflight = bench.MaxInflight + 1 }, "invalid inflight 1025"},
		{"negative inflight", func(p *bench.SessionParams) { p.Inflight = -1 }, "invalid inflight -1"},
		{"cpu", func(p *bench.SessionParams) { p.CPU = 4096 }, "cpu 4096 not available"},
	} {
		p := session(9)
		tt.mutate(&p)
		if _, _, err := cl.Open(p); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
	// A live token cannot be taken twice.
	if _, _, err := cl.Open(session(7)); err != nil {
		t.Fatal(err)
	}
	other := dial(t, peer, bench.ClientOptions{})
	if _, _, err := other.Open(session(7)); err == nil || !strings.Contains(err.Error(), "token already in use") {
		t.Errorf("duplicate token: %v", err)
	}
}

func TestAuthentication(t *testing.T) {
	peer := startReflector(t, bench.ReflectorOptions{Secret: []byte("s3cret")})
	ctx := context.Background()
	cl, err := bench.Dial(ctx, peer, bench.ClientOptions{Secret: []byte("s3cret")})
	if err != nil {
		t.Fatalf("right secret: %v", err)
	}
	// Left open on purpose: stopping the reflector must not wait for it.
	defer cl.Close()
	for _, tt := range []struct {
		secret []byte
		want   string
	}{{[]byte("wrong"), "wrong shared secret"}, {nil, "requires a shared secret"}} {
		if _, err := bench.Dial(ctx, peer, bench.ClientOptions{Secret: tt.secret}); !errors.Is(err, bench.ErrAuth) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("secret %q: %v", tt.secret, err)
		}
	}
	open := startReflector(t, bench.ReflectorOptions{})
	if _, err := bench.Dial(ctx, open, bench.ClientOptions{Secret: []byte("s3cret")}); !errors.Is(err, bench.ErrAuth) {
		t.Errorf("secret against an open reflector: %v", err)
	}
}

func TestRunInterrupted(t *testing.T) {
	peer := startReflector(t, bench.ReflectorOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	rd, err := bench.Run(ctx, bench.RunOptions{Peer: peer, Duration: time.Minute, Transports: []string{"udp"}, CPU: -1, ReflectorCPU: -1}, paths(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("interrupted run took %v", took)
	}
	if !rd.Interrupted || len(rd.Phases) != 1 || rd.Phases[0].Phase.Counters.WarmupReceived == 0 {
		t.Fatalf("interrupted run: %+v", rd)
	}
	if !strings.Contains(strings.Join(rd.Phases[0].Phase.Notes, ";"), "interrupted") {
		t.Fatalf("no interruption note: %q", rd.Phases[0].Phase.Notes)
	}
}

func TestRunOptionsValidate(t *testing.T) {
	peer := netip.AddrPortFrom(loopback, 7878)
	for _, tt := range []struct {
		name string
		o    bench.RunOptions
		want string
	}{
		{"no peer", bench.RunOptions{}, "--peer"},
		{"port 0", bench.RunOptions{Peer: netip.AddrPortFrom(loopback, 0)}, "port 0"},
		{"family", bench.RunOptions{Peer: peer, Local: netip.MustParseAddr("::1")}, "different IP families"},
		{"size", bench.RunOptions{Peer: peer, Size: 17}, "probe size 17"},
		{"both", bench.RunOptions{Peer: peer, Duration: time.Second, Count: 3}, "exclude each other"},
		{"negative", bench.RunOptions{Peer: peer, Duration: -time.Second}, "invalid duration"},
		{"inflight", bench.RunOptions{Peer: peer, Inflight: bench.MaxInflight + 1}, "invalid inflight"},
		{"timeout", bench.RunOptions{Peer: peer, Timeout: 2 * time.Minute}, "at most 1m"},
		{"wait", bench.RunOptions{Peer: peer, Wait: "nap"}, `unknown wait strategy "nap"`},
		{"path", bench.RunOptions{Peer: peer, Paths: []string{"dpdk"}}, `unknown path "dpdk" (available: kernel)`},
		{"transport", bench.RunOptions{Peer: peer, Transports: []string{"quic"}}, `unknown transport "quic"`},
		{"busy poll", bench.RunOptions{Peer: peer, BusyPoll: -1}, "invalid busy-poll"},
		{"ok", bench.RunOptions{Peer: peer}, ""},
	} {
		o := tt.o
		o.Defaults()
		err := o.Validate(paths())
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestRunEchoPeer: plain UDP and TCP echo servers (no control channel) on
// one port as the peer.
func TestRunEchoPeer(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	peer := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	ln, err := net.Listen("tcp", peer.String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	testutil.ServeEcho(ln, pc)
	rd, err := bench.Run(context.Background(), bench.RunOptions{Peer: peer, Echo: true, Transports: []string{"udp", "tcp"},
		Count: 1000, Warmup: 10, CPU: -1, ReflectorCPU: -1}, paths(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rd.Phases) != 2 {
		t.Fatalf("%d phases, want udp and tcp", len(rd.Phases))
	}
	for _, pd := range rd.Phases {
		c := pd.Phase.Counters
		if c.Sent != 1000 || c.Received != 1000 || c.Lost != 0 {
			t.Errorf("%s: counters %+v", pd.Phase.Transport, c)
		}
		// The sender's own series only: an echo peer reports no residence
		// to subtract from the round trip.
		rtts := uint64(0)
		for _, s := range pd.Series {
			if s.Host != "sender" || s.Name == "rtt_minus_residence" {
				t.Errorf("%s: echo run has a series %s.%s", pd.Phase.Transport, s.Host, s.Name)
			}
			if s.Name == "rtt" || s.Name == "rtt.stamped" {
				rtts += s.Count()
			}
		}
		if rtts != 1000 {
			t.Errorf("%s: %d round trips in rtt and rtt.stamped, want 1000", pd.Phase.Transport, rtts)
		}
	}
}
