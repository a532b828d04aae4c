package phc

import (
	"math"
	"math/rand/v2"
)

// fakePTP is a fake PTP clock: a PHC that runs offset ns ahead of CLOCK_REALTIME at realtime t0
// and ratePPM faster than it, read through the three ioctls. Every reading advances the fake
// realtime now. A windowed reading's window width is drawn from [minWindow, maxWindow] and the
// PHC is read at a random point inside it (not the middle), so windows are asymmetric and the
// offset of each reading jitters within its bound.
type fakePTP struct {
	offset     int64
	t0         int64
	ratePPM    float64
	now        int64
	minWindow  int64
	maxWindow  int64
	rng        *rand.Rand
	preciseErr error
	extendErr  error
	basicErr   error
	calls      map[string]int
}

// newFakePTP returns a fake PHC 37 s (plus change) ahead of a realtime near 2025, drifting by
// ratePPM, with windows from minWindow to maxWindow ns.
func newFakePTP(ratePPM float64, minWindow, maxWindow int64) *fakePTP {
	const t0 = 1_750_000_000_123_456_789
	return &fakePTP{
		offset:    37_000_000_000 + 123_457,
		t0:        t0,
		ratePPM:   ratePPM,
		now:       t0,
		minWindow: minWindow,
		maxWindow: maxWindow,
		rng:       rand.New(rand.NewPCG(1, 2)),
		calls:     map[string]int{},
	}
}

// phcAt returns the PHC time at realtime rt.
func (f *fakePTP) phcAt(rt int64) int64 {
	return rt + f.offset + int64(math.Round(float64(rt-f.t0)*f.ratePPM*1e-6))
}

// realtimeAt returns the realtime at which the PHC reads phc (the inverse of phcAt, to within
// its rounding).
func (f *fakePTP) realtimeAt(phc int64) int64 {
	u := float64(phc-f.offset-f.t0) / (1 + f.ratePPM*1e-6)
	return f.t0 + int64(math.Round(u))
}

func (f *fakePTP) precise() (crossStamp, error) {
	f.calls["precise"]++
	if f.preciseErr != nil {
		return crossStamp{}, f.preciseErr
	}
	f.now += 3_000
	return crossStamp{phc: f.phcAt(f.now), realtime: f.now}, nil
}

func (f *fakePTP) readings(n int) []reading {
	rs := make([]reading, n)
	for i := range rs {
		f.now += 700 // between readings
		w := f.minWindow
		if f.maxWindow > f.minWindow {
			w += f.rng.Int64N(f.maxWindow - f.minWindow + 1)
		}
		read := f.now + f.rng.Int64N(w+1)
		rs[i] = reading{before: f.now, phc: f.phcAt(read), after: f.now + w}
		f.now += w
	}
	return rs
}

func (f *fakePTP) extended(n int) ([]reading, error) {
	f.calls["extended"]++
	if f.extendErr != nil {
		return nil, f.extendErr
	}
	return f.readings(n), nil
}

func (f *fakePTP) basic(n int) ([]reading, error) {
	f.calls["basic"]++
	if f.basicErr != nil {
		return nil, f.basicErr
	}
	return f.readings(n), nil
}
