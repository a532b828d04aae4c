package main

// End-to-end tests: the real stackgap and stackgap-reflect binaries over a
// real veth pair between two network namespaces. They need root; outside CI
// they skip without it, under CI=true they fail.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/stackgap/stackgap/bench"
	"github.com/stackgap/stackgap/internal/testbed"
	"github.com/stackgap/stackgap/internal/testutil"
	"github.com/stackgap/stackgap/results"
	"github.com/stackgap/stackgap/xdp"
)

const testPrefix = "sge2e"

var binDir string // where TestMain built the binaries

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stackgap-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	// TestNotRoot runs a binary as nobody.
	os.Chmod(dir, 0o755)
	build := exec.Command("go", "build", "-o", dir+"/", "github.com/stackgap/stackgap/cmd/stackgap", "github.com/stackgap/stackgap/cmd/stackgap-reflect")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := testutil.CheckNoLeaks(m, testPrefix)
	os.RemoveAll(dir)
	os.Exit(code)
}

func bin(name string) string { return filepath.Join(binDir, name) }

// hosts is a testbed with a reflector running in B.
type hosts struct {
	tb        *testbed.Testbed
	reflector *exec.Cmd
	stderr    *bytes.Buffer
	killed    bool // the test killed the reflector on purpose
}

func newTestbed(t *testing.T) *testbed.Testbed {
	t.Helper()
	testutil.RequireRoot(t)
	tb, err := testbed.New(testbed.Options{Prefix: testPrefix})
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	t.Cleanup(func() {
		if err := tb.Close(); err != nil {
			t.Errorf("close testbed: %v", err)
		}
	})
	return tb
}

// startReflector starts stackgap-reflect in B with extra flags and waits until it listens.
func startReflector(t *testing.T, tb *testbed.Testbed, args ...string) *hosts {
	t.Helper()
	h := &hosts{tb: tb, stderr: new(bytes.Buffer)}
	cmd := exec.Command(bin("stackgap-reflect"), args...)
	cmd.Stderr = h.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Start(testbed.B, cmd); err != nil {
		t.Fatalf("start reflector: %v", err)
	}
	h.reflector = cmd
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil && !h.killed {
				t.Errorf("reflector exited with %v after SIGTERM; stderr:\n%s", err, h.stderr)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Errorf("reflector did not stop within 10s of SIGTERM")
			<-done
		}
	})
	if err := awaitLine(out, "listening", 10*time.Second); err != nil {
		t.Fatalf("reflector: %v; stderr:\n%s", err, h.stderr)
	}
	return h
}

type runOutput struct {
	code   int
	stdout string
	stderr string
	took   time.Duration
}

// run runs stackgap in A and returns its exit code and output.
func run(t *testing.T, tb *testbed.Testbed, args ...string) runOutput {
	t.Helper()
	cmd := exec.Command(bin("stackgap"), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := tb.Start(testbed.A, cmd); err != nil {
		t.Fatalf("start stackgap: %v", err)
	}
	err := cmd.Wait()
	o := runOutput{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		o.code = ee.ExitCode()
	default:
		t.Fatalf("stackgap: %v", err)
	}
	return o
}

func mustRun(t *testing.T, tb *testbed.Testbed, args ...string) runOutput {
	t.Helper()
	o := run(t, tb, args...)
	if o.code != 0 {
		t.Fatalf("stackgap %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), o.code, o.stdout, o.stderr)
	}
	return o
}

// mustLoad reads the run directory dir, failing the test when it cannot.
func mustLoad(t *testing.T, dir string) *results.Result {
	t.Helper()
	r, err := results.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRoundTrips: UDP and TCP over IPv4 and IPv6, no loss: every probe is
// counted exactly once on both hosts and every stamp is there.
func TestRoundTrips(t *testing.T) {
	tb := newTestbed(t)
	startReflector(t, tb)
	for _, fam := range []struct{ name, peer string }{
		{"ipv4", tb.AddrB4.String()},
		{"ipv6", "[" + tb.AddrB6.String() + "]"},
	} {
		t.Run(fam.name, func(t *testing.T) {
			const count, warmup = 3000, 200
			out := filepath.Join(t.TempDir(), "run")
			mustRun(t, tb, "run", "--peer", fam.peer, "--transport", "udp,tcp", "--count", strconv.Itoa(count),
				"--warmup", strconv.Itoa(warmup), "--inflight", "4", "--out", out)
			r := mustLoad(t, out)
			if len(r.Phases) != 2 {
				t.Fatalf("got %d phases, want 2", len(r.Phases))
			}
			for i, p := range r.Phases {
				want := []string{"udp", "tcp"}[i]
				if p.Path != "kernel" || p.Transport != want || p.Family != fam.name {
					t.Fatalf("phase %d is %s/%s/%s", i, p.Path, p.Transport, p.Family)
				}
				c := p.Counters
				if c.Sent != count || c.Received != count || c.Lost != 0 || c.Duplicated != 0 || c.Late != 0 {
					t.Errorf("%s: counters %+v, want %d sent and received, nothing lost", want, c, count)
				}
				if c.WarmupSent != warmup || c.WarmupReceived != warmup {
					t.Errorf("%s: warm-up %d sent %d received, want %d", want, c.WarmupSent, c.WarmupReceived, warmup)
				}
				if got := c.Reflector["reflected"]; got != count+warmup {
					t.Errorf("%s: reflector reflected %d, want %d", want, got, count+warmup)
				}
				// TCP with several probes in flight may coalesce writes into
				// one segment, which the kernel stamps once: those TX stamps
				// must show as missing, nothing else may.
				tolerated := func(kind string) bool {
					return want == "tcp" && (kind == "tx_sched" || kind == "tx_software")
				}
				for kind, n := range c.Missing {
					if !tolerated(kind) {
						t.Errorf("%s: %d probes missing %s", want, n, kind)
					}
				}
				for _, h := range p.Histograms {
					if strings.HasPrefix(h.Name, "tx.") && want == "tcp" {
						missed := max(c.Missing["tx_sched"], c.Missing["tx_software"])
						if h.Host == "reflector" {
							missed = max(c.Reflector["missing_tx_sched"], c.Reflector["missing_tx_software"])
						}
						if n := expectedCount(h.Host, h.Name, count); h.Count > n || h.Count+missed < n {
							t.Errorf("tcp: histogram %s.%s has %d values and %d missing stamps, want %d", h.Host, h.Name, h.Count, missed, n)
						}
						continue
					}
					if n := expectedCount(h.Host, h.Name, count); h.Count != n {
						t.Errorf("%s: histogram %s.%s has %d values, want %d", want, h.Host, h.Name, h.Count, n)
					}
					if h.P50 <= 0 || h.P50 > h.Max {
						t.Errorf("%s: histogram %s.%s has p50 %d max %d", want, h.Host, h.Name, h.P50, h.Max)
					}
					if _, err := os.Stat(filepath.Join(out, h.File)); err != nil {
						t.Errorf("%s: %v", want, err)
					}
				}
				if len(p.Histograms) != 10 {
					t.Errorf("%s: %d histograms, want 10 (6 sender, 4 reflector)", want, len(p.Histograms))
				}
				if u := p.UserClocks; u.Sender != "vdso" || u.Reflector != "vdso" {
					t.Errorf("%s: user clocks %+v, want vdso on both hosts (kernel stamps are taken)", want, u)
				}
			}
			if _, err := results.LoadHlog(out); err != nil {
				t.Errorf("hlog: %v", err)
			}
		})
	}
}

// TestPlainRoundTrips: without kernel stamps each host counts its user stamps
// with the TSC where the kernel keeps time with it, and the round trip and
// residence come out whole and consistent, on both paths; the AF_XDP
// reflector answers UDP probes in bursts (its rx_bursts counter), which it
// does only in sessions without stamps.
func TestPlainRoundTrips(t *testing.T) {
	tb := newTestbed(t)
	startReflector(t, tb)
	wantClock := "vdso"
	if cs, err := os.ReadFile("/sys/devices/system/clocksource/clocksource0/current_clocksource"); err == nil &&
		strings.TrimSpace(string(cs)) == "tsc" && runtime.GOARCH == "amd64" {
		wantClock = "tsc"
	}
	const count = 2000
	out := filepath.Join(t.TempDir(), "run")
	mustRun(t, tb, "run", "--peer", tb.AddrB4.String(), "--path", "kernel,xdp", "--transport", "udp,tcp", "--count", strconv.Itoa(count),
		"--warmup", "100", "--no-timestamps", "--out", out)
	r := mustLoad(t, out)
	if len(r.Phases) != 4 {
		t.Fatalf("%d phases, want kernel and xdp, udp and tcp", len(r.Phases))
	}
	for _, p := range r.Phases {
		if c := p.Counters; c.Sent != count || c.Received != count || c.Lost != 0 {
			t.Errorf("%s/%s: counters %+v, want %d sent and received", p.Path, p.Transport, c, count)
		}
		bursts, probes := p.Counters.Reflector["rx_bursts"], p.Counters.Reflector["rx_probes"]
		if want := p.Path == "xdp" && p.Transport == "udp"; want != (bursts > 0) || bursts > probes {
			t.Errorf("%s/%s: reflector took %d probes in %d bursts, want bursts only on xdp/udp", p.Path, p.Transport, probes, bursts)
		}
		if u := p.UserClocks; u.Sender != wantClock || u.Reflector != wantClock {
			t.Errorf("%s: user clocks %+v, want %s on both hosts", p.Transport, u, wantClock)
		}
		got := map[string]results.Summary{}
		for _, h := range p.Histograms {
			got[h.Host+"."+h.Name] = h
		}
		rtt, residence := got["sender.rtt"], got["reflector.residence"]
		if len(got) != 3 || rtt.Count != count || residence.Count != count || got["sender.rtt_minus_residence"].Count != count {
			t.Fatalf("%s: histograms %v, want rtt, rtt_minus_residence and residence of %d probes each", p.Transport, got, count)
		}
		if residence.P50 <= 0 || residence.P50 >= rtt.P50 {
			t.Errorf("%s: residence p50 %d ns, round trip p50 %d ns: want 0 < residence < round trip", p.Transport, residence.P50, rtt.P50)
		}
	}
}

// TestNoCollectionDuringPhase: neither host's garbage collector runs while a
// phase measures. Rotating interval histograms every second allocates enough
// that, without nogc.Hold, both processes collect within a 3-s phase.
func TestNoCollectionDuringPhase(t *testing.T) {
	tb := newTestbed(t)
	startReflector(t, tb)
	out := filepath.Join(t.TempDir(), "run")
	mustRun(t, tb, "run", "--peer", tb.AddrB4.String(), "--transport", "udp", "--duration", "3s", "--out", out)
	r := mustLoad(t, out)
	if len(r.Phases) != 1 {
		t.Fatalf("%d phases, want 1", len(r.Phases))
	}
	c := r.Phases[0].Counters
	if c.Received == 0 {
		t.Fatalf("counters %+v: nothing measured", c)
	}
	if c.Other["gc_cycles"] != 0 || c.Reflector["gc_cycles"] != 0 {
		t.Errorf("%d garbage collections on the sender and %d on the reflector during the phase, want none",
			c.Other["gc_cycles"], c.Reflector["gc_cycles"])
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

// TestSmallProbesOutOfBand: 18-byte probes have no room for the reflector's
// stamps; they travel over the control channel and still join every probe.
func TestSmallProbesOutOfBand(t *testing.T) {
	tb := newTestbed(t)
	startReflector(t, tb)
	out := filepath.Join(t.TempDir(), "run")
	mustRun(t, tb, "run", "--peer", tb.AddrB4.String(), "--transport", "udp", "--size", "18", "--count", "1000", "--warmup", "10", "--out", out)
	r := mustLoad(t, out)
	for _, h := range r.Phases[0].Histograms {
		if h.Name == "rtt_minus_residence" && h.Count != 500 {
			t.Fatalf("rtt_minus_residence has %d values, want 500 (the unstamped half)", h.Count)
		}
	}
}

// TestLossMatchesDropRule: an nftables rule in the reflector's namespace drops
// a share of the probes; the reported loss equals the rule's counter and the
// run still ends on time.
func TestLossMatchesDropRule(t *testing.T) {
	testutil.RequireTool(t, "nft")
	tb := newTestbed(t)
	startReflector(t, tb)
	// Only what arrives over the veth: the reflector also talks to itself
	// over loopback once (to check RX stamping is on), which must not count.
	drop, err := tb.Drop(testbed.B, testbed.DropRule{Proto: "udp", Percent: 10, Iface: tb.IfaceB})
	if err != nil {
		t.Fatal(err)
	}
	defer drop.Remove()
	out := filepath.Join(t.TempDir(), "run")
	o := mustRun(t, tb, "run", "--peer", tb.AddrB4.String(), "--transport", "udp", "--duration", "1s", "--warmup", "100",
		"--timeout", "100ms", "--inflight", "8", "--out", out)
	dropped, err := drop.Dropped()
	if err != nil {
		t.Fatal(err)
	}
	r := mustLoad(t, out)
	c := r.Phases[0].Counters
	if lost := c.Lost + c.WarmupLost; lost != dropped || dropped == 0 {
		t.Fatalf("reported loss %d (warm-up %d), nft dropped %d", lost, c.WarmupLost, dropped)
	}
	if c.Sent+c.WarmupSent != c.Received+c.WarmupReceived+c.Lost+c.WarmupLost {
		t.Fatalf("counters do not add up: %+v", c)
	}
	// 1 s measured + at most 2 s warm-up + timeout + start-up and teardown.
	if o.took > 8*time.Second {
		t.Fatalf("run took %v with 1s duration", o.took)
	}
}

// probeClient sends hand-made probes to a session and reports what comes back.
type probeClient struct {
	conn *net.UDPConn
}

func dialProbe(t *testing.T, tb *testbed.Testbed, port uint16) *probeClient {
	t.Helper()
	var c *net.UDPConn
	err := tb.Do(testbed.A, func() error {
		var err error
		c, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(tb.AddrB4, port)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &probeClient{conn: c}
}

// exchange sends b and returns the reply, or nil when none comes within 300 ms.
func (p *probeClient) exchange(t *testing.T, b []byte) []byte {
	t.Helper()
	if _, err := p.conn.Write(b); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 70000)
	p.conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	n, err := p.conn.Read(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		t.Fatal(err)
	}
	return buf[:n]
}

func openSession(t *testing.T, tb *testbed.Testbed, token uint32, size int) (*bench.Client, uint16) {
	t.Helper()
	var cl *bench.Client
	err := tb.Do(testbed.A, func() error {
		var err error
		cl, err = bench.Dial(context.Background(), netip.AddrPortFrom(tb.AddrB4, bench.DefaultPort), bench.ClientOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	port, _, err := cl.Open(bench.SessionParams{Path: "kernel", Transport: "udp", Size: size, Duration: 30 * time.Second,
		Token: token, Wait: bench.WaitBlock, CPU: -1, Timestamping: true})
	if err != nil {
		t.Fatal(err)
	}
	return cl, port
}

func probe(size int, token uint32, seq uint64) []byte {
	b := make([]byte, size)
	bench.MarshalProbe(b, token, seq)
	return b
}

// TestReflectorAnswersOnlyLiveSessions: wrong and expired tokens, replies,
// malformed packets, and replies never larger than requests.
func TestReflectorAnswersOnlyLiveSessions(t *testing.T) {
	tb := newTestbed(t)
	startReflector(t, tb)

	old, oldPort := openSession(t, tb, 0x1111, 64)
	pc := dialProbe(t, tb, oldPort)
	if r := pc.exchange(t, probe(64, 0x1111, 1)); r == nil {
		t.Fatal("no reply from a live session")
	}
	if _, err := old.CloseSession(); err != nil {
		t.Fatal(err)
	}

	cl, port := openSession(t, tb, 0x2222, 64)
	pc = dialProbe(t, tb, port)
	tests := []struct {
		name  string
		in    []byte
		reply bool
	}{
		{"live token", probe(64, 0x2222, 1), true},
		{"wrong token", probe(64, 0x3333, 2), false},
		{"expired token", probe(64, 0x1111, 3), false},
		{"reply flag set", func() []byte { b := probe(64, 0x2222, 4); bench.MarkReply(b, 0, 0); return b }(), false},
		{"not a probe", bytes.Repeat([]byte{0xab}, 1000), false},
		{"length field lies", func() []byte { b := probe(64, 0x2222, 5); binary.BigEndian.PutUint16(b[16:], 2000); return b }(), false},
		{"minimum size", probe(18, 0x2222, 6), true},
		{"larger than the session size", probe(1400, 0x2222, 7), true},
	}
	for _, tt := range tests {
		got := pc.exchange(t, tt.in)
		if (got != nil) != tt.reply {
			t.Errorf("%s: reply %v, want %v", tt.name, got != nil, tt.reply)
			continue
		}
		if got == nil {
			continue
		}
		if len(got) > len(tt.in) {
			t.Errorf("%s: reply of %d bytes to %d", tt.name, len(got), len(tt.in))
		}
		p, err := bench.ParseProbe(got)
		if err != nil || p.Flags&bench.FlagReply == 0 || p.Token != 0x2222 {
			t.Errorf("%s: bad reply %+v %v", tt.name, p, err)
		}
	}
	rep, err := cl.CloseSession()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Counters["bad_token"] != 2 || rep.Counters["malformed"] != 2 || rep.Counters["not_request"] != 1 || rep.Counters["reflected"] != 3 {
		t.Errorf("unexpected reflector counters %v", rep.Counters)
	}
}

// TestAuthentication: the shared secret is checked both ways.
func TestAuthentication(t *testing.T) {
	tb := newTestbed(t)
	dir := t.TempDir()
	write := func(name, secret string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, bad := write("good", "correct horse"), write("bad", "battery staple")
	startReflector(t, tb, "--secret-file", good)
	peer := tb.AddrB4.String()
	out := filepath.Join(dir, "run")
	mustRun(t, tb, "run", "--peer", peer, "--transport", "udp", "--count", "100", "--secret-file", good, "--out", out)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"wrong secret", []string{"--secret-file", bad}, "wrong shared secret"},
		{"no secret", nil, "requires a shared secret"},
	} {
		o := run(t, tb, append([]string{"run", "--peer", peer, "--count", "10", "--out", out}, tt.args...)...)
		if o.code == 0 || !strings.Contains(o.stderr, tt.want) || strings.Count(strings.TrimSpace(o.stderr), "\n") != 0 {
			t.Errorf("%s: exit %d, stderr %q; want one line with %q", tt.name, o.code, o.stderr, tt.want)
		}
	}
}

// fakeReflector answers every hello with another protocol version.
func fakeReflector(t *testing.T, tb *testbed.Testbed, version int) netip.AddrPort {
	t.Helper()
	var ln net.Listener
	if err := tb.Do(testbed.B, func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(tb.AddrB4.String(), "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			body, _ := json.Marshal(map[string]any{"type": "hello", "tool": "stackgap", "version": version, "nonce": make([]byte, 32)})
			hdr := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
			c.SetDeadline(time.Now().Add(5 * time.Second))
			var in [4]byte
			c.Read(in[:])
			c.Write(append(hdr, body...))
			time.Sleep(100 * time.Millisecond)
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// TestVersionMismatch: both directions fail with a message naming the versions.
func TestVersionMismatch(t *testing.T) {
	tb := newTestbed(t)
	// Sender against a reflector speaking version 99.
	peer := fakeReflector(t, tb, 99)
	o := run(t, tb, "run", "--peer", peer.String(), "--count", "10", "--out", t.TempDir())
	if o.code == 0 || !strings.Contains(o.stderr, "version mismatch") || !strings.Contains(o.stderr, "99") {
		t.Errorf("sender vs v99 reflector: exit %d, stderr %q", o.code, o.stderr)
	}
	// A sender speaking version 99 against the real reflector.
	startReflector(t, tb)
	var reply []byte
	err := tb.Do(testbed.A, func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(tb.AddrB4.String(), strconv.Itoa(bench.DefaultPort)), 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		body, _ := json.Marshal(map[string]any{"type": "hello", "tool": "stackgap", "version": 99, "nonce": make([]byte, 32)})
		c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var hdr [4]byte
		if _, err := c.Read(hdr[:]); err != nil {
			return err
		}
		reply = make([]byte, binary.BigEndian.Uint32(hdr[:]))
		_, err = c.Read(reply)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(reply, &m); err != nil || m["type"] != "error" || m["code"] != "version" {
		t.Fatalf("reflector answered a v99 hello with %s", reply)
	}
}

// TestBadInput: one actionable line, a non-zero exit, nothing left behind.
func TestBadInput(t *testing.T) {
	tb := newTestbed(t)
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, nil, 0o644)
	peer := tb.AddrB4.String()
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"peer not listening", []string{"run", "--peer", peer + ":9", "--count", "10", "--out", t.TempDir()}, 1, "connection refused (is stackgap-reflect running there, on that port?)"},
		{"no such network", []string{"run", "--peer", "198.19.255.1", "--count", "10", "--out", t.TempDir()}, 1, "network is unreachable (is the address right, and is there a route to it from here?)"},
		{"size below minimum", []string{"run", "--peer", peer, "--size", "10"}, 2, "probe size 10 out of range"},
		{"negative duration", []string{"run", "--peer", peer, "--duration", "-1s"}, 2, "invalid duration"},
		{"count and duration", []string{"run", "--peer", peer, "--duration", "1s", "--count", "5"}, 2, "exclude each other"},
		{"unknown transport", []string{"run", "--peer", peer, "--transport", "sctp"}, 2, "unknown transport"},
		{"unknown path", []string{"run", "--peer", peer, "--path", "dpdk"}, 2, "unknown path"},
		{"unknown wait", []string{"run", "--peer", peer, "--wait", "sleep"}, 2, "unknown wait strategy"},
		{"inflight zero", []string{"run", "--peer", peer, "--inflight", "0"}, 2, "invalid inflight"},
		{"no peer", []string{"run"}, 2, "--peer"},
		{"unknown host", []string{"run", "--peer", "no-such-host.invalid"}, 2, "unknown host"},
		{"local address not ours", []string{"run", "--peer", peer, "--local", "198.19.9.9"}, 2, "no interface has address 198.19.9.9"},
		{"output dir not writable", []string{"run", "--peer", peer, "--out", filepath.Join(notDir, "sub")}, 1, "output directory"},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"bad cpu", []string{"run", "--peer", peer, "--cpu", "4096", "--count", "10", "--out", t.TempDir()}, 2, "cpu 4096 not available"},
		{"size zero", []string{"run", "--peer", peer, "--size", "0"}, 2, "probe size 0 out of range"},
		{"unknown flag", []string{"run", "--peer", peer, "--interface", "eth0"}, 2, "flag provided but not defined: -interface ('stackgap run -h' lists the flags)"},
		{"bad flag value", []string{"demo", "--duration", "soon"}, 2, `invalid value "soon" for flag -duration`},
		{"report flag", []string{"report", "-x", t.TempDir()}, 2, "flag provided but not defined: -x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := run(t, tb, tt.args...)
			if o.code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", o.code, tt.code, o.stderr)
			}
			if !strings.Contains(o.stderr, tt.want) {
				t.Errorf("stderr %q does not say %q", o.stderr, tt.want)
			}
			if lines := strings.Count(strings.TrimRight(o.stderr, "\n"), "\n"); lines != 0 {
				t.Errorf("stderr has %d lines, want one: %q", lines+1, o.stderr)
			}
		})
	}
	if _, err := os.Stat(notDir + "/sub"); err == nil {
		t.Error("wrote into a file path")
	}
}

// TestReflectorBadInput: port in use, bad flags.
func TestReflectorBadInput(t *testing.T) {
	tb := newTestbed(t)
	startReflector(t, tb)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"port in use", nil, "address already in use"},
		{"bad listen address", []string{"--listen", "300.1.1.1:7"}, "--listen: unknown host"},
		{"bad cpu", []string{"--cpu", "4096"}, "cpu 4096 not available"},
		{"missing secret file", []string{"--secret-file", "/nonexistent/secret"}, "secret file"},
		{"unknown flag", []string{"--port", "7"}, "flag provided but not defined: -port ('stackgap-reflect -h' lists the flags)"},
	} {
		// Output puts the command's stderr into its error.
		_, err := tb.Output(testbed.B, bin("stackgap-reflect"), tt.args...)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v; want a failure saying %q", tt.name, err, tt.want)
		}
	}
}

// TestSIGTERMLeavesNothing: SIGTERM to the demo mid-run removes its namespaces
// and processes; SIGTERM to a sender mid-run writes partial results and the
// reflector stays usable.
func TestSIGTERMLeavesNothing(t *testing.T) {
	testutil.RequireRoot(t)
	t.Run("demo", func(t *testing.T) {
		cmd := exec.Command(bin("stackgap"), "demo", "--duration", "20s", "--out", t.TempDir())
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("demo did not exit within 15s of SIGTERM:\n%s", out.String())
		}
		if cmd.ProcessState.ExitCode() == 0 {
			t.Errorf("demo exited 0 after SIGTERM")
		}
		left, err := testbed.List("sgdemo-" + strconv.Itoa(cmd.Process.Pid))
		if err != nil || len(left) > 0 {
			t.Errorf("namespaces left: %v %v\n%s", left, err, out.String())
		}
		if pids := processesOf(t, bin("stackgap-reflect")); len(pids) > 0 {
			t.Errorf("reflector processes left: %v", pids)
		}
	})
	t.Run("sender", func(t *testing.T) {
		tb := newTestbed(t)
		startReflector(t, tb, "--max-sessions", "1")
		dir := filepath.Join(t.TempDir(), "run")
		cmd := exec.Command(bin("stackgap"), "run", "--peer", tb.AddrB4.String(), "--transport", "udp", "--duration", "30s", "--out", dir)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := tb.Start(testbed.A, cmd); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		cmd.Process.Signal(syscall.SIGTERM)
		start := time.Now()
		cmd.Wait()
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("sender took %v to stop", took)
		}
		if code := cmd.ProcessState.ExitCode(); code != 130 {
			t.Errorf("sender exit %d after SIGTERM, want 130:\n%s", code, out.String())
		}
		r, err := results.Load(dir)
		if err != nil || len(r.Phases) != 1 || r.Phases[0].Counters.Received == 0 {
			t.Fatalf("partial results: %v %+v", err, r)
		}
		// The session was closed: with --max-sessions 1 a new run works at once.
		mustRun(t, tb, "run", "--peer", tb.AddrB4.String(), "--transport", "udp", "--count", "100", "--out", filepath.Join(t.TempDir(), "again"))
	})
}

// processesOf lists the pids running the executable path.
func processesOf(t *testing.T, path string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && exe == path {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestDemo runs the demo end to end and checks its results on disk.
func TestDemo(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	cmd := exec.Command(bin("stackgap"), "demo", "--duration", "300ms", "--out", dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, fam := range []string{"ipv4", "ipv6"} {
		r := mustLoad(t, filepath.Join(dir, fam))
		var got []string
		for _, p := range r.Phases {
			got = append(got, p.Path+"/"+p.Transport)
			if p.Counters.Received == 0 || p.Counters.Lost != 0 {
				t.Errorf("%s: phase %d counters %+v", fam, p.Index, p.Counters)
			}
		}
		if strings.Join(got, ",") != "kernel/udp,xdp/udp,kernel/tcp,xdp/tcp" {
			t.Errorf("%s: phases %v", fam, got)
		}
		if len(r.Gaps) != 4 {
			t.Errorf("%s: %d gap rows, want 4 (udp, tcp × rtt, rtt_minus_residence)", fam, len(r.Gaps))
		}
	}
}

// TestNotRoot: the demo names the missing capabilities.
func TestNotRoot(t *testing.T) {
	testutil.RequireRoot(t)
	cmd := exec.Command(bin("stackgap"), "demo")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !strings.Contains(string(out), "CAP_SYS_ADMIN") || !strings.Contains(string(out), "sudo") {
		t.Fatalf("demo as nobody: %v %q", err, out)
	}
}

// TestBusyPollInert: busy polling is asked for on both hosts; veth has no NAPI
// id, so the run works and says the option was inert instead of faking it.
func TestBusyPollInert(t *testing.T) {
	tb := newTestbed(t)
	startReflector(t, tb)
	out := filepath.Join(t.TempDir(), "run")
	mustRun(t, tb, "run", "--peer", tb.AddrB4.String(), "--transport", "udp", "--count", "200", "--busy-poll", "50us", "--wait", "spin", "--out", out)
	r := mustLoad(t, out)
	notes := strings.Join(r.Phases[0].Notes, "\n")
	if strings.Count(notes, "busy polling requested but inert") != 2 {
		t.Fatalf("want an inert busy-poll note from each host, got:\n%s", notes)
	}
	if r.Options["busy_poll"] != "50µs" || r.Options["wait"] != "spin" {
		t.Fatalf("options not recorded: %v", r.Options)
	}
}

// xdpAttached reports the XDP program id attached to each veth end (0: none).
func xdpAttached(t *testing.T, tb *testbed.Testbed) [2]uint32 {
	t.Helper()
	var ids [2]uint32
	for i, side := range []testbed.Side{testbed.A, testbed.B} {
		err := tb.Do(side, func() error {
			l, err := netlink.LinkByName(tb.Iface(side))
			if err != nil {
				return err
			}
			if x := l.Attrs().Xdp; x != nil {
				ids[i] = x.ProgId
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// TestKernelAndXDPAlternate: kernel and AF_XDP phases alternate in one run;
// every probe is counted once on both paths, the gap table is written, and
// no XDP program stays attached afterwards.
// TestEchoPeer: plain UDP and TCP echo services in the reflector's namespace
// (no stackgap-reflect) answer the kernel path and the AF_XDP path, whose
// TCP endpoint then talks to the peer's kernel TCP.
func TestEchoPeer(t *testing.T) {
	tb := newTestbed(t)
	var pc net.PacketConn
	var ln net.Listener
	if err := tb.Do(testbed.B, func() error {
		var err error
		if ln, err = net.Listen("tcp4", net.JoinHostPort(tb.AddrB4.String(), "0")); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp4", ln.Addr().String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	testutil.ServeEcho(ln, pc)
	out := filepath.Join(t.TempDir(), "run")
	mustRun(t, tb, "run", "--peer", ln.Addr().String(), "--echo", "--path", "kernel,xdp", "--transport", "udp,tcp",
		"--count", "1000", "--warmup", "100", "--out", out)
	r := mustLoad(t, out)
	var order []string
	for _, p := range r.Phases {
		order = append(order, p.Path+"/"+p.Transport)
		if c := p.Counters; c.Sent != 1000 || c.Received != 1000 || c.Lost != 0 || c.Duplicated != 0 {
			t.Errorf("%s/%s: counters %+v", p.Path, p.Transport, c)
		}
		for _, h := range p.Histograms {
			if h.Host != "sender" || h.Name == "rtt_minus_residence" {
				t.Errorf("%s/%s: echo run has a histogram %s.%s", p.Path, p.Transport, h.Host, h.Name)
			}
		}
	}
	if strings.Join(order, ",") != "kernel/udp,xdp/udp,kernel/tcp,xdp/tcp" {
		t.Errorf("phases %v, want kernel and xdp for udp and tcp", order)
	}
	if ids := xdpAttached(t, tb); ids != [2]uint32{} {
		t.Errorf("XDP programs left attached: %v", ids)
	}
}

func TestKernelAndXDPAlternate(t *testing.T) {
	tb := newTestbed(t)
	startReflector(t, tb)
	for _, fam := range []struct{ name, peer string }{
		{"ipv4", tb.AddrB4.String()},
		{"ipv6", "[" + tb.AddrB6.String() + "]"},
	} {
		t.Run(fam.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			mustRun(t, tb, "run", "--peer", fam.peer, "--path", "kernel,xdp", "--transport", "udp,tcp", "--rounds", "2",
				"--count", "1000", "--warmup", "100", "--wait", "spin", "--out", out)
			r := mustLoad(t, out)
			var order []string
			for _, p := range r.Phases {
				order = append(order, p.Path+"/"+p.Transport)
				c := p.Counters
				if c.Sent != 1000 || c.Received != 1000 || c.Lost != 0 || c.Duplicated != 0 {
					t.Errorf("phase %d (%s): counters %+v", p.Index, p.Path, c)
				}
				for kind, n := range c.Missing {
					t.Errorf("phase %d (%s): %d probes missing %s", p.Index, p.Path, n, kind)
				}
				if b := c.Reflector["rx_bursts"]; b != 0 {
					t.Errorf("phase %d (%s/%s): %d reflector bursts in a stamped session, which answers probe by probe", p.Index, p.Path, p.Transport, b)
				}
				if p.Path == "xdp" {
					names := map[string]bool{}
					for _, h := range p.Histograms {
						names[h.Host+"."+h.Name+"/"+h.Source] = h.Count == 1000
					}
					for _, want := range []string{"sender.rx.xdp_to_user/bpf", "reflector.rx.xdp_to_user/bpf"} {
						if !names[want] {
							t.Errorf("xdp phase lacks a full %s histogram: %v", want, names)
						}
					}
				}
			}
			if strings.Join(order, ",") != "kernel/udp,xdp/udp,kernel/tcp,xdp/tcp,kernel/udp,xdp/udp,kernel/tcp,xdp/tcp" {
				t.Errorf("phase order %v, want alternating", order)
			}
			if len(r.Gaps) != 4 {
				t.Errorf("gap table has %d rows, want 4", len(r.Gaps))
			}
			for _, g := range r.Gaps {
				// Two rounds of 1000 probes, half of them unstamped.
				if g.Base.Count != 1000 || g.Other.Count != 1000 {
					t.Errorf("gap %s %s: counts %d/%d, want 1000/1000", g.Transport, g.Series, g.Base.Count, g.Other.Count)
				}
			}
			if ids := xdpAttached(t, tb); ids != [2]uint32{} {
				t.Errorf("XDP programs left attached: %v", ids)
			}
		})
	}
}

// TestKernelWithXDPPass: the kernel path behind an XDP_PASS program on both
// hosts, which say so, and detach it afterwards.
func TestKernelWithXDPPass(t *testing.T) {
	tb := newTestbed(t)
	startReflector(t, tb)
	out := filepath.Join(t.TempDir(), "run")
	mustRun(t, tb, "run", "--peer", tb.AddrB4.String(), "--transport", "udp,tcp", "--count", "500", "--kernel-with-xdp-pass", "--out", out)
	r := mustLoad(t, out)
	for _, p := range r.Phases {
		if p.Counters.Received != 500 {
			t.Errorf("%s: received %d", p.Transport, p.Counters.Received)
		}
		if n := strings.Count(strings.Join(p.Notes, "\n"), "behind an XDP program that passes every packet"); n != 2 {
			t.Errorf("%s: %d XDP_PASS notes, want one per host: %q", p.Transport, n, p.Notes)
		}
	}
	if ids := xdpAttached(t, tb); ids != [2]uint32{} {
		t.Errorf("XDP programs left attached: %v", ids)
	}
}

// TestSIGKILLLeavesNoXDPProgram: killing the sender and the reflector in the
// middle of an AF_XDP phase leaves no program attached (bpf_link), and the
// interfaces pass traffic again.
func TestSIGKILLLeavesNoXDPProgram(t *testing.T) {
	for _, victim := range []string{"sender", "reflector"} {
		t.Run(victim, func(t *testing.T) {
			tb := newTestbed(t)
			h := startReflector(t, tb)
			cmd := exec.Command(bin("stackgap"), "run", "--peer", tb.AddrB4.String(), "--path", "xdp", "--transport", "udp",
				"--duration", "30s", "--out", t.TempDir())
			if err := tb.Start(testbed.A, cmd); err != nil {
				t.Fatal(err)
			}
			defer func() { cmd.Process.Kill(); cmd.Wait() }()
			deadline := time.Now().Add(10 * time.Second)
			for ids := xdpAttached(t, tb); ids[0] == 0 || ids[1] == 0; ids = xdpAttached(t, tb) {
				if time.Now().After(deadline) {
					t.Fatalf("XDP programs never attached: %v", ids)
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(500 * time.Millisecond)
			proc := cmd.Process
			if victim == "reflector" {
				proc = h.reflector.Process
			}
			h.killed = victim == "reflector"
			proc.Kill()
			// The killed process's program goes with it; the survivor sees
			// its control connection close, ends the session and detaches too.
			deadline = time.Now().Add(5 * time.Second)
			want := [2]uint32{}
			for ids := xdpAttached(t, tb); ids != want; ids = xdpAttached(t, tb) {
				if time.Now().After(deadline) {
					t.Fatalf("after SIGKILL of the %s: XDP programs %v, want %v", victim, ids, want)
				}
				time.Sleep(50 * time.Millisecond)
			}
			// Both interfaces pass traffic: a UDP exchange on a fresh port.
			udpExchange(t, tb)
			if victim == "reflector" {
				// The sender noticed: it fails at once, naming the reflector.
				cmd.Wait()
				if code := cmd.ProcessState.ExitCode(); code != 1 {
					t.Errorf("sender exit %d after the reflector died, want 1", code)
				}
			}
		})
	}
}

// udpExchange sends one datagram A→B and its echo B→A through the kernel.
func udpExchange(t *testing.T, tb *testbed.Testbed) {
	t.Helper()
	var srv *net.UDPConn
	if err := tb.Do(testbed.B, func() (err error) {
		srv, err = net.ListenUDP("udp", &net.UDPAddr{IP: tb.AddrB4.AsSlice(), Port: 9999})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 100)
		srv.SetReadDeadline(time.Now().Add(3 * time.Second))
		if n, from, err := srv.ReadFromUDP(buf); err == nil {
			srv.WriteToUDP(buf[:n], from)
		}
	}()
	pc := dialProbe(t, tb, 9999)
	if got := pc.exchange(t, []byte("hello")); string(got) != "hello" {
		t.Fatalf("UDP through the interfaces: got %q", got)
	}
}

// TestXDPLoss: the reflector's XDP program drops a share of the probe frames
// (nftables cannot: XDP runs first). UDP loss equals the program's drop
// counter exactly; TCP retransmits and still delivers every probe.
func TestXDPLoss(t *testing.T) {
	tb := newTestbed(t)
	startReflector(t, tb, "--xdp-drop", "10")
	var plainNotes []string
	load := func(transport, timeout string, extra ...string) results.Counters {
		out := filepath.Join(t.TempDir(), "run")
		// TCP recovers a dropped segment after an RTO of at least 200 ms
		// (doubling when a retransmission is dropped too): a probe is late,
		// not lost, so it gets a long timeout. A lost UDP probe waits its
		// whole timeout: a short one keeps the test quick.
		args := []string{"run", "--peer", tb.AddrB4.String(), "--path", "xdp", "--transport", transport, "--count", "300",
			"--warmup", "20", "--timeout", timeout, "--inflight", "4", "--out", out}
		mustRun(t, tb, append(args, extra...)...)
		r := mustLoad(t, out)
		plainNotes = r.Phases[0].Notes
		return r.Phases[0].Counters
	}
	udp, tcp := load("udp", "100ms"), load("tcp", "10s")
	// Without stamps the reflector answers in bursts: the loss is the same.
	plain := load("udp", "100ms", "--no-timestamps")
	for name, c := range map[string]results.Counters{"udp": udp, "udp --no-timestamps": plain} {
		if lost, dropped := c.Lost+c.WarmupLost, c.Reflector["steer_dropped"]; lost != dropped || dropped == 0 {
			t.Errorf("%s: %d probes lost, the XDP program dropped %d", name, lost, dropped)
		}
	}
	if plain.Reflector["rx_bursts"] == 0 {
		t.Errorf("udp --no-timestamps: the reflector counted no bursts: %v", plain.Reflector)
	}
	// The reflector learns the window (4 in flight) and keeps its FILL ring
	// as deep as it needs, like the sender: 4 frames each plus 64.
	if notes := strings.Join(plainNotes, "\n"); strings.Count(notes, "FILL ring kept at 80 of the 4096 UMEM frames") != 2 {
		t.Errorf("udp --no-timestamps: want the sender's and the reflector's FILL ring depth of 80 in the notes:\n%s", notes)
	}
	if notes := strings.Join(plainNotes, "\n"); strings.Count(notes, "UMEM in unaligned-chunk mode") != 2 {
		t.Errorf("udp --no-timestamps: want both hosts' UMEM in unaligned-chunk mode in the notes:\n%s", notes)
	}
	if tcp.Received != 300 || tcp.Lost != 0 {
		t.Errorf("tcp: counters %+v, want every probe delivered", tcp)
	}
	if tcp.Reflector["steer_dropped"] == 0 || tcp.Other["tcp_retransmits"]+tcp.Reflector["tcp_retransmits"] == 0 {
		t.Errorf("tcp: dropped %d, retransmits sender %d reflector %d", tcp.Reflector["steer_dropped"], tcp.Other["tcp_retransmits"], tcp.Reflector["tcp_retransmits"])
	}
}

// TestXDPBadInput: what the AF_XDP path cannot do here fails with one clear
// line and leaves no program attached; another program is never displaced.
func TestXDPBadInput(t *testing.T) {
	tb := newTestbed(t)
	startReflector(t, tb)
	peer := tb.AddrB4.String()
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"zero-copy on veth", []string{"--xdp-mode", "zerocopy"}, "zero-copy not supported"},
		{"queue out of range", []string{"--queue", "5"}, "queue 5"},
		{"probe above the MTU", []string{"--size", "1500"}, "MTU"},
		{"bad xdp mode", []string{"--xdp-mode", "turbo"}, "--xdp-mode"},
		{"bad drop share", []string{"--xdp-drop", "101"}, "--xdp-drop"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := run(t, tb, append([]string{"run", "--peer", peer, "--path", "xdp", "--transport", "udp", "--count", "10", "--out", t.TempDir()}, tt.args...)...)
			if o.code == 0 || !strings.Contains(o.stderr, tt.want) || strings.Count(strings.TrimSpace(o.stderr), "\n") > 1 {
				t.Errorf("exit %d, stderr %q; want a failure saying %q", o.code, o.stderr, tt.want)
			}
			if ids := xdpAttached(t, tb); ids != [2]uint32{} {
				t.Errorf("XDP programs left attached: %v", ids)
			}
		})
	}
	t.Run("another program attached", func(t *testing.T) {
		var foreign *xdp.Steering
		if err := tb.Do(testbed.A, func() (err error) {
			foreign, err = xdp.AttachSteering(xdp.SteerOptions{Ifindex: tb.IfindexA, Mode: xdp.SteerModeDriver})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer foreign.Close()
		id := xdpAttached(t, tb)[0]
		o := run(t, tb, "run", "--peer", peer, "--path", "xdp", "--transport", "udp", "--count", "10", "--out", t.TempDir())
		if o.code == 0 || !strings.Contains(o.stderr, fmt.Sprintf("program id %d", id)) || !strings.Contains(o.stderr, "never detaches") {
			t.Errorf("exit %d, stderr %q; want a refusal naming program %d", o.code, o.stderr, id)
		}
		if got := xdpAttached(t, tb)[0]; got != id {
			t.Errorf("the other program was displaced: id %d, want %d", got, id)
		}
	})
}

// TestHelp: -h prints the command's flags on stdout and exits 0, like help.
func TestHelp(t *testing.T) {
	for _, tt := range []struct {
		cmd  []string
		want string
	}{
		{[]string{"stackgap", "help"}, "commands:"},
		{[]string{"stackgap", "run", "-h"}, "-peer HOST[:PORT]"},
		{[]string{"stackgap", "demo", "--help"}, "-duration"},
		{[]string{"stackgap", "report", "-h"}, "usage: stackgap report DIR"},
		{[]string{"stackgap-reflect", "-h"}, "-listen address:port"},
	} {
		cmd := exec.Command(bin(tt.cmd[0]), tt.cmd[1:]...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil || !strings.Contains(stdout.String(), tt.want) || stderr.Len() > 0 {
			t.Errorf("%v: %v; want exit 0 and %q on stdout, nothing on stderr; stdout %q, stderr %q", tt.cmd, err, tt.want, stdout.String(), stderr.String())
		}
	}
}

// threadAffinities returns the CPU count of each thread of process pid and
// how many of them may run on cpu.
func threadAffinities(t *testing.T, pid, cpu int) (onCPU, alone, threads int) {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		tid, _ := strconv.Atoi(e.Name())
		var set unix.CPUSet
		if unix.SchedGetaffinity(tid, &set) != nil {
			continue // ended meanwhile
		}
		threads++
		if set.IsSet(cpu) {
			onCPU++
			if set.Count() == 1 {
				alone++
			}
		}
	}
	return onCPU, alone, threads
}

// TestPinnedSessionHasItsCPU: a reflector free to use every CPU, pinning its
// session thread, keeps its other threads off that CPU during the session,
// lets them back afterwards and adds no note; a sender confined to its
// measuring CPU notes that it shares it.
func TestPinnedSessionHasItsCPU(t *testing.T) {
	var mask unix.CPUSet
	if err := unix.SchedGetaffinity(0, &mask); err != nil {
		t.Fatal(err)
	}
	if mask.Count() < 2 {
		t.Skipf("needs two CPUs, has %d", mask.Count())
	}
	cpu := -1
	for c := range 1024 {
		if mask.IsSet(c) {
			cpu = c // the last allowed
		}
	}
	tb := newTestbed(t)
	h := startReflector(t, tb, "--cpu", strconv.Itoa(cpu))
	pid := h.reflector.Process.Pid
	dir := filepath.Join(t.TempDir(), "run")
	sender := exec.Command(bin("stackgap"), "run", "--peer", tb.AddrB4.String(), "--transport", "udp", "--wait", "spin",
		"--duration", "3s", "--reflector-cpu", strconv.Itoa(cpu), "--out", dir, "--quiet")
	var out bytes.Buffer
	sender.Stdout, sender.Stderr = &out, &out
	if err := tb.Start(testbed.A, sender); err != nil {
		t.Fatal(err)
	}
	waitFor := func(what string, ok func(onCPU, alone, threads int) bool) {
		t.Helper()
		var onCPU, alone, threads int
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if onCPU, alone, threads = threadAffinities(t, pid, cpu); ok(onCPU, alone, threads) {
				return
			}
		}
		t.Errorf("%s: of %d reflector threads, %d may run on cpu %d, %d only there", what, threads, onCPU, cpu, alone)
	}
	waitFor("during the session", func(onCPU, alone, _ int) bool { return onCPU == 1 && alone == 1 })
	if err := sender.Wait(); err != nil {
		t.Fatalf("sender: %v\n%s", err, out.String())
	}
	waitFor("after the session", func(onCPU, alone, threads int) bool { return onCPU == threads && alone == 0 })
	const shared = "is the only one the process may use"
	if notes := strings.Join(mustLoad(t, dir).Phases[0].Notes, "\n"); strings.Contains(notes, shared) {
		t.Errorf("the reflector had a CPU to spare, yet the notes say %q:\n%s", shared, notes)
	}

	// A sender confined to its measuring CPU says it shares it.
	testutil.RequireTool(t, "taskset")
	dir = filepath.Join(t.TempDir(), "confined")
	confined := exec.Command("taskset", "-c", "0", bin("stackgap"), "run", "--peer", tb.AddrB4.String(), "--transport", "udp",
		"--count", "100", "--cpu", "0", "--out", dir, "--quiet")
	if err := tb.Start(testbed.A, confined); err != nil {
		t.Fatal(err)
	}
	if err := confined.Wait(); err != nil {
		t.Fatalf("sender under taskset: %v", err)
	}
	notes := strings.Join(mustLoad(t, dir).Phases[0].Notes, "\n")
	if !strings.Contains(notes, "cpu 0 "+shared) {
		t.Errorf("a sender confined to cpu 0 does not say it shares it; notes:\n%s", notes)
	}
	// As root it may set its other threads' timer slack, so the monitor
	// wakes with the scheduler tick (cpu.TimersCoalesced).
	if !strings.Contains(notes, "at the scheduler tick") {
		t.Errorf("a sender running as root did not coalesce its monitor's wakes with the tick; notes:\n%s", notes)
	}
}
