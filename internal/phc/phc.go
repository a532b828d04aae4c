// Package phc converts NIC hardware timestamps from the NIC's PTP hardware clock (PHC) to the
// host clock every other stamp is expressed in, and records how well it could.
//
// Clock domains of the stamps stackgap takes on one host:
//   - user stamps and the kernel's software stamps (SO_TIMESTAMPING RX_SOFTWARE, TX_SCHED,
//     TX_SOFTWARE) are CLOCK_REALTIME nanoseconds: the host clock;
//   - the XDP program's hook stamp and AF_XDP copy mode's software completion stamp are
//     CLOCK_TAI; package xdp shifts them to CLOCK_REALTIME by the kernel's TAI offset, a whole
//     number of seconds;
//   - hardware stamps (SO_TIMESTAMPING raw hardware, bpf_xdp_metadata_rx_timestamp, AF_XDP TX
//     metadata completion stamps) are nanoseconds of the NIC's PHC, a free-running or
//     PTP-disciplined counter with its own offset and rate. This package converts them.
//
// Discovery: PHCIndex asks ethtool for the interface's PHC (/dev/ptpN); an interface without one,
// such as veth, gives ErrNoPHC. Open opens the clock.
//
// Measurement: Clock.Measure reads the PHC against CLOCK_REALTIME with the best ioctl the
// driver offers, in this order:
//   - PTP_SYS_OFFSET_PRECISE: a hardware cross-timestamp, both clocks latched at one instant;
//   - PTP_SYS_OFFSET_EXTENDED: up to 25 [realtime before, PHC, realtime after] readings taken
//     by the driver around its PHC register read; the narrowest window wins;
//   - PTP_SYS_OFFSET: the same readings, bracketed by the PTP core instead of the driver, for
//     drivers without gettimex64.
//
// A reading's realtime is the middle of its window and its error bound half the window's width
// (zero for a cross-timestamp). A method the driver does not implement (EOPNOTSUPP, or ENOTTY
// from a kernel that predates it) is not tried again on that Clock.
//
// Conversion: a Converter keeps the two newest measurements, estimates the PHC's rate against
// CLOCK_REALTIME from them, and converts PHC nanoseconds along that line: interpolated between
// the two, extrapolated after the newest. Call Resample off the probe path, about once a second;
// ToRealtime is cheap and allocation-free for the probe path. Uncertainty reports the method,
// the error bound and the estimated rate, so results can record them.
package phc

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
)

// ErrNoPHC means the network interface has no PTP hardware clock (ethtool reports PHC index -1),
// so its NIC gives no hardware timestamps. Test for it with errors.Is.
var ErrNoPHC = errors.New("no PTP hardware clock")

// MaxSamples is the largest number of readings one PTP_SYS_OFFSET_EXTENDED or PTP_SYS_OFFSET
// measurement takes (the kernel's PTP_MAX_SAMPLES); it is also the default.
const MaxSamples = 25

// Method names the ioctl a measurement was made with.
type Method uint8

// The measurement methods, best first.
const (
	// MethodNone: nothing measured yet.
	MethodNone Method = iota
	// MethodPrecise: PTP_SYS_OFFSET_PRECISE, a hardware cross-timestamp.
	MethodPrecise
	// MethodExtended: PTP_SYS_OFFSET_EXTENDED, best of N readings bracketed by the driver.
	MethodExtended
	// MethodBasic: PTP_SYS_OFFSET, best of N readings bracketed by the PTP core.
	MethodBasic
)

func (m Method) String() string {
	switch m {
	case MethodNone:
		return "none"
	case MethodPrecise:
		return "precise"
	case MethodExtended:
		return "extended"
	case MethodBasic:
		return "basic"
	}
	return "Method(" + strconv.Itoa(int(m)) + ")"
}

// Sample is one measurement of the PHC against CLOCK_REALTIME: at the instant the PHC read PHC,
// CLOCK_REALTIME read Realtime, give or take ErrorBound.
type Sample struct {
	PHC      int64  // PHC nanoseconds
	Realtime int64  // CLOCK_REALTIME nanoseconds: the middle of the window
	Window   int64  // width of the [before, after] realtime window around the PHC read, ns; 0 for MethodPrecise
	Method   Method // how the sample was measured
}

// Offset returns PHC − CLOCK_REALTIME in nanoseconds.
func (s Sample) Offset() int64 { return s.PHC - s.Realtime }

// ErrorBound returns the largest error of Realtime, in nanoseconds: half the window, rounded up.
func (s Sample) ErrorBound() int64 { return s.Window - s.Window/2 }

// reading is one [realtime before, PHC, realtime after] triple of PTP_SYS_OFFSET_EXTENDED or
// PTP_SYS_OFFSET, in nanoseconds.
type reading struct {
	before, phc, after int64
}

// crossStamp is the result of PTP_SYS_OFFSET_PRECISE: the PHC and CLOCK_REALTIME latched at the
// same instant, in nanoseconds.
type crossStamp struct {
	phc, realtime int64
}

// offsetSource is the ioctl boundary: a /dev/ptpN device, or a fake PTP clock in tests. A method
// the device does not implement returns an error that matches errors.ErrUnsupported.
type offsetSource interface {
	// precise issues PTP_SYS_OFFSET_PRECISE.
	precise() (crossStamp, error)
	// extended issues PTP_SYS_OFFSET_EXTENDED for n readings (1 ≤ n ≤ MaxSamples).
	extended(n int) ([]reading, error)
	// basic issues PTP_SYS_OFFSET for n readings (1 ≤ n ≤ MaxSamples).
	basic(n int) ([]reading, error)
}

// measurer picks the best method a source supports and remembers the ones it does not.
type measurer struct {
	src                 offsetSource
	noPrecise, noExtend bool
}

// measure takes one sample with n readings (0 means MaxSamples) for the windowed methods.
func (m *measurer) measure(n int) (Sample, error) {
	if n == 0 {
		n = MaxSamples
	}
	if n < 1 || n > MaxSamples {
		return Sample{}, fmt.Errorf("invalid number of samples: %d (want 1 to %d)", n, MaxSamples)
	}
	if !m.noPrecise {
		cs, err := m.src.precise()
		switch {
		case err == nil:
			return Sample{PHC: cs.phc, Realtime: cs.realtime, Method: MethodPrecise}, nil
		case errors.Is(err, errors.ErrUnsupported):
			m.noPrecise = true
		default:
			return Sample{}, fmt.Errorf("measure PHC offset (precise): %w", err)
		}
	}
	if !m.noExtend {
		rs, err := m.src.extended(n)
		switch {
		case err == nil:
			s, err := bestReading(rs)
			if err != nil {
				return Sample{}, fmt.Errorf("measure PHC offset (extended): %w", err)
			}
			s.Method = MethodExtended
			return s, nil
		case errors.Is(err, errors.ErrUnsupported):
			m.noExtend = true
		default:
			return Sample{}, fmt.Errorf("measure PHC offset (extended): %w", err)
		}
	}
	rs, err := m.src.basic(n)
	if err != nil {
		return Sample{}, fmt.Errorf("measure PHC offset (basic): %w", err)
	}
	s, err := bestReading(rs)
	if err != nil {
		return Sample{}, fmt.Errorf("measure PHC offset (basic): %w", err)
	}
	s.Method = MethodBasic
	return s, nil
}

// bestReading returns the reading with the narrowest window as a Sample (without Method); the
// first one wins a tie. Readings whose window is negative (CLOCK_REALTIME stepped back during
// the read) are ignored.
func bestReading(rs []reading) (Sample, error) {
	best := -1
	var bestWindow int64
	for i, r := range rs {
		w := r.after - r.before
		if w < 0 {
			continue
		}
		if best < 0 || w < bestWindow {
			best, bestWindow = i, w
		}
	}
	if best < 0 {
		return Sample{}, fmt.Errorf("no valid reading among %d: every realtime window is negative", len(rs))
	}
	r := rs[best]
	return Sample{PHC: r.phc, Realtime: r.before + bestWindow/2, Window: bestWindow}, nil
}

// Clock is an open PTP hardware clock, /dev/ptpN. It is safe for concurrent use.
type Clock struct {
	index int
	file  *os.File

	mu sync.Mutex // guards m
	m  measurer
}

// Index returns N of /dev/ptpN.
func (c *Clock) Index() int { return c.index }

// Measure measures the PHC against CLOCK_REALTIME with the best method the driver supports,
// taking samples readings (1 to MaxSamples; 0 means MaxSamples) when that method is
// PTP_SYS_OFFSET_EXTENDED or PTP_SYS_OFFSET.
func (c *Clock) Measure(samples int) (Sample, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.m.measure(samples)
	if err != nil {
		return Sample{}, fmt.Errorf("PTP clock %d: %w", c.index, err)
	}
	return s, nil
}

// Close closes the clock's device file.
func (c *Clock) Close() error {
	if err := c.file.Close(); err != nil {
		return fmt.Errorf("close PTP clock %d: %w", c.index, err)
	}
	return nil
}
