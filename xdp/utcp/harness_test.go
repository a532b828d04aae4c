package utcp

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

var (
	clientAddr = netip.MustParseAddrPort("198.18.0.1:40000")
	serverAddr = netip.MustParseAddrPort("198.18.0.2:7000")
)

// side is one endpoint of an in-memory connection with the reference
// streams of what its application sent and received.
type side struct {
	name string
	e    *Endpoint
	sent []byte // everything passed to Send
	got  []byte // everything Read returned
	// lastAck, lastRight: the last ACK number and right window edge it sent.
	lastAck   uint32
	hasAck    bool
	lastRight uint32
	hasRight  bool
}

type inflight struct {
	from *side
	seg  Segment
}

// pair wires a client and a server together through a FIFO of segments on
// a fake clock. drop decides per emitted segment (numbered per direction)
// whether it is lost; every emitted segment is checked against the
// reference streams.
type pair struct {
	t       testing.TB
	now     int64
	c, s    *side
	queue   []inflight
	drop    func(from *side, n int, seg Segment) bool
	sentN   map[*side]int
	dropN   map[*side]int // dropped segments that carried payload
	log     []string
	keepLog bool
}

func newPair(t testing.TB, ccfg, scfg Config) *pair {
	t.Helper()
	if !ccfg.Local.IsValid() {
		ccfg.Local = clientAddr
	}
	if !ccfg.Remote.IsValid() {
		ccfg.Remote = serverAddr
	}
	if !scfg.Local.IsValid() {
		scfg.Local = serverAddr
	}
	c, err := NewClient(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(scfg)
	if err != nil {
		t.Fatal(err)
	}
	return &pair{t: t, now: int64(time.Hour), c: &side{name: "client", e: c}, s: &side{name: "server", e: s},
		sentN: map[*side]int{}, dropN: map[*side]int{}}
}

func (p *pair) peer(s *side) *side {
	if s == p.c {
		return p.s
	}
	return p.c
}

// output runs Output on s and queues (copies of) what it emits.
func (p *pair) output(s *side) {
	p.t.Helper()
	err := s.e.Output(p.now, func(seg Segment) error {
		p.check(s, seg)
		seg.Options = bytes.Clone(seg.Options)
		seg.Payload = bytes.Clone(seg.Payload)
		n := p.sentN[s]
		p.sentN[s]++
		if p.keepLog {
			p.log = append(p.log, fmt.Sprintf("%8.3fms %s %v", float64(p.now-int64(time.Hour))/1e6, s.name, seg))
		}
		if p.drop != nil && p.drop(s, n, seg) {
			if len(seg.Payload) > 0 {
				p.dropN[s]++
			}
			return nil
		}
		p.queue = append(p.queue, inflight{from: s, seg: seg})
		return nil
	})
	if err != nil {
		p.t.Fatalf("%s: Output: %v", s.name, err)
	}
}

// check verifies one emitted segment against the reference streams.
func (p *pair) check(s *side, seg Segment) {
	t := p.t
	t.Helper()
	e, peer := s.e, p.peer(s)
	if seg.Src != e.local || (seg.Dst != e.remote && seg.Flags&flagRST == 0) {
		t.Fatalf("%s: segment %v has wrong addresses (local %v remote %v)", s.name, seg, e.local, e.remote)
	}
	if len(seg.Options)%4 != 0 || len(seg.Options) > 40 {
		t.Fatalf("%s: segment %v has %d option bytes", s.name, seg, len(seg.Options))
	}
	if seg.Flags&flagRST != 0 {
		return
	}
	if e.tsOK && seg.Flags&flagSYN == 0 && len(seg.Options) != timestampOptLen {
		t.Fatalf("%s: segment %v without the timestamp option", s.name, seg)
	}
	if seg.Flags&flagACK != 0 {
		if pe := peer.e; pe.state != StateListen && seqGT(seg.Ack, pe.sndMax) {
			t.Fatalf("%s: segment %v acknowledges beyond what %s sent (snd.max %d)", s.name, seg, peer.name, pe.sndMax)
		}
		if s.hasAck && seqLT(seg.Ack, s.lastAck) {
			t.Fatalf("%s: ACK went backwards from %d: %v", s.name, s.lastAck, seg)
		}
		s.lastAck, s.hasAck = seg.Ack, true
		if seg.Flags&flagSYN == 0 {
			right := seg.Ack + uint32(seg.Window)<<e.rcvScale
			if s.hasRight && seqLT(right, s.lastRight) {
				t.Fatalf("%s: right window edge moved left from %d to %d: %v", s.name, s.lastRight, right, seg)
			}
			s.lastRight, s.hasRight = right, true
		}
	}
	if len(seg.Payload) > 0 {
		off := int(seg.Seq - (e.iss + 1))
		if off < 0 || off+len(seg.Payload) > len(s.sent) {
			t.Fatalf("%s: data segment %v outside the sent stream (offset %d, %d bytes sent)", s.name, seg, off, len(s.sent))
		}
		if !bytes.Equal(seg.Payload, s.sent[off:off+len(seg.Payload)]) {
			t.Fatalf("%s: data segment %v does not carry stream bytes %d..%d", s.name, seg, off, off+len(seg.Payload))
		}
		if uint32(len(seg.Payload)) > e.sndMSS {
			t.Fatalf("%s: %d-byte segment exceeds the MSS %d", s.name, len(seg.Payload), e.sndMSS)
		}
		if peer.hasRight && seqGT(seg.Seq+uint32(len(seg.Payload)), peer.lastRight) && len(seg.Payload) > 1 {
			t.Fatalf("%s: segment %v beyond %s's window edge %d", s.name, seg, peer.name, peer.lastRight)
		}
	}
}

// deliver hands the oldest queued segment to its receiver, then runs the
// receiver's Output. It reports false when nothing was queued.
func (p *pair) deliver() bool {
	if len(p.queue) == 0 {
		return false
	}
	f := p.queue[0]
	p.queue = p.queue[1:]
	to := p.peer(f.from)
	if err := to.e.Input(f.seg, p.now); err != nil {
		p.t.Fatalf("%s: Input(%v): %v", to.name, f.seg, err)
	}
	p.output(to)
	return true
}

// settle runs both endpoints until no segment is in flight.
func (p *pair) settle() {
	p.output(p.c)
	p.output(p.s)
	for p.deliver() {
	}
}

// advance moves the clock to the next timer of either endpoint (at most to
// limit) and runs Output on both. It reports false when no timer runs.
func (p *pair) advance(limit int64) bool {
	next := int64(0)
	for _, s := range []*side{p.c, p.s} {
		if t := s.e.NextTimer(); t != 0 && (next == 0 || t < next) {
			next = t
		}
	}
	if next == 0 || next > limit {
		return false
	}
	if next > p.now {
		p.now = next
	}
	p.settle()
	return true
}

// runUntil settles and follows timers until cond holds, failing after
// maxWait of fake time.
func (p *pair) runUntil(what string, maxWait time.Duration, cond func() bool) {
	p.t.Helper()
	deadline := p.now + int64(maxWait)
	p.settle()
	for !cond() {
		if !p.advance(deadline) {
			p.dumpLog()
			p.t.Fatalf("%s: not reached after %v (client %v, server %v)", what, maxWait, p.c.e.State(), p.s.e.State())
		}
	}
}

func (p *pair) dumpLog() {
	for _, l := range p.log[max(0, len(p.log)-40):] {
		p.t.Log(l)
	}
}

func (p *pair) send(s *side, data []byte) {
	p.t.Helper()
	if err := s.e.Send(data); err != nil {
		p.t.Fatalf("%s: Send(%d bytes): %v", s.name, len(data), err)
	}
	s.sent = append(s.sent, data...)
}

// readAll moves everything s received into s.got.
func (p *pair) readAll(s *side) {
	var buf [4096]byte
	for {
		n := s.e.Read(buf[:])
		if n == 0 {
			return
		}
		s.got = append(s.got, buf[:n]...)
	}
}

func (p *pair) handshake() {
	p.t.Helper()
	p.runUntil("handshake", 5*time.Second, func() bool {
		return p.c.e.State() == StateEstablished && p.s.e.State() == StateEstablished
	})
}
