package kernelpath

import "time"

// wallNanos reads CLOCK_REALTIME, the clock of SO_TIMESTAMPING software
// stamps. time.Now is a vDSO read; unix.ClockGettime is a real system call and
// costs several times more (see BenchmarkClock). The hot path uses wallClock.
func wallNanos() int64 { return time.Now().UnixNano() }

// wallClock reads CLOCK_REALTIME as a base wall time plus the CLOCK_MONOTONIC
// time since the base: one vDSO clock read where time.Now makes two (wall and
// monotonic), see BenchmarkClock. Both clocks run at the rate NTP slews them
// to; they differ only by steps of the wall clock, so a wallClock is taken
// afresh for every Conn, and a step while a Conn is open shifts its user
// stamps against the kernel's by the size of the step.
type wallClock struct {
	base      time.Time // carries a monotonic reading
	baseNanos int64
}

func newWallClock() wallClock {
	t := time.Now()
	return wallClock{base: t, baseNanos: t.UnixNano()}
}

// now returns the current CLOCK_REALTIME in ns.
func (w *wallClock) now() int64 { return w.baseNanos + int64(time.Since(w.base)) }

// deadlineNanos converts a deadline; the zero Time means no deadline (0).
func deadlineNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
