package phc

import (
	"errors"
	"math"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// fakeConverter returns a Converter measuring fake with n readings, as NewConverter does a Clock.
func fakeConverter(t *testing.T, fake *fakePTP, n int) *Converter {
	t.Helper()
	m := &measurer{src: fake}
	conv, err := NewConverterFunc(func() (Sample, error) { return m.measure(n) })
	if err != nil {
		t.Fatalf("NewConverterFunc: %v", err)
	}
	return conv
}

// The conversion of PHC times from the older measurement to one interval after the newer one
// stays within Bound of the truth, for several drifts, methods and windows.
func TestConverterDrift(t *testing.T) {
	tests := []struct {
		name                 string
		ratePPM              float64
		minWindow, maxWindow int64
		precise              bool
		maxBound             int64 // what Bound must not exceed for these windows
	}{
		{"precise, 50 ppm", 50, 0, 0, true, 0},
		{"precise, -120 ppm", -120, 0, 0, true, 0},
		{"precise, no drift", 0, 0, 0, true, 0},
		{"extended, 50 ppm", 50, 20, 60, false, 3 * 30},
		{"extended, 300 ppm, wide windows", 300, 200, 4000, false, 3 * 2000},
	}
	const interval = 1_000_000_000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFakePTP(tt.ratePPM, tt.minWindow, tt.maxWindow)
			if !tt.precise {
				fake.preciseErr = syscall.EOPNOTSUPP
			}
			conv := fakeConverter(t, fake, MaxSamples)
			first := conv.Uncertainty()
			if first.DriftKnown || first.Measurements != 1 {
				t.Fatalf("after one measurement: %+v, want no drift estimate and 1 measurement", first)
			}
			fake.now += interval
			if err := conv.Resample(); err != nil {
				t.Fatalf("Resample: %v", err)
			}
			u := conv.Uncertainty()
			if !u.DriftKnown || u.Measurements != 2 || u.Restarts != 0 {
				t.Fatalf("after two measurements: %+v, want a drift estimate, 2 measurements, no restart", u)
			}
			if u.Bound > tt.maxBound {
				t.Errorf("Bound = %d ns, want at most %d", u.Bound, tt.maxBound)
			}
			wantMethod := MethodExtended
			if tt.precise {
				wantMethod = MethodPrecise
			}
			if u.Method != wantMethod {
				t.Errorf("Method = %v, want %v", u.Method, wantMethod)
			}
			// The rate estimate is off by at most the two error bounds over the interval.
			if d := math.Abs(u.PHCRatePPB - tt.ratePPM*1e3); d > float64(2*u.Bound+2)/interval*1e9 {
				t.Errorf("PHCRatePPB = %.1f, want %.1f", u.PHCRatePPB, tt.ratePPM*1e3)
			}
			if u.Interval < interval || u.Interval > interval+1_000_000 {
				t.Errorf("Interval = %d ns, want about %d", u.Interval, interval)
			}
			var worst int64
			for rt := first.Realtime; rt <= u.Realtime+u.Interval; rt += interval / 1000 {
				phc := fake.phcAt(rt)
				got := conv.ToRealtime(phc)
				// phcAt rounds, the conversion rounds: allow 2 ns on top of the bound.
				if e := abs(got - fake.realtimeAt(phc)); e > u.Bound+2 {
					t.Fatalf("PHC %d (realtime %d): converted to %d, %d ns off, Bound %d", phc, rt, got, e, u.Bound)
				} else if e > worst {
					worst = e
				}
			}
			t.Logf("worst conversion error %d ns (Bound %d ns, rate %.1f ppb)", worst, u.Bound, u.PHCRatePPB)
		})
	}
}

// Without a drift estimate a converter uses the offset alone, and says so.
func TestConverterSingleMeasurement(t *testing.T) {
	fake := newFakePTP(50, 0, 0)
	conv := fakeConverter(t, fake, MaxSamples)
	u := conv.Uncertainty()
	if u.DriftKnown || u.PHCRatePPB != 0 || u.Interval != 0 || u.Bound != 0 || u.Method != MethodPrecise {
		t.Fatalf("Uncertainty() = %+v, want precise, no drift estimate, bound 0", u)
	}
	// At the measurement the conversion is exact; a second later it is off by the drift, 50 µs.
	if got, want := conv.ToRealtime(fake.phcAt(u.Realtime)), u.Realtime; got != want {
		t.Errorf("ToRealtime at the measurement = %d, want %d", got, want)
	}
	later := u.Realtime + 1_000_000_000
	if e := abs(conv.ToRealtime(fake.phcAt(later)) - later); e < 49_000 || e > 51_000 {
		t.Errorf("1 s after the only measurement: %d ns off, want about 50000 (the drift)", e)
	}
}

// scripted returns a measure function that yields samples one after the other, then errs.
func scripted(samples ...Sample) func() (Sample, error) {
	return func() (Sample, error) {
		if len(samples) == 0 {
			return Sample{}, syscall.EIO
		}
		s := samples[0]
		samples = samples[1:]
		return s, nil
	}
}

func TestConverterLine(t *testing.T) {
	const sec = 1_000_000_000
	const base = 1_750_000_000 * sec
	const offset = 37 * sec
	tests := []struct {
		name         string
		old, new     Sample
		wantDrift    bool
		wantRestarts uint64
		wantBound    int64
		wantPPB      float64
		// conversions of PHC times given as realtime of the new anchor plus these ns
		at   []int64
		want []int64 // realtime minus the new anchor's realtime
	}{
		{
			name:      "steady offset",
			old:       Sample{PHC: base + offset, Realtime: base, Window: 40, Method: MethodExtended},
			new:       Sample{PHC: base + sec + offset, Realtime: base + sec, Window: 20, Method: MethodExtended},
			wantDrift: true, wantBound: 20 + 2*10,
			at:   []int64{-sec, -1, 0, 1, sec},
			want: []int64{-sec, -1, 0, 1, sec},
		},
		{
			name:      "PHC 100 ppm fast",
			old:       Sample{PHC: base + offset, Realtime: base, Method: MethodPrecise},
			new:       Sample{PHC: base + sec + 100_000 + offset, Realtime: base + sec, Method: MethodPrecise},
			wantDrift: true, wantPPB: 100_000,
			// 1.0001 s of PHC time is 1 s of realtime.
			at:   []int64{-(sec + 100_000), 0, sec + 100_000, 2 * (sec + 100_000)},
			want: []int64{-sec, 0, sec, 2 * sec},
		},
		{
			name:         "PHC stepped forward 2 ms: restart",
			old:          Sample{PHC: base + offset, Realtime: base, Window: 10, Method: MethodExtended},
			new:          Sample{PHC: base + sec + 2_000_000 + offset, Realtime: base + sec, Window: 30, Method: MethodExtended},
			wantRestarts: 1, wantBound: 15,
			at:   []int64{0, sec},
			want: []int64{0, sec},
		},
		{
			name:         "realtime stepped back: restart",
			old:          Sample{PHC: base + offset, Realtime: base, Method: MethodPrecise},
			new:          Sample{PHC: base + sec + offset, Realtime: base - sec, Method: MethodPrecise},
			wantRestarts: 1,
			at:           []int64{0, sec},
			want:         []int64{0, sec},
		},
		{
			name:         "PHC stepped back: restart",
			old:          Sample{PHC: base + offset, Realtime: base, Method: MethodPrecise},
			new:          Sample{PHC: base + offset - 5, Realtime: base + sec, Method: MethodPrecise},
			wantRestarts: 1,
			at:           []int64{0},
			want:         []int64{0},
		},
		{
			// 1 ms apart with ±5 µs windows: the slope looks like 4000 ppm but is within the
			// measurement error, so no restart; the slope is clamped to 1000 ppm.
			name:      "short interval, wide windows: slope clamped",
			old:       Sample{PHC: base + offset + 2_000, Realtime: base, Window: 10_000, Method: MethodBasic},
			new:       Sample{PHC: base + 1_000_000 + offset - 2_000, Realtime: base + 1_000_000, Window: 10_000, Method: MethodBasic},
			wantDrift: true, wantBound: 5_000 + 2*5_000, wantPPB: -4_000_000,
			at:   []int64{0, sec},
			want: []int64{0, sec + sec/1000},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conv, err := NewConverterFunc(scripted(tt.old, tt.new))
			if err != nil {
				t.Fatalf("NewConverterFunc: %v", err)
			}
			if err := conv.Resample(); err != nil {
				t.Fatalf("Resample: %v", err)
			}
			u := conv.Uncertainty()
			if u.DriftKnown != tt.wantDrift || u.Restarts != tt.wantRestarts || u.Bound != tt.wantBound || u.Measurements != 2 {
				t.Errorf("Uncertainty() = %+v, want DriftKnown %v, Restarts %d, Bound %d, Measurements 2",
					u, tt.wantDrift, tt.wantRestarts, tt.wantBound)
			}
			if math.Abs(u.PHCRatePPB-tt.wantPPB) > 0.5 {
				t.Errorf("PHCRatePPB = %.1f, want %.1f", u.PHCRatePPB, tt.wantPPB)
			}
			if u.Method != tt.new.Method || u.Window != tt.new.Window || u.Realtime != tt.new.Realtime {
				t.Errorf("Uncertainty() = %+v, want the newest sample's method, window and realtime", u)
			}
			for i, d := range tt.at {
				got := conv.ToRealtime(tt.new.PHC+d) - tt.new.Realtime
				if abs(got-tt.want[i]) > 1 {
					t.Errorf("ToRealtime(newest PHC %+d) = newest realtime %+d, want %+d", d, got, tt.want[i])
				}
			}
		})
	}
}

func TestConverterZeroStaysZero(t *testing.T) {
	conv, err := NewConverterFunc(scripted(Sample{PHC: 5e18, Realtime: 1e18, Method: MethodPrecise}))
	if err != nil {
		t.Fatalf("NewConverterFunc: %v", err)
	}
	if got := conv.ToRealtime(0); got != 0 {
		t.Errorf("ToRealtime(0) = %d, want 0 (no stamp)", got)
	}
}

func TestConverterErrors(t *testing.T) {
	if _, err := NewConverterFunc(nil); err == nil {
		t.Error("NewConverterFunc(nil) succeeded")
	}
	if _, err := NewConverterFunc(scripted()); !errors.Is(err, syscall.EIO) {
		t.Errorf("NewConverterFunc with a failing measurement: error %v, want EIO", err)
	}
	if _, err := NewConverter(nil, ConverterOptions{Samples: MaxSamples + 1}); err == nil || !strings.Contains(err.Error(), "invalid number of samples: 26") {
		t.Errorf("NewConverter with 26 samples: error %v, want invalid number of samples", err)
	}

	first := Sample{PHC: 5e18, Realtime: 1e18, Window: 10, Method: MethodExtended}
	conv, err := NewConverterFunc(scripted(first, Sample{PHC: 5e18 + 1e9, Realtime: 1e18 + 1e9, Window: -1}))
	if err != nil {
		t.Fatalf("NewConverterFunc: %v", err)
	}
	before := conv.Uncertainty()
	for _, want := range []string{"negative window", "input/output error"} {
		err := conv.Resample()
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "resample PHC offset: ") {
			t.Errorf("Resample() error = %v, want one about %q", err, want)
		}
		if after := conv.Uncertainty(); after != before {
			t.Errorf("a failed Resample changed the conversion: %+v, was %+v", after, before)
		}
	}
	if got := conv.ToRealtime(first.PHC + 7); got != first.Realtime+7 {
		t.Errorf("ToRealtime after failed resamples = %d, want %d", got, first.Realtime+7)
	}
}

func TestConverterDoesNotAllocate(t *testing.T) {
	fake := newFakePTP(50, 20, 60)
	conv := fakeConverter(t, fake, MaxSamples)
	fake.now += 1_000_000_000
	if err := conv.Resample(); err != nil {
		t.Fatalf("Resample: %v", err)
	}
	phc := fake.phcAt(fake.now)
	var sink int64
	if n := testing.AllocsPerRun(1000, func() { sink += conv.ToRealtime(phc) }); n != 0 {
		t.Errorf("ToRealtime allocates %.1f times per call, want 0", n)
	}
	var u Uncertainty
	if n := testing.AllocsPerRun(1000, func() { u = conv.Uncertainty() }); n != 0 {
		t.Errorf("Uncertainty allocates %.1f times per call, want 0", n)
	}
	_, _ = sink, u
}

// Conversions while another goroutine resamples see whole conversion lines (run with -race).
func TestConverterConcurrentResample(t *testing.T) {
	fake := newFakePTP(-80, 20, 60)
	fake.preciseErr = syscall.EOPNOTSUPP
	conv := fakeConverter(t, fake, 5)
	phc := fake.phcAt(fake.now)
	want := fake.realtimeAt(phc)

	var wg sync.WaitGroup
	done := make(chan struct{})
	resampleErr := make(chan error, 1)
	wg.Go(func() {
		defer close(done)
		for range 300 {
			fake.now += 10_000_000 // resamples 10 ms apart
			if err := conv.Resample(); err != nil {
				resampleErr <- err
				return
			}
		}
	})
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		u := conv.Uncertainty()
		// The stamp lies before both measurements of later lines: extrapolating back over n
		// intervals adds up to n·(e_old + e_new); 80 ppm of undetected drift over 3 s without a
		// drift estimate is 240 µs, far less than a torn line would give.
		if e := abs(conv.ToRealtime(phc) - want); e > 300_000 {
			t.Fatalf("conversion %d ns off during resampling (%+v)", e, u)
		}
	}
	wg.Wait()
	select {
	case err := <-resampleErr:
		t.Fatalf("Resample: %v", err)
	default:
	}
	if u := conv.Uncertainty(); u.Measurements != 301 || u.Restarts != 0 {
		t.Errorf("Uncertainty() = %+v, want 301 measurements and no restart", u)
	}
}

func BenchmarkToRealtime(b *testing.B) {
	fake := newFakePTP(50, 20, 60)
	m := &measurer{src: fake}
	conv, err := NewConverterFunc(func() (Sample, error) { return m.measure(MaxSamples) })
	if err != nil {
		b.Fatal(err)
	}
	phc := fake.phcAt(fake.now)
	b.ReportAllocs()
	var sink int64
	for b.Loop() {
		sink += conv.ToRealtime(phc)
	}
	_ = sink
}
