package kernelpath

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkClock compares ways to read CLOCK_REALTIME: time.Now reads the
// wall and the monotonic clock through the vDSO, wallClock only the monotonic
// one, unix.ClockGettime makes a real system call.
func BenchmarkClock(b *testing.B) {
	b.Run("time.Now", func(b *testing.B) {
		var sink int64
		for b.Loop() {
			sink += time.Now().UnixNano()
		}
		_ = sink
	})
	b.Run("wallClock", func(b *testing.B) {
		var sink int64
		w := newWallClock()
		for b.Loop() {
			sink += w.now()
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

// TestWallClockTracksRealtime checks that wallClock stays within a loose bound
// of CLOCK_REALTIME read by a real system call.
func TestWallClockTracksRealtime(t *testing.T) {
	w := newWallClock()
	time.Sleep(20 * time.Millisecond)
	var ts unix.Timespec
	before := w.now()
	if err := unix.ClockGettime(unix.CLOCK_REALTIME, &ts); err != nil {
		t.Fatal(err)
	}
	after := w.now()
	if real := ts.Nano(); real < before-int64(time.Millisecond) || real > after+int64(time.Millisecond) {
		t.Errorf("CLOCK_REALTIME %d outside wallClock's [%d, %d] by more than 1 ms", real, before, after)
	}
}
