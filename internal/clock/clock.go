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
	baseNanos int64
}

// NewWall takes the base now.
func NewWall() Wall {
	t := time.Now()
	return Wall{base: t, baseNanos: t.UnixNano()}
}

// Now returns the current CLOCK_REALTIME in nanoseconds.
func (w *Wall) Now() int64 { return w.baseNanos + int64(time.Since(w.base)) }
