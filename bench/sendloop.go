package bench

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/stackgap/stackgap/internal/clock"
	"github.com/stackgap/stackgap/internal/cpu"
	"github.com/stackgap/stackgap/internal/nogc"
	"github.com/stackgap/stackgap/results"
)

// probeRingSize is how many recent probes the sender tracks; with at most
// MaxInflight in flight a slot is always resolved before it is reused.
const probeRingSize = 8192

const (
	stateFree uint8 = iota
	stateOutstanding
	stateReceived
	stateLost
)

type probeSlot struct {
	seq      uint64
	state    uint8
	userTx   int64
	deadline int64
}

// sendLoop is the sender's closed-loop ping-pong for one phase.
type sendLoop struct {
	o     RunOptions
	token uint32
	probe []byte
	buf   []byte

	slots    [probeRingSize]probeSlot
	next     uint64 // next sequence number to send
	oldest   uint64 // no probe below it is outstanding
	inflight int
	highest  uint64 // highest sequence number answered, plus one
	measured int64  // clock when the first measured probe was sent, 0 before
	// warmupEnd is the first measured sequence number: Warmup, or lower when
	// the warm-up ran out of time (a peer that answers nothing must not stall it).
	warmupEnd   uint64
	warmupUntil int64
	stopAt      int64 // clock after which no probe is sent (duration mode)

	c       results.Counters
	extra   map[string]uint64
	missing map[string]uint64

	rtt        *results.Series
	rttNoRes   *results.Series
	rx         rxChain
	series     []*results.Series
	tx         *txRing
	start      time.Time
	rotated    int64
	pendingRTT blockSlice[uint32] // by seq−warmup: round trips awaiting out-of-band reflector stamps
	cpu        int
	notes      []string
	// echo accepts replies without the reply flag (a plain echo peer).
	echo bool
	// clock reads the loop's notion of now (the user stamps come from the Conn).
	clock clock.Wall
	// yielder gives the scheduler its turns between probes (see cpu.Yielder).
	yielder *cpu.Yielder
	// stamper is the Conn when it can stamp selected sends only.
	stamper SelectiveStamper
	// batch is the Conn when it can batch sends (BatchConn).
	batch BatchConn
	// rttStamped is the round trip of stamped probes (nil when every probe
	// is stamped, or none is: then "rtt" holds them all).
	rttStamped *results.Series
}

func newSendLoop(o RunOptions, token uint32, start time.Time) *sendLoop {
	l := &sendLoop{o: o, token: token, extra: map[string]uint64{}, missing: map[string]uint64{}, rotated: start.UnixNano(), cpu: -1}
	l.warmupEnd = o.Warmup
	l.clock = clock.ForSession(!o.NoTimestamps)
	l.warmupUntil = start.Add(MaxWarmupTime).UnixNano()
	l.probe = make([]byte, o.Size)
	MarshalProbe(l.probe, token, 0)
	l.buf = make([]byte, MaxProbeSize)
	l.start = start
	l.rtt = results.NewSeries("rtt", results.HostSender, results.SourceUser, "round trip: user send → user receive", start)
	l.series = []*results.Series{l.rtt}
	l.echo = o.Echo
	if !o.Echo {
		// An echo peer reports no residence to subtract.
		l.rttNoRes = results.NewSeries("rtt_minus_residence", results.HostSender, results.SourceUser, "round trip less the reflector's residence: both stacks and the wire", start)
		l.series = append(l.series, l.rttNoRes)
	}
	if !o.NoTimestamps && o.StampEvery > 1 {
		l.rttStamped = results.NewSeries("rtt.stamped", results.HostSender, results.SourceUser,
			fmt.Sprintf("round trip of the stamped probes (1 in %d): rtt plus the cost of taking TX stamps on both hosts", o.StampEvery), start)
		l.series = append(l.series, l.rttStamped)
	}
	return l
}

// useStamps sets up the segment histograms for the stamps conn takes.
func (l *sendLoop) useStamps(set StampSet) {
	tx := newTxChain(results.HostSender, set.Tx, l.start)
	l.rx = newRxChain(results.HostSender, set.Rx, l.start)
	l.series = append(append(l.series, l.rx.series...), tx.series...)
	l.tx = newTxRing(tx, l.missing)
}

// runOnThread dials and runs the loop on a locked, optionally pinned thread.
func (l *sendLoop) runOnThread(path Path, spec DialSpec, cpuID int, stop *atomic.Bool) error {
	restore, err := cpu.Pin(cpuID)
	if err != nil {
		return err
	}
	defer restore()
	defer cpu.ClaimP()()
	l.cpu = cpu.Current()
	if cpuID >= 0 && !cpu.Exclusive() {
		l.notes = append(l.notes, sharedCPUNote(cpuID))
	}
	l.yielder = cpu.NewYielder(0)
	conn, err := path.Dial(spec)
	if err != nil {
		return err
	}
	defer conn.Close()
	if cs, ok := conn.(ClockSharer); ok {
		l.clock = cs.Clock()
	}
	l.useStamps(declaredStamps(conn, spec.Timestamping))
	l.stamper, _ = conn.(SelectiveStamper)
	l.batch, _ = conn.(BatchConn)
	release := nogc.Hold()
	err = l.loop(conn, stop)
	if n := release(); n > 0 {
		l.extra["gc_cycles"] += n
	}
	if moves := l.yielder.Moves(); moves > 0 {
		l.extra["thread_moves"] += moves
	}
	settleTxStamps(conn, l.tx, l.next)
	l.tx.flush()
	l.collectReport(conn, "")
	return err
}

// collectReport keeps what a Reporter Conn has to say for the phase results.
func (l *sendLoop) collectReport(conn Conn, prefix string) {
	r, ok := conn.(Reporter)
	if !ok {
		return
	}
	for k, v := range r.Counters() {
		l.extra[prefix+k] += v
	}
	l.notes = append(l.notes, r.Notes()...)
}

// sharedCPUNote says that the measuring thread pinned to cpuID shares it with
// the process's other threads, the Go runtime's monitor among them, and
// whether the monitor's wakes come with the scheduler tick (cpu.TimersCoalesced).
func sharedCPUNote(cpuID int) string {
	how := "each with a timer interrupt of its own (its timer slack could not be set: that takes CAP_SYS_NICE)"
	if cpu.TimersCoalesced() {
		how = fmt.Sprintf("at the scheduler tick (its timer slack is %d ms while this thread measures)", cpu.OtherThreadsTimerSlack/1_000_000)
	}
	return fmt.Sprintf("cpu %d is the only one the process may use: the Go runtime's monitor wakes there too, "+
		"80 to 100 times a second, %s (let the process use another CPU to keep it off)", cpuID, how)
}

// MaxWarmupTime bounds the warm-up: it ends after RunOptions.Warmup probes or
// this long, whichever comes first.
const MaxWarmupTime = 2 * time.Second

func (l *sendLoop) isMeasured(seq uint64) bool { return seq >= l.warmupEnd }

// send transmits probe seq.
func (l *sendLoop) send(conn Conn, seq uint64) error {
	SetProbeSeq(l.probe, seq)
	measured := l.isMeasured(seq)
	stamped := l.isStamped(seq)
	SetProbeWarmup(l.probe, !measured)
	SetProbeStamped(l.probe, stamped)
	var userTx int64
	var err error
	switch {
	case l.batch != nil:
		userTx, err = l.batch.SendDeferred(l.probe, stamped)
	case l.stamper != nil:
		userTx, err = l.stamper.SendStamped(l.probe, stamped)
	default:
		userTx, err = conn.Send(l.probe)
	}
	if err != nil {
		return fmt.Errorf("send probe %d: %w", seq, err)
	}
	s := &l.slots[seq%probeRingSize]
	*s = probeSlot{seq: seq, state: stateOutstanding, userTx: userTx, deadline: userTx + int64(l.o.Timeout)}
	l.next = seq + 1
	l.inflight++
	if measured {
		l.c.Sent++
		if l.measured == 0 {
			l.measured = userTx
			if l.o.Count == 0 {
				l.stopAt = userTx + int64(l.o.Duration)
			}
		}
	} else {
		l.c.WarmupSent++
	}
	l.tx.sent(seq, userTx, measured && stamped)
	return nil
}

// isStamped says whether probe seq belongs to the stamped class: both hosts
// take transmit stamps for it, and its round trip goes to "rtt.stamped".
func (l *sendLoop) isStamped(seq uint64) bool {
	return !l.o.NoTimestamps && seq%uint64(l.o.StampEvery) == 0
}

// fill sends probes until the window is full or sending has ended. A
// BatchConn sends them all with one kernel call at the end.
func (l *sendLoop) fill(conn Conn, now int64) (done bool, err error) {
	if l.batch != nil {
		defer func() {
			if ferr := l.batch.Flush(); ferr != nil && err == nil {
				err = fmt.Errorf("send: %w", ferr)
			}
		}()
	}
	for l.inflight < l.o.Inflight {
		if l.o.Count > 0 && l.next >= l.warmupEnd+l.o.Count {
			return true, nil
		}
		if l.stopAt != 0 && now >= l.stopAt {
			return true, nil
		}
		if l.next < l.warmupEnd && now >= l.warmupUntil {
			l.warmupEnd = l.next
		}
		if err := l.send(conn, l.next); err != nil {
			return false, err
		}
	}
	return false, nil
}

// loop runs the closed loop until every probe is answered or lost. It reads
// the clock once per turn, and not at all after a reply: the reply's user
// stamp is the time then.
func (l *sendLoop) loop(conn Conn, stop *atomic.Bool) error {
	sendingDone := false
	onStamp := l.tx.stamp
	now := l.clock.Now()
	for {
		if stop.Load() {
			l.abandon()
			return nil
		}
		// The scheduler's turn comes here, between a reply and the next
		// send: with one probe in flight it lands inside no round trip.
		l.yielder.Yield(now)
		// With several probes in flight, every reply that already waits is
		// taken before the window is refilled, so one batch replaces them.
		if !sendingDone && !(l.batch != nil && l.inflight > 0 && l.batch.Pending()) {
			var err error
			if sendingDone, err = l.fill(conn, now); err != nil {
				return err
			}
		}
		if sendingDone && l.inflight == 0 {
			return nil
		}
		deadline := now + int64(pollSlice)
		if l.inflight > 0 {
			deadline = min(deadline, l.slots[l.oldest%probeRingSize].deadline)
		}
		n, rx, err := conn.Recv(l.buf, time.Unix(0, deadline))
		switch {
		case err == nil:
			// Bookkeeping and the TX stamps of earlier probes come before
			// the next send: work done then delays the next probe but is
			// inside no probe's round trip (with one probe in flight).
			l.reply(l.buf[:n], rx)
			now = max(rx.User, now)
		case errors.Is(err, ErrTimeout):
			now = l.clock.Now()
		default:
			return fmt.Errorf("receive: %w", err)
		}
		l.expire(now)
		if err := conn.TxStamps(onStamp); err != nil {
			l.extra["tx_stamp_errors"]++
		}
		if now-l.rotated >= int64(time.Second) {
			l.rotate(now)
		}
	}
}

// reply accounts one received packet; it reports whether it freed a window slot.
func (l *sendLoop) reply(b []byte, rx RxStamps) bool {
	p, err := ParseProbe(b)
	switch {
	case err != nil:
		l.extra["malformed_replies"]++
		return false
	case p.Token != l.token || (p.Flags&FlagReply == 0 && !l.echo):
		l.extra["foreign_replies"]++
		return false
	case len(b) != l.o.Size:
		l.extra["size_mismatch"]++
		return false
	case p.Seq >= l.next:
		l.extra["unknown_seq"]++
		return false
	case p.Seq+probeRingSize <= l.next:
		l.c.Late++
		return false
	}
	s := &l.slots[p.Seq%probeRingSize]
	switch s.state {
	case stateReceived:
		l.c.Duplicated++
		return false
	case stateLost:
		l.c.Late++
		return false
	}
	s.state = stateReceived
	l.inflight--
	if p.Seq+1 < l.highest {
		l.c.Reordered++
	} else {
		l.highest = p.Seq + 1
	}
	if !l.isMeasured(p.Seq) {
		l.c.WarmupReceived++
		return true
	}
	l.c.Received++
	rtt := rx.User - s.userTx
	l.rx.record(&rx, l.missing)
	if l.rttStamped != nil && l.isStamped(p.Seq) {
		l.rttStamped.Record(rtt)
		return true
	}
	l.rtt.Record(rtt)
	switch {
	case l.echo:
		// No reflector stamps will come, in-band or over a control channel.
	case p.Flags&FlagReflectStamps != 0:
		l.recordNoResidence(rtt, p.ReflectResidence)
	default:
		l.pendingRTT.Set(int(p.Seq-l.warmupEnd), uint32(min(rtt, StampUnknown-1)))
	}
	return true
}

func (l *sendLoop) recordNoResidence(rtt int64, residence uint32) {
	if d := rtt - int64(residence); d > 0 {
		l.rttNoRes.Record(d)
	} else {
		l.missing["out_of_order"]++
	}
}

// expire counts as lost every outstanding probe whose deadline has passed.
func (l *sendLoop) expire(now int64) {
	for l.oldest < l.next {
		s := &l.slots[l.oldest%probeRingSize]
		if s.state == stateOutstanding {
			if s.deadline > now {
				return
			}
			s.state = stateLost
			l.inflight--
			if l.isMeasured(s.seq) {
				l.c.Lost++
			} else {
				l.c.WarmupLost++
			}
		}
		l.oldest++
	}
}

// abandon counts the probes still in flight when the run is interrupted as lost.
func (l *sendLoop) abandon() {
	for seq := l.oldest; seq < l.next; seq++ {
		if s := &l.slots[seq%probeRingSize]; s.state == stateOutstanding {
			s.deadline = 0
		}
	}
	before := l.c.Lost + l.c.WarmupLost
	l.expire(1)
	if n := l.c.Lost + l.c.WarmupLost - before; n > 0 {
		l.extra["abandoned_in_flight"] += n
	}
}

func (l *sendLoop) rotate(now int64) {
	t := time.Unix(0, now)
	for _, s := range l.series {
		s.Rotate(t)
	}
	l.rotated = now
}

// result joins the sender's and the reflector's data into the phase's data.
func (l *sendLoop) result(index int, path, transport string, started time.Time, rep *ReflectorReport) *PhaseData {
	for _, st := range rep.Stamps {
		if st.Seq < l.warmupEnd {
			continue
		}
		if i := st.Seq - l.warmupEnd; i < uint64(l.pendingRTT.Len()) {
			if rtt := l.pendingRTT.At(int(i)); rtt != 0 {
				l.recordNoResidence(int64(rtt), st.Residence)
			}
		}
	}
	finished := time.Now()
	l.rotate(finished.UnixNano())
	pd := &PhaseData{Series: append(append([]*results.Series(nil), l.series...), rep.Series...)}
	c := l.c
	c.Missing = nonEmpty(l.missing)
	c.Other = nonEmpty(l.extra)
	c.Reflector = rep.Counters
	pd.Phase = results.Phase{
		Index: index, Path: path, Transport: transport,
		Started: started, Finished: finished, Counters: c,
		SenderCPU: l.cpu, ReflectorCPU: rep.CPU,
		UserClocks: results.UserClocks{Sender: l.clock.Source(), Reflector: rep.UserClock},
	}
	pd.Phase.Notes = append(append(pd.Phase.Notes, l.notes...), rep.Notes...)
	return pd
}

func nonEmpty(m map[string]uint64) map[string]uint64 {
	if len(m) == 0 {
		return nil
	}
	return m
}
