package benchcmp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// CPUTimes are one CPU's cumulative times from /proc/stat, in clock ticks (USER_HZ).
type CPUTimes struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal uint64
}

// ParseProcStat reads the per-CPU lines ("cpu0 …", "cpu1 …") of /proc/stat, keyed by CPU number.
// The aggregate "cpu" line is left out. Guest times are part of user time and are not read.
func ParseProcStat(r io.Reader) (map[int]CPUTimes, error) {
	cpus := make(map[int]CPUTimes)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || !strings.HasPrefix(fields[0], "cpu") || fields[0] == "cpu" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimPrefix(fields[0], "cpu"))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("parse /proc/stat: invalid CPU %q", fields[0])
		}
		if len(fields) < 9 {
			return nil, fmt.Errorf("parse /proc/stat: %s has %d fields, want at least 8 times", fields[0], len(fields)-1)
		}
		var v [8]uint64
		for i := range v {
			if v[i], err = strconv.ParseUint(fields[i+1], 10, 64); err != nil {
				return nil, fmt.Errorf("parse /proc/stat: %s field %d: %w", fields[0], i+1, err)
			}
		}
		cpus[n] = CPUTimes{User: v[0], Nice: v[1], System: v[2], Idle: v[3], IOWait: v[4], IRQ: v[5], SoftIRQ: v[6], Steal: v[7]}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parse /proc/stat: %w", err)
	}
	if len(cpus) == 0 {
		return nil, errors.New("parse /proc/stat: no per-CPU lines")
	}
	return cpus, nil
}

// CPUShare is where one CPU's time went between two readings, in percent of the interval.
type CPUShare struct {
	// User includes nice time; System is kernel time outside interrupts; SoftIRQ includes hard
	// interrupt time (network receive processing runs there); Idle includes I/O wait.
	User, System, SoftIRQ, Idle, Steal float64
}

// ShareSince returns the shares of each part of the time between before and t. The result is
// zero when no tick elapsed or a counter went backwards.
func (t CPUTimes) ShareSince(before CPUTimes) CPUShare {
	d := func(a, b uint64) float64 {
		if a < b {
			return -1
		}
		return float64(a - b)
	}
	parts := []float64{
		d(t.User, before.User) + d(t.Nice, before.Nice),
		d(t.System, before.System),
		d(t.IRQ, before.IRQ) + d(t.SoftIRQ, before.SoftIRQ),
		d(t.Idle, before.Idle) + d(t.IOWait, before.IOWait),
		d(t.Steal, before.Steal),
	}
	var total float64
	for _, p := range parts {
		if p < 0 {
			return CPUShare{}
		}
		total += p
	}
	if total == 0 {
		return CPUShare{}
	}
	pct := func(p float64) float64 { return 100 * p / total }
	return CPUShare{User: pct(parts[0]), System: pct(parts[1]), SoftIRQ: pct(parts[2]), Idle: pct(parts[3]), Steal: pct(parts[4])}
}

// String prints the shares as "user 40% sys 50% softirq 10% idle 0%" (steal only when present),
// or "-" when nothing was measured.
func (s CPUShare) String() string {
	if s == (CPUShare{}) {
		return "-"
	}
	out := fmt.Sprintf("user %.0f%% sys %.0f%% softirq %.0f%% idle %.0f%%", s.User, s.System, s.SoftIRQ, s.Idle)
	if s.Steal >= 0.5 {
		out += fmt.Sprintf(" steal %.0f%%", s.Steal)
	}
	return out
}

// cpuSample is /proc/stat's per-CPU times at one moment.
type cpuSample struct {
	at    time.Time
	times map[int]CPUTimes
}

// measuredShares returns where each CPU's time went within the measured window of a phase that
// started at started (result.json: before the socket opened and the warm-up, which lasts at
// most bench.MaxWarmupTime = 2 s) and measured for d: the window [started+min(2 s, d/2),
// started+d] lies inside the measured window whatever the warm-up took. It returns nil when
// fewer than two samples fall into it.
func measuredShares(samples []cpuSample, started time.Time, d time.Duration) map[int]CPUShare {
	from, to := started.Add(min(2*time.Second, d/2)), started.Add(d)
	first, last := -1, -1
	for i, s := range samples {
		if s.at.Before(from) || s.at.After(to) {
			continue
		}
		if first < 0 {
			first = i
		}
		last = i
	}
	if first < 0 || last <= first {
		return nil
	}
	shares := make(map[int]CPUShare)
	for cpu, t := range samples[last].times {
		shares[cpu] = t.ShareSince(samples[first].times[cpu])
	}
	return shares
}
