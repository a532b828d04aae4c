package clock

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestWallFollowsRealtime(t *testing.T) {
	w := NewWall()
	time.Sleep(5 * time.Millisecond)
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_REALTIME, &ts); err != nil {
		t.Fatal(err)
	}
	got, want := w.Now(), ts.Nano()
	if d := got - want; d < -int64(time.Millisecond) || d > int64(time.Millisecond) {
		t.Fatalf("Wall.Now %d differs from CLOCK_REALTIME %d by %v", got, want, time.Duration(d))
	}
}

func BenchmarkClock(b *testing.B) {
	w := NewWall()
	b.Run("Wall.Now", func(b *testing.B) {
		for b.Loop() {
			w.Now()
		}
	})
	b.Run("time.Now", func(b *testing.B) {
		for b.Loop() {
			_ = time.Now().UnixNano()
		}
	})
}
