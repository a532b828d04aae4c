package xdp

import (
	"fmt"
	"sync"
	"testing"
)

// sharedRing is ring memory in ordinary Go memory, standing in for a
// kernel mapping: the test plays the kernel with the opposite ring type.
type sharedRing[T any] struct {
	producer, consumer, flags uint32
	descs                     []T
}

func newSharedRing[T any](size int, start uint32) *sharedRing[T] {
	return &sharedRing[T]{producer: start, consumer: start, descs: make([]T, size)}
}

func (m *sharedRing[T]) memory() ringMemory[T] {
	return ringMemory[T]{producer: &m.producer, consumer: &m.consumer, flags: &m.flags, descs: m.descs}
}

// Start indexes just below 2^32, so every test also crosses the wraparound.
var ringStarts = []uint32{0, 1<<32 - 3, 1<<32 - 8, 1 << 31}

func TestRingFullAndEmpty(t *testing.T) {
	for _, start := range ringStarts {
		t.Run(fmt.Sprintf("start=%#x", start), func(t *testing.T) {
			m := newSharedRing[uint64](8, start)
			p := newProducerRing(m.memory())
			c := newConsumerRing(m.memory())

			if _, got := c.peek(4); got != 0 {
				t.Fatalf("peek on empty ring got %d entries, want 0", got)
			}
			first, got := p.reserve(8)
			if got != 8 || first != start {
				t.Fatalf("reserve(8) on empty ring = (%#x, %d), want (%#x, 8)", first, got, start)
			}
			for i := range got {
				*p.slot(first + i) = uint64(first + i)
			}
			if _, more := p.reserve(1); more != 0 {
				t.Fatalf("reserve on full ring got %d slots, want 0", more)
			}
			if _, got := c.peek(8); got != 0 {
				t.Fatalf("consumer saw %d entries before submit, want 0", got)
			}
			p.submit(8)
			if p.outstanding() != 8 {
				t.Fatalf("outstanding = %d, want 8", p.outstanding())
			}
			cs, got := c.peek(100)
			if got != 8 || cs != start {
				t.Fatalf("peek(100) = (%#x, %d), want (%#x, 8)", cs, got, start)
			}
			for i := range got {
				if v := *c.slot(cs + i); v != uint64(start+i) {
					t.Fatalf("entry %d = %#x, want %#x", i, v, uint64(start+i))
				}
			}
			if _, more := p.reserve(1); more != 0 {
				t.Fatalf("producer got a slot before the consumer released: %d", more)
			}
			c.release(3)
			if _, more := p.reserve(8); more != 3 {
				t.Fatalf("reserve(8) after releasing 3 got %d, want 3", more)
			}
			p.cancel(3)
			c.release(5)
			if p.outstanding() != 0 {
				t.Fatalf("outstanding after full release = %d, want 0", p.outstanding())
			}
			if want := start + 8; m.producer != want || m.consumer != want {
				t.Fatalf("indexes = (%#x, %#x), want both %#x", m.producer, m.consumer, want)
			}
		})
	}
}

func TestRingBatches(t *testing.T) {
	// Each case pushes batches of the given sizes through an 8-slot ring,
	// the consumer taking up to take per peek, and checks FIFO order.
	tests := []struct {
		name    string
		batches []uint32
		take    uint32
	}{
		{"single", []uint32{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 1},
		{"exact", []uint32{8, 8, 8}, 8},
		{"odd", []uint32{3, 5, 7, 2, 6, 1}, 4},
		{"oversize", []uint32{20, 20}, 16},
	}
	for _, tt := range tests {
		for _, start := range ringStarts {
			t.Run(fmt.Sprintf("%s/start=%#x", tt.name, start), func(t *testing.T) {
				m := newSharedRing[Desc](8, start)
				p := newProducerRing(m.memory())
				c := newConsumerRing(m.memory())
				var sent, recv uint64
				for _, b := range tt.batches {
					for left := b; left > 0; {
						first, got := p.reserve(left)
						for i := range got {
							*p.slot(first + i) = Desc{Addr: sent, Len: uint32(sent)}
							sent++
						}
						p.submit(got)
						left -= got
						// Drain what is there, in batches of at most take.
						for {
							cs, n := c.peek(tt.take)
							if n == 0 {
								break
							}
							if n > tt.take {
								t.Fatalf("peek(%d) returned %d", tt.take, n)
							}
							for i := range n {
								if d := *c.slot(cs + i); d.Addr != recv || d.Len != uint32(recv) {
									t.Fatalf("entry %d = %+v, want addr %d", recv, d, recv)
								}
								recv++
							}
							c.release(n)
						}
					}
				}
				if recv != sent {
					t.Fatalf("received %d of %d entries", recv, sent)
				}
			})
		}
	}
}

func TestRingNeedWakeup(t *testing.T) {
	m := newSharedRing[uint64](4, 0)
	p := newProducerRing(m.memory())
	if p.needsWakeup() {
		t.Fatal("needsWakeup with flags 0")
	}
	m.flags = ringNeedWakeup
	if !p.needsWakeup() {
		t.Fatal("no needsWakeup with XDP_RING_NEED_WAKEUP set")
	}
}

// TestRingConcurrent runs a producer and a consumer goroutine over one ring
// across the 2^32 wraparound; run it with -race to check the atomics order
// the descriptor accesses.
func TestRingConcurrent(t *testing.T) {
	const total = 200_000
	for _, size := range []int{1, 2, 64} {
		t.Run(fmt.Sprintf("size=%d", size), func(t *testing.T) {
			m := newSharedRing[Desc](size, 1<<32-total/2)
			p := newProducerRing(m.memory())
			c := newConsumerRing(m.memory())
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for sent := uint64(0); sent < total; {
					first, got := p.reserve(uint32(min(7, total-sent)))
					for i := range got {
						*p.slot(first + i) = Desc{Addr: sent, Len: uint32(sent) ^ 0x5a5a}
						sent++
					}
					p.submit(got)
				}
			}()
			var bad error
			for recv := uint64(0); recv < total; {
				cs, n := c.peek(5)
				for i := range n {
					if d := *c.slot(cs + i); (d.Addr != recv || d.Len != uint32(recv)^0x5a5a) && bad == nil {
						bad = fmt.Errorf("entry %d = %+v", recv, d)
					}
					recv++
				}
				c.release(n)
			}
			wg.Wait()
			if bad != nil {
				t.Fatal(bad)
			}
		})
	}
}

func BenchmarkRingRoundTrip(b *testing.B) {
	m := newSharedRing[Desc](2048, 0)
	p := newProducerRing(m.memory())
	c := newConsumerRing(m.memory())
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		first, got := p.reserve(1)
		*p.slot(first) = Desc{Addr: uint64(i), Len: 64}
		p.submit(got)
		cs, n := c.peek(1)
		if n != 1 || c.slot(cs).Addr != uint64(i) {
			b.Fatal("lost entry")
		}
		c.release(n)
	}
}
