package results

import (
	"fmt"
	"time"
)

// SchemaVersion is the version of the result.json schema this package writes
// and reads. It changes whenever a field changes meaning or is removed.
const SchemaVersion = 1

// ToolName is the value of Result.Tool.
const ToolName = "stackgap"

// Result is the content of result.json: everything needed to understand and
// reproduce one run.
type Result struct {
	// Schema is the schema version, SchemaVersion when written by this package.
	Schema int `json:"schema"`
	// Tool is always "stackgap".
	Tool string `json:"tool"`
	// Version and Commit identify the binary that made the run.
	Version string `json:"version"`
	Commit  string `json:"commit"`
	// Started and Finished bound the whole run (sender's clock).
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Command is the argv of the run.
	Command []string `json:"command"`
	// Options holds every effective option, filled by the engine. After Load,
	// values are plain JSON values: numbers are float64, lists []any,
	// objects map[string]any.
	Options map[string]any `json:"options"`
	// Environment describes the sender host and, if known, the reflector.
	Environment Environment `json:"environment"`
	// Phases are the measurement phases in the order they ran.
	Phases []Phase `json:"phases"`
	// Gaps compare the paths measured in the run (kernel − xdp), per
	// transport and family (see ComputeGaps). Empty with one path.
	Gaps []Gap `json:"gaps,omitempty"`
}

// Environment describes one host of a run.
type Environment struct {
	Hostname string `json:"hostname"`
	// Kernel is the kernel release (uname -r).
	Kernel string `json:"kernel"`
	// CPUModel is /proc/cpuinfo's "model name" of the first CPU.
	CPUModel string `json:"cpu_model"`
	// CPUs is the number of online CPUs.
	CPUs int `json:"cpus"`
	// ClockSource is the kernel's current clocksource (e.g. "tsc", "kvm-clock").
	ClockSource string `json:"clock_source"`
	// Interface is the NIC under test (optional).
	Interface *Interface `json:"interface,omitempty"`
	// Reflector is the peer's environment, sent over the control channel
	// (optional; only on the sender's Environment).
	Reflector *Environment `json:"reflector,omitempty"`
	// Notes says what could not be read, and why.
	Notes []string `json:"notes,omitempty"`
}

// Interface describes the network interface under test.
type Interface struct {
	Name          string `json:"name"`
	Driver        string `json:"driver,omitempty"`
	DriverVersion string `json:"driver_version,omitempty"`
	Firmware      string `json:"firmware,omitempty"`
	BusInfo       string `json:"bus_info,omitempty"`
	MTU           int    `json:"mtu,omitempty"`
	// Features maps every ethtool feature (ethtool -k) to whether it is active.
	Features map[string]bool `json:"features,omitempty"`
	// Timestamping is the ethtool -T information (optional).
	Timestamping *Timestamping `json:"timestamping,omitempty"`
}

// Timestamping is an interface's time stamping information (ethtool -T),
// with the names ethtool prints.
type Timestamping struct {
	// Capabilities are the SOF_TIMESTAMPING_* flags the device supports,
	// e.g. "software-receive", "hardware-transmit", "hardware-raw-clock".
	Capabilities []string `json:"capabilities"`
	// PHCIndex is the /dev/ptpN index of the device's PTP clock, -1 if none.
	PHCIndex int `json:"phc_index"`
	// TxTypes are the supported hardware TX time stamp modes (HWTSTAMP_TX_*),
	// e.g. "off", "on".
	TxTypes []string `json:"tx_types"`
	// RxFilters are the supported hardware RX filters (HWTSTAMP_FILTER_*),
	// e.g. "none", "all".
	RxFilters []string `json:"rx_filters"`
}

// Phase is one measurement phase: one path, transport and address family.
type Phase struct {
	// Index numbers the phases of a run from 0; series are keyed by it.
	Index int `json:"index"`
	// Path is "kernel" or "xdp".
	Path string `json:"path"`
	// Transport is "udp" or "tcp".
	Transport string `json:"transport"`
	// Family is "ipv4" or "ipv6".
	Family   string    `json:"family"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Counters Counters  `json:"counters"`
	// SenderCPU and ReflectorCPU are the CPUs the measuring threads ran on (-1: unknown).
	SenderCPU    int `json:"sender_cpu"`
	ReflectorCPU int `json:"reflector_cpu"`
	// UserClocks says what counted each host's user stamps.
	UserClocks UserClocks `json:"user_clocks"`
	// Notes are facts about the phase the reader must know (e.g. it was interrupted).
	Notes []string `json:"notes,omitempty"`
	// Histograms summarises every series of the phase (filled by WriteRun).
	Histograms []Summary `json:"histograms"`
}

// UserClocks names, per host, what counted the time of its user stamps since
// the session's CLOCK_REALTIME base: "vdso" (CLOCK_MONOTONIC through the
// vDSO, in step with the kernel's stamps; sessions that take kernel stamps)
// or "tsc" (the CPU's time stamp counter, calibrated against CLOCK_MONOTONIC;
// sessions without kernel stamps, where every figure is a difference of two
// user stamps). Empty when unknown (an echo peer, an older reflector).
type UserClocks struct {
	Sender    string `json:"sender,omitempty"`
	Reflector string `json:"reflector,omitempty"`
}

// Counters are a phase's probe counters. Warm-up probes are counted apart and
// are not part of the histograms.
type Counters struct {
	Sent       uint64 `json:"sent"`
	Received   uint64 `json:"received"`
	Lost       uint64 `json:"lost"`
	Duplicated uint64 `json:"duplicated"`
	Reordered  uint64 `json:"reordered"`
	// Late counts replies that arrived after their probe was declared lost.
	Late           uint64 `json:"late"`
	WarmupSent     uint64 `json:"warmup_sent"`
	WarmupReceived uint64 `json:"warmup_received"`
	WarmupLost     uint64 `json:"warmup_lost"`
	// Missing counts probes whose stamp of a kind was never delivered, by kind
	// (e.g. "tx_sched").
	Missing map[string]uint64 `json:"missing,omitempty"`
	// Other counts packets the sender ignored or other anomalies, by kind
	// (e.g. "foreign_replies", "abandoned_in_flight").
	Other map[string]uint64 `json:"other,omitempty"`
	// Reflector holds the reflector's own counters, as it reported them.
	Reflector map[string]uint64 `json:"reflector,omitempty"`
}

// Summary is the digest of one Series stored in result.json. All values are
// in nanoseconds.
type Summary struct {
	Name   string `json:"name"`
	Host   string `json:"host"`
	Source string `json:"source"`
	Layer  string `json:"layer"`
	// Count is the number of recorded values; OutOfRange the number of values
	// that could not be recorded (≤ 0 or above MaxValue).
	Count      uint64  `json:"count"`
	OutOfRange uint64  `json:"out_of_range"`
	Min        int64   `json:"min"`
	Max        int64   `json:"max"`
	Mean       float64 `json:"mean"`
	StdDev     float64 `json:"stddev"`
	P50        int64   `json:"p50"`
	P90        int64   `json:"p90"`
	P99        int64   `json:"p99"`
	P999       int64   `json:"p99_9"`
	P9999      int64   `json:"p99_99"`
	// File is the name of the series' .hgrm file in the run directory.
	File string `json:"file,omitempty"`
}

// Summarize digests a series. File is left empty; WriteRun sets it.
func Summarize(s *Series) Summary {
	total := s.Total()
	sum := Summary{
		Name:       s.Name,
		Host:       s.Host,
		Source:     s.Source,
		Layer:      s.Layer,
		Count:      uint64(total.TotalCount()),
		OutOfRange: s.OutOfRange(),
	}
	if sum.Count == 0 {
		return sum
	}
	sum.Min = total.Min()
	sum.Max = total.Max()
	sum.Mean = total.Mean()
	sum.StdDev = total.StdDev()
	q := total.ValueAtPercentilesSlice([]float64{50, 90, 99, 99.9, 99.99})
	sum.P50, sum.P90, sum.P99, sum.P999, sum.P9999 = q[0], q[1], q[2], q[3], q[4]
	return sum
}

// PhasePrefix names a phase in file names and hlog tags,
// "p<index>-<path>-<transport>-<family>", e.g. "p0-kernel-udp-ipv4".
func PhasePrefix(p Phase) string {
	return fileSafe(fmt.Sprintf("p%d-%s-%s-%s", p.Index, p.Path, p.Transport, p.Family))
}

// fileSafe replaces every character that is not safe in a file name or an hlog
// tag (which may not hold commas, spaces or line breaks) with '_'.
func fileSafe(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '-', c == '_', c == '.':
		default:
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}
