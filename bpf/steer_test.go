package bpf

import (
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
)

func TestSteerSpec(t *testing.T) {
	spec, err := LoadSteer()
	if err != nil {
		t.Fatal(err)
	}
	var specs SteerSpecs
	if err := spec.Assign(&specs); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*ebpf.ProgramSpec{specs.Steer, specs.SteerHw} {
		if p.Type != ebpf.XDP || p.SectionName != "xdp" {
			t.Errorf("program %s: type %v section %q, want XDP in section xdp", p.Name, p.Type, p.SectionName)
		}
	}
	maps := []struct {
		spec            *ebpf.MapSpec
		typ             ebpf.MapType
		key, value, max uint32
	}{
		{specs.Xsks, ebpf.XSKMap, 4, 4, 256},
		{specs.Flows, ebpf.Array, 4, 8, uint32(SteerFlowFlagsFLOW_WORDS)},
		{specs.Counters, ebpf.PerCPUArray, 4, uint32(unsafe.Sizeof(SteerStats{})), 1},
		{specs.Config, ebpf.Array, 4, uint32(unsafe.Sizeof(SteerSettings{})), 1},
	}
	for _, m := range maps {
		if m.spec.Type != m.typ || m.spec.KeySize != m.key || m.spec.ValueSize != m.value || m.spec.MaxEntries != m.max {
			t.Errorf("map %s: %v key %d value %d max %d, want %v %d %d %d", m.spec.Name, m.spec.Type, m.spec.KeySize, m.spec.ValueSize, m.spec.MaxEntries, m.typ, m.key, m.value, m.max)
		}
	}
	if size := unsafe.Sizeof(SteerMeta{}); size != 24 {
		t.Errorf("struct meta has %d bytes, want 24", size)
	}
	if size := unsafe.Sizeof(SteerStats{}); size != 6*8 {
		t.Errorf("struct stats has %d bytes, want 48", size)
	}
	// Every flow (2 IP versions x 2 protocols x 65536 ports) has its bits.
	if SteerFlowFlagsFLOW_WORDS*SteerFlowFlagsFLOWS_PER_WORD != 4<<16 || SteerFlowFlagsFLOWS_PER_WORD*SteerFlowFlagsFLOW_BITS != 64 {
		t.Errorf("flows map: %d words of %d flows of %d bits, want 2^18 flows in 64-bit words",
			SteerFlowFlagsFLOW_WORDS, SteerFlowFlagsFLOWS_PER_WORD, SteerFlowFlagsFLOW_BITS)
	}
}
