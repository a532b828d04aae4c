// Package benchcmp holds the side-by-side comparisons `make bench` runs on two test hosts
// (network namespaces joined by veth), each printing both distributions and their ratios:
//
//   - BenchmarkStackgapVsSockperf: stackgap's kernel-path round trip against sockperf's
//     ping-pong with the same CPU placement and wait strategy, in two modes per round: plain
//     (--no-timestamps), judged against the targets to show that the harness adds no latency of
//     its own, and stamped (the default --stamp-every 2), whose ratios show what observing the
//     layers costs;
//   - BenchmarkKernelVsXDP: the kernel path against the AF_XDP path, UDP and TCP, spin wait;
//   - BenchmarkXDPReflectorVsTestpmd: stackgap-reflect's AF_XDP path against dpdk-testpmd's
//     net_af_xdp 5tswap forwarding, round trip and the most packets per second reflected.
//
// This file reads sockperf's output: the summary it prints and the per-message log of
// --full-log, which is turned into an HDR histogram with the geometry of stackgap's own series,
// so both tools are summarised by the same code.
package benchcmp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/stackgap/stackgap/results"
)

// ErrHalfRoundTrip is wrapped by ReadFullLog when the log holds sockperf's default "latency"
// (half the round trip) instead of full round trips: sockperf was run without --full-rtt.
var ErrHalfRoundTrip = errors.New("sockperf log holds half round trips (run it with --full-rtt)")

// NewHistogram returns an empty histogram with the geometry of a results.Series (nanoseconds
// from 1 ns to 60 s, 3 significant digits), so sockperf's and stackgap's distributions can be
// merged and summarised alike.
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(results.MinValue, results.MaxValue, results.SignificantDigits)
}

// FullLog is what ReadFullLog took from a sockperf --full-log file.
type FullLog struct {
	// RTT holds every logged message's round trip, in nanoseconds.
	RTT *hdrhistogram.Histogram
	// Parameters is sockperf's "test was performed using the following parameters" line.
	Parameters string
}

// ReadFullLog reads the file sockperf ping-pong writes with --full-log: a copy of the summary,
// then the CSV "packet, txTime(sec), rxTime(sec), rtt(usec)" with one row per message of the
// measured window (sockperf leaves its 400 ms warm-up and 50 ms cool-down out), then a line of
// dashes. The rtt column is the full round trip only when sockperf ran with --full-rtt (the
// column is then named "rtt(usec)"; without it, "latency(usec)" holds half the round trip and
// ReadFullLog fails with ErrHalfRoundTrip). Values are recorded with microsecond-to-nanosecond
// conversion; sockperf prints them with 1 ns resolution.
func ReadFullLog(r io.Reader) (FullLog, error) {
	log := FullLog{RTT: NewHistogram()}
	sc := bufio.NewScanner(r)
	inRows := false
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if p, ok := strings.CutPrefix(text, "test was performed using the following parameters:"); ok {
			log.Parameters = strings.TrimSpace(p)
			continue
		}
		if strings.HasPrefix(text, "packet,") {
			cols := splitCSV(text)
			if len(cols) != 4 {
				return log, fmt.Errorf("read sockperf full log: line %d: want 4 columns, got %q", line, text)
			}
			switch cols[3] {
			case "rtt(usec)":
			case "latency(usec)":
				return log, fmt.Errorf("read sockperf full log: line %d: %w", line, ErrHalfRoundTrip)
			default:
				return log, fmt.Errorf("read sockperf full log: line %d: unknown column %q", line, cols[3])
			}
			inRows = true
			continue
		}
		if !inRows {
			continue
		}
		if strings.HasPrefix(text, "---") || text == "" {
			inRows = false
			continue
		}
		cols := splitCSV(text)
		if len(cols) != 4 {
			return log, fmt.Errorf("read sockperf full log: line %d: want 4 columns, got %q", line, text)
		}
		ns, err := microsToNanos(cols[3])
		if err != nil {
			return log, fmt.Errorf("read sockperf full log: line %d: %w", line, err)
		}
		if ns <= 0 {
			return log, fmt.Errorf("read sockperf full log: line %d: round trip %s µs is not positive", line, cols[3])
		}
		if err := log.RTT.RecordValue(ns); err != nil {
			return log, fmt.Errorf("read sockperf full log: line %d: round trip %s µs: %w", line, cols[3], err)
		}
	}
	if err := sc.Err(); err != nil {
		return log, fmt.Errorf("read sockperf full log: %w", err)
	}
	if log.RTT.TotalCount() == 0 {
		return log, errors.New("read sockperf full log: no samples (is it a sockperf ping-pong --full-log file?)")
	}
	return log, nil
}

func splitCSV(s string) []string {
	cols := strings.Split(s, ",")
	for i := range cols {
		cols[i] = strings.TrimSpace(cols[i])
	}
	return cols
}

// microsToNanos converts sockperf's decimal microseconds ("12.345") to nanoseconds.
func microsToNanos(s string) (int64, error) {
	us, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(us) || math.IsInf(us, 0) {
		return 0, fmt.Errorf("invalid microseconds %q", s)
	}
	return int64(math.Round(us * 1000)), nil
}

// SockperfSummary is what sockperf ping-pong prints about one server's measured window.
type SockperfSummary struct {
	// FullRTT tells whether the values are full round trips (--full-rtt, "avg-rtt") rather
	// than half round trips ("avg-latency").
	FullRTT bool
	// ValidRunTime is the measured window: the run time minus warm-up and cool-down.
	ValidRunTime time.Duration
	// WarmupTime is the warm-up sockperf left out of the statistics.
	WarmupTime time.Duration
	// Sent and Received count the messages of the measured window.
	Sent, Received uint64
	// Dropped, Duplicated and OutOfOrder are sockperf's counts for the window.
	Dropped, Duplicated, OutOfOrder uint64
	// Observations is the number of values behind the percentiles.
	Observations uint64
	// Mean, Min and Max are sockperf's average, <MIN> and <MAX> observations.
	Mean, Min, Max time.Duration
	// Percentiles maps a percentile (e.g. 99.9) to its value.
	Percentiles map[float64]time.Duration
}

// ParseSockperfOutput reads what `sockperf ping-pong` prints (standard output, or the summary
// at the head of its --full-log file). It reads the first statistics block (server No 0) and
// fails when there is none.
func ParseSockperfOutput(r io.Reader) (SockperfSummary, error) {
	sum := SockperfSummary{Percentiles: make(map[float64]time.Duration)}
	sc := bufio.NewScanner(r)
	seenValid, seenMean, seenDropped, seenTotal := false, false, false, false
	for sc.Scan() {
		text := stripANSI(strings.TrimSpace(sc.Text()))
		text = strings.TrimSpace(strings.TrimPrefix(text, "sockperf:"))
		switch {
		case strings.HasPrefix(text, "[Total Run]"):
			if v, ok := field(text, "Warm up time="); ok && sum.WarmupTime == 0 {
				ms, err := strconv.ParseFloat(strings.TrimSuffix(v, " msec"), 64)
				if err != nil {
					return sum, fmt.Errorf("parse sockperf output: warm-up time %q: %w", v, err)
				}
				sum.WarmupTime = time.Duration(ms * float64(time.Millisecond))
			}
		case strings.HasPrefix(text, "[Valid Duration]") && !seenValid:
			seenValid = true
			if err := parseValid(text, &sum); err != nil {
				return sum, fmt.Errorf("parse sockperf output: %w", err)
			}
		case strings.HasPrefix(text, "====> avg-") && !seenMean:
			seenMean = true
			name, rest, _ := strings.Cut(strings.TrimPrefix(text, "====> avg-"), "=")
			switch name {
			case "rtt":
				sum.FullRTT = true
			case "latency":
			default:
				return sum, fmt.Errorf("parse sockperf output: unknown average %q", name)
			}
			mean, _, _ := strings.Cut(rest, " ")
			d, err := microsToNanos(mean)
			if err != nil {
				return sum, fmt.Errorf("parse sockperf output: average: %w", err)
			}
			sum.Mean = time.Duration(d)
		case strings.HasPrefix(text, "# dropped messages") && !seenDropped:
			seenDropped = true
			for _, kv := range []struct {
				key string
				dst *uint64
			}{{"# dropped messages = ", &sum.Dropped}, {"# duplicated messages = ", &sum.Duplicated}, {"# out-of-order messages = ", &sum.OutOfOrder}} {
				v, ok := field(text, kv.key)
				if !ok {
					return sum, fmt.Errorf("parse sockperf output: no %q in %q", strings.TrimSpace(kv.key), text)
				}
				n, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					return sum, fmt.Errorf("parse sockperf output: %s: %w", strings.TrimSpace(kv.key), err)
				}
				*kv.dst = n
			}
		case strings.HasPrefix(text, "Total ") && strings.Contains(text, " observations") && !seenTotal:
			seenTotal = true
			n, err := strconv.ParseUint(strings.Fields(text)[1], 10, 64)
			if err != nil {
				return sum, fmt.Errorf("parse sockperf output: observations: %w", err)
			}
			sum.Observations = n
		case strings.HasPrefix(text, "---> "):
			if seenTotal && len(sum.Percentiles) > 0 && strings.Contains(text, "<MAX>") {
				// A second statistics block (the copy sockperf prints again): done.
				return sum, checkSummary(sum)
			}
			if err := parsePercentileLine(strings.TrimPrefix(text, "---> "), &sum); err != nil {
				return sum, fmt.Errorf("parse sockperf output: %w", err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return sum, fmt.Errorf("parse sockperf output: %w", err)
	}
	return sum, checkSummary(sum)
}

func checkSummary(sum SockperfSummary) error {
	if sum.Observations == 0 || len(sum.Percentiles) == 0 {
		return errors.New("parse sockperf output: no statistics (did the run receive any reply?)")
	}
	return nil
}

// parseValid reads "[Valid Duration] RunTime=0.552 sec; SentMessages=1096; ReceivedMessages=1096".
func parseValid(text string, sum *SockperfSummary) error {
	v, ok := field(text, "RunTime=")
	if !ok {
		return fmt.Errorf("no RunTime in %q", text)
	}
	sec, err := strconv.ParseFloat(strings.TrimSuffix(v, " sec"), 64)
	if err != nil {
		return fmt.Errorf("valid run time %q: %w", v, err)
	}
	sum.ValidRunTime = time.Duration(sec * float64(time.Second))
	for _, kv := range []struct {
		key string
		dst *uint64
	}{{"SentMessages=", &sum.Sent}, {"ReceivedMessages=", &sum.Received}} {
		v, ok := field(text, kv.key)
		if !ok {
			return fmt.Errorf("no %s in %q", strings.TrimSuffix(kv.key, "="), text)
		}
		if *kv.dst, err = strconv.ParseUint(v, 10, 64); err != nil {
			return fmt.Errorf("%s: %w", strings.TrimSuffix(kv.key, "="), err)
		}
	}
	return nil
}

// parsePercentileLine reads "<MAX> observation = 5225.028" or "percentile 99.000 =   41.143".
func parsePercentileLine(text string, sum *SockperfSummary) error {
	name, value, ok := strings.Cut(text, "=")
	if !ok {
		return fmt.Errorf("no value in %q", text)
	}
	ns, err := microsToNanos(strings.TrimSpace(value))
	if err != nil {
		return fmt.Errorf("%s: %w", strings.TrimSpace(name), err)
	}
	name = strings.TrimSpace(name)
	switch {
	case name == "<MAX> observation":
		sum.Max = time.Duration(ns)
	case name == "<MIN> observation":
		sum.Min = time.Duration(ns)
	case strings.HasPrefix(name, "percentile "):
		p, err := strconv.ParseFloat(strings.TrimPrefix(name, "percentile "), 64)
		if err != nil || p < 0 || p > 100 {
			return fmt.Errorf("invalid percentile in %q", text)
		}
		sum.Percentiles[p] = time.Duration(ns)
	default:
		return fmt.Errorf("unknown statistic %q", name)
	}
	return nil
}

// field returns the value after key up to the next ';' (trimmed).
func field(text, key string) (string, bool) {
	_, rest, ok := strings.Cut(text, key)
	if !ok {
		return "", false
	}
	v, _, _ := strings.Cut(rest, ";")
	return strings.TrimSpace(v), true
}

// stripANSI removes the colour escape sequences sockperf prints ("\x1b[2;35m").
func stripANSI(s string) string {
	if !strings.Contains(s, "\x1b[") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == ';') {
				j++
			}
			if j < len(s) {
				i = j // skip the final letter too
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
