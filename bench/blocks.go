package bench

// blockLen is how many values one block of a blockSlice holds: 64 KiB of
// uint32 round trips, 256 KiB of ReflectStamps.
const blockLen = 1 << 14

// A blockSlice is a growable sequence of values, kept in fixed-size blocks
// so that growing it never moves what it already holds. The per-probe
// records that wait for the end of a phase (the sender's round trips, the
// reflector's out-of-band stamps) grow on the measuring thread, at every
// probe when probes are too small to carry stamps in-band. A slice that
// doubles would copy everything it held at each doubling, stalling the
// probe loop for milliseconds at a time late in a fast phase, and touch
// twice the fresh memory, each new page a fault. The zero value is empty.
type blockSlice[T any] struct {
	blocks [][]T
	n      int
}

// Len is the number of values held.
func (s *blockSlice[T]) Len() int { return s.n }

// Append adds v at index Len.
func (s *blockSlice[T]) Append(v T) {
	s.Set(s.n, v)
}

// Set stores v at index i, growing the sequence to i+1 values (the new ones
// zero) when i is not below Len.
func (s *blockSlice[T]) Set(i int, v T) {
	for i >= len(s.blocks)*blockLen {
		s.blocks = append(s.blocks, make([]T, blockLen))
	}
	s.blocks[i/blockLen][i%blockLen] = v
	s.n = max(s.n, i+1)
}

// At returns the value at index i, or the zero value when i is not below Len.
func (s *blockSlice[T]) At(i int) T {
	var zero T
	if i < 0 || i >= s.n {
		return zero
	}
	return s.blocks[i/blockLen][i%blockLen]
}

// Values returns all values in one new slice (nil when empty), for use after
// the measurement.
func (s *blockSlice[T]) Values() []T {
	if s.n == 0 {
		return nil
	}
	out := make([]T, 0, s.n)
	for _, b := range s.blocks {
		out = append(out, b[:min(len(b), s.n-len(out))]...)
	}
	return out
}
