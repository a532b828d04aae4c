package kernelpath

import "github.com/stackgap/stackgap/bench"

// txKinds bounds the bench.TxStampKind values this package reports.
const txKinds = int(bench.TxHardware) + 1

// Stats count what a Conn saw but could not turn into stamps or probes, so
// that nothing is lost silently. All counters but TxKeyGaps only grow.
type Stats struct {
	// Sends and Recvs count successful Send calls and probes returned by Recv.
	Sends, Recvs uint64
	// StampedSends counts the sends that asked for TX stamps.
	StampedSends uint64
	// ErrQueueReads counts the system calls that read the error queue
	// (including the one that finds it empty).
	ErrQueueReads uint64
	// PartialWrites counts TCP write calls that took only part of a probe.
	PartialWrites uint64
	// TxStamps counts the TX stamps reported through TxStamps.
	TxStamps uint64
	// TxUnmatched counts TX stamps whose key matched none of the recent sends
	// (older than the send log, or a key the kernel assigned to sends this
	// Conn did not make).
	TxUnmatched uint64
	// TxUnknownKind counts TX stamps of a kind this package does not report
	// (such as SCM_TSTAMP_ACK) or that carried no time.
	TxUnknownKind uint64
	// TxPartialWrite counts TCP stamps that mark the end of a partial write
	// rather than the end of a probe.
	TxPartialWrite uint64
	// TxKeyGaps counts stamps still missing although a later stamped send's stamp of
	// the same kind arrived (a late arrival takes it off again). The kernel drops a TX stamp without a trace when
	// the error queue is full (it is charged to the socket's receive buffer,
	// net/core/skbuff.c sock_queue_err_skb), so call TxStamps regularly.
	TxKeyGaps uint64
	// TxLate counts stamps that arrived after a later stamped send's stamp of the
	// same kind (they are still reported).
	TxLate uint64
	// ICMPErrors counts ICMP errors read from the error queue.
	ICMPErrors uint64
	// ErrQueueOther counts error-queue messages that are neither stamps nor
	// ICMP errors.
	ErrQueueOther uint64
	// ControlTruncated counts receives (normal or error queue) whose control
	// data the kernel had to cut (MSG_CTRUNC).
	ControlTruncated uint64
	// ControlMalformed counts control buffers that could not be parsed.
	ControlMalformed uint64
	// RxMissingStamps counts probes received without an RX software stamp
	// although Timestamping is on. For TCP it counts reads, not probes. The
	// first packets after the first socket in the system asked for RX stamps
	// can miss them: the kernel turns stamping on through a work item
	// (net/core/dev.c net_enable_timestamp).
	RxMissingStamps uint64
	// RxQueueDrops is the kernel's count of datagrams dropped because this
	// socket's receive queue was full: as last reported by SO_RXQ_OVFL with
	// Timestamping on, read with SO_MEMINFO by Stats without it (UDP).
	RxQueueDrops uint64
}
