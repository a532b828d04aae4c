package xdp

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stackgap/stackgap/internal/phc"
)

// fakePTPClock is a PTP hardware clock that runs offset ns ahead of
// CLOCK_REALTIME and rate parts per billion faster, read with a fixed
// window; after failAfter measurements it fails.
type fakePTPClock struct {
	offset, window, start int64
	ratePPB               float64
	failAfter             int64
	calls                 atomic.Int64
}

func (f *fakePTPClock) phcAt(realtime int64) int64 {
	return realtime + f.offset + int64(float64(realtime-f.start)*f.ratePPB/1e9)
}

func (f *fakePTPClock) measure() (phc.Sample, error) {
	if n := f.calls.Add(1); f.failAfter > 0 && n > f.failAfter {
		return phc.Sample{}, errors.New("fake PTP clock: read failed")
	}
	rt := time.Now().UnixNano()
	return phc.Sample{PHC: f.phcAt(rt), Realtime: rt, Window: f.window, Method: phc.MethodExtended}, nil
}

func TestHWClockConvertsPHCStamps(t *testing.T) {
	now := time.Now().UnixNano()
	fake := &fakePTPClock{offset: 37e9 + 123, window: 40, start: now, ratePPB: 20_000}
	conv, err := phc.NewConverterFunc(fake.measure)
	if err != nil {
		t.Fatal(err)
	}
	h := startHWClock(conv)
	defer h.close()
	if note := h.note(); !strings.Contains(note, "converted from the NIC's PTP clock to CLOCK_REALTIME: extended offset measurement, window 40 ns") ||
		!strings.Contains(note, "drift not yet estimated") {
		t.Errorf("note after one measurement: %q", note)
	}
	// The resampler's second measurement gives the rate.
	deadline := time.Now().Add(3 * time.Second)
	for conv.Uncertainty().Measurements < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	u := conv.Uncertainty()
	if !u.DriftKnown || u.PHCRatePPB < 10_000 || u.PHCRatePPB > 30_000 {
		t.Fatalf("after resampling: %+v, want the 20000 ppb rate estimated", u)
	}
	if note := h.note(); !strings.Contains(note, "PHC rate +") || !strings.Contains(note, "2 measurements") {
		t.Errorf("note after two measurements: %q", note)
	}
	// A stamp taken now, in PHC time, comes back as now in CLOCK_REALTIME,
	// within the conversion's error bound plus the rate's error over the
	// time since the last measurement.
	rt := time.Now().UnixNano()
	got, ok := h.toRealtime(uint64(fake.phcAt(rt)))
	if d := got - rt; !ok || d < -(u.Bound+1000) || d > u.Bound+1000 {
		t.Errorf("toRealtime(PHC of %d) = %d, %v: off by %d ns (bound ±%d)", rt, got, ok, got-rt, u.Bound)
	}
	if err := h.close(); err != nil {
		t.Fatal(err)
	}
	if err := h.close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestHWClockReportsFailedResamples(t *testing.T) {
	fake := &fakePTPClock{offset: 5e9, window: 100, start: time.Now().UnixNano(), failAfter: 1}
	conv, err := phc.NewConverterFunc(fake.measure)
	if err != nil {
		t.Fatal(err)
	}
	h := startHWClock(conv)
	defer h.close()
	deadline := time.Now().Add(3 * time.Second)
	for h.resampleErrs.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if note := h.note(); !strings.Contains(note, "1 failed (last: resample PHC offset: fake PTP clock: read failed)") {
		t.Errorf("note: %q", note)
	}
	// The conversion from the first measurement stays in use.
	if _, ok := h.toRealtime(1); !ok {
		t.Error("no conversion after a failed resample")
	}
}

func TestHWClockWithoutPHC(t *testing.T) {
	var none *hwClock
	if _, ok := none.toRealtime(1); ok || none.note() != "" || none.close() != nil {
		t.Error("a nil hwClock converts, has a note or fails to close")
	}
	h := &hwClock{err: phc.ErrNoPHC, index: -1}
	if _, ok := h.toRealtime(12345); ok {
		t.Error("converted without a PHC")
	}
	if note := h.note(); !strings.Contains(note, "cannot be converted") || !strings.Contains(note, "no PTP hardware clock") {
		t.Errorf("note: %q", note)
	}
	// A session counts the stamps it has to leave out.
	s := &session{hw: h}
	if got := s.rxHardware(12345); got != 0 || s.counters.RxHardwareUnconverted != 1 || s.counters.RxHardwareStamps != 0 {
		t.Errorf("rxHardware without a PHC = %d, counters %+v", got, s.counters)
	}
	conv, err := phc.NewConverterFunc((&fakePTPClock{offset: 1000, start: time.Now().UnixNano()}).measure)
	if err != nil {
		t.Fatal(err)
	}
	s.hw = startHWClock(conv)
	defer s.hw.close()
	if got := s.rxHardware(5000); got != 4000 || s.counters.RxHardwareStamps != 1 {
		t.Errorf("rxHardware(5000) with the PHC 1000 ns ahead = %d, counters %+v", got, s.counters)
	}
}
