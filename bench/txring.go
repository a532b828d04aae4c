package bench

import "github.com/stackgap/stackgap/results"

// txRingSize is how many recent sends keep their transmit stamps open. The
// kernel reports TX stamps within microseconds of the send; a slot is final
// when it is reused txRingSize sends later, or when the phase ends.
const txRingSize = 8192

// txRing joins the transmit stamps the kernel reports asynchronously with the
// user-space stamp of the send they belong to, and records the TX segments.
type txRing struct {
	slots         [txRingSize]txSlot
	userToSched   *results.Series
	schedToDriver *results.Series
	// Missing counts sends of measured probes for which a stamp never came,
	// by kind, plus stamps that arrived after their slot was final ("late")
	// or out of order with the previous boundary ("out_of_order").
	missing map[string]uint64
}

type txSlot struct {
	idx      uint64
	used     bool
	measured bool
	userTx   int64
	sched    int64
	sw       int64
	hw       int64
}

func newTxRing(userToSched, schedToDriver *results.Series, missing map[string]uint64) *txRing {
	return &txRing{userToSched: userToSched, schedToDriver: schedToDriver, missing: missing}
}

// sent opens the slot of send idx, finalizing the send it replaces.
func (t *txRing) sent(idx uint64, userTx int64, measured bool) {
	s := &t.slots[idx%txRingSize]
	if s.used {
		t.final(s)
	}
	*s = txSlot{idx: idx, used: true, measured: measured, userTx: userTx}
}

// stamp attaches one reported TX stamp to its send.
func (t *txRing) stamp(idx uint64, kind TxStampKind, ts int64) {
	s := &t.slots[idx%txRingSize]
	if !s.used || s.idx != idx {
		t.missing["late_"+kind.String()]++
		return
	}
	switch kind {
	case TxSched:
		s.sched = ts
	case TxSoftware:
		s.sw = ts
	case TxHardware:
		s.hw = ts
	}
}

func (t *txRing) final(s *txSlot) {
	s.used = false
	if !s.measured {
		return
	}
	switch {
	case s.sched == 0:
		t.missing[TxSched.String()]++
	case s.sched < s.userTx:
		t.missing["out_of_order"]++
	default:
		t.userToSched.Record(s.sched - s.userTx)
	}
	switch {
	case s.sw == 0:
		t.missing[TxSoftware.String()]++
	case s.sched == 0:
	case s.sw < s.sched:
		t.missing["out_of_order"]++
	default:
		t.schedToDriver.Record(s.sw - s.sched)
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
