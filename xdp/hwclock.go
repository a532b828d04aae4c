package xdp

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/stackgap/stackgap/internal/phc"
)

// hwResampleInterval is how often a session measures its NIC's PTP clock
// against CLOCK_REALTIME; the first measurement after the one at open comes
// after hwFirstResample, so the drift estimate is there before long.
const (
	hwResampleInterval = time.Second
	hwFirstResample    = 100 * time.Millisecond
)

// hwClock converts a session's NIC hardware stamps (the NIC's PTP hardware
// clock, in nanoseconds) to CLOCK_REALTIME, the clock of every other stamp
// of the host, so segments such as "wire → XDP hook" subtract stamps of one
// clock. A goroutine remeasures the offset and rate every second, off the
// probe path; toRealtime is cheap. Without a conversion (the interface has
// no PHC, or it cannot be read) hardware stamps are left out and counted,
// never reported in the wrong clock.
type hwClock struct {
	conv         *phc.Converter // nil: no conversion, see err
	err          error
	index        int // /dev/ptpN, -1 when the converter is fed otherwise
	resampleErrs atomic.Uint64
	lastErr      atomic.Pointer[error]
	stop         chan struct{}
	done         chan struct{}
	closeClock   func() error
}

// openHWClock finds and opens ifname's PHC and starts converting. It does
// not fail: a clock it cannot open is reported by note and leaves
// toRealtime without a conversion. Call it in the interface's network
// namespace.
func openHWClock(ifname string) *hwClock {
	c, err := phc.OpenInterface(ifname)
	if err != nil {
		return &hwClock{err: err, index: -1}
	}
	conv, err := phc.NewConverter(c, phc.ConverterOptions{})
	if err != nil {
		c.Close()
		return &hwClock{err: err, index: c.Index()}
	}
	h := startHWClock(conv)
	h.index, h.closeClock = c.Index(), c.Close
	return h
}

// startHWClock converts with conv (already measured once) and resamples it
// from a goroutine until close.
func startHWClock(conv *phc.Converter) *hwClock {
	h := &hwClock{conv: conv, index: -1, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		wait := time.NewTimer(hwFirstResample)
		defer wait.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-wait.C:
			}
			if err := conv.Resample(); err != nil {
				h.resampleErrs.Add(1)
				h.lastErr.Store(&err)
			}
			wait.Reset(hwResampleInterval)
		}
	}()
	return h
}

// toRealtime converts a hardware stamp; ok is false when there is no
// conversion. A nil hwClock has none.
func (h *hwClock) toRealtime(phcNs uint64) (ns int64, ok bool) {
	if h == nil || h.conv == nil {
		return 0, false
	}
	return h.conv.ToRealtime(int64(phcNs)), true
}

// close stops resampling and closes the clock. Idempotent; nil is fine.
func (h *hwClock) close() error {
	if h == nil || h.stop == nil {
		return nil
	}
	select {
	case <-h.stop:
		return nil
	default:
	}
	close(h.stop)
	<-h.done
	if h.closeClock != nil {
		return h.closeClock()
	}
	return nil
}

// note says how hardware stamps are converted, for the session's notes.
func (h *hwClock) note() string {
	switch {
	case h == nil:
		return ""
	case h.conv == nil:
		return fmt.Sprintf("NIC hardware stamps cannot be converted to CLOCK_REALTIME, so none are reported: %v", h.err)
	}
	u := h.conv.Uncertainty()
	clock := "the NIC's PTP clock"
	if h.index >= 0 {
		clock = fmt.Sprintf("PTP clock /dev/ptp%d", h.index)
	}
	s := fmt.Sprintf("NIC hardware stamps converted from %s to CLOCK_REALTIME: %s offset measurement, window %d ns, error bound ±%d ns",
		clock, u.Method, u.Window, u.Bound)
	if u.DriftKnown {
		s += fmt.Sprintf(", PHC rate %+.0f ppb against CLOCK_REALTIME", u.PHCRatePPB)
	} else {
		s += ", drift not yet estimated (one measurement)"
	}
	s += fmt.Sprintf("; %d measurements", u.Measurements)
	if u.Restarts > 0 {
		s += fmt.Sprintf(", %d restarts after a clock step", u.Restarts)
	}
	if n := h.resampleErrs.Load(); n > 0 {
		s += fmt.Sprintf(", %d failed (last: %v)", n, *h.lastErr.Load())
	}
	return s
}
