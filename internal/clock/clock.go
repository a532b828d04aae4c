// Package clock reads the one clock every stamp of a host is expressed in:
// CLOCK_REALTIME, the clock of the kernel's SO_TIMESTAMPING software stamps,
// as cheaply as Go allows on the probe path.
//
// Two ways to read it:
//   - NewWall: a CLOCK_REALTIME base plus the CLOCK_MONOTONIC time elapsed
//     since, one vDSO read per stamp (~50 ns here). Its stamps stay in step
//     with the kernel's, so sessions that take kernel stamps use it.
//   - NewFast: a CLOCK_REALTIME base plus the CPU's time stamp counter elapsed
//     since, one RDTSC per stamp (~20 ns here), where the kernel itself keeps
//     time with the TSC; the vDSO clock elsewhere. The counter's rate is
//     calibrated once against CLOCK_MONOTONIC but not slewed by NTP
//     afterwards, so its stamps drift from the kernel's by the NTP slew
//     (parts per million) and serve sessions that take user stamps only,
//     where every figure is a difference of two of them. sockperf reads its
//     round-trip stamps the same way.
package clock

import (
	"math/bits"
	"time"
)

// Wall reads CLOCK_REALTIME as a base wall time plus the time elapsed since
// the base, counted by CLOCK_MONOTONIC or (NewFast) by the TSC. Both run at
// the rate NTP slews CLOCK_REALTIME to (the TSC at the rate it was calibrated
// at) and differ from it only by steps of the wall clock, so a Wall is taken
// afresh for every session; a step while one is open shifts its user stamps
// against the kernel's by the size of the step.
type Wall struct {
	base      time.Time // carries a monotonic reading
	baseNanos int64     // CLOCK_REALTIME at the instant of base's monotonic reading, or of baseTicks
	baseTicks uint64    // the TSC at baseNanos (NewFast)
	mult      uint64    // nanoseconds per tick × 2^32 (NewFast); 0: CLOCK_MONOTONIC counts
}

// calibrationRounds is how many brackets NewWall reads to find a tight one:
// about 3 µs in all, once per session.
const calibrationRounds = 16

// NewWall takes the base now.
//
// time.Now reads the wall clock and then the monotonic clock, so an interrupt
// or a preempted vCPU between the two reads would pair a wall time with a later
// monotonic time, and every stamp of the session would come out early by that
// gap: a user receive stamp could precede the kernel's software stamp of the
// same packet. Instead, NewWall takes the wall reading of the middle one of
// three consecutive time.Now calls, which was made between the first call's
// monotonic reading and the third's, and keeps the tightest of several such
// brackets.
func NewWall() Wall {
	var rounds [calibrationRounds]bracket
	first := time.Now()
	for i := range rounds {
		t1 := time.Now()
		t2 := time.Now()
		t3 := time.Now()
		rounds[i] = bracket{
			start: t1.Sub(first),
			end:   t3.Sub(first),
			wall:  t2.UnixNano(),
		}
	}
	offset, wall := tightest(rounds[:])
	return Wall{base: first, baseNanos: wall - int64(offset)}
}

// A bracket is one wall clock reading known to have been taken between two
// monotonic instants, given as durations since a common origin.
type bracket struct {
	start, end time.Duration
	wall       int64
}

// tightest picks the narrowest bracket and returns its midpoint with the
// wall time read there: the wall time is then off by at most half the width.
func tightest(brackets []bracket) (mid time.Duration, wall int64) {
	best := brackets[0]
	for _, b := range brackets[1:] {
		if b.end-b.start < best.end-best.start {
			best = b
		}
	}
	return best.start + (best.end-best.start)/2, best.wall
}

// Now returns the current CLOCK_REALTIME in nanoseconds.
func (w *Wall) Now() int64 {
	if w.mult != 0 {
		return w.baseNanos + int64(ticksToNanos(readTSC()-w.baseTicks, w.mult))
	}
	return w.baseNanos + int64(time.Since(w.base))
}

// Source names what counts the time since the base: "tsc" or "vdso"
// (CLOCK_MONOTONIC through the vDSO).
func (w *Wall) Source() string {
	if w.mult != 0 {
		return "tsc"
	}
	return "vdso"
}

// ticksToNanos converts a tick count with mult, nanoseconds per tick × 2^32,
// without overflow for any count.
func ticksToNanos(ticks, mult uint64) uint64 {
	hi, lo := bits.Mul64(ticks, mult)
	return hi<<32 | lo>>32
}
