package bench

import (
	"slices"
	"testing"
)

func TestBlockSliceAppend(t *testing.T) {
	var s blockSlice[ReflectStamp]
	if s.Len() != 0 || s.Values() != nil {
		t.Fatalf("zero value: Len %d, Values %v; want empty", s.Len(), s.Values())
	}
	n := 2*blockLen + 3 // three blocks, the last one barely started
	var want []ReflectStamp
	for i := range n {
		v := ReflectStamp{Seq: uint64(i) + 7, RxStack: uint32(i), Residence: uint32(2 * i)}
		s.Append(v)
		want = append(want, v)
	}
	if s.Len() != n {
		t.Fatalf("Len = %d, want %d", s.Len(), n)
	}
	if got := s.Values(); !slices.Equal(got, want) {
		t.Fatalf("Values differ from what was appended (len %d, want %d)", len(got), len(want))
	}
	for _, i := range []int{0, blockLen - 1, blockLen, 2 * blockLen, n - 1} {
		if got := s.At(i); got != want[i] {
			t.Errorf("At(%d) = %+v, want %+v", i, got, want[i])
		}
	}
	if got := s.At(n); got != (ReflectStamp{}) {
		t.Errorf("At(Len) = %+v, want the zero value", got)
	}
}

// TestBlockSliceSetNeverMoves checks what blockSlice is for: growing it leaves
// the values it holds where they are, so nothing is copied on the probe path.
func TestBlockSliceSetNeverMoves(t *testing.T) {
	var s blockSlice[uint32]
	s.Set(5, 50)
	first := &s.blocks[0][5]
	s.Set(3*blockLen+1, 31) // skips two blocks' worth of indexes
	if &s.blocks[0][5] != first {
		t.Fatal("growing moved the first block")
	}
	if s.Len() != 3*blockLen+2 {
		t.Fatalf("Len = %d, want %d", s.Len(), 3*blockLen+2)
	}
	for i, want := range map[int]uint32{0: 0, 5: 50, 6: 0, blockLen: 0, 3*blockLen + 1: 31} {
		if got := s.At(i); got != want {
			t.Errorf("At(%d) = %d, want %d", i, got, want)
		}
	}
	s.Set(5, 51) // below Len: overwrites, does not grow
	if s.At(5) != 51 || s.Len() != 3*blockLen+2 {
		t.Errorf("after overwriting index 5: At(5) = %d, Len = %d", s.At(5), s.Len())
	}
	if v := s.Values(); len(v) != s.Len() || v[5] != 51 || v[3*blockLen+1] != 31 {
		t.Errorf("Values: len %d, [5] = %d, [last] = %d", len(v), v[5], v[len(v)-1])
	}
}

// BenchmarkProbeRecords compares the per-probe cost of keeping out-of-band
// stamps in a doubling slice and in a blockSlice, over a 2-s phase's worth of
// probes at 500,000 a second, from empty as in a session.
func BenchmarkProbeRecords(b *testing.B) {
	const probes = 1_000_000
	b.Run("slice", func(b *testing.B) {
		for range b.N {
			var s []ReflectStamp
			for i := range probes {
				s = append(s, ReflectStamp{Seq: uint64(i), Residence: uint32(i)})
			}
			if len(s) != probes {
				b.Fatal(len(s))
			}
		}
	})
	b.Run("blocks", func(b *testing.B) {
		for range b.N {
			var s blockSlice[ReflectStamp]
			for i := range probes {
				s.Append(ReflectStamp{Seq: uint64(i), Residence: uint32(i)})
			}
			if s.Len() != probes {
				b.Fatal(s.Len())
			}
		}
	})
}
