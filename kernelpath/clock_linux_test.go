package kernelpath

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkClock compares the two ways to read CLOCK_REALTIME: time.Now goes
// through the vDSO, unix.ClockGettime makes a real system call.
func BenchmarkClock(b *testing.B) {
	b.Run("time.Now", func(b *testing.B) {
		var sink int64
		for b.Loop() {
			sink += time.Now().UnixNano()
		}
		_ = sink
	})
	b.Run("unix.ClockGettime", func(b *testing.B) {
		var ts unix.Timespec
		for b.Loop() {
			_ = unix.ClockGettime(unix.CLOCK_REALTIME, &ts)
		}
	})
}
