package kernelpath

import "github.com/stackgap/stackgap/bench"

var _ bench.Reporter = (*Conn)(nil)

// Counters returns the non-zero Stats counters (bench.Reporter).
func (c *Conn) Counters() map[string]uint64 {
	s := c.stats
	m := map[string]uint64{}
	for name, v := range map[string]uint64{
		"partial_writes": s.PartialWrites, "tx_unmatched": s.TxUnmatched, "tx_unknown_kind": s.TxUnknownKind,
		"tx_partial_write": s.TxPartialWrite, "tx_key_gaps": s.TxKeyGaps, "tx_late": s.TxLate,
		"icmp_errors": s.ICMPErrors, "errqueue_other": s.ErrQueueOther, "control_truncated": s.ControlTruncated,
		"control_malformed": s.ControlMalformed, "rx_missing_stamps": s.RxMissingStamps, "rx_queue_drops": s.RxQueueDrops,
	} {
		if v != 0 {
			m[name] = v
		}
	}
	return m
}

// Notes says when busy polling was asked for but is inert, and when the
// kernel numbers the stamped UDP sends itself (bench.Reporter).
func (c *Conn) Notes() []string {
	var notes []string
	if c.opts.Transport == UDP && c.stats.StampedSends > 0 && !c.keyBySend {
		notes = append(notes, "the kernel refused SCM_TS_OPT_ID (before Linux 6.13): TX stamp keys count stamped sends, "+
			"and a stamped send that fails after the packet was built (ENOBUFS, EPERM) is assumed to have used one")
	}
	if c.opts.BusyPoll <= 0 {
		return notes
	}
	active, err := c.BusyPollActive()
	switch {
	case err != nil:
		return append(notes, "busy polling requested; its state is unknown: "+err.Error())
	case !active:
		return append(notes, "busy polling requested but inert: the socket has no NAPI id (devices such as veth and loopback do not link queues to NAPI instances)")
	}
	return append(notes, "busy polling active (socket has a NAPI id)")
}

var _ bench.StampDeclarer = (*Conn)(nil)

// Stamps declares the kernel stamps this Conn asked for (bench.StampDeclarer):
// TX_SCHED and TX_SOFTWARE from the error queue and RX_SOFTWARE with each
// receive, plus the hardware ones when requested.
func (c *Conn) Stamps() bench.StampSet {
	var s bench.StampSet
	if !c.opts.Timestamping {
		return s
	}
	s.Tx = []bench.TxStampKind{bench.TxSched, bench.TxSoftware}
	s.Rx = []bench.RxStampKind{bench.RxSoftware}
	if c.opts.HardwareTimestamps {
		s.Tx = append(s.Tx, bench.TxHardware)
		s.Rx = append([]bench.RxStampKind{bench.RxHardware}, s.Rx...)
	}
	return s
}
