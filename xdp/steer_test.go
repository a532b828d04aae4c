//go:build linux

package xdp

import (
	"encoding/binary"
	"strings"
	"syscall"
	"testing"
	"time"
)

func steerMetaBytes(xdpTS, hwTS uint64, hwErr int32, magic uint32) []byte {
	b := make([]byte, SteerMetaSize)
	binary.NativeEndian.PutUint64(b[0:8], xdpTS)
	binary.NativeEndian.PutUint64(b[8:16], hwTS)
	binary.NativeEndian.PutUint32(b[16:20], uint32(hwErr))
	binary.NativeEndian.PutUint32(b[20:24], magic)
	return b
}

func TestParseSteerMeta(t *testing.T) {
	tests := []struct {
		name   string
		in     []byte
		want   SteerMeta
		wantOK bool
	}{
		{"valid", steerMetaBytes(1_700_000_037_000_000_001, 42, 0, SteerMetaMagic), SteerMeta{XDPTAI: 1_700_000_037_000_000_001, Hardware: 42}, true},
		{"generic variant", steerMetaBytes(5, 0, -int32(syscall.EOPNOTSUPP), SteerMetaMagic), SteerMeta{XDPTAI: 5, HardwareErr: syscall.EOPNOTSUPP}, true},
		{"no data", steerMetaBytes(5, 0, -int32(syscall.ENODATA), SteerMetaMagic), SteerMeta{XDPTAI: 5, HardwareErr: syscall.ENODATA}, true},
		{"longer slice uses its tail", append([]byte{1, 2, 3}, steerMetaBytes(7, 0, 0, SteerMetaMagic)...), SteerMeta{XDPTAI: 7}, true},
		{"bad magic", steerMetaBytes(5, 0, 0, SteerMetaMagic+1), SteerMeta{}, false},
		{"cleared", make([]byte, SteerMetaSize), SteerMeta{}, false},
		{"short", steerMetaBytes(5, 0, 0, SteerMetaMagic)[1:], SteerMeta{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseSteerMeta(tt.in)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("%s: ParseSteerMeta = %+v, %v, want %+v, %v", tt.name, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestClearSteerMeta(t *testing.T) {
	b := steerMetaBytes(5, 6, 0, SteerMetaMagic)
	ClearSteerMeta(b)
	if _, ok := ParseSteerMeta(b); ok {
		t.Error("metadata still valid after ClearSteerMeta")
	}
	ClearSteerMeta(b[:3]) // too short: must not panic
}

func TestFlowValidate(t *testing.T) {
	tests := []struct {
		f       Flow
		wantErr string
	}{
		{Flow{Proto: syscall.IPPROTO_UDP, DstPort: 9000}, ""},
		{Flow{IPv6: true, Proto: syscall.IPPROTO_TCP, DstPort: 1}, ""},
		{Flow{Proto: syscall.IPPROTO_ICMP, DstPort: 9000}, "invalid flow ipv4/proto 1 dst port 9000: protocol must be UDP (17) or TCP (6)"},
		{Flow{IPv6: true, Proto: syscall.IPPROTO_UDP}, "invalid flow ipv6/udp dst port 0: destination port 0"},
	}
	for _, tt := range tests {
		err := tt.f.validate()
		if (err == nil) != (tt.wantErr == "") || (err != nil && err.Error() != tt.wantErr) {
			t.Errorf("%+v.validate() = %v, want %q", tt.f, err, tt.wantErr)
		}
	}
}

// TestFlowSlot pins the flows map layout flow_lookup in bpf/steer.c reads:
// slot (IPv6 ? 2 : 0) << 16 | (TCP ? 1 : 0) << 16 | port, 2 bits each.
func TestFlowSlot(t *testing.T) {
	for _, tt := range []struct {
		f           Flow
		word, shift uint32
	}{
		{Flow{Proto: syscall.IPPROTO_UDP, DstPort: 1}, 0, 2},
		{Flow{Proto: syscall.IPPROTO_UDP, DstPort: 33}, 1, 2},
		{Flow{Proto: syscall.IPPROTO_TCP, DstPort: 0xffff}, (1<<16 | 0xffff) / 32, 62},
		{Flow{IPv6: true, Proto: syscall.IPPROTO_UDP, DstPort: 4000}, (2<<16 + 4000) / 32, 4000 % 32 * 2},
		{Flow{IPv6: true, Proto: syscall.IPPROTO_TCP, DstPort: 0xffff}, 8191, 62},
	} {
		if word, shift := tt.f.slot(); word != tt.word || shift != tt.shift {
			t.Errorf("%v: slot word %d shift %d, want %d %d", tt.f, word, shift, tt.word, tt.shift)
		}
	}
}

func TestTAIToRealtime(t *testing.T) {
	if got := TAIToRealtime(1_000_000_037_000_000_000, 37*time.Second); got != 1_000_000_000_000_000_000 {
		t.Errorf("TAIToRealtime = %d", got)
	}
	if got := TAIToRealtime(0, 37*time.Second); got != 0 {
		t.Errorf("TAIToRealtime(0) = %d, want 0 (not taken)", got)
	}
}

func TestMeasureTAIOffset(t *testing.T) {
	off, err := MeasureTAIOffset()
	if err != nil {
		t.Fatal(err)
	}
	// 0 when no daemon set it, 37 s since 2017; anything else is odd.
	if off%time.Second != 0 || off < 0 || off > time.Minute {
		t.Errorf("TAI offset %v, want whole seconds in [0, 1m]", off)
	}
	t.Logf("TAI offset on this host: %v", off)
}

func TestXDPProgramAttachedErrorMessage(t *testing.T) {
	e := &XDPProgramAttachedError{Interface: "eth0", ID: 42, Name: "foo"}
	if want := "eth0 already has XDP program id 42 (name foo) attached; stackgap never detaches another program"; e.Error() != want {
		t.Errorf("error %q, want %q", e.Error(), want)
	}
	multi := &XDPProgramAttachedError{Interface: "eth0"}
	if !strings.Contains(multi.Error(), "several modes") {
		t.Errorf("error %q", multi.Error())
	}
}

func TestValidDropPercent(t *testing.T) {
	for _, tt := range []struct {
		p  int
		ok bool
	}{{-1, false}, {0, true}, {10, true}, {100, true}, {101, false}} {
		if err := validDropPercent(tt.p); (err == nil) != tt.ok {
			t.Errorf("validDropPercent(%d) = %v, want ok %v", tt.p, err, tt.ok)
		}
	}
}
