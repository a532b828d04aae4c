package xdp

import "sync/atomic"

// Desc is one RX or TX ring descriptor, laid out like the kernel's struct
// xdp_desc: the UMEM address of the frame's first byte, its length and
// option bits (XDP_PKT_CONTD, XDP_TX_METADATA).
type Desc struct {
	Addr    uint64
	Len     uint32
	Options uint32
}

// ringMemory locates one single-producer/single-consumer ring shared with a
// peer (the kernel, or a test). The producer and consumer indexes are free
// running uint32 counters; slot i is descs[i&mask]. Both indexes are accessed
// only through sync/atomic, whose sequentially consistent operations are at
// least as strong as the acquire loads and release stores the kernel pairs
// with (net/xdp/xsk_queue.h).
type ringMemory[T any] struct {
	producer *uint32
	consumer *uint32
	flags    *uint32
	descs    []T
}

// producerRing is the user side of a ring user space produces into (FILL,
// TX). Like libxdp's xsk_ring_prod it caches the consumer index, so the
// shared cache line is read only when the cached view says the ring is full.
type producerRing[T any] struct {
	ringMemory[T]
	mask       uint32
	size       uint32
	reserved   uint32 // next slot to hand out (libxdp cached_prod)
	published  uint32 // value last stored to *producer
	cachedCons uint32 // consumer index as last read
}

func newProducerRing[T any](m ringMemory[T]) producerRing[T] {
	n := uint32(len(m.descs))
	prod := atomic.LoadUint32(m.producer)
	return producerRing[T]{
		ringMemory: m,
		mask:       n - 1,
		size:       n,
		reserved:   prod,
		published:  prod,
		cachedCons: atomic.LoadUint32(m.consumer),
	}
}

// free reports how many slots can be reserved, refreshing the cached
// consumer index only when fewer than want are known to be free.
func (r *producerRing[T]) free(want uint32) uint32 {
	free := r.size - (r.reserved - r.cachedCons)
	if free >= want {
		return free
	}
	r.cachedCons = atomic.LoadUint32(r.consumer)
	return r.size - (r.reserved - r.cachedCons)
}

// reserve claims up to n consecutive slots and returns the index of the
// first one and how many were claimed (0 when the ring is full). Fill them
// through slot, then publish them with submit.
func (r *producerRing[T]) reserve(n uint32) (start, got uint32) {
	got = min(n, r.free(n))
	start = r.reserved
	r.reserved += got
	return start, got
}

// cancel gives back the last n reserved, unsubmitted slots.
func (r *producerRing[T]) cancel(n uint32) {
	r.reserved -= min(n, r.reserved-r.published)
}

// slot returns the descriptor at free-running index i.
func (r *producerRing[T]) slot(i uint32) *T { return &r.descs[i&r.mask] }

// submit publishes the next n reserved slots to the consumer: the release
// store orders the descriptor writes before the new producer index.
func (r *producerRing[T]) submit(n uint32) {
	r.published += min(n, r.reserved-r.published)
	atomic.StoreUint32(r.producer, r.published)
}

// outstanding reports how many submitted entries the consumer has not taken yet.
func (r *producerRing[T]) outstanding() uint32 {
	r.cachedCons = atomic.LoadUint32(r.consumer)
	return r.published - r.cachedCons
}

// needsWakeup reports whether the kernel asked to be kicked (XDP_RING_NEED_WAKEUP).
func (r *producerRing[T]) needsWakeup() bool {
	return atomic.LoadUint32(r.flags)&ringNeedWakeup != 0
}

// consumerRing is the user side of a ring user space consumes from (RX,
// COMPLETION), caching the producer index like libxdp's xsk_ring_cons.
type consumerRing[T any] struct {
	ringMemory[T]
	mask       uint32
	size       uint32
	peeked     uint32 // next slot to hand out (libxdp cached_cons)
	released   uint32 // value last stored to *consumer
	cachedProd uint32 // producer index as last read
}

func newConsumerRing[T any](m ringMemory[T]) consumerRing[T] {
	n := uint32(len(m.descs))
	cons := atomic.LoadUint32(m.consumer)
	return consumerRing[T]{
		ringMemory: m,
		mask:       n - 1,
		size:       n,
		peeked:     cons,
		released:   cons,
		cachedProd: atomic.LoadUint32(m.producer),
	}
}

// available reports how many entries can be peeked, refreshing the cached
// producer index (an acquire load, ordering the descriptor reads after it)
// only when fewer than want are known to be ready.
func (r *consumerRing[T]) available(want uint32) uint32 {
	avail := r.cachedProd - r.peeked
	if avail >= want {
		return avail
	}
	r.cachedProd = atomic.LoadUint32(r.producer)
	return r.cachedProd - r.peeked
}

// peek claims up to n ready entries and returns the index of the first one
// and how many were claimed (0 when the ring is empty). Read them through
// slot, then hand the slots back with release.
func (r *consumerRing[T]) peek(n uint32) (start, got uint32) {
	got = min(n, r.available(n))
	start = r.peeked
	r.peeked += got
	return start, got
}

// slot returns the descriptor at free-running index i.
func (r *consumerRing[T]) slot(i uint32) *T { return &r.descs[i&r.mask] }

// release returns the next n peeked slots to the producer: the release
// store orders the descriptor reads before the new consumer index.
func (r *consumerRing[T]) release(n uint32) {
	r.released += min(n, r.peeked-r.released)
	atomic.StoreUint32(r.consumer, r.released)
}

// ringNeedWakeup mirrors XDP_RING_NEED_WAKEUP (include/uapi/linux/if_xdp.h)
// so the ring code builds and is tested on every platform.
const ringNeedWakeup = 1
