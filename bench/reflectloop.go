package bench

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/stackgap/stackgap/internal/clock"
	"github.com/stackgap/stackgap/internal/cpu"
	"github.com/stackgap/stackgap/results"
)

// maxRecvErrors ends a session after this many receive errors in a row.
const maxRecvErrors = 100

// reflectLoop holds one reflector session's state on its thread.
type reflectLoop struct {
	p         SessionParams
	idle      time.Duration
	c         reflectCounters
	clock     clock.Wall
	missing   map[string]uint64
	rx        rxChain
	residence *results.Series
	series    []*results.Series
	tx        *txRing
	stamps    blockSlice[ReflectStamp] // out-of-band stamps of probes too small to carry them
	sends     uint64
	rotated   int64
	endReason string
	// yielder gives the scheduler its turns between probes (see cpu.Yielder).
	yielder *cpu.Yielder
}

func newReflectLoop(p SessionParams, idle time.Duration, start time.Time) *reflectLoop {
	l := &reflectLoop{p: p, idle: idle, clock: clock.ForSession(p.Timestamping), missing: map[string]uint64{}, rotated: start.UnixNano()}
	l.residence = results.NewSeries("residence", results.HostReflector, results.SourceUser, "reflector application: user receive → user send", start)
	l.series = []*results.Series{l.residence}
	l.useStamps(StampSet{}, start)
	return l
}

// useStamps sets up the segment histograms for the stamps the Conn takes.
func (l *reflectLoop) useStamps(set StampSet, start time.Time) {
	tx := newTxChain(results.HostReflector, set.Tx, start)
	l.rx = newRxChain(results.HostReflector, set.Rx, start)
	l.series = append(append(l.series[:1], l.rx.series...), tx.series...)
	l.tx = newTxRing(tx, l.missing)
}

// loop reflects probes until the session is stopped, times out or fails.
func (l *reflectLoop) loop(conn Conn, s *reflectSession) {
	l.useStamps(declaredStamps(conn, l.p.Timestamping), time.Now())
	if cs, ok := conn.(ClockSharer); ok {
		l.clock = cs.Clock()
	}
	if burst, ok := conn.(BurstReflector); ok && !l.p.Timestamping {
		l.burstLoop(burst, s)
		return
	}
	stamper, _ := conn.(SelectiveStamper)
	replier, _ := conn.(StampedReplier)
	inPlace, _ := conn.(InPlaceConn)
	buf := make([]byte, MaxProbeSize)
	hardEnd, idle := s.hardEnd.UnixNano(), int64(l.idle)
	// now is read after timeouts only: after a probe, its user stamp is the
	// time then, so the loop adds no clock read of its own per probe but the
	// one the residence needs.
	now := l.clock.Now()
	lastValid := now
	errorsInRow := 0
	onStamp := l.tx.stamp
	for !s.quit.Load() {
		// The scheduler's turn comes here, after a reply went out and
		// before the next probe is awaited.
		l.yielder.Yield(now)
		if now > hardEnd {
			l.endReason = "session time limit reached"
			return
		}
		var b []byte
		var rx RxStamps
		var err error
		if inPlace != nil {
			b, rx, err = inPlace.RecvInPlace(time.Unix(0, now+int64(pollSlice)))
		} else {
			var n int
			n, rx, err = conn.Recv(buf, time.Unix(0, now+int64(pollSlice)))
			b = buf[:n]
		}
		if err != nil {
			now = l.clock.Now()
			switch {
			case errors.Is(err, ErrTimeout):
				if l.idleEnded(conn, now, lastValid, idle) {
					return
				}
				continue
			case errors.Is(err, io.EOF):
				// The sender closes its end when its phase is over: normal.
				return
			}
			l.c.recvErrors++
			if errorsInRow++; errorsInRow >= maxRecvErrors {
				l.endReason = fmt.Sprintf("receive failing: %v", err)
				return
			}
			continue
		}
		now = max(rx.User, now)
		errorsInRow = 0
		p, ok := l.request(b)
		if !ok {
			continue
		}
		l.c.received++
		lastValid = now
		measured := p.Flags&FlagWarmup == 0
		rxStack := uint32(StampUnknown)
		if first := l.rx.first(&rx); first > 0 && rx.User >= first && rx.User-first < StampUnknown {
			rxStack = uint32(rx.User - first)
		}
		sendAt := l.clock.Now()
		residence := uint32(min(max(sendAt-rx.User, 0), StampUnknown-1))
		inBand := MarkReply(b, rxStack, residence)
		stamped := p.Flags&FlagStamped != 0
		var userTx int64
		if inPlace != nil {
			// The residence's end is the reply's user TX stamp: one
			// clock read less on the way back.
			userTx, err = sendAt, inPlace.ReplyInPlace(stamped, sendAt)
		} else if replier != nil {
			userTx, err = sendAt, replier.ReplyStamped(b, stamped, sendAt)
		} else if stamper != nil {
			userTx, err = stamper.SendStamped(b, stamped)
		} else {
			userTx, err = conn.Send(b)
		}
		if err != nil {
			l.c.sendErrors++
			continue
		}
		l.c.reflected++
		l.tx.sent(l.sends, userTx, measured && stamped)
		l.sends++
		if !measured {
			l.c.warmup++
			l.drainTx(conn, onStamp)
			continue
		}
		l.rx.record(&rx, l.missing)
		l.residence.Record(int64(residence))
		if !inBand {
			l.stamps.Append(ReflectStamp{Seq: p.Seq, RxStack: rxStack, Residence: residence})
		}
		l.drainTx(conn, onStamp)
		if now-l.rotated >= int64(time.Second) {
			l.rotate(now)
		}
	}
}

// request parses b as a probe of the session's and counts why it is not
// one when it is not: malformed, another session's token, or a reply.
func (l *reflectLoop) request(b []byte) (Probe, bool) {
	p, err := ParseProbe(b)
	switch {
	case err != nil:
		l.c.malformed++
		return p, false
	case p.Token != l.p.Token:
		l.c.badToken++
		return p, false
	case p.Flags&FlagReply != 0:
		l.c.notRequest++
		return p, false
	}
	return p, true
}

// idleEnded handles a receive that timed out at now: it ends the session
// when no probe came for the idle timeout (the last at lastValid), and
// otherwise collects TX stamps and closes the interval if one is due.
func (l *reflectLoop) idleEnded(conn Conn, now, lastValid, idle int64) bool {
	if now-lastValid > idle {
		l.endReason = fmt.Sprintf("no probe for %v (idle timeout)", l.idle)
		return true
	}
	l.drainTx(conn, l.tx.stamp)
	l.rotate(now)
	return false
}

// reflectCounters are a session's per-probe counters: plain fields, not a
// map, because they are bumped on the probe path.
type reflectCounters struct {
	received, reflected, warmup, malformed, badToken, notRequest, sendErrors, recvErrors, txStampErrors uint64
}

func (c *reflectCounters) put(m map[string]uint64) {
	for name, v := range map[string]uint64{
		"received": c.received, "reflected": c.reflected, "warmup": c.warmup, "malformed": c.malformed,
		"bad_token": c.badToken, "not_request": c.notRequest, "send_errors": c.sendErrors,
		"recv_errors": c.recvErrors, "tx_stamp_errors": c.txStampErrors,
	} {
		if v != 0 {
			m[name] = v
		}
	}
}

func (l *reflectLoop) drainTx(conn Conn, onStamp func(uint64, TxStampKind, int64)) {
	if err := conn.TxStamps(onStamp); err != nil {
		l.c.txStampErrors++
	}
}

func (l *reflectLoop) rotate(now int64) {
	t := time.Unix(0, now)
	for _, s := range l.series {
		s.Rotate(t)
	}
	l.rotated = now
}

// finish collects the last TX stamps and fills the report.
func (l *reflectLoop) finish(conn Conn, rep *ReflectorReport) {
	settleTxStamps(conn, l.tx, l.sends)
	l.tx.flush()
	l.rotate(l.clock.Now())
	l.c.put(rep.Counters)
	if moves := l.yielder.Moves(); moves > 0 {
		rep.Counters["thread_moves"] = moves
	}
	for k, v := range l.missing {
		rep.Counters["missing_"+k] = v
	}
	if r, ok := conn.(Reporter); ok {
		for k, v := range r.Counters() {
			rep.Counters[k] += v
		}
		for _, n := range r.Notes() {
			rep.Notes = append(rep.Notes, "reflector: "+n)
		}
	}
	rep.Series = l.series
	rep.Stamps = l.stamps.Values()
	rep.UserClock = l.clock.Source()
	if l.endReason != "" {
		rep.Notes = append(rep.Notes, "session ended: "+l.endReason)
	}
}

// settleTxStamps gives the kernel a moment to report the stamps of the last
// sends before their slots are finalized.
func settleTxStamps(conn Conn, tx *txRing, sends uint64) {
	if sends == 0 {
		return
	}
	end := time.Now().Add(20 * time.Millisecond)
	for time.Now().Before(end) {
		if err := conn.TxStamps(tx.stamp); err != nil {
			return
		}
		if tx.complete(sends - 1) {
			return
		}
		time.Sleep(time.Millisecond)
	}
}
