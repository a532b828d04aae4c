package clock

import (
	"runtime"
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

func TestTicksToNanos(t *testing.T) {
	for _, c := range []struct {
		ticks, mult, want uint64
	}{
		{ticks: 2_100_000_000, mult: 2045222521, want: 999_999_999}, // 2.1 GHz: 1 s, truncated
		{ticks: 1000, mult: 1 << 32, want: 1000},                    // 1 GHz
		{ticks: 1 << 62, mult: 1 << 31, want: 1 << 61},              // no overflow
		{ticks: 7, mult: 10 << 32, want: 70},                        // 100 MHz
	} {
		if got := ticksToNanos(c.ticks, c.mult); got != c.want {
			t.Errorf("ticksToNanos(%d, %d) = %d, want %d", c.ticks, c.mult, got, c.want)
		}
	}
}

func TestRate(t *testing.T) {
	start := tscAnchor{ticks: 1_000, at: time.Unix(0, 0)}
	end := tscAnchor{ticks: 1_000 + 21_000_000, at: time.Unix(0, 10_000_000)} // 2.1 GHz over 10 ms
	mult, ok := rate(start, end)
	if !ok || ticksToNanos(21_000_000, mult) < 9_999_990 || ticksToNanos(21_000_000, mult) > 10_000_000 {
		t.Fatalf("rate = %d, %v; want about 2^32/2.1 that turns 21e6 ticks into 10 ms", mult, ok)
	}
	for name, end := range map[string]tscAnchor{
		"backwards":  {ticks: 999, at: end.at},
		"too slow":   {ticks: 1_000 + 500_000, at: end.at},      // 50 MHz
		"too fast":   {ticks: 1_000 + 300_000_000, at: end.at},  // 30 GHz
		"time stood": {ticks: 1_000 + 21_000_000, at: start.at}, // no monotonic time passed
	} {
		if _, ok := rate(start, end); ok {
			t.Errorf("%s: rate accepted", name)
		}
	}
}

// NewFast counts with the TSC exactly where it should: on amd64 when the
// kernel keeps time with the TSC.
func TestFastSource(t *testing.T) {
	w := NewFast()
	want := "vdso"
	if runtime.GOARCH == "amd64" && kernelKeepsTimeWithTSC() {
		want = "tsc"
	}
	if got := w.Source(); got != want {
		t.Fatalf("NewFast counts with %q, want %q (GOARCH %s, kernel clocksource is TSC: %v)", got, want, runtime.GOARCH, kernelKeepsTimeWithTSC())
	}
	if w := NewWall(); w.Source() != "vdso" {
		t.Fatalf("NewWall counts with %q, want vdso", w.Source())
	}
}

// A fast Wall agrees with CLOCK_REALTIME and measures intervals as
// CLOCK_MONOTONIC does.
func TestFastFollowsRealtime(t *testing.T) {
	w := NewFast()
	start, startFast := time.Now(), w.Now()
	time.Sleep(20 * time.Millisecond)
	endFast, end := w.Now(), time.Now()
	// The base is up to a second old, and NTP may slew CLOCK_REALTIME by up
	// to 500 ppm against the calibrated counter: 0.5 ms.
	if d := endFast - end.UnixNano(); d < -int64(time.Millisecond) || d > int64(time.Millisecond) {
		t.Errorf("fast Wall (%s) differs from CLOCK_REALTIME by %v, want within 1 ms", w.Source(), time.Duration(d))
	}
	// 500 ppm of 20 ms is 10 µs; a counter rate off by 0.1 % would be 20 µs.
	mono, measured := end.Sub(start), time.Duration(endFast-startFast)
	if diff := measured - mono; diff < -20*time.Microsecond || diff > 20*time.Microsecond {
		t.Errorf("fast Wall (%s) measured %v where CLOCK_MONOTONIC measured %v", w.Source(), measured, mono)
	}
	prev := w.Now()
	for range 100000 {
		now := w.Now()
		if now < prev {
			t.Fatalf("fast Wall went back from %d to %d", prev, now)
		}
		prev = now
	}
}

// Walls made within a second share one base, so a Conn's stamps and its
// engine's are differences on one scale.
func TestFastWallsShareBase(t *testing.T) {
	a, b := NewFast(), NewFast()
	if a != b {
		// A refresh of the base fell between the two: the next pair shares it.
		a, b = NewFast(), NewFast()
	}
	if a.Source() != "tsc" {
		t.Skip("no TSC clock here")
	}
	if a != b {
		t.Fatalf("two fast Walls made together have bases %+v and %+v, want one", a, b)
	}
}

func BenchmarkClock(b *testing.B) {
	w, f := NewWall(), NewFast()
	b.Run("Wall.Now", func(b *testing.B) {
		for b.Loop() {
			w.Now()
		}
	})
	b.Run("Fast.Now/"+f.Source(), func(b *testing.B) {
		for b.Loop() {
			f.Now()
		}
	})
	b.Run("time.Now", func(b *testing.B) {
		for b.Loop() {
			_ = time.Now().UnixNano()
		}
	})
}
