package benchcmp

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testdata/proc-stat.txt is /proc/stat of the 2-CPU test VM (Linux 6.18).

func TestParseProcStat(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "proc-stat.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ParseProcStat(f)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]CPUTimes{
		0: {User: 111080, System: 56439, Idle: 180719, IOWait: 520, SoftIRQ: 8612, Steal: 901},
		1: {User: 117473, System: 74777, Idle: 158257, IOWait: 222, SoftIRQ: 7555, Steal: 784},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("unexpected times\nwant %+v\n got %+v", want, got)
	}
}

func TestParseProcStatErrors(t *testing.T) {
	tests := []struct{ name, input, wantErr string }{
		{"empty", "", "no per-CPU lines"},
		{"aggregate only", "cpu  1 2 3 4 5 6 7 8 9 10\n", "no per-CPU lines"},
		{"short", "cpu0 1 2 3\n", "has 3 fields"},
		{"bad number", "cpu0 1 2 x 4 5 6 7 8 0 0\n", "field 3"},
		{"bad cpu", "cpuX 1 2 3 4 5 6 7 8 0 0\n", `invalid CPU "cpuX"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseProcStat(strings.NewReader(tt.input))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestCPUShareSince(t *testing.T) {
	before := CPUTimes{User: 100, Nice: 0, System: 200, Idle: 300, IOWait: 10, IRQ: 1, SoftIRQ: 50, Steal: 5}
	tests := []struct {
		name  string
		after CPUTimes
		want  CPUShare
	}{
		{"mixed", CPUTimes{User: 140, Nice: 10, System: 230, Idle: 310, IOWait: 10, IRQ: 1, SoftIRQ: 60, Steal: 5},
			CPUShare{User: 50, System: 30, SoftIRQ: 10, Idle: 10}},
		{"no ticks", before, CPUShare{}},
		{"counter went back", CPUTimes{User: 90, System: 300}, CPUShare{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.after.ShareSince(before)
			for _, p := range [][2]float64{{got.User, tt.want.User}, {got.System, tt.want.System},
				{got.SoftIRQ, tt.want.SoftIRQ}, {got.Idle, tt.want.Idle}, {got.Steal, tt.want.Steal}} {
				if math.Abs(p[0]-p[1]) > 1e-9 {
					t.Fatalf("shares %+v, want %+v", got, tt.want)
				}
			}
		})
	}
	if got, want := (CPUShare{User: 49.6, System: 30, SoftIRQ: 10.4, Idle: 10}).String(), "user 50% sys 30% softirq 10% idle 10%"; got != want {
		t.Errorf("String %q, want %q", got, want)
	}
	if got := (CPUShare{User: 90, Steal: 10}).String(); !strings.HasSuffix(got, " steal 10%") {
		t.Errorf("String %q does not show steal time", got)
	}
}

func TestMeasuredShares(t *testing.T) {
	start := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	var samples []cpuSample
	for i := 0; i <= 60; i++ { // every 100 ms for 6 s: CPU 0 busy in user time, CPU 1 idle until 3 s
		idle1 := uint64(i)
		if i > 30 {
			idle1 = 30
		}
		samples = append(samples, cpuSample{at: start.Add(time.Duration(i) * 100 * time.Millisecond),
			times: map[int]CPUTimes{0: {User: uint64(10 * i)}, 1: {Idle: idle1, System: uint64(i) - idle1}}})
	}
	got := measuredShares(samples, start, 5*time.Second) // window [2 s, 5 s]
	if got[0] != (CPUShare{User: 100}) {
		t.Errorf("CPU 0 %+v, want all user time", got[0])
	}
	if s := got[1]; math.Abs(s.Idle-100.0/3) > 1e-9 || math.Abs(s.System-200.0/3) > 1e-9 {
		t.Errorf("CPU 1 %+v, want a third idle, two thirds system", s)
	}
	if got := measuredShares(samples, start.Add(10*time.Second), 5*time.Second); got != nil {
		t.Errorf("shares %v for a window without samples, want nil", got)
	}
	if got := measuredShares(samples[:21], start, 5*time.Second); got != nil {
		t.Errorf("shares %v from one sample in the window, want nil", got)
	}
}

func FuzzParseProcStat(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "proc-stat.txt"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(b))
	f.Add("cpu0 1 2 3 4 5 6 7 8\ncpu7 0 0 0 0 0 0 0 0 0 0\n")
	f.Fuzz(func(t *testing.T, s string) {
		cpus, err := ParseProcStat(strings.NewReader(s))
		if err == nil && len(cpus) == 0 {
			t.Error("no error and no CPUs")
		}
		for _, c := range cpus {
			if sh := c.ShareSince(CPUTimes{}); sh != (CPUShare{}) {
				if sum := sh.User + sh.System + sh.SoftIRQ + sh.Idle + sh.Steal; math.Abs(sum-100) > 1e-6 {
					t.Errorf("shares of %+v add up to %v", c, sum)
				}
			}
		}
	})
}
