package xdp

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stackgap/stackgap/bench"
)

func TestNewPath(t *testing.T) {
	p := NewPath(PathOptions{})
	if p.Name() != "xdp" {
		t.Errorf("Name() = %q, want xdp", p.Name())
	}
	want := PathOptions{Mode: ModeAuto, SteerMode: SteerModeAuto}
	if got := p.Options(); got != want {
		t.Errorf("default options %+v, want %+v", got, want)
	}
}

func TestPathOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		o    PathOptions
		want string // "" for valid
	}{
		{"defaults", PathOptions{}, ""},
		{"copy driver queue 3", PathOptions{Queue: 3, Mode: ModeCopy, SteerMode: SteerModeDriver, HardwareRX: true}, ""},
		{"negative queue", PathOptions{Queue: -1}, "invalid af_xdp queue -1"},
		{"huge queue", PathOptions{Queue: 1 << 16}, "invalid af_xdp queue 65536"},
		{"bad mode", PathOptions{Mode: "fast"}, `invalid af_xdp mode "fast"`},
		{"bad steer mode", PathOptions{SteerMode: "native"}, `invalid steering mode "native"`},
		{"hardware rx generic", PathOptions{SteerMode: SteerModeGeneric, HardwareRX: true}, "need the steering program in driver mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.withDefaults().validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestCheckTransport(t *testing.T) {
	for _, transport := range []string{"udp", "", "tcp"} {
		if err := checkTransport(transport); err != nil {
			t.Errorf("checkTransport(%q) = %v, want nil", transport, err)
		}
	}
	if err := checkTransport("sctp"); err == nil || !strings.Contains(err.Error(), `"sctp" not supported`) {
		t.Errorf("checkTransport(sctp) = %v", err)
	}
}

func TestWaitStrategyOf(t *testing.T) {
	tests := []struct {
		in   bench.WaitStrategy
		want WaitStrategy
	}{
		{bench.WaitPoll, WaitPoll},
		{bench.WaitBlock, WaitPoll}, // the engine's equal of poll
		{"", WaitPoll},
		{bench.WaitSpin, WaitSpin},
	}
	for _, tt := range tests {
		got, err := waitStrategyOf(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("waitStrategyOf(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := waitStrategyOf("sleep"); err == nil {
		t.Error("waitStrategyOf(sleep) succeeded")
	}
}

func TestCheckProbeFits(t *testing.T) {
	v4, v6 := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("2001:2::1")
	tests := []struct {
		name     string
		size     int
		tcp      bool
		addr     netip.Addr
		mtu      int
		capacity uint32
		want     string
	}{
		{"unknown size", 0, false, v4, 1500, 3840, ""},
		{"ipv4 full mtu", 1472, false, v4, 1500, 3840, ""},
		{"ipv4 one over", 1473, false, v4, 1500, 3840, "probe size 1473 does not fit: 1501-byte IP packet (1515-byte Ethernet frame) with MTU 1500 of eth0 and AF_XDP frame capacity 3840"},
		{"ipv6 full mtu", 1452, false, v6, 1500, 3840, ""},
		{"ipv6 one over", 1453, false, v6, 1500, 3840, "1501-byte IP packet"},
		{"jumbo over frame", 3800, false, v4, 9000, 3840, "3842-byte Ethernet frame) with MTU 9000 of eth0 and AF_XDP frame capacity 3840"},
		{"jumbo fits frame", 3798, false, v4, 9000, 3840, ""},
		{"tcp spans segments", 65000, true, v4, 1500, 3840, ""},
		{"tcp ipv6 jumbo", 65000, true, v6, 9000, 3840, ""},
		{"tcp tiny mtu", 100, true, v6, 120, 3840, "tcp needs an MSS of at least 64 bytes: MTU 120 of eth0 and AF_XDP frame capacity 3840 leave 60"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkProbeFits(tt.size, tt.tcp, tt.addr, "eth0", tt.mtu, tt.capacity)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestTCPMSS(t *testing.T) {
	v4, v6 := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("2001:2::1")
	for _, tt := range []struct {
		addr     netip.Addr
		mtu      int
		capacity uint32
		want     int
	}{
		{v4, 1500, 3840, 1460}, // the kernel's MSS on a 1500-byte MTU
		{v6, 1500, 3840, 1440},
		{v4, 9000, 3840, 3840 - 14 - 20 - 20}, // the UMEM frame bounds it
		{v6, 9000, 1792, 1792 - 14 - 40 - 20},
	} {
		if got := tcpMSS(tt.addr, tt.mtu, tt.capacity); got != tt.want {
			t.Errorf("tcpMSS(%v, mtu %d, capacity %d) = %d, want %d", tt.addr, tt.mtu, tt.capacity, got, tt.want)
		}
	}
}

func TestCounterMap(t *testing.T) {
	got := counterMap(pathCounters{RxProbes: 3, TxFrames: 3, RxBadChecksum: 1},
		Stats{RxRingFull: 2, Polls: 5}, SteerStats{Redirected: 3, Passed: 9, Runs: 12, RunTime: 900 * time.Nanosecond}, true)
	want := map[string]uint64{"rx_probes": 3, "tx_frames": 3, "rx_bad_checksum": 1, "xsk_rx_ring_full": 2,
		"xsk_polls": 5, "steer_redirected": 3, "steer_passed": 9, "steer_prog_runs": 12, "steer_prog_run_ns": 900}
	if !maps.Equal(got, want) {
		t.Errorf("counterMap = %v, want %v", got, want)
	}
	got = counterMap(pathCounters{}, Stats{}, SteerStats{Redirected: 3}, false)
	if len(got) != 0 {
		t.Errorf("counterMap without steering stats = %v, want empty", got)
	}
}

func TestSessionNotes(t *testing.T) {
	veth := Info{Interface: "veth0", Driver: "veth", Mode: ModeCopy, TxMetadataLen: 24, UnalignedChunks: true,
		ZeroCopyNote: "zero-copy not supported by veth driver on veth0 queue 0: operation not supported"}
	tests := []struct {
		name string
		n    sessionNotes
		want []string
	}{
		{"veth defaults", sessionNotes{info: veth, steerMode: SteerModeDriver}, []string{
			"af_xdp socket in copy mode: zero-copy not supported by veth driver",
			"af_xdp socket on veth0 (driver veth) queue 0, UMEM in unaligned-chunk mode; FILL ring kept at",
			"steering program attached in driver mode",
			"NIC RX hardware stamps not requested",
			"tx stamp: sw_completion (copy mode)",
		}},
		{"veth hardware rx asked", sessionNotes{info: veth, steerMode: SteerModeDriver, hardwareAsked: true, hardwareRX: true,
			counters: pathCounters{RxProbes: 10}}, []string{
			"NIC RX hardware stamps unavailable: veth: bpf_xdp_metadata_rx_timestamp returns no stamp",
		}},
		{"hardware rx error", sessionNotes{info: veth, steerMode: SteerModeDriver, hardwareAsked: true, hardwareRX: true,
			counters: pathCounters{RxProbes: 10}, lastHardwareErr: syscall.ENODATA}, []string{
			"bpf_xdp_metadata_rx_timestamp fails: no data available",
		}},
		{"emulated loss", sessionNotes{info: veth, steerMode: SteerModeDriver, dropPercent: 10}, []string{
			"emulated loss: the steering program on veth0 drops 10% of the probe flows' frames (counter steer_dropped)",
		}},
		{"generic fallback", sessionNotes{info: veth, steerMode: SteerModeGeneric, steerFallback: "no native XDP",
			hardwareAsked: true}, []string{
			"steering fell back to generic mode: no native XDP",
			"NIC RX hardware stamps requested but unavailable",
		}},
		{"busy poll inert", sessionNotes{info: Info{Interface: "veth0", Driver: "veth", Mode: ModeCopy, BusyPoll: BusyPollInert, TxMetadataLen: 24},
			steerMode: SteerModeDriver, busyPollAsked: true}, []string{
			"af_xdp socket in copy mode (requested)",
			"busy polling requested but inert: veth0 queue 0 has no NAPI id",
		}},
		{"zero-copy", sessionNotes{info: Info{Interface: "eth0", Driver: "mlx5_core", Mode: ModeZeroCopy, BusyPoll: BusyPollActive, TxMetadataLen: 24},
			steerMode: SteerModeDriver, steerShared: true, hardwareAsked: true, hardwareRX: true,
			counters: pathCounters{RxProbes: 10, RxHardwareStamps: 10}, hardwareClock: "NIC hardware stamps converted from PTP clock /dev/ptp0"}, []string{
			"af_xdp socket in zero-copy mode",
			"UMEM in aligned-chunk mode",
			"shared with an earlier session",
			"busy polling active",
			"NIC RX hardware stamps present",
			"tx stamp: driver completion stamp (zero-copy), reported as tx_hardware, converted from the NIC's PTP clock",
			"NIC hardware stamps converted from PTP clock /dev/ptp0",
		}},
		{"hardware rx without a PHC", sessionNotes{info: veth, steerMode: SteerModeDriver, hardwareAsked: true, hardwareRX: true,
			counters: pathCounters{RxProbes: 10, RxHardwareUnconverted: 10}}, []string{
			"NIC RX hardware stamps present but left out: 10 could not be converted to CLOCK_REALTIME",
		}},
		{"no tx metadata", sessionNotes{info: Info{Mode: ModeCopy, TxMetadataNote: "refused by the kernel (invalid argument)"}, steerMode: SteerModeDriver},
			[]string{"tx stamp: none (the kernel refused UMEM TX metadata: refused by the kernel (invalid argument))"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines := tt.n.lines()
			all := strings.Join(lines, "\n")
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("notes lack %q:\n%s", w, all)
				}
			}
			if slices.Contains(lines, "") {
				t.Errorf("empty note in %q", lines)
			}
		})
	}
}
