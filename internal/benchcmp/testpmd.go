package benchcmp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// TestpmdArgs returns the command line (without the program name) that runs DPDK's dpdk-testpmd
// as an AF_XDP reflector on queue 0 of iface: a net_af_xdp vdev in 5tswap forwarding mode (it
// swaps MAC and IP addresses and L4 ports and sends the frame back), without hugepages or PCI
// devices, as the issue prescribes. Both of testpmd's lcores run on cpu: testpmd needs a main
// lcore besides the forwarding one (with `-l N` alone it stops with "No cores defined for
// forwarding"), so `--lcores 0@N,1@N` maps the main lcore 0 (which only sleeps, or prints
// statistics) and the forwarding lcore 1 onto the same CPU. filePrefix names the runtime
// directory /var/run/dpdk/<filePrefix> (--in-memory, which would avoid it, is refused with
// --no-huge). statsPeriod > 0 adds --stats-period (seconds) and per-burst and per-cycle
// statistics for throughput runs; with 0 testpmd prints nothing while it forwards and waits for
// a line on standard input or SIGINT.
func TestpmdArgs(iface string, cpu int, filePrefix string, statsPeriod int) []string {
	c := strconv.Itoa(cpu)
	args := []string{
		"--lcores", "0@" + c + ",1@" + c, "--no-huge", "-m", "1024", "--no-pci", "--no-telemetry",
		"--file-prefix", filePrefix,
		"--vdev", "net_af_xdp0,iface=" + iface + ",start_queue=0,queue_count=1",
		"--", "--forward-mode=5tswap", "--total-num-mbufs=8192", "--auto-start",
	}
	if statsPeriod > 0 {
		args = append(args, "--stats-period", strconv.Itoa(statsPeriod), "--record-burst-stats", "--record-core-cycles")
	}
	return args
}

// TestpmdReadyLine is printed by testpmd once its port is started and forwarding has begun.
const TestpmdReadyLine = "forwards packets on"

// TestpmdStats is what ParseTestpmdOutput took from testpmd's output.
type TestpmdStats struct {
	// RXPackets, RXDropped, TXPackets and TXDropped are port 0's forward statistics, printed
	// when forwarding stops: they cover the whole life of the process.
	RXPackets, RXDropped, TXPackets, TXDropped uint64
	// RXBursts and TXBursts count receive and transmit bursts (polls); RXEmptyPercent is the
	// share of receive polls that found no packet, as testpmd rounds it (-1 when
	// --record-burst-stats was not given). A forwarding core that mostly polls an empty ring is
	// waiting for traffic, not saturated.
	RXBursts, TXBursts uint64
	RXEmptyPercent     int
	// CyclesPerPacket is testpmd's "CPU cycles/packet" (--record-core-cycles; 0 if absent).
	CyclesPerPacket float64
	// Periods holds the port's throughput of every --stats-period report, in order.
	Periods []TestpmdPeriod
}

// TestpmdPeriod is one periodic report's "Throughput (since last show)".
type TestpmdPeriod struct {
	RXPPS, TXPPS uint64
}

// MaxTXPPS is the highest transmit rate of the periodic reports (0 without any).
func (s TestpmdStats) MaxTXPPS() uint64 {
	var m uint64
	for _, p := range s.Periods {
		m = max(m, p.TXPPS)
	}
	return m
}

// ParseTestpmdOutput reads what dpdk-testpmd prints on standard output and error (colour
// escapes included) and returns port 0's forward statistics, burst and cycle statistics and
// periodic throughput. It fails with testpmd's own reason ("Cause: …") when testpmd exited on an
// error, and when the forward statistics are missing (testpmd was killed before it stopped).
func ParseTestpmdOutput(r io.Reader) (TestpmdStats, error) {
	s := TestpmdStats{RXEmptyPercent: -1}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	inForward, seenForward := false, false
	var period *TestpmdPeriod
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(stripANSI(sc.Text()))
		switch {
		case strings.HasPrefix(text, "Cause:"):
			return s, fmt.Errorf("parse testpmd output: testpmd failed: %s", strings.TrimSpace(strings.TrimPrefix(text, "Cause:")))
		case strings.Contains(text, "Forward statistics for port 0"):
			inForward, seenForward = true, true
		case inForward && strings.HasPrefix(text, "-----"):
			inForward = false
		case inForward && strings.HasPrefix(text, "RX-packets:"):
			if err := counters(text, map[string]*uint64{"RX-packets:": &s.RXPackets, "RX-dropped:": &s.RXDropped}); err != nil {
				return s, fmt.Errorf("parse testpmd output: line %d: %w", line, err)
			}
		case inForward && strings.HasPrefix(text, "TX-packets:"):
			if err := counters(text, map[string]*uint64{"TX-packets:": &s.TXPackets, "TX-dropped:": &s.TXDropped}); err != nil {
				return s, fmt.Errorf("parse testpmd output: line %d: %w", line, err)
			}
		case inForward && strings.HasPrefix(text, "RX-bursts"):
			n, dist, err := parseBursts(text)
			if err != nil {
				return s, fmt.Errorf("parse testpmd output: line %d: %w", line, err)
			}
			s.RXBursts = n
			s.RXEmptyPercent = dist[0]
		case inForward && strings.HasPrefix(text, "TX-bursts"):
			n, _, err := parseBursts(text)
			if err != nil {
				return s, fmt.Errorf("parse testpmd output: line %d: %w", line, err)
			}
			s.TXBursts = n
		case strings.HasPrefix(text, "CPU cycles/packet="):
			v, _, _ := strings.Cut(strings.TrimPrefix(text, "CPU cycles/packet="), " ")
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return s, fmt.Errorf("parse testpmd output: line %d: cycles per packet %q: %w", line, v, err)
			}
			s.CyclesPerPacket = f
		case strings.HasPrefix(text, "Throughput (since last show)"):
			s.Periods = append(s.Periods, TestpmdPeriod{})
			period = &s.Periods[len(s.Periods)-1]
		case period != nil && strings.HasPrefix(text, "Rx-pps:"):
			if err := counters(text, map[string]*uint64{"Rx-pps:": &period.RXPPS}); err != nil {
				return s, fmt.Errorf("parse testpmd output: line %d: %w", line, err)
			}
		case period != nil && strings.HasPrefix(text, "Tx-pps:"):
			if err := counters(text, map[string]*uint64{"Tx-pps:": &period.TXPPS}); err != nil {
				return s, fmt.Errorf("parse testpmd output: line %d: %w", line, err)
			}
			period = nil
		}
	}
	if err := sc.Err(); err != nil {
		return s, fmt.Errorf("parse testpmd output: %w", err)
	}
	if !seenForward {
		return s, errors.New("parse testpmd output: no forward statistics for port 0 (did testpmd stop on SIGINT?)")
	}
	return s, nil
}

// counters reads "KEY: N" pairs of one line ("RX-packets: 6000   RX-dropped: 0   RX-total: 6000")
// into the given destinations; every key must be present.
func counters(text string, dst map[string]*uint64) error {
	fields := strings.Fields(text)
	found := 0
	for i := 0; i+1 < len(fields); i++ {
		p, ok := dst[fields[i]]
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(fields[i+1], 10, 64)
		if err != nil {
			return fmt.Errorf("%s %q: %w", fields[i], fields[i+1], err)
		}
		*p = n
		found++
	}
	if found != len(dst) {
		return fmt.Errorf("want %d counters in %q, found %d", len(dst), text, found)
	}
	return nil
}

// parseBursts reads "RX-bursts : 10468614 [92% of 0 pkts + 7% of 1 pkts + 0% of 2 pkts + 1% of
// other]" into the number of bursts and the percentages by burst size (-1 for "other").
func parseBursts(text string) (uint64, map[int]int, error) {
	_, rest, ok := strings.Cut(text, ":")
	if !ok {
		return 0, nil, fmt.Errorf("no count in %q", text)
	}
	count, dist, _ := strings.Cut(strings.TrimSpace(rest), "[")
	n, err := strconv.ParseUint(strings.TrimSpace(count), 10, 64)
	if err != nil {
		return 0, nil, fmt.Errorf("burst count in %q: %w", text, err)
	}
	sizes := map[int]int{0: 0}
	dist = strings.TrimSuffix(strings.TrimSpace(dist), "]")
	if dist == "" {
		return n, sizes, nil // no bursts at all: testpmd prints no distribution
	}
	for _, part := range strings.Split(dist, "+") {
		// "92% of 0 pkts" or "1% of other"
		pct, what, ok := strings.Cut(strings.TrimSpace(part), "% of ")
		if !ok {
			return 0, nil, fmt.Errorf("burst share %q in %q", part, text)
		}
		p, err := strconv.Atoi(pct)
		if err != nil || p < 0 || p > 100 {
			return 0, nil, fmt.Errorf("burst share %q in %q", part, text)
		}
		if what == "other" {
			sizes[-1] = p
			continue
		}
		size, err := strconv.Atoi(strings.TrimSuffix(what, " pkts"))
		if err != nil || size < 0 {
			return 0, nil, fmt.Errorf("burst size %q in %q", what, text)
		}
		sizes[size] = p
	}
	return n, sizes, nil
}
