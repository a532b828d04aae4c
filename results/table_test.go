package results

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// tableResult is a fixed result covering the table's cases: two hosts, an
// empty histogram, out-of-range values, missing stamps, many reflector
// counters (wrapped lines), a phase without histograms.
func tableResult() *Result {
	start := time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC)
	return &Result{
		Schema: SchemaVersion, Tool: ToolName, Version: "v0.1.0", Commit: "1a2b3c4",
		Started: start, Finished: start.Add(12*time.Second + 300*time.Millisecond),
		Environment: Environment{
			Hostname: "sender-host", Kernel: "6.18.0-test", CPUs: 2, ClockSource: "tsc",
			Interface: &Interface{Name: "veth-sg0", Driver: "veth", MTU: 1500},
			Reflector: &Environment{Hostname: "reflector-host", Kernel: "6.18.0-test", CPUs: 4},
		},
		Phases: []Phase{
			{
				Index: 0, Path: "kernel", Transport: "udp", Family: "ipv4",
				Started: start, Finished: start.Add(5 * time.Second),
				Counters: Counters{
					Sent: 50000, Received: 49998, Lost: 2, Duplicated: 1, Reordered: 3, Late: 1,
					WarmupSent: 1000, WarmupReceived: 999, WarmupLost: 1,
					Missing: map[string]uint64{"tx_software": 4, "tx_sched": 2},
					Reflector: map[string]uint64{
						"received": 50999, "reflected": 50998, "dropped_unknown_session": 0,
						"dropped_bad_token": 1, "dropped_too_short": 0, "tx_errors": 0,
						"rx_timestamp_missing": 12, "sessions_opened": 1, "sessions_closed": 1,
					},
				},
				Histograms: []Summary{
					{Name: "rtt", Host: HostSender, Source: SourceUser, Count: 49998,
						P50: 35_123, P90: 41_004, P99: 70_999, P999: 151_551, P9999: 400_000, Max: 1_234_567},
					{Name: "tx.user_to_sched", Host: HostSender, Source: SourceSW, Count: 49996, OutOfRange: 2,
						P50: 1_503, P90: 2_011, P99: 4_095, P999: 9_999, Max: 20_479},
					{Name: "tx.sched_to_wire", Host: HostSender, Source: SourceHW},
					{Name: "residence", Host: HostReflector, Source: SourceMixed, Count: 49998,
						P50: 8_001, P90: 9_502, P99: 15_003, P999: 30_011, Max: 60_000_000_000},
				},
			},
			{
				Index: 1, Path: "xdp", Transport: "tcp", Family: "ipv6",
				Started: start.Add(6 * time.Second), Finished: start.Add(11 * time.Second),
				Counters: Counters{Sent: 10, Lost: 10},
			},
		},
	}
}

func TestPrintTableGolden(t *testing.T) {
	var buf bytes.Buffer
	PrintTable(&buf, tableResult())
	golden := filepath.Join("testdata", "table.golden")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if got := buf.String(); got != string(want) {
		t.Errorf("unexpected table (-want +got):\n-%s\n+%s", want, got)
	}
	for i, line := range strings.Split(buf.String(), "\n") {
		if n := utf8.RuneCountInString(line); n > tableWidth {
			t.Errorf("line %d is %d columns wide, more than %d: %q", i+1, n, tableWidth, line)
		}
	}
}

// TestPrintTableOfWrittenRun prints a run that went through WriteRun and Load:
// one row per series, counts as recorded.
func TestPrintTableOfWrittenRun(t *testing.T) {
	r, series := testRun(t)
	dir := t.TempDir()
	if err := WriteRun(dir, r, series); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	PrintTable(&buf, loaded)
	out := buf.String()
	for _, want := range []string{
		"phase 0: kernel udp ipv4, 3.5 s, cpu sender 0 reflector 0, values in µs",
		"phase 1: xdp tcp ipv6",
		"sender    rtt ",
		"reflector residence ",
		"counters: sent 3000  received 2998  lost 2  dup 0  reordered 1  late 0",
		"warmup: sent 100  received 100  lost 0",
		"missing stamps: tx_hardware 3000",
		"out of range: sender/rtt 1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
