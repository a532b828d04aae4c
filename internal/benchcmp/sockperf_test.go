package benchcmp

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The files in testdata are real output of sockperf 3.7 (Debian) between two namespaces:
// `sockperf ping-pong -m 64 -t 1 --mps 2000 --full-log NAME.csv [--full-rtt] [--tcp --nonblocked]`,
// standard output and error in NAME.stdout.

func us(v float64) time.Duration { return time.Duration(math.Round(v * 1000)) }

func TestParseSockperfOutput(t *testing.T) {
	tests := []struct {
		file string
		want SockperfSummary
	}{
		{
			file: "udp-block-fullrtt.stdout",
			want: SockperfSummary{
				FullRTT: true, ValidRunTime: 552 * time.Millisecond, WarmupTime: 400 * time.Millisecond,
				Sent: 1096, Received: 1096, Observations: 1096,
				Mean: us(180.644), Min: us(15.322), Max: us(5225.028),
				Percentiles: map[float64]time.Duration{
					99.999: us(5225.028), 99.99: us(5225.028), 99.9: us(4727.060), 99: us(4223.941),
					90: us(50.254), 75: us(30.866), 50: us(25.192), 25: us(20.232),
				},
			},
		},
		{
			file: "tcp-spin-fullrtt.stdout",
			want: SockperfSummary{
				FullRTT: true, ValidRunTime: 549 * time.Millisecond, WarmupTime: 400 * time.Millisecond,
				Sent: 1099, Received: 1099, Observations: 1099,
				Mean: us(17.723), Min: us(8.991), Max: us(446.398),
				Percentiles: map[float64]time.Duration{
					99.999: us(446.398), 99.99: us(446.398), 99.9: us(98.021), 99: us(41.143),
					90: us(23.038), 75: us(17.737), 50: us(15.487), 25: us(13.817),
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := ParseSockperfOutput(f)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("unexpected summary\nwant %+v\n got %+v", tt.want, got)
			}
		})
	}
}

func TestParseSockperfOutputHalfRoundTrip(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "udp-block-latency.stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ParseSockperfOutput(f)
	if err != nil {
		t.Fatal(err)
	}
	if got.FullRTT {
		t.Error("FullRTT is true for output of a run without --full-rtt")
	}
	if got.Mean != us(20.239) {
		t.Errorf("unexpected mean %v, want 20.239µs", got.Mean)
	}
}

func TestParseSockperfOutputErrors(t *testing.T) {
	tests := []struct{ name, input string }{
		{"empty", ""},
		{"no statistics", "sockperf: Starting test...\nsockperf: Test ended\n"},
		{"bad percentile", "sockperf: Total 3 observations\nsockperf: ---> percentile abc = 1.0\n"},
		{"bad value", "sockperf: Total 3 observations\nsockperf: ---> percentile 50.000 = x\n"},
		{"bad counters", "sockperf: # dropped messages = 1; # duplicated messages = z; # out-of-order messages = 0\n"},
		{"unknown average", "sockperf: ====> avg-foo=1.0 (std-dev=1)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseSockperfOutput(strings.NewReader(tt.input)); err == nil {
				t.Error("no error")
			}
		})
	}
}

// TestReadFullLog checks the histogram built from every logged sample against the summary
// sockperf computed itself (the copy at the head of the same file).
func TestReadFullLog(t *testing.T) {
	for _, name := range []string{"udp-block-fullrtt.csv", "tcp-spin-fullrtt.csv"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			sum, err := ParseSockperfOutput(strings.NewReader(string(data)))
			if err != nil {
				t.Fatal(err)
			}
			log, err := ReadFullLog(strings.NewReader(string(data)))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(log.Parameters, "--msg-size=64") || !strings.Contains(log.Parameters, "--full-rtt") {
				t.Errorf("unexpected parameters %q", log.Parameters)
			}
			h := log.RTT
			if got := uint64(h.TotalCount()); got != sum.Observations {
				t.Errorf("%d samples, sockperf counted %d observations", got, sum.Observations)
			}
			// HDR histograms with 3 significant digits keep values within 0.1 %.
			near := func(what string, got, want time.Duration, tolerance float64) {
				t.Helper()
				if math.Abs(float64(got-want)) > tolerance*float64(want) {
					t.Errorf("%s: %v from the log, sockperf says %v", what, got, want)
				}
			}
			near("min", time.Duration(h.Min()), sum.Min, 0.001)
			near("max", time.Duration(h.Max()), sum.Max, 0.001)
			near("mean", time.Duration(h.Mean()), sum.Mean, 0.001)
			// sockperf's rank rule differs from HDR's by at most a sample; in the dense part
			// of the distribution neighbouring samples are within 1 %.
			for _, p := range []float64{25, 50, 75, 90} {
				near(fmt.Sprintf("p%g", p), time.Duration(h.ValueAtPercentile(p)), sum.Percentiles[p], 0.01)
			}
		})
	}
}

func TestReadFullLogRejectsHalfRoundTrips(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "udp-block-latency.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := ReadFullLog(f); !errors.Is(err, ErrHalfRoundTrip) {
		t.Errorf("got error %v, want ErrHalfRoundTrip", err)
	}
}

func TestReadFullLogErrors(t *testing.T) {
	const header = "packet, txTime(sec), rxTime(sec), rtt(usec)\n"
	tests := []struct{ name, input string }{
		{"empty", ""},
		{"header only", header},
		{"unknown column", "packet, txTime(sec), rxTime(sec), foo(usec)\n0, 1.0, 1.1, 3.0\n"},
		{"short row", header + "0, 1.0, 3.0\n"},
		{"bad value", header + "0, 1.0, 1.1, abc\n"},
		{"NaN", header + "0, 1.0, 1.1, NaN\n"},
		{"negative", header + "0, 1.0, 1.1, -3.0\n"},
		{"zero", header + "0, 1.0, 1.0, 0.000\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ReadFullLog(strings.NewReader(tt.input)); err == nil {
				t.Error("no error")
			}
		})
	}
}

func TestReadFullLogStopsAtDashes(t *testing.T) {
	input := "packet, txTime(sec), rxTime(sec), rtt(usec)\n0, 1.000000000, 1.000012345, 12.345\n" +
		"1, 1.1, 1.100020, 20.000\n------------------------------\n2, garbage\n"
	log, err := ReadFullLog(strings.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	if got := log.RTT.TotalCount(); got != 2 {
		t.Errorf("%d samples, want 2", got)
	}
	if got, want := log.RTT.Min(), int64(12345); !log.RTT.ValuesAreEquivalent(got, want) {
		t.Errorf("min %d ns, want %d", got, want)
	}
}

func FuzzReadFullLog(f *testing.F) {
	for _, name := range []string{"udp-block-fullrtt.csv", "udp-block-latency.csv"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(data[:min(len(data), 2000)]))
	}
	f.Fuzz(func(t *testing.T, input string) {
		log, err := ReadFullLog(strings.NewReader(input))
		if err == nil && log.RTT.TotalCount() == 0 {
			t.Error("no error and no samples")
		}
	})
}

func FuzzParseSockperfOutput(f *testing.F) {
	data, err := os.ReadFile(filepath.Join("testdata", "tcp-spin-fullrtt.stdout"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(data))
	f.Fuzz(func(t *testing.T, input string) {
		sum, err := ParseSockperfOutput(strings.NewReader(input))
		if err == nil && (sum.Observations == 0 || len(sum.Percentiles) == 0) {
			t.Error("no error and no statistics")
		}
	})
}

func TestStripANSI(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"\x1b[2;35m====> avg-rtt=1.0\x1b[0m", "====> avg-rtt=1.0"},
		{"cut \x1b[2;3", "cut \x1b[2;3"},
	}
	for _, tt := range tests {
		if got := stripANSI(tt.in); got != tt.want {
			t.Errorf("stripANSI(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
