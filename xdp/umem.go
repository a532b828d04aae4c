package xdp

import (
	"fmt"
	"math/bits"
)

// packetHeadroom mirrors XDP_PACKET_HEADROOM: the kernel places received
// data this many bytes past the start of a chunk, before the UMEM headroom.
const packetHeadroom = 256

// txMetadataLen is sizeof(struct xsk_tx_metadata): u64 flags followed by a
// 16-byte union whose completion member holds the u64 TX timestamp.
const txMetadataLen = 24

// Offsets inside struct xsk_tx_metadata.
const (
	txMetadataFlagsOffset     = 0
	txMetadataTimestampOffset = 8
	txMetadataTimestampFlag   = 1 // XDP_TXMD_FLAGS_TIMESTAMP
	txMetadataDescOption      = 2 // XDP_TX_METADATA in xdp_desc.options
)

// RX descriptors of a UMEM in unaligned-chunk mode carry the chunk's address
// in their low 48 bits and the data's offset into it in the high 16
// (XSK_UNALIGNED_BUF_OFFSET_SHIFT, include/uapi/linux/if_xdp.h).
const (
	unalignedOffsetShift = 48
	unalignedAddrMask    = 1<<unalignedOffsetShift - 1
)

// rxDataAddr is the UMEM address of a received frame's data, from its RX
// descriptor's address in either chunk mode: an aligned-mode address, below
// 2^48, is that address already.
func rxDataAddr(desc uint64) uint64 {
	return desc&unalignedAddrMask + desc>>unalignedOffsetShift
}

// frameLayout is the geometry of a UMEM: numFrames chunks of chunkSize
// bytes, one frame per chunk in either chunk mode (this package puts only
// chunk starts in the FILL ring). Every frame this package hands out
// (received or allocated for transmit) starts dataOffset bytes into its
// chunk:
//
//	chunk start                                                   chunk end
//	| XDP_PACKET_HEADROOM (256) | UMEM headroom | frame data ...          |
//	                   ^ TX metadata (24 B) and XDP RX metadata end here ^ addr
type frameLayout struct {
	numFrames  uint32
	chunkSize  uint32
	chunkShift uint
	headroom   uint32
	dataOffset uint32
	txMetaLen  uint32
}

func newFrameLayout(numFrames, chunkSize, headroom, txMetaLen uint32) frameLayout {
	return frameLayout{
		numFrames:  numFrames,
		chunkSize:  chunkSize,
		chunkShift: uint(bits.TrailingZeros32(chunkSize)),
		headroom:   headroom,
		dataOffset: packetHeadroom + headroom,
		txMetaLen:  txMetaLen,
	}
}

func (l frameLayout) size() uint64 { return uint64(l.numFrames) * uint64(l.chunkSize) }

// capacity is the largest frame that fits behind dataOffset.
func (l frameLayout) capacity() uint32 { return l.chunkSize - l.dataOffset }

// frameAddr is the data address of frame index i.
func (l frameLayout) frameAddr(i uint32) uint64 {
	return uint64(i)<<l.chunkShift + uint64(l.dataOffset)
}

// chunkAddr is the chunk start of frame index i (what the FILL ring takes).
func (l frameLayout) chunkAddr(i uint32) uint64 { return uint64(i) << l.chunkShift }

// FrameOwner says who holds a UMEM frame. Every frame has exactly one owner.
type FrameOwner uint8

const (
	// OwnerFree: on the socket's free list.
	OwnerFree FrameOwner = iota
	// OwnerFill: in the FILL ring or held by the kernel for receiving.
	OwnerFill
	// OwnerReceived: delivered to user space by Receive.
	OwnerReceived
	// OwnerAllocated: taken from the free list by AllocFrame.
	OwnerAllocated
	// OwnerTransmit: in the TX ring or being sent by the kernel.
	OwnerTransmit
	// OwnerCompleted: returned to user space by Complete.
	OwnerCompleted
)

func (o FrameOwner) String() string {
	switch o {
	case OwnerFree:
		return "free list"
	case OwnerFill:
		return "fill ring"
	case OwnerReceived:
		return "received"
	case OwnerAllocated:
		return "allocated"
	case OwnerTransmit:
		return "transmit ring"
	case OwnerCompleted:
		return "completed"
	}
	return fmt.Sprintf("owner(%d)", uint8(o))
}

// ownerSet is a bit set of FrameOwner values.
type ownerSet uint8

func ownersOf(owners ...FrameOwner) ownerSet {
	var s ownerSet
	for _, o := range owners {
		s |= 1 << o
	}
	return s
}

func (s ownerSet) has(o FrameOwner) bool { return s&(1<<o) != 0 }

// userOwned are the states in which user space holds a frame and may free,
// transmit or read it.
var userOwned = ownersOf(OwnerReceived, OwnerAllocated, OwnerCompleted)

// FrameStateError reports an operation on a frame its caller does not own,
// such as freeing a frame twice or transmitting a frame the kernel holds.
type FrameStateError struct {
	Op    string     // "free", "transmit", "receive", "complete"
	Addr  uint64     // the address passed or returned by the kernel
	Owner FrameOwner // the frame's owner when the operation was attempted
}

func (e *FrameStateError) Error() string {
	if e.Op == "free" && e.Owner == OwnerFree {
		return fmt.Sprintf("double free of frame %#x", e.Addr)
	}
	return fmt.Sprintf("%s frame %#x: frame is owned by the %s", e.Op, e.Addr, e.Owner)
}

// FrameRangeError reports an address outside the UMEM.
type FrameRangeError struct {
	Op   string
	Addr uint64
	Size uint64
}

func (e *FrameRangeError) Error() string {
	return fmt.Sprintf("%s frame %#x: address outside the %d-byte UMEM", e.Op, e.Addr, e.Size)
}

// frameTable is the free-frame allocator and ownership ledger of a UMEM:
// a LIFO stack of free frame indexes (the most recently freed frame is the
// next one handed out, while it is still warm in the cache) and one owner
// per frame. Every transition is checked, so a frame still in use is never
// handed out twice.
type frameTable struct {
	layout  frameLayout
	free    []uint32
	owner   []FrameOwner
	stamped []bool // TX timestamp requested for the frame in flight
}

func newFrameTable(l frameLayout) frameTable {
	t := frameTable{
		layout:  l,
		free:    make([]uint32, l.numFrames),
		owner:   make([]FrameOwner, l.numFrames),
		stamped: make([]bool, l.numFrames),
	}
	for i := range t.free {
		t.free[i] = l.numFrames - 1 - uint32(i) // pop frame 0 first
	}
	return t
}

// freeCount is the number of frames on the free list.
func (t *frameTable) freeCount() int { return len(t.free) }

// index maps any address inside a frame's chunk to its frame index.
func (t *frameTable) index(op string, addr uint64) (uint32, error) {
	i := addr >> t.layout.chunkShift
	if i >= uint64(t.layout.numFrames) {
		return 0, &FrameRangeError{Op: op, Addr: addr, Size: t.layout.size()}
	}
	return uint32(i), nil
}

// pop takes a frame off the free list and gives it to owner.
func (t *frameTable) pop(owner FrameOwner) (uint32, bool) {
	n := len(t.free)
	if n == 0 {
		return 0, false
	}
	i := t.free[n-1]
	t.free = t.free[:n-1]
	t.owner[i] = owner
	return i, true
}

// move hands the frame holding addr from one of the owners in from to to.
func (t *frameTable) move(op string, addr uint64, from ownerSet, to FrameOwner) (uint32, error) {
	i, err := t.index(op, addr)
	if err != nil {
		return 0, err
	}
	if o := t.owner[i]; !from.has(o) {
		return 0, &FrameStateError{Op: op, Addr: addr, Owner: o}
	}
	t.owner[i] = to
	return i, nil
}

// release returns a user-owned frame to the free list.
func (t *frameTable) release(addr uint64) error {
	i, err := t.move("free", addr, userOwned, OwnerFree)
	if err != nil {
		return err
	}
	t.free = append(t.free, i) // capacity is numFrames: never allocates
	return nil
}
