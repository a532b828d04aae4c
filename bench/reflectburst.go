package bench

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// burstLoop is loop for a Conn that reflects whole bursts (BurstReflector),
// in a session without timestamping. Per probe it does what loop does for
// such a session: it checks the probe, counts it, marks the reply with its
// residence, records the residence and keeps the reflector's stamps of a
// probe too small to carry them. It leaves out what only stamped sessions
// need: there are no RX stack stamps, and no TX stamps to wait for.
//
// The residence of a probe runs from the burst's receive stamp to the
// clock read when its reply is ready: a probe late in a burst waited for
// the ones before it, and its residence says so.
func (l *reflectLoop) burstLoop(conn BurstReflector, s *reflectSession) {
	hardEnd, idle := s.hardEnd.UnixNano(), int64(l.idle)
	now := l.clock.Now()
	lastValid := now
	// The histograms and the out-of-band stamps are written after the
	// burst's replies are sent, off the probes' path, as loop does.
	var done [burstRecords]burstRecord
	recorded := done[:0]
	reply := func(b []byte, rxUser int64) bool {
		p, ok := l.request(b)
		if !ok {
			return false
		}
		l.c.received++
		lastValid = rxUser
		sendAt := l.clock.Now()
		now = sendAt
		residence := uint32(min(max(sendAt-rxUser, 0), StampUnknown-1))
		inBand := MarkReply(b, StampUnknown, residence)
		l.c.reflected++
		l.sends++
		if p.Flags&FlagWarmup != 0 {
			l.c.warmup++
		} else if len(recorded) < cap(recorded) {
			recorded = append(recorded, burstRecord{seq: p.Seq, residence: residence, inBand: inBand})
		} else {
			l.record(burstRecord{seq: p.Seq, residence: residence, inBand: inBand})
		}
		return true
	}
	errorsInRow := 0
	for !s.quit.Load() {
		// The scheduler's turn comes here, between bursts.
		l.yielder.Yield(now)
		if now > hardEnd {
			l.endReason = "session time limit reached"
			return
		}
		n, err := conn.ReflectBurst(time.Unix(0, now+int64(pollSlice)), reply)
		for _, r := range recorded {
			l.record(r)
		}
		recorded = recorded[:0]
		switch {
		case err == nil:
			errorsInRow = 0
		case errors.Is(err, ErrTimeout):
			now = l.clock.Now()
			if l.idleEnded(conn, now, lastValid, idle) {
				return
			}
			continue
		case errors.Is(err, io.EOF):
			return
		case n > 0:
			// The probes were handled; sending their replies failed.
			l.c.sendErrors++
		default:
			l.c.recvErrors++
			if errorsInRow++; errorsInRow >= maxRecvErrors {
				l.endReason = fmt.Sprintf("receive failing: %v", err)
				return
			}
		}
		if now-l.rotated >= int64(time.Second) {
			l.rotate(now)
		}
	}
}

// burstRecords is how many measured probes of a burst burstLoop records
// after the burst; a Conn's bursts are no larger (the AF_XDP path's are 32).
const burstRecords = 64

// burstRecord is what burstLoop keeps of a measured probe until its burst
// was sent.
type burstRecord struct {
	seq       uint64
	residence uint32
	inBand    bool
}

// record adds a measured probe of a burst to the residence histogram, and
// its stamps to those sent over the control channel when they were not
// in-band.
func (l *reflectLoop) record(r burstRecord) {
	l.residence.Record(int64(r.residence))
	if !r.inBand {
		l.stamps.Append(ReflectStamp{Seq: r.seq, RxStack: StampUnknown, Residence: r.residence})
	}
}
