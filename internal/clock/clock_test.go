package clock

import (
	"slices"
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

// A bracket widened by an interrupt between its reads must lose to a tight
// one, or the session's stamps would all be shifted by the interrupt.
func TestTightestBracket(t *testing.T) {
	brackets := []bracket{
		{start: 0, end: 20 * time.Microsecond, wall: 1_000_015_000},      // preempted
		{start: 30 * time.Microsecond, end: 30_100, wall: 1_000_030_040}, // 100 ns wide
		{start: 40 * time.Microsecond, end: 40_400, wall: 1_000_040_300},
	}
	mid, wall := tightest(brackets)
	if mid != 30_050 || wall != 1_000_030_040 {
		t.Fatalf("tightest = %v, %d; want the 100 ns bracket's midpoint 30.05µs and its wall time", mid, wall)
	}
	if mid, wall := tightest(brackets[:1]); mid != 10*time.Microsecond || wall != 1_000_015_000 {
		t.Fatalf("tightest of one = %v, %d; want its midpoint and wall time", mid, wall)
	}
}

// NewWall's base must agree with CLOCK_REALTIME to well under the stack
// latencies the stamps measure. The median over many bases tolerates the odd
// preempted comparison; a pairing error such as a sign mistake in the
// midpoint would move it by microseconds.
func TestWallBaseAgreesWithRealtime(t *testing.T) {
	const trials = 201
	diffs := make([]int64, trials)
	for i := range diffs {
		w := NewWall()
		before := time.Now()
		got := w.Now()
		after := time.Now()
		// before's wall and after's wall bracket got; compare with their middle.
		diffs[i] = got - (before.UnixNano()+after.UnixNano())/2
	}
	slices.Sort(diffs)
	if median := diffs[trials/2]; median < -500 || median > 500 {
		t.Fatalf("median difference of Wall.Now from CLOCK_REALTIME is %d ns, want within ±500 ns (sorted: %v … %v)", median, diffs[:5], diffs[trials-5:])
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
