package phc

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
)

func TestMethodString(t *testing.T) {
	for m, want := range map[Method]string{
		MethodNone: "none", MethodPrecise: "precise", MethodExtended: "extended", MethodBasic: "basic", 9: "Method(9)",
	} {
		if got := m.String(); got != want {
			t.Errorf("Method(%d).String() = %q, want %q", int(m), got, want)
		}
	}
}

func TestSampleOffsetAndErrorBound(t *testing.T) {
	tests := []struct {
		s         Sample
		offset    int64
		bound     int64
		situation string
	}{
		{Sample{PHC: 1000, Realtime: 400, Window: 0}, 600, 0, "cross-timestamp"},
		{Sample{PHC: 1000, Realtime: 400, Window: 40}, 600, 20, "even window"},
		{Sample{PHC: 1000, Realtime: 400, Window: 41}, 600, 21, "odd window rounds up"},
		{Sample{PHC: 100, Realtime: 400, Window: 1}, -300, 1, "PHC behind realtime"},
	}
	for _, tt := range tests {
		if got := tt.s.Offset(); got != tt.offset {
			t.Errorf("%s: Offset() = %d, want %d", tt.situation, got, tt.offset)
		}
		if got := tt.s.ErrorBound(); got != tt.bound {
			t.Errorf("%s: ErrorBound() = %d, want %d", tt.situation, got, tt.bound)
		}
	}
}

func TestBestReading(t *testing.T) {
	tests := []struct {
		name     string
		readings []reading
		want     Sample
		wantErr  string
	}{
		{
			name:     "single",
			readings: []reading{{before: 1000, phc: 5050, after: 1100}},
			want:     Sample{PHC: 5050, Realtime: 1050, Window: 100},
		},
		{
			name: "narrowest wins wherever it is",
			readings: []reading{
				{before: 1000, phc: 5060, after: 1100},
				{before: 2000, phc: 6007, after: 2020},
				{before: 3000, phc: 7040, after: 3080},
			},
			want: Sample{PHC: 6007, Realtime: 2010, Window: 20},
		},
		{
			name: "first of equal windows",
			readings: []reading{
				{before: 1000, phc: 5010, after: 1030},
				{before: 2000, phc: 6020, after: 2030},
			},
			want: Sample{PHC: 5010, Realtime: 1015, Window: 30},
		},
		{
			name: "odd window: midpoint rounds down, bound up",
			readings: []reading{
				{before: 1000, phc: 5000, after: 1031},
			},
			want: Sample{PHC: 5000, Realtime: 1015, Window: 31},
		},
		{
			name: "zero window",
			readings: []reading{
				{before: 1000, phc: 5000, after: 1050},
				{before: 2000, phc: 6000, after: 2000},
			},
			want: Sample{PHC: 6000, Realtime: 2000, Window: 0},
		},
		{
			name: "negative window (realtime stepped back) is skipped",
			readings: []reading{
				{before: 2000, phc: 6000, after: 1990},
				{before: 3000, phc: 7040, after: 3080},
			},
			want: Sample{PHC: 7040, Realtime: 3040, Window: 80},
		},
		{
			name:     "only negative windows",
			readings: []reading{{before: 2000, phc: 6000, after: 1990}},
			wantErr:  "no valid reading among 1",
		},
		{
			name:    "no readings",
			wantErr: "no valid reading among 0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := bestReading(tt.readings)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("bestReading() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("bestReading(): %v", err)
			}
			if got != tt.want {
				t.Errorf("bestReading() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestMeasureFallback(t *testing.T) {
	unsupported := syscall.EOPNOTSUPP
	notTTY := fmt.Errorf("%w: ioctl: %w", errors.ErrUnsupported, syscall.ENOTTY) // as the Linux source reports it
	tests := []struct {
		name                         string
		preciseErr, extErr, basicErr error
		noPrecise                    bool // learned from the clock's capabilities
		want                         Method
		wantErr                      error
		// calls to each method over two measurements
		wantCalls map[string]int
	}{
		{
			name:      "precise",
			want:      MethodPrecise,
			wantCalls: map[string]int{"precise": 2},
		},
		{
			name:       "precise unsupported: extended, precise not retried",
			preciseErr: unsupported,
			want:       MethodExtended,
			wantCalls:  map[string]int{"precise": 1, "extended": 2},
		},
		{
			name:       "precise unknown to the kernel: extended",
			preciseErr: notTTY,
			want:       MethodExtended,
			wantCalls:  map[string]int{"precise": 1, "extended": 2},
		},
		{
			name:      "no cross-timestamp capability: precise never asked",
			noPrecise: true,
			want:      MethodExtended,
			wantCalls: map[string]int{"extended": 2},
		},
		{
			name:       "precise and extended unsupported: basic",
			preciseErr: unsupported,
			extErr:     unsupported,
			want:       MethodBasic,
			wantCalls:  map[string]int{"precise": 1, "extended": 1, "basic": 2},
		},
		{
			name:       "precise fails otherwise: error, no fallback",
			preciseErr: syscall.EIO,
			wantErr:    syscall.EIO,
			wantCalls:  map[string]int{"precise": 2},
		},
		{
			name:       "extended fails otherwise: error, no fallback",
			preciseErr: unsupported,
			extErr:     syscall.EBUSY,
			wantErr:    syscall.EBUSY,
			wantCalls:  map[string]int{"precise": 1, "extended": 2},
		},
		{
			name:       "nothing supported",
			preciseErr: unsupported,
			extErr:     unsupported,
			basicErr:   unsupported,
			wantErr:    syscall.EOPNOTSUPP,
			wantCalls:  map[string]int{"precise": 1, "extended": 1, "basic": 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFakePTP(0, 20, 200)
			fake.preciseErr, fake.extendErr, fake.basicErr = tt.preciseErr, tt.extErr, tt.basicErr
			m := measurer{src: fake, noPrecise: tt.noPrecise}
			for range 2 {
				s, err := m.measure(5)
				if tt.wantErr != nil {
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("measure() error = %v, want %v", err, tt.wantErr)
					}
					if !strings.HasPrefix(err.Error(), "measure PHC offset (") {
						t.Errorf("measure() error %q does not name the operation", err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("measure(): %v", err)
				}
				if s.Method != tt.want {
					t.Errorf("measure() method = %v, want %v", s.Method, tt.want)
				}
			}
			for _, method := range []string{"precise", "extended", "basic"} {
				if got := fake.calls[method]; got != tt.wantCalls[method] {
					t.Errorf("%s called %d times, want %d", method, got, tt.wantCalls[method])
				}
			}
		})
	}
}

func TestMeasureSampleCount(t *testing.T) {
	tests := []struct {
		n, wantReadings int
		wantErr         bool
	}{
		{n: 0, wantReadings: MaxSamples},
		{n: 1, wantReadings: 1},
		{n: MaxSamples, wantReadings: MaxSamples},
		{n: MaxSamples + 1, wantErr: true},
		{n: -1, wantErr: true},
	}
	for _, tt := range tests {
		src := &countingSource{}
		m := measurer{src: src, noPrecise: true}
		_, err := m.measure(tt.n)
		if tt.wantErr {
			if err == nil || !strings.Contains(err.Error(), "invalid number of samples") {
				t.Errorf("measure(%d) error = %v, want invalid number of samples", tt.n, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("measure(%d): %v", tt.n, err)
		} else if src.n != tt.wantReadings {
			t.Errorf("measure(%d) asked for %d readings, want %d", tt.n, src.n, tt.wantReadings)
		}
	}
}

// countingSource records how many readings it was asked for.
type countingSource struct{ n int }

func (c *countingSource) precise() (crossStamp, error) { return crossStamp{}, syscall.EOPNOTSUPP }
func (c *countingSource) extended(n int) ([]reading, error) {
	c.n = n
	return make([]reading, n), nil
}
func (c *countingSource) basic(n int) ([]reading, error) { return c.extended(n) }

// Whatever the windows, drift and read position inside the window, the measured realtime is
// within the sample's error bound of the truth, and best-of-N picks the narrowest window.
func TestMeasureWithinErrorBound(t *testing.T) {
	tests := []struct {
		name                 string
		ratePPM              float64
		minWindow, maxWindow int64
		n                    int
		method               Method
	}{
		{"precise, 50 ppm", 50, 0, 0, 25, MethodPrecise},
		{"extended, tight windows", 50, 20, 60, 25, MethodExtended},
		{"extended, wide windows, -200 ppm", -200, 500, 5000, 25, MethodExtended},
		{"extended, one reading", 10, 100, 3000, 1, MethodExtended},
		{"basic, wide windows", 100, 1000, 20000, 10, MethodBasic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFakePTP(tt.ratePPM, tt.minWindow, tt.maxWindow)
			switch tt.method {
			case MethodExtended:
				fake.preciseErr = syscall.EOPNOTSUPP
			case MethodBasic:
				fake.preciseErr, fake.extendErr = syscall.EOPNOTSUPP, syscall.EOPNOTSUPP
			}
			m := measurer{src: fake}
			for i := range 200 {
				fake.now += 1_000_000_000 // a resample a second
				s, err := m.measure(tt.n)
				if err != nil {
					t.Fatalf("measure(): %v", err)
				}
				if s.Method != tt.method {
					t.Fatalf("method = %v, want %v", s.Method, tt.method)
				}
				if s.Window < tt.minWindow || s.Window > tt.maxWindow {
					t.Fatalf("sample %d: window %d outside [%d, %d]", i, s.Window, tt.minWindow, tt.maxWindow)
				}
				// phcAt rounds to whole ns, so its inverse may be 1 ns off.
				if e := abs(s.Realtime - fake.realtimeAt(s.PHC)); e > s.ErrorBound()+1 {
					t.Fatalf("sample %d: realtime off by %d ns, error bound %d ns", i, e, s.ErrorBound())
				}
			}
		})
	}
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
