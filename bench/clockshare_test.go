package bench

import (
	"testing"
	"time"

	"github.com/stackgap/stackgap/internal/clock"
)

// sharingConn is a Conn that answers every receive with the same probe,
// stamped on its own clock, and ends the session after a few.
type sharingConn struct {
	clock   clock.Wall
	probe   []byte
	session *reflectSession
	recvs   int
	sent    []int64
}

func (c *sharingConn) Clock() clock.Wall { return c.clock }
func (c *sharingConn) Send(p []byte) (int64, error) {
	now := c.clock.Now()
	c.sent = append(c.sent, now)
	return now, nil
}
func (c *sharingConn) ReplyStamped(p []byte, stamp bool, userTx int64) error {
	c.sent = append(c.sent, userTx)
	return nil
}
func (c *sharingConn) Recv(buf []byte, deadline time.Time) (int, RxStamps, error) {
	if c.recvs++; c.recvs >= 5 {
		c.session.quit.Store(true)
	}
	return copy(buf, c.probe), RxStamps{User: c.clock.Now()}, nil
}
func (c *sharingConn) TxStamps(func(uint64, TxStampKind, int64)) error { return nil }
func (c *sharingConn) Close() error                                    { return nil }

// The reflector's residence end must be read on the clock of the Conn's
// receive stamps, not on a second clock anchored apart.
func TestReflectorAdoptsConnClock(t *testing.T) {
	for _, timestamping := range []bool{false, true} {
		p := SessionParams{Token: 7, Timestamping: timestamping}
		probe := make([]byte, InBandSize)
		MarshalProbe(probe, p.Token, 1)
		s := &reflectSession{hardEnd: time.Now().Add(time.Minute)}
		// The Conn's clock is the other kind than the one the loop would
		// pick for this session, where the TSC clock exists.
		conn := &sharingConn{clock: clock.ForSession(!timestamping), probe: probe, session: s}
		l := newReflectLoop(p, time.Minute, time.Now())
		l.loop(conn, s)
		if l.clock != conn.clock {
			t.Errorf("timestamping %v: the loop reads %s clock %+v, the Conn stamps with %s clock %+v", timestamping, l.clock.Source(), l.clock, conn.clock.Source(), conn.clock)
		}
		if len(conn.sent) != 5 || l.residence.Count() != 5 {
			t.Errorf("timestamping %v: %d replies, %d residences; want 5 each", timestamping, len(conn.sent), l.residence.Count())
		}
	}
}
