package phc

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
)

// maxRateDeviation is the largest rate difference between the PHC and CLOCK_REALTIME taken for
// drift (1000 ppm: crystals stay within ±100 ppm, NTP slews by at most 500 ppm). A larger
// apparent difference between two measurements means one of the clocks was stepped, and the
// conversion restarts from the newer measurement.
const maxRateDeviation = 1e-3

// ConverterOptions configures NewConverter.
type ConverterOptions struct {
	// Samples is the number of readings each PTP_SYS_OFFSET_EXTENDED or PTP_SYS_OFFSET
	// measurement takes, the narrowest one kept (optional, default and maximum MaxSamples).
	Samples int
}

// Uncertainty says how PHC times are converted and how good the conversion is.
type Uncertainty struct {
	// Method is how the newest measurement was made.
	Method Method
	// Window is the width of the newest measurement's realtime window, ns (0 for MethodPrecise).
	Window int64
	// Bound is the largest conversion error in ns for PHC times from the older measurement to
	// one Interval after the newer one, if the PHC runs at a steady rate against CLOCK_REALTIME:
	// e_old + 2·e_new with e a measurement's ErrorBound. Beyond that it grows by
	// (e_old + e_new) per further Interval. Without a rate estimate (DriftKnown false) Bound is
	// e_new alone and leaves out the unknown drift, up to |rate| × time since the measurement.
	Bound int64
	// DriftKnown reports whether the conversion line goes through two measurements.
	DriftKnown bool
	// PHCRatePPB is how much faster the PHC runs than CLOCK_REALTIME, in parts per billion
	// (0 without DriftKnown).
	PHCRatePPB float64
	// Interval is the CLOCK_REALTIME time between the two measurements, ns (0 without DriftKnown).
	Interval int64
	// Realtime is the CLOCK_REALTIME of the newest measurement, ns.
	Realtime int64
	// Measurements counts the successful measurements since NewConverter.
	Measurements uint64
	// Restarts counts the times a clock step (a rate difference over 1000 ppm, or time running
	// backwards between measurements) made the conversion restart from one measurement.
	Restarts uint64
}

// Converter converts PHC nanoseconds to CLOCK_REALTIME nanoseconds along the line through its
// two newest measurements. ToRealtime and Uncertainty may be called from any goroutine, also
// while Resample runs: Resample builds the next conversion and publishes it with one atomic
// pointer store, so a reader sees either the old or the new conversion, never a mix. Resample
// calls are serialised.
type Converter struct {
	measure func() (Sample, error)

	mu   sync.Mutex                 // serialises Resample
	line atomic.Pointer[conversion] // never nil after NewConverterFunc
}

// conversion is one immutable conversion line.
type conversion struct {
	anchor Sample // the newest measurement
	// slope is (Δrealtime − Δphc)/Δphc between the two measurements: realtime advances by
	// (1 + slope) ns per PHC ns. 0 with a single measurement.
	slope       float64
	uncertainty Uncertainty
}

// NewConverter measures c once and returns a Converter for its PHC times. Until the next
// Resample it converts with the offset alone (no drift estimate).
func NewConverter(c *Clock, opts ConverterOptions) (*Converter, error) {
	if opts.Samples < 0 || opts.Samples > MaxSamples {
		return nil, fmt.Errorf("invalid number of samples: %d (want 0 for the default, or 1 to %d)", opts.Samples, MaxSamples)
	}
	return NewConverterFunc(func() (Sample, error) { return c.Measure(opts.Samples) })
}

// NewConverterFunc returns a Converter fed by measure instead of a Clock: for another clock
// source, or for tests that need a conversion with a known offset and rate. It calls measure once
// now and once per Resample.
func NewConverterFunc(measure func() (Sample, error)) (*Converter, error) {
	if measure == nil {
		return nil, fmt.Errorf("new PHC converter: nil measure function")
	}
	conv := &Converter{measure: measure}
	if err := conv.Resample(); err != nil {
		return nil, err
	}
	return conv, nil
}

// Resample takes a new measurement and moves the conversion line through it and the previous
// one. Call it off the probe path, about once a second. On error the conversion is unchanged.
func (c *Converter) Resample() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.measure()
	if err != nil {
		return fmt.Errorf("resample PHC offset: %w", err)
	}
	if s.Window < 0 {
		return fmt.Errorf("resample PHC offset: invalid sample: negative window %d ns", s.Window)
	}
	c.line.Store(nextConversion(c.line.Load(), s))
	return nil
}

// nextConversion returns the conversion line through prev's newest measurement (if any, and if
// the clocks were not stepped in between) and s.
func nextConversion(prev *conversion, s Sample) *conversion {
	next := &conversion{anchor: s, uncertainty: Uncertainty{
		Method:       s.Method,
		Window:       s.Window,
		Bound:        s.ErrorBound(),
		Realtime:     s.Realtime,
		Measurements: 1,
	}}
	if prev == nil {
		return next
	}
	u := &next.uncertainty
	u.Measurements = prev.uncertainty.Measurements + 1
	u.Restarts = prev.uncertainty.Restarts
	old := prev.anchor
	dPHC := s.PHC - old.PHC
	dRealtime := s.Realtime - old.Realtime
	tolerance := float64(old.ErrorBound() + s.ErrorBound())
	if dPHC <= 0 || dRealtime <= 0 ||
		math.Abs(float64(dRealtime-dPHC)) > maxRateDeviation*float64(dRealtime)+tolerance {
		u.Restarts++
		return next
	}
	// Measurement error over a short interval can still push the slope past the limit; a slope
	// beyond it is never real, so clamp it to keep extrapolation bounded.
	next.slope = max(-maxRateDeviation, min(maxRateDeviation, float64(dRealtime-dPHC)/float64(dPHC)))
	u.DriftKnown = true
	u.PHCRatePPB = float64(dPHC-dRealtime) / float64(dRealtime) * 1e9
	u.Interval = dRealtime
	u.Bound = old.ErrorBound() + 2*s.ErrorBound()
	return next
}

// ToRealtime converts a PHC time to CLOCK_REALTIME, both in nanoseconds. Zero, the project's
// "no stamp", stays zero. It does not allocate.
func (c *Converter) ToRealtime(phcNs int64) int64 {
	if phcNs == 0 {
		return 0
	}
	line := c.line.Load()
	d := phcNs - line.anchor.PHC
	return line.anchor.Realtime + d + int64(math.Round(float64(d)*line.slope))
}

// Uncertainty describes the current conversion.
func (c *Converter) Uncertainty() Uncertainty { return c.line.Load().uncertainty }
