package utcp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/stackgap/stackgap/bench"
)

func TestOptionBytesGolden(t *testing.T) {
	for _, tt := range []struct {
		name string
		o    synOptions
		want string
	}{
		{"linux syn", synOptions{mss: 1460, windowScale: 7, timestamps: true, sack: true, winScale: true, tsVal: 0x01020304},
			"020405b4" + "0402080a" + "01020304" + "00000000" + "01030307"},
		{"syn-ack to a peer without sack", synOptions{mss: 1460, windowScale: 10, timestamps: true, winScale: true, tsVal: 5, tsEcr: 9},
			"020405b4" + "0101080a" + "00000005" + "00000009" + "0103030a"},
		{"syn-ack to a peer without timestamps", synOptions{mss: 1440, windowScale: 7, sack: true, winScale: true},
			"020405a0" + "01010402" + "01030307"},
		{"mss only", synOptions{mss: 536}, "02040218"},
	} {
		var b [40]byte
		got := hex.EncodeToString(b[:writeSYNOptions(b[:], tt.o)])
		if got != tt.want {
			t.Errorf("%s: options %s, want %s", tt.name, got, tt.want)
		}
		if o := parseOptions(b[:]); o.mss != tt.o.mss || o.hasTimestamps != tt.o.timestamps || o.sackPermitted != tt.o.sack ||
			o.hasWindowScale != tt.o.winScale || (tt.o.winScale && o.windowScale != tt.o.windowScale) || o.tsVal != tt.o.tsVal || o.tsEcr != tt.o.tsEcr {
			t.Errorf("%s: parsed back %+v", tt.name, o)
		}
	}
	var b [12]byte
	if got := hex.EncodeToString(b[:writeTimestampOption(b[:], 0xaabbccdd, 0x11223344)]); got != "0101080aaabbccdd11223344" {
		t.Errorf("timestamp option %s", got)
	}
	// malformed options: what precedes the bad one is kept
	if o := parseOptions([]byte{2, 4, 5, 0xb4, 8, 0, 1, 1}); !o.hasMSS || o.mss != 1460 || o.hasTimestamps {
		t.Errorf("malformed length: %+v", o)
	}
	if o := parseOptions([]byte{3, 3, 30, 0}); o.windowScale != 14 {
		t.Errorf("window scale 30 not clamped to 14: %+v", o)
	}
}

func TestSYNSegments(t *testing.T) {
	p := newPair(t, Config{}, Config{})
	var syn Segment
	p.c.e.Output(p.now, func(s Segment) error { syn = s; syn.Options = bytes.Clone(s.Options); return nil })
	if syn.Flags != flagSYN || syn.Window != 64240 || len(syn.Options) != 20 || syn.Seq != p.c.e.iss {
		t.Fatalf("SYN %v options %x, want flags S window 64240 and 20 option bytes", syn, syn.Options)
	}
	if got := hex.EncodeToString(syn.Options); got[:16] != "020405b40402080a" || got[24:] != "0000000001030307" {
		t.Errorf("SYN options %s", got)
	}
	if err := p.s.e.Input(syn, p.now); err != nil {
		t.Fatal(err)
	}
	var synack Segment
	p.s.e.Output(p.now, func(s Segment) error { synack = s; synack.Options = bytes.Clone(s.Options); return nil })
	o := parseOptions(synack.Options)
	if synack.Flags != flagSYN|flagACK || synack.Ack != syn.Seq+1 || synack.Window != 65160 || len(synack.Options) != 20 ||
		o.tsEcr != parseOptions(syn.Options).tsVal || !o.sackPermitted || o.windowScale != 7 || o.mss != 1460 {
		t.Errorf("SYN-ACK %v options %x", synack, synack.Options)
	}
	// two clients never share an ISN or timestamp offset
	q := newPair(t, Config{}, Config{})
	if q.c.e.iss == p.c.e.iss || q.c.e.tsOffset == p.c.e.tsOffset {
		t.Errorf("two clients drew the same ISN %d / ts offset %d", q.c.e.iss, q.c.e.tsOffset)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, tt := range []struct {
		cfg    Config
		client bool
		want   string
	}{
		{Config{Remote: serverAddr}, true, "invalid local address"},
		{Config{Local: clientAddr}, true, "invalid remote address"},
		{Config{Local: clientAddr, Remote: serverAddr}, false, "a server accepts any remote"},
		{Config{Local: clientAddr, Remote: serverAddr, WindowScale: 15}, true, "invalid window scale 15"},
		{Config{Local: clientAddr, Remote: serverAddr, NoWindowScale: true, RecvWindow: 70000}, true, "invalid receive window 70000"},
		{Config{Local: clientAddr, Remote: serverAddr, MSS: 10}, true, "invalid mss 10"},
		{Config{Local: clientAddr, Remote: serverAddr, MinRTO: -1}, true, "invalid min rto"},
	} {
		var err error
		if tt.client {
			_, err = NewClient(tt.cfg)
		} else {
			_, err = NewServer(tt.cfg)
		}
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.want)) {
			t.Errorf("config %+v: error %v, want one containing %q", tt.cfg, err, tt.want)
		}
	}
}

// probe returns a probe payload of n bytes with sequence number seq.
func probe(n int, seq uint64) []byte {
	b := make([]byte, n)
	bench.MarshalProbe(b, 0xfeed, seq)
	for i := bench.HeaderSize; i < n; i++ {
		b[i] = byte(seq + uint64(i))
	}
	return b
}

// nextProbe takes one whole probe off the side's received bytes.
func nextProbe(t testing.TB, s *side) []byte {
	t.Helper()
	buf := s.e.Peek()
	if len(buf) < bench.HeaderSize {
		return nil
	}
	n, err := bench.ProbeLength(buf)
	if err != nil {
		t.Fatalf("%s: received stream is not probes: %v", s.name, err)
	}
	if len(buf) < n {
		return nil
	}
	b := make([]byte, n)
	s.e.Read(b)
	s.got = append(s.got, b...)
	return b
}

// pingPong exchanges count probes; the server answers answerDelay after a
// probe arrives, the client sends the next one gap after the answer.
func pingPong(t *testing.T, p *pair, count int, sizes func(i int) int, answerDelay, gap time.Duration) {
	t.Helper()
	for i := range count {
		req := probe(sizes(i), uint64(i))
		p.send(p.c, req)
		var got []byte
		p.runUntil("request arrives", time.Minute, func() bool { got = nextProbe(t, p.s); return got != nil })
		if !bytes.Equal(got, req) {
			t.Fatalf("probe %d: server got %x, want %x", i, got, req)
		}
		if answerDelay > 0 {
			deadline := p.now + int64(answerDelay)
			for p.advance(deadline) {
			}
			p.now = deadline
		}
		got[3] |= bench.FlagReply
		p.send(p.s, got)
		var answer []byte
		p.runUntil("answer arrives", time.Minute, func() bool { answer = nextProbe(t, p.c); return answer != nil })
		if !bytes.Equal(answer, got) {
			t.Fatalf("probe %d: client got answer %x, want %x", i, answer, got)
		}
		p.now += int64(gap)
	}
}

// closeBoth closes client then server (or the reverse) and runs to CLOSED.
func closeBoth(t *testing.T, p *pair, serverFirst bool) {
	t.Helper()
	first, second := p.c, p.s
	if serverFirst {
		first, second = p.s, p.c
	}
	first.e.Close()
	p.runUntil("FIN arrives", time.Minute, func() bool { return second.e.PeerClosed() })
	second.e.Close()
	p.runUntil("both closed", time.Minute, func() bool {
		return p.c.e.State() == StateClosed && p.s.e.State() == StateClosed
	})
	for _, s := range []*side{p.c, p.s} {
		if err := s.e.Err(); err != nil {
			t.Errorf("%s: closed with error %v", s.name, err)
		}
	}
}

func TestPingPongFast(t *testing.T) {
	p := newPair(t, Config{}, Config{})
	p.handshake()
	if c, s := p.c.e, p.s.e; !c.tsOK || !s.tsOK || !c.sackOK || c.sndScale != 7 || s.sndScale != 7 || c.sndMSS != 1448 || s.sndMSS != 1448 {
		t.Fatalf("negotiated ts %v/%v sack %v scale %d/%d mss %d/%d", c.tsOK, s.tsOK, c.sackOK, c.sndScale, s.sndScale, c.sndMSS, s.sndMSS)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const count = 10000
	sizes := make([]int, count)
	for i := range sizes {
		sizes[i] = 18 + rng.IntN(1460-18+1)
	}
	sizes[0], sizes[1] = 18, 1460
	pingPong(t, p, count, func(i int) int { return sizes[i] }, 0, 20*time.Microsecond)
	cs, ss := p.c.e.Stats(), p.s.e.Stats()
	t.Logf("client %+v", cs)
	t.Logf("server %+v", ss)
	// Linux-like ACK policy: the handshake ACK and the quick ACK of the first
	// answer from the client, the quick ACK of the first request from the
	// server, a few immediate ACKs for probes of more than one full segment
	// (1449..1460 bytes: 1448 + rest), and nothing else: ACKs ride on data.
	twoSegment := 0
	for _, n := range sizes {
		if n > 1448 {
			twoSegment++
		}
	}
	if cs.PureAcksSent < 2 || cs.PureAcksSent > 2+uint64(twoSegment) || ss.PureAcksSent < 1 || ss.PureAcksSent > 1+uint64(twoSegment) {
		t.Errorf("pure ACKs: client %d server %d, want 2 and 1 plus at most %d for two-segment probes", cs.PureAcksSent, ss.PureAcksSent, twoSegment)
	}
	for _, st := range []Stats{cs, ss} {
		if st.Retransmits != 0 || st.Timeouts != 0 || st.DupAcksSent != 0 || st.OutOfOrderDropped != 0 || st.DelayedAcks != 0 {
			t.Errorf("unexpected recovery activity on a lossless link: %+v", st)
		}
	}
	if !bytes.Equal(p.s.got, p.c.sent) || len(p.c.got) != len(p.s.sent) {
		t.Errorf("streams differ: server got %d of %d bytes, client %d of %d", len(p.s.got), len(p.c.sent), len(p.c.got), len(p.s.sent))
	}
	if cs.BytesSent != uint64(len(p.c.sent)) || ss.BytesDelivered != uint64(len(p.c.sent)) {
		t.Errorf("byte counters: client sent %d, server delivered %d, want %d", cs.BytesSent, ss.BytesDelivered, len(p.c.sent))
	}
	closeBoth(t, p, false)
}

func TestPingPongWithLoss(t *testing.T) {
	for _, tt := range []struct {
		name        string
		answerDelay time.Duration
	}{{"fast answers", 0}, {"slow answers", 50 * time.Millisecond}} {
		t.Run(tt.name, func(t *testing.T) {
			p := newPair(t, Config{}, Config{})
			p.handshake()
			rng := rand.New(rand.NewPCG(3, 4))
			p.drop = func(from *side, n int, seg Segment) bool { return seg.Flags&flagRST == 0 && rng.IntN(20) == 0 }
			count := 2000
			if tt.answerDelay > 0 {
				count = 300
			}
			pingPong(t, p, count, func(i int) int { return 18 + (i*97)%(1460-18+1) }, tt.answerDelay, time.Millisecond)
			p.drop = nil
			if !bytes.Equal(p.s.got, p.c.sent) || !bytes.Equal(p.c.got, p.s.sent) {
				t.Fatalf("data not delivered exactly once in order")
			}
			for _, s := range []*side{p.c, p.s} {
				st := s.e.Stats()
				t.Logf("%s: %d data segments dropped; %+v", s.name, p.dropN[s], st)
				if st.Retransmits < uint64(p.dropN[s]) || st.Timeouts == 0 || st.Timeouts > st.Retransmits {
					t.Errorf("%s: %d retransmits, %d timeouts for %d dropped data segments", s.name, st.Retransmits, st.Timeouts, p.dropN[s])
				}
			}
			if tt.answerDelay > 0 && p.s.e.Stats().DelayedAcks == 0 {
				t.Errorf("server never sent a delayed ACK although answers took %v", tt.answerDelay)
			}
			closeBoth(t, p, true)
		})
	}
}

// dropFirst drops the first n-th segment from s that carries payload.
func dropNthData(s *side, nth int) func(*side, int, Segment) bool {
	seen := 0
	return func(from *side, _ int, seg Segment) bool {
		if from != s || len(seg.Payload) == 0 {
			return false
		}
		seen++
		return seen == nth
	}
}

func TestRetransmissionExactCounts(t *testing.T) {
	t.Run("lost request", func(t *testing.T) {
		p := newPair(t, Config{}, Config{})
		p.handshake()
		p.drop = dropNthData(p.c, 1)
		start := p.now
		p.send(p.c, probe(100, 0))
		p.runUntil("request", 5*time.Second, func() bool { return len(p.s.e.Peek()) == 100 })
		waited := time.Duration(p.now - start)
		if st := p.c.e.Stats(); st.Timeouts != 1 || st.Retransmits != 1 {
			t.Errorf("client %+v, want 1 timeout and 1 retransmit", st)
		}
		if waited < 200*time.Millisecond || waited > 210*time.Millisecond {
			t.Errorf("retransmitted after %v, want the 200 ms minimum RTO", waited)
		}
	})
	t.Run("lost answer", func(t *testing.T) {
		p := newPair(t, Config{}, Config{})
		p.handshake()
		pingPong(t, p, 3, func(int) int { return 50 }, 0, time.Millisecond)
		p.drop = dropNthData(p.s, 1)
		pingPong(t, p, 1, func(int) int { return 60 }, 0, time.Millisecond)
		if st := p.s.e.Stats(); st.Timeouts != 1 || st.Retransmits != 1 {
			t.Errorf("server %+v, want 1 timeout and 1 retransmit", st)
		}
		// The answer carried the ACK of the request, so the client's RTO,
		// started first, fires too: it resends the request once.
		if st := p.c.e.Stats(); st.Timeouts > 1 || st.Retransmits > 1 {
			t.Errorf("client %+v, want at most one retransmission", st)
		}
	})
	t.Run("out of order then timeout", func(t *testing.T) {
		p := newPair(t, Config{}, Config{})
		p.handshake()
		p.drop = dropNthData(p.c, 1)
		data := probe(3000, 1) // 1448 + 1448 + 104
		p.send(p.c, data)
		p.runUntil("all data", 5*time.Second, func() bool { return len(p.s.e.Peek()) == 3000 })
		cs, ss := p.c.e.Stats(), p.s.e.Stats()
		// The first dup ACK also updates the window from the SYN-ACK's
		// unscaled 65160 to 65536, so RFC 5681 does not count it.
		if ss.OutOfOrderDropped != 2 || ss.DupAcksSent != 2 || cs.DupAcksReceived != 1 || cs.Timeouts != 1 || cs.Retransmits != 3 || cs.FastRetransmits != 0 {
			t.Errorf("client %+v\nserver %+v\nwant 2 out-of-order drops, 2 dup ACKs, 1 timeout, 3 go-back-N retransmits", cs, ss)
		}
	})
	t.Run("fast retransmit", func(t *testing.T) {
		p := newPair(t, Config{}, Config{})
		p.handshake()
		p.drop = dropNthData(p.c, 1)
		p.send(p.c, probe(5*1448, 2))
		start := p.now
		p.runUntil("all data", 5*time.Second, func() bool { return len(p.s.e.Peek()) == 5*1448 })
		cs, ss := p.c.e.Stats(), p.s.e.Stats()
		if cs.FastRetransmits != 1 || cs.Timeouts != 0 || cs.Retransmits != 5 || ss.OutOfOrderDropped != 4 || p.now != start {
			t.Errorf("client %+v\nserver %+v\nwant 1 fast retransmit of 5 segments, no timeout", cs, ss)
		}
	})
	t.Run("duplicate segment", func(t *testing.T) {
		p := newPair(t, Config{}, Config{})
		p.handshake()
		p.send(p.c, probe(200, 3))
		p.output(p.c)
		dup := p.queue[0]
		p.queue = append(p.queue, dup)
		p.settle()
		if got := len(p.s.e.Peek()); got != 200 {
			t.Errorf("server holds %d bytes, want 200", got)
		}
		if st := p.s.e.Stats(); st.DuplicatesDropped != 1 || st.DupAcksSent != 1 {
			t.Errorf("server %+v, want one duplicate dropped and one dup ACK", st)
		}
	})
	t.Run("syn lost", func(t *testing.T) {
		p := newPair(t, Config{}, Config{})
		p.drop = func(from *side, n int, seg Segment) bool { return from == p.c && n == 0 }
		start := p.now
		p.handshake()
		if st := p.c.e.Stats(); st.Timeouts != 1 || st.Retransmits != 1 || time.Duration(p.now-start) != time.Second {
			t.Errorf("client %+v after %v, want one SYN retransmission after the 1 s initial RTO", st, time.Duration(p.now-start))
		}
	})
	t.Run("syn-ack lost", func(t *testing.T) {
		p := newPair(t, Config{}, Config{})
		p.drop = func(from *side, n int, seg Segment) bool { return from == p.s && n == 0 }
		start := p.now
		p.handshake()
		// At 1 s the server's RTO fires and the client's retransmitted SYN
		// arrives: each makes the server resend its SYN-ACK.
		if cs, ss := p.c.e.Stats(), p.s.e.Stats(); cs.Retransmits != 1 || ss.Retransmits != 2 || ss.Timeouts != 1 || time.Duration(p.now-start) != time.Second {
			t.Errorf("client %+v\nserver %+v after %v, want one SYN and two SYN-ACK retransmissions at 1s", cs, ss, time.Duration(p.now-start))
		}
	})
	t.Run("backoff and give up", func(t *testing.T) {
		p := newPair(t, Config{}, Config{})
		p.handshake()
		p.drop = func(*side, int, Segment) bool { return true }
		p.send(p.c, probe(100, 4))
		start := p.now
		var times []time.Duration
		last := uint64(0)
		p.runUntil("give up", time.Hour, func() bool {
			if st := p.c.e.Stats(); st.Retransmits != last {
				last = st.Retransmits
				times = append(times, time.Duration(p.now-start))
			}
			return p.c.e.State() == StateClosed
		})
		if !errors.Is(p.c.e.Err(), ErrTimeout) || len(times) != dataRetries {
			t.Errorf("error %v after %d retransmissions, want %v after %d", p.c.e.Err(), len(times), ErrTimeout, dataRetries)
		}
		if len(times) > 3 && (times[0] != 200*time.Millisecond || times[1] != 600*time.Millisecond || times[2] != 1400*time.Millisecond) {
			t.Errorf("retransmission times %v, want 200ms, 600ms, 1.4s, … (doubling)", times)
		}
	})
}

func TestDelayedAckTimer(t *testing.T) {
	p := newPair(t, Config{}, Config{})
	p.handshake()
	pingPong(t, p, 5, func(int) int { return 64 }, 0, time.Millisecond)
	if !p.s.e.pingpong || !p.c.e.pingpong {
		t.Fatalf("ping-pong mode not entered: client %v server %v", p.c.e.pingpong, p.s.e.pingpong)
	}
	before := p.s.e.Stats()
	p.send(p.c, probe(64, 99))
	sent := p.now
	p.settle()
	if st := p.s.e.Stats(); st.PureAcksSent != before.PureAcksSent {
		t.Fatalf("server ACKed at once in ping-pong mode")
	}
	if at := p.s.e.NextTimer(); time.Duration(at-sent) != 40*time.Millisecond {
		t.Fatalf("delayed ACK due %v after the request, want 40ms", time.Duration(at-sent))
	}
	p.advance(sent + int64(time.Second))
	if st := p.s.e.Stats(); st.DelayedAcks != before.DelayedAcks+1 || st.PureAcksSent != before.PureAcksSent+1 {
		t.Errorf("server %+v: want one delayed pure ACK", st)
	}
	if p.s.e.pingpong {
		t.Errorf("server still in ping-pong mode after its delayed ACK fired")
	}
	if p.c.e.NextTimer() != 0 {
		t.Errorf("client retransmission timer still armed after the delayed ACK: %d", p.c.e.NextTimer())
	}
}

func TestTeardown(t *testing.T) {
	for _, tt := range []struct {
		name        string
		serverFirst bool
	}{{"client closes first", false}, {"server closes first", true}} {
		t.Run(tt.name, func(t *testing.T) {
			p := newPair(t, Config{}, Config{})
			p.handshake()
			first, second := p.c, p.s
			if tt.serverFirst {
				first, second = p.s, p.c
			}
			p.send(first, probe(3000, 1))
			first.e.Close()
			if err := first.e.Send([]byte("x")); !errors.Is(err, ErrClosed) {
				t.Errorf("Send after Close: %v", err)
			}
			p.runUntil("FIN", time.Minute, func() bool { return second.e.PeerClosed() })
			p.readAll(second)
			if !bytes.Equal(second.got, first.sent) || second.e.State() != StateCloseWait || first.e.State() != StateFinWait2 {
				t.Fatalf("states %v/%v, %d of %d bytes before FIN", first.e.State(), second.e.State(), len(second.got), len(first.sent))
			}
			p.send(second, []byte("last words"))
			second.e.Close()
			p.runUntil("time wait", time.Minute, func() bool { return first.e.State() == StateTimeWait && second.e.State() == StateClosed })
			p.readAll(first)
			if string(first.got) != "last words" {
				t.Errorf("first closer read %q after its FIN", first.got)
			}
			entered := p.now
			p.runUntil("time wait over", time.Minute, func() bool { return first.e.State() == StateClosed })
			if d := time.Duration(p.now - entered); d != time.Second {
				t.Errorf("TIME_WAIT lasted %v, want 1s", d)
			}
		})
	}
	t.Run("simultaneous close", func(t *testing.T) {
		p := newPair(t, Config{}, Config{TimeWait: -1})
		p.handshake()
		p.c.e.Close()
		p.s.e.Close()
		p.runUntil("closed", time.Minute, func() bool { return p.s.e.State() == StateClosed && p.c.e.State() == StateTimeWait })
		if st := p.c.e.Stats(); st.Retransmits != 0 {
			t.Errorf("client retransmitted during simultaneous close: %+v", st)
		}
	})
	t.Run("lost FIN", func(t *testing.T) {
		p := newPair(t, Config{}, Config{})
		p.handshake()
		fins := 0
		p.drop = func(from *side, n int, seg Segment) bool {
			if seg.Flags&flagFIN != 0 && from == p.c {
				fins++
				return fins == 1
			}
			return false
		}
		closeBoth(t, p, false)
		if st := p.c.e.Stats(); st.Retransmits != 1 || st.Timeouts != 1 {
			t.Errorf("client %+v, want its FIN retransmitted once", st)
		}
	})
}

func TestResets(t *testing.T) {
	t.Run("abort", func(t *testing.T) {
		p := newPair(t, Config{}, Config{})
		p.handshake()
		p.c.e.Abort()
		p.settle()
		if p.c.e.State() != StateClosed || !errors.Is(p.c.e.Err(), ErrAborted) || p.c.e.Stats().RSTsSent != 1 {
			t.Errorf("client %v %v %+v", p.c.e.State(), p.c.e.Err(), p.c.e.Stats())
		}
		if p.s.e.State() != StateClosed || !errors.Is(p.s.e.Err(), ErrReset) || p.s.e.Stats().RSTsReceived != 1 {
			t.Errorf("server %v %v %+v", p.s.e.State(), p.s.e.Err(), p.s.e.Stats())
		}
		if err := p.s.e.Send([]byte("x")); !errors.Is(err, ErrReset) {
			t.Errorf("Send on a reset connection: %v", err)
		}
	})
	t.Run("rst sequence check", func(t *testing.T) {
		p := newPair(t, Config{}, Config{})
		p.handshake()
		s := p.s.e
		rst := Segment{Src: clientAddr, Dst: serverAddr, Flags: flagRST}
		rst.Seq = s.rcvNxt + 100 // in window, not exact: challenge ACK
		s.Input(rst, p.now)
		rst.Seq = s.rcvNxt + 1<<30 // outside: ignored
		s.Input(rst, p.now)
		p.settle()
		if st := s.Stats(); s.State() != StateEstablished || st.ChallengeAcks != 1 || st.RSTsReceived != 0 {
			t.Errorf("server %v %+v, want established with one challenge ACK", s.State(), st)
		}
		s.Input(Segment{Src: clientAddr, Dst: serverAddr, Flags: flagSYN, Seq: s.rcvNxt}, p.now)
		p.settle()
		if st := s.Stats(); s.State() != StateEstablished || st.ChallengeAcks != 2 {
			t.Errorf("server %v %+v after an in-window SYN, want a second challenge ACK", s.State(), st)
		}
	})
	t.Run("no connection", func(t *testing.T) {
		p := newPair(t, Config{}, Config{})
		p.handshake()
		s := p.s.e
		stranger := netip.AddrPortFrom(clientAddr.Addr(), 40001)
		var out []Segment
		collect := func(seg Segment) error { out = append(out, seg); return nil }
		for _, seg := range []Segment{
			{Src: stranger, Dst: serverAddr, Flags: flagACK, Seq: 5, Ack: 777},
			{Src: stranger, Dst: serverAddr, Flags: flagSYN, Seq: 1000},
			{Src: stranger, Dst: serverAddr, Flags: flagACK | flagPSH, Seq: 50, Ack: 9, Payload: []byte("abc")},
			{Src: stranger, Dst: serverAddr, Flags: flagRST, Seq: 5},
		} {
			if err := s.Input(seg, p.now); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Input(Segment{Src: stranger, Dst: clientAddr}, p.now); !errors.Is(err, ErrNotLocal) {
			t.Errorf("segment to another address: %v", err)
		}
		s.Output(p.now, collect)
		want := []Segment{
			{Src: serverAddr, Dst: stranger, Flags: flagRST, Seq: 777},
			{Src: serverAddr, Dst: stranger, Flags: flagRST | flagACK, Ack: 1001},
			{Src: serverAddr, Dst: stranger, Flags: flagRST, Seq: 9},
		}
		if len(out) != len(want) {
			t.Fatalf("replies %v, want %v", out, want)
		}
		for i := range want {
			if g, w := out[i], want[i]; g.Src != w.Src || g.Dst != w.Dst || g.Flags != w.Flags || g.Seq != w.Seq || g.Ack != w.Ack || len(g.Options) != 0 {
				t.Errorf("reply %d: %v, want %v", i, g, w)
			}
		}
		if s.State() != StateEstablished {
			t.Errorf("server %v after strangers' segments", s.State())
		}
	})
	t.Run("refused", func(t *testing.T) {
		p := newPair(t, Config{}, Config{})
		p.s.e.Close() // nobody listens
		p.runUntil("refused", time.Minute, func() bool { return p.c.e.State() == StateClosed })
		if !errors.Is(p.c.e.Err(), ErrRefused) || p.s.e.Stats().RSTsSent != 1 {
			t.Errorf("client error %v, server %+v", p.c.e.Err(), p.s.e.Stats())
		}
	})
	t.Run("ack of unsent data", func(t *testing.T) {
		p := newPair(t, Config{}, Config{})
		p.handshake()
		s := p.s.e
		s.Input(Segment{Src: clientAddr, Dst: serverAddr, Flags: flagACK, Seq: s.rcvNxt, Ack: s.sndMax + 1000, Window: 100}, p.now)
		p.settle()
		if st := s.Stats(); s.State() != StateEstablished || st.AcksOfUnsent != 1 || st.RSTsSent != 0 {
			t.Errorf("established server %v %+v, want an ACK and no RST", s.State(), st)
		}
		// in SYN_RECEIVED the same is answered with RST
		q := newPair(t, Config{}, Config{})
		q.output(q.c)
		q.deliver() // SYN to the server, SYN-ACK queued
		q.queue = nil
		s = q.s.e
		s.Input(Segment{Src: clientAddr, Dst: serverAddr, Flags: flagACK, Seq: s.rcvNxt, Ack: s.iss + 5}, q.now)
		var rst Segment
		s.Output(q.now, func(seg Segment) error { rst = seg; return nil })
		if rst.Flags != flagRST || rst.Seq != s.iss+5 || s.State() != StateSynReceived {
			t.Errorf("reply %v in %v, want RST seq %d", rst, s.State(), s.iss+5)
		}
	})
	t.Run("rst in syn-received relistens", func(t *testing.T) {
		q := newPair(t, Config{}, Config{})
		q.output(q.c)
		q.deliver()
		q.queue = nil
		s := q.s.e
		s.Input(Segment{Src: clientAddr, Dst: serverAddr, Flags: flagRST, Seq: s.rcvNxt}, q.now)
		if s.State() != StateListen || s.Stats().RSTsReceived != 1 {
			t.Errorf("server %v %+v, want LISTEN again", s.State(), s.Stats())
		}
	})
}

func TestZeroWindow(t *testing.T) {
	p := newPair(t, Config{}, Config{RecvWindow: 4096, WindowScale: 1})
	p.handshake()
	data := probe(20000, 7)
	p.send(p.c, data)
	p.runUntil("window full", time.Minute, func() bool { return len(p.s.e.Peek()) == 4096 })
	// nobody reads: the client probes the zero window
	deadline := p.now + int64(3*time.Second)
	for p.advance(deadline) {
	}
	if st := p.c.e.Stats(); st.WindowProbes == 0 {
		t.Errorf("client %+v: no zero-window probe", st)
	}
	p.runUntil("all data", time.Minute, func() bool {
		p.readAll(p.s)
		return len(p.s.got) == len(data)
	})
	if !bytes.Equal(p.s.got, data) {
		t.Errorf("data corrupted through the zero window")
	}
}
