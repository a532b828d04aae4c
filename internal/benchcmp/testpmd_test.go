package benchcmp

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The testpmd-*.log files are real output (standard output and error) of dpdk-testpmd from
// Debian's dpdk-dev 22.11.11 on Linux 6.18, in a network namespace, reflecting stackgap's AF_XDP
// echo sender with
// `dpdk-testpmd --lcores 0@1,1@1 --no-huge -m 1024 --no-pci --no-telemetry --file-prefix P
// --vdev net_af_xdp0,iface=IF,start_queue=0,queue_count=1 -- --forward-mode=5tswap
// --total-num-mbufs=8192 --auto-start`, stopped with SIGINT; testpmd-5tswap-stats.log adds
// `--stats-period 1 --record-burst-stats --record-core-cycles` (the sender kept 256 probes of
// 18 bytes in flight), testpmd-5tswap.log had one probe in flight.

func TestParseTestpmdOutput(t *testing.T) {
	tests := []struct {
		file string
		want TestpmdStats
	}{
		{
			file: "testpmd-5tswap.log",
			want: TestpmdStats{RXPackets: 6000, TXPackets: 6000, RXEmptyPercent: -1},
		},
		{
			file: "testpmd-5tswap-stats.log",
			want: TestpmdStats{
				RXPackets: 792915, TXPackets: 792915,
				RXBursts: 10468614, TXBursts: 775507, RXEmptyPercent: 92,
				CyclesPerPacket: 5394.80,
				Periods:         []TestpmdPeriod{{0, 0}, {0, 0}, {62074, 62073}, {287255, 287255}, {257006, 257006}},
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
			got, err := ParseTestpmdOutput(f)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("unexpected statistics\nwant %+v\n got %+v", tt.want, got)
			}
		})
	}
}

func TestTestpmdMaxTXPPS(t *testing.T) {
	s := TestpmdStats{Periods: []TestpmdPeriod{{10, 9}, {300, 287255}, {5, 257006}}}
	if got := s.MaxTXPPS(); got != 287255 {
		t.Errorf("MaxTXPPS %d, want 287255", got)
	}
	if got := (TestpmdStats{}).MaxTXPPS(); got != 0 {
		t.Errorf("MaxTXPPS without periods %d, want 0", got)
	}
}

func TestParseTestpmdOutputErrors(t *testing.T) {
	tests := []struct {
		name, input, wantErr string
	}{
		{
			// What testpmd 22.11 printed with `-l 1` (one lcore: the main one, none to forward).
			name: "failed",
			input: "EAL: Detected CPU lcores: 2\nEAL: Selected IOVA mode 'VA'\n" +
				"EAL: Error - exiting with code: 1\n  Cause: No cores defined for forwarding\nCheck the core mask argument\nPort 0 is closed\n",
			wantErr: "testpmd failed: No cores defined for forwarding",
		},
		{
			name:    "killed before stopping",
			input:   "Logical Core 1 (socket 0) forwards packets on 1 streams:\nPress enter to exit\n",
			wantErr: "no forward statistics",
		},
		{
			name: "bad counter",
			input: "  ---------------------- Forward statistics for port 0  ----------------------\n" +
				"  RX-packets: x              RX-dropped: 0             RX-total: 0\n",
			wantErr: `RX-packets: "x"`,
		},
		{
			name: "missing counter",
			input: "  ---------------------- Forward statistics for port 0  ----------------------\n" +
				"  TX-packets: 5              RX-total: 0\n",
			wantErr: "want 2 counters",
		},
		{
			name: "bad burst share",
			input: "  ---------------------- Forward statistics for port 0  ----------------------\n" +
				"  RX-bursts : 10 [101% of 0 pkts]\n",
			wantErr: "burst share",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTestpmdOutput(strings.NewReader(tt.input))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseBursts(t *testing.T) {
	tests := []struct {
		text      string
		wantN     uint64
		wantShare map[int]int
	}{
		{"RX-bursts : 10468614 [92% of 0 pkts + 7% of 1 pkts + 0% of 2 pkts + 1% of other]", 10468614,
			map[int]int{0: 92, 1: 7, 2: 0, -1: 1}},
		{"TX-bursts : 775507 [0% of 0 pkts + 98% of 1 pkts + 0% of 2 pkts + 2% of other]", 775507,
			map[int]int{0: 0, 1: 98, 2: 0, -1: 2}},
		{"RX-bursts : 100 [60% of 32 pkts + 40% of 1 pkts]", 100, map[int]int{0: 0, 32: 60, 1: 40}},
		{"RX-bursts : 0 []", 0, map[int]int{0: 0}},
	}
	for _, tt := range tests {
		n, share, err := parseBursts(tt.text)
		if err != nil {
			t.Errorf("%q: %v", tt.text, err)
			continue
		}
		if n != tt.wantN || !reflect.DeepEqual(share, tt.wantShare) {
			t.Errorf("%q: got %d %v, want %d %v", tt.text, n, share, tt.wantN, tt.wantShare)
		}
	}
}

func TestTestpmdArgs(t *testing.T) {
	got := strings.Join(TestpmdArgs("sgbe-1234abcd-b", 1, "sgbench-42-00ff", 0), " ")
	want := "--lcores 0@1,1@1 --no-huge -m 1024 --no-pci --no-telemetry --file-prefix sgbench-42-00ff " +
		"--vdev net_af_xdp0,iface=sgbe-1234abcd-b,start_queue=0,queue_count=1 " +
		"-- --forward-mode=5tswap --total-num-mbufs=8192 --auto-start"
	if got != want {
		t.Errorf("unexpected arguments\nwant %s\n got %s", want, got)
	}
	withStats := strings.Join(TestpmdArgs("veth0", 3, "p", 1), " ")
	if !strings.HasPrefix(withStats, "--lcores 0@3,1@3 ") ||
		!strings.HasSuffix(withStats, " --auto-start --stats-period 1 --record-burst-stats --record-core-cycles") {
		t.Errorf("unexpected arguments with statistics: %s", withStats)
	}
}

func FuzzParseTestpmdOutput(f *testing.F) {
	for _, name := range []string{"testpmd-5tswap.log", "testpmd-5tswap-stats.log"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("Forward statistics for port 0\nRX-bursts : 1 [5% of other]\n")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTestpmdOutput(strings.NewReader(s))
		if err != nil {
			return
		}
		if got.RXEmptyPercent < -1 || got.RXEmptyPercent > 100 {
			t.Errorf("empty share %d out of range", got.RXEmptyPercent)
		}
	})
}
