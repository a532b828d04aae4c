// Package kernelpath is the kernel socket path: it carries probes over
// ordinary UDP and TCP sockets, IPv4 and IPv6, and implements bench.Conn,
// bench.SelectiveStamper and bench.StampedReplier.
//
// It talks to the kernel with raw system calls (golang.org/x/sys/unix), not
// through the Go netpoller: the caller runs one Conn on one locked OS thread,
// and the hot path makes exactly one system call per send (TCP: one per
// partial write, normally one) and one per received datagram or stream read.
//
// Raw system calls: every hot-path call (sendto, sendmsg, recvmsg or, without
// Timestamping, recvfrom, blocking ones included, and error-queue reads) is
// unix.RawSyscall, which skips the runtime's entersyscall/exitsyscall. The
// goroutine keeps its P, so sysmon does not hand the P to another thread
// during a blocking receive and the measuring thread is not woken, preempted
// or migrated for it. The price: a thread blocked in a receive holds a P that no other goroutine can use
// meanwhile, so the caller must give the process one more P (GOMAXPROCS) per
// measuring thread; and a stop-the-world waits until the blocked call returns,
// which is at most one SO_RCVTIMEO tick (10 ms) or the signal the runtime
// sends to preempt it (the call then fails with EINTR and is retried).
//
// Stamps:
//   - user space: CLOCK_REALTIME read just before the send call (for
//     ReplyStamped, the reflector's own read when it was done with the probe)
//     and just after the receive call returns, as a base wall time taken when the Conn opens
//     plus the CLOCK_MONOTONIC time since (one vDSO read, where time.Now makes
//     two; see internal/clock);
//   - SO_TIMESTAMPING software stamps: RX_SOFTWARE on every receive; TX_SCHED
//     and TX_SOFTWARE only for the sends that ask for them (SendStamped with
//     stamp set, or Send), through a SO_TIMESTAMPING control message on that
//     sendmsg call. The socket itself asks for no TX stamps, so any other
//     send is a plain sendto that puts nothing on the error queue. TX stamps
//     come from the socket error queue (MSG_ERRQUEUE), keyed with
//     SOF_TIMESTAMPING_OPT_ID and mapped back to the index of the send call
//     (see txstamps_linux.go for the key schemes of UDP and TCP);
//   - hardware stamps (Options.HardwareTimestamps): RX/TX_HARDWARE reported as
//     RAW_HARDWARE, i.e. the NIC's PTP clock. This package returns the raw PHC
//     nanoseconds; converting them to the system clock is the job of a later
//     layer that knows the NIC's PHC. The NIC itself must have hardware
//     timestamping enabled (SIOCSHWTSTAMP) elsewhere.
//
// TxStamps reads the error queue only while a stamped send still waits for
// a stamp (or an ICMP error is known to be queued) and stops at the last
// awaited stamp, so an unstamped send costs no error-queue read at all.
//
// Nothing is dropped silently: TX stamps that match no send, stamps of an
// unknown kind, gaps in the stamps of the stamped sends and truncated control
// data are counted in Stats. A send that did not ask for stamps is never
// counted as missing them.
package kernelpath
