package clock

import (
	"os"
	"strings"
	"sync"
	"time"
)

// clocksourcePath names the clocksource the kernel keeps time with.
const clocksourcePath = "/sys/devices/system/clocksource/clocksource0/current_clocksource"

// tscCalibration is the window over which the TSC's rate is measured against
// CLOCK_MONOTONIC, once per process: with brackets of ~100 ns at each end the
// rate is good to ~10 ppm, 0.1 ns over a 10 µs interval.
const tscCalibration = 10 * time.Millisecond

// anchorRefresh is the age after which NewFast takes a new base: a base is
// never old enough to drift from CLOCK_REALTIME by more than the calibration
// error and the NTP slew over this time (a few µs), and Walls made within it
// share one base. Differences are only exact between stamps of one Wall, so
// a session's engine reads its Conn's (bench.ClockSharer).
const anchorRefresh = time.Second

// fast is the process's TSC calibration and its latest base.
var fast struct {
	once    sync.Once
	mult    uint64 // nanoseconds per tick × 2^32; 0: no usable TSC
	refresh uint64 // anchorRefresh in ticks

	mu     sync.Mutex
	anchor tscAnchor
}

// A tscAnchor pairs a TSC value with CLOCK_REALTIME (or, while calibrating,
// with a reading of both clocks).
type tscAnchor struct {
	ticks uint64
	at    time.Time
}

// NewFast returns a Wall that counts the time since its base with the TSC
// when the kernel itself keeps time with the TSC (its clocksource is "tsc",
// so the kernel found the counter invariant and in step across CPUs), and
// otherwise NewWall. The first call calibrates the counter (10 ms).
func NewFast() Wall {
	Calibrate()
	if fast.mult == 0 {
		return NewWall()
	}
	fast.mu.Lock()
	defer fast.mu.Unlock()
	if fast.anchor.ticks == 0 || readTSC()-fast.anchor.ticks > fast.refresh {
		fast.anchor = bracketTSC()
	}
	return Wall{baseNanos: fast.anchor.at.UnixNano(), baseTicks: fast.anchor.ticks, mult: fast.mult}
}

// Calibrate measures the TSC's rate if that is not done yet (10 ms), so that
// the first NewFast of a process does not pay for it when a session starts.
func Calibrate() { fast.once.Do(calibrateTSC) }

// ForSession returns the clock for a session's user stamps: NewWall when the
// session takes kernel stamps, which the user stamps are compared with, and
// NewFast when it takes user stamps only.
func ForSession(kernelStamps bool) Wall {
	if kernelStamps {
		return NewWall()
	}
	return NewFast()
}

// kernelKeepsTimeWithTSC reports whether the kernel's clocksource is the TSC.
func kernelKeepsTimeWithTSC() bool {
	b, err := os.ReadFile(clocksourcePath)
	return err == nil && strings.TrimSpace(string(b)) == "tsc"
}

func calibrateTSC() {
	if !haveTSC || !kernelKeepsTimeWithTSC() {
		return
	}
	start := bracketTSC()
	time.Sleep(tscCalibration)
	end := bracketTSC()
	mult, ok := rate(start, end)
	if !ok {
		return
	}
	fast.mult = mult
	fast.refresh = uint64(float64(anchorRefresh) / float64(mult) * (1 << 32))
}

// rate derives nanoseconds per tick × 2^32 from two anchors, refusing a
// counter that went backwards or runs outside 100 MHz–20 GHz.
func rate(start, end tscAnchor) (mult uint64, ok bool) {
	if end.ticks <= start.ticks {
		return 0, false
	}
	ticks, nanos := float64(end.ticks-start.ticks), float64(end.at.Sub(start.at))
	hz := ticks / nanos * 1e9
	if nanos <= 0 || hz < 100e6 || hz > 20e9 {
		return 0, false
	}
	return uint64(nanos / ticks * (1 << 32)), true
}

// bracketTSC reads time.Now between two TSC reads and pairs it with their
// midpoint, keeping the tightest of several tries: the pairing is then off by
// at most half of ~100 ns.
func bracketTSC() tscAnchor {
	var best tscAnchor
	bestWidth := ^uint64(0)
	for range calibrationRounds {
		before := readTSC()
		now := time.Now()
		after := readTSC()
		if after < before {
			continue
		}
		if width := after - before; width < bestWidth {
			bestWidth = width
			best = tscAnchor{ticks: before + width/2, at: now}
		}
	}
	return best
}
