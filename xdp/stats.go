package xdp

// Stats are a socket's counters: the kernel's XDP_STATISTICS and the
// wake-up system calls this package made.
type Stats struct {
	// RxDropped counts frames dropped for a reason other than a full RX ring
	// or an empty FILL ring (for example a frame larger than a chunk).
	RxDropped uint64
	// RxInvalidDescs counts invalid FILL ring descriptors.
	RxInvalidDescs uint64
	// TxInvalidDescs counts invalid TX ring descriptors (dropped, not sent).
	TxInvalidDescs uint64
	// RxRingFull counts frames dropped because the RX ring was full.
	RxRingFull uint64
	// RxFillRingEmptyDescs counts frames dropped because the FILL ring was empty.
	RxFillRingEmptyDescs uint64
	// TxRingEmptyDescs counts kernel attempts to send from an empty TX ring.
	TxRingEmptyDescs uint64

	// TxKicks counts sendto(MSG_DONTWAIT) calls, including retries.
	TxKicks uint64
	// TxKickRetries counts sendto calls that returned EAGAIN or EBUSY.
	TxKickRetries uint64
	// RxKicks counts recvfrom(MSG_DONTWAIT) calls made to wake the FILL side.
	RxKicks uint64
	// Polls counts poll(2) calls made by WaitReceive.
	Polls uint64
}
