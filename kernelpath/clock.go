package kernelpath

import "time"

// wallNanos reads CLOCK_REALTIME, the clock of SO_TIMESTAMPING software
// stamps. time.Now is a vDSO read; unix.ClockGettime is a real system call and
// costs several times more (see BenchmarkClock). The hot path uses clock.Wall.
func wallNanos() int64 { return time.Now().UnixNano() }

// deadlineNanos converts a deadline; the zero Time means no deadline (0).
func deadlineNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
