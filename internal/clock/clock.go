// Package clock reads the one clock every stamp of a host is expressed in:
// CLOCK_REALTIME, the clock of the kernel's SO_TIMESTAMPING software stamps,
// as cheaply as Go allows on the probe path.
package clock

import "time"

// Wall reads CLOCK_REALTIME as a base wall time plus the CLOCK_MONOTONIC time
// elapsed since the base: one vDSO clock read, where time.Now makes two (wall
// and monotonic). Both clocks run at the rate NTP slews them to and differ
// only by steps of the wall clock, so a Wall is taken afresh for every
// session; a step while one is open shifts its user stamps against the
// kernel's by the size of the step.
type Wall struct {
	base      time.Time // carries a monotonic reading
	baseNanos int64     // CLOCK_REALTIME at the instant of base's monotonic reading
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
func (w *Wall) Now() int64 { return w.baseNanos + int64(time.Since(w.base)) }
