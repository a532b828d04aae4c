package xdp

import (
	"errors"
	"testing"
)

func TestFrameLayout(t *testing.T) {
	tests := []struct {
		chunk, headroom     uint32
		wantData, wantCap   uint32
		frame               uint32
		wantAddr, wantChunk uint64
	}{
		{4096, 0, 256, 3840, 3, 3*4096 + 256, 3 * 4096},
		{2048, 0, 256, 1792, 1, 2048 + 256, 2048},
		{4096, 64, 320, 3776, 0, 320, 0},
	}
	for _, tt := range tests {
		l := newFrameLayout(16, tt.chunk, tt.headroom, txMetadataLen)
		if l.dataOffset != tt.wantData || l.capacity() != tt.wantCap {
			t.Errorf("chunk %d headroom %d: data offset %d capacity %d, want %d %d",
				tt.chunk, tt.headroom, l.dataOffset, l.capacity(), tt.wantData, tt.wantCap)
		}
		if a := l.frameAddr(tt.frame); a != tt.wantAddr {
			t.Errorf("frameAddr(%d) = %#x, want %#x", tt.frame, a, tt.wantAddr)
		}
		if a := l.chunkAddr(tt.frame); a != tt.wantChunk {
			t.Errorf("chunkAddr(%d) = %#x, want %#x", tt.frame, a, tt.wantChunk)
		}
	}
}

func TestRxDataAddr(t *testing.T) {
	tests := []struct {
		desc, want uint64
	}{
		{3*4096 + 256, 3*4096 + 256},          // aligned mode: the data address itself
		{3*4096 | 256<<48, 3*4096 + 256},      // unaligned: chunk 3, data 256 bytes in
		{3*4096 + 64 | 256<<48, 3*4096 + 320}, // unaligned: an offset on both sides
		{1<<48 - 1, 1<<48 - 1},                // the largest address without an offset
		{0xffff << 48, 0xffff},                // the largest offset
	}
	for _, tt := range tests {
		if got := rxDataAddr(tt.desc); got != tt.want {
			t.Errorf("rxDataAddr(%#x) = %#x, want %#x", tt.desc, got, tt.want)
		}
	}
}

func TestFrameTableNeverHandsOutAFrameTwice(t *testing.T) {
	ft := newFrameTable(newFrameLayout(8, 4096, 0, 0))
	seen := map[uint32]bool{}
	for {
		i, ok := ft.pop(OwnerAllocated)
		if !ok {
			break
		}
		if seen[i] {
			t.Fatalf("frame %d handed out twice", i)
		}
		seen[i] = true
	}
	if len(seen) != 8 || ft.freeCount() != 0 {
		t.Fatalf("handed out %d frames, %d still free; want 8 and 0", len(seen), ft.freeCount())
	}
	if err := ft.release(ft.layout.frameAddr(5)); err != nil {
		t.Fatal(err)
	}
	if i, ok := ft.pop(OwnerFill); !ok || i != 5 {
		t.Fatalf("pop after freeing frame 5 = (%d, %v), want the freed frame (LIFO)", i, ok)
	}
}

// TestFrameTableTransitions walks frames through the ownership states the
// socket uses and checks that every illegal hand-over is refused.
func TestFrameTableTransitions(t *testing.T) {
	type step struct {
		op        string // "free", "receive", "transmit", "complete"
		wantOwner FrameOwner
		wantErr   bool
	}
	apply := func(ft *frameTable, op string, addr uint64) error {
		var err error
		switch op {
		case "free":
			err = ft.release(addr)
		case "receive":
			_, err = ft.move(op, addr, ownersOf(OwnerFill), OwnerReceived)
		case "transmit":
			_, err = ft.move(op, addr, userOwned, OwnerTransmit)
		case "complete":
			_, err = ft.move(op, addr, ownersOf(OwnerTransmit), OwnerCompleted)
		}
		return err
	}
	tests := []struct {
		name  string
		start FrameOwner // OwnerFill or OwnerAllocated
		steps []step
	}{
		{"receive then free", OwnerFill, []step{{"receive", OwnerReceived, false}, {"free", OwnerFree, false}}},
		{"double free", OwnerAllocated, []step{{"free", OwnerFree, false}, {"free", OwnerFree, true}}},
		{"reflect in place", OwnerFill, []step{
			{"receive", OwnerReceived, false}, {"transmit", OwnerTransmit, false},
			{"complete", OwnerCompleted, false}, {"free", OwnerFree, false}}},
		{"free while in fill ring", OwnerFill, []step{{"free", OwnerFill, true}}},
		{"transmit while in fill ring", OwnerFill, []step{{"transmit", OwnerFill, true}}},
		{"free while transmitting", OwnerAllocated, []step{{"transmit", OwnerTransmit, false}, {"free", OwnerTransmit, true}}},
		{"transmit twice", OwnerAllocated, []step{{"transmit", OwnerTransmit, false}, {"transmit", OwnerTransmit, true}}},
		{"complete without transmit", OwnerAllocated, []step{{"complete", OwnerAllocated, true}}},
		{"receive an allocated frame", OwnerAllocated, []step{{"receive", OwnerAllocated, true}}},
		{"retransmit completed frame", OwnerAllocated, []step{
			{"transmit", OwnerTransmit, false}, {"complete", OwnerCompleted, false}, {"transmit", OwnerTransmit, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := newFrameTable(newFrameLayout(4, 2048, 0, 0))
			i, _ := ft.pop(tt.start)
			addr := ft.layout.frameAddr(i) + 10 // any address inside the chunk
			for _, s := range tt.steps {
				err := apply(&ft, s.op, addr)
				var se *FrameStateError
				if s.wantErr != errors.As(err, &se) || (err != nil && !s.wantErr) {
					t.Fatalf("%s: error %v, want error %v", s.op, err, s.wantErr)
				}
				if got := ft.owner[i]; got != s.wantOwner {
					t.Fatalf("after %s: owner %v, want %v", s.op, got, s.wantOwner)
				}
			}
		})
	}
}

func TestFrameTableErrors(t *testing.T) {
	ft := newFrameTable(newFrameLayout(4, 2048, 0, 0))
	i, _ := ft.pop(OwnerAllocated)
	addr := ft.layout.frameAddr(i)
	if err := ft.release(addr); err != nil {
		t.Fatal(err)
	}
	err := ft.release(addr)
	if want := "double free of frame 0x100"; err == nil || err.Error() != want {
		t.Errorf("double free error = %v, want %q", err, want)
	}
	_, err = ft.move("transmit", addr, userOwned, OwnerTransmit)
	if want := "transmit frame 0x100: frame is owned by the free list"; err == nil || err.Error() != want {
		t.Errorf("transmit of free frame error = %v, want %q", err, want)
	}
	err = ft.release(4 * 2048)
	var re *FrameRangeError
	if !errors.As(err, &re) || err.Error() != "free frame 0x2000: address outside the 8192-byte UMEM" {
		t.Errorf("out-of-range free error = %v", err)
	}
	if ft.freeCount() != 4 {
		t.Errorf("free count %d after failed frees, want 4", ft.freeCount())
	}
}
