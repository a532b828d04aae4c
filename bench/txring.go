package bench

// txRingSize is how many recent sends keep their transmit stamps open. The
// kernel reports TX stamps within microseconds of the send; a slot is final
// when it is reused txRingSize sends later, or when the phase ends.
const txRingSize = 8192

// txKinds bounds the TxStampKind values a slot holds (index 0: the user stamp).
const txKinds = int(TxCompletion) + 1

// txRing joins the transmit stamps a path reports asynchronously with the
// user-space stamp of the send they belong to, and records the TX segments.
type txRing struct {
	slots [txRingSize]txSlot
	chain txChain
	// missing counts sends of measured probes for which a declared stamp never
	// came, by kind, plus stamps that arrived after their slot was final
	// ("late_<kind>") or out of order with the previous boundary ("out_of_order").
	missing map[string]uint64
}

type txSlot struct {
	idx      uint64
	used     bool
	measured bool
	stamps   [txKinds]int64 // by TxStampKind; [0] is the user stamp
}

func newTxRing(chain txChain, missing map[string]uint64) *txRing {
	return &txRing{chain: chain, missing: missing}
}

// sent opens the slot of send idx, finalizing the send it replaces.
func (t *txRing) sent(idx uint64, userTx int64, measured bool) {
	s := &t.slots[idx%txRingSize]
	if s.used {
		t.final(s)
	}
	*s = txSlot{idx: idx, used: true, measured: measured}
	s.stamps[0] = userTx
}

// stamp attaches one reported TX stamp to its send.
func (t *txRing) stamp(idx uint64, kind TxStampKind, ts int64) {
	s := &t.slots[idx%txRingSize]
	if !s.used || s.idx != idx || int(kind) >= txKinds {
		t.missing["late_"+kind.String()]++
		return
	}
	s.stamps[kind] = ts
}

// complete reports whether every declared stamp of the newest send arrived.
func (t *txRing) complete(idx uint64) bool {
	s := &t.slots[idx%txRingSize]
	if !s.used || s.idx != idx {
		return true
	}
	for _, k := range t.chain.kinds {
		if s.stamps[k] == 0 {
			return false
		}
	}
	return true
}

func (t *txRing) final(s *txSlot) {
	s.used = false
	if !s.measured {
		return
	}
	prev := int64(0)
	for i, k := range t.chain.kinds {
		ts := s.stamps[k]
		if ts == 0 {
			t.missing[k.String()]++
			prev = 0
			continue
		}
		if i > 0 && prev != 0 {
			if ts < prev {
				t.missing["out_of_order"]++
			} else {
				t.chain.series[i-1].Record(ts - prev)
			}
		}
		prev = ts
	}
}

// flush finalizes every open slot.
func (t *txRing) flush() {
	for i := range t.slots {
		if t.slots[i].used {
			t.final(&t.slots[i])
		}
	}
}
