// Package kernelpath is the kernel socket path: it carries probes over
// ordinary UDP and TCP sockets, IPv4 and IPv6, and implements bench.Conn.
//
// It talks to the kernel with raw system calls (golang.org/x/sys/unix), not
// through the Go netpoller: the caller runs one Conn on one locked OS thread,
// and the hot path makes exactly one system call per send (TCP: one per
// partial write, normally one) and one per received datagram or stream read.
//
// Stamps:
//   - user space: CLOCK_REALTIME read just before the send call and just after
//     the receive call returns (time.Now, a vDSO read);
//   - SO_TIMESTAMPING software stamps: RX_SOFTWARE on receive, TX_SCHED and
//     TX_SOFTWARE from the socket error queue (MSG_ERRQUEUE), keyed with
//     SOF_TIMESTAMPING_OPT_ID and mapped back to the index of the Send call;
//   - hardware stamps (Options.HardwareTimestamps): RX/TX_HARDWARE reported as
//     RAW_HARDWARE, i.e. the NIC's PTP clock. This package returns the raw PHC
//     nanoseconds; converting them to the system clock is the job of a later
//     layer that knows the NIC's PHC. The NIC itself must have hardware
//     timestamping enabled (SIOCSHWTSTAMP) elsewhere.
//
// Nothing is dropped silently: TX stamps that match no send, stamps of an
// unknown kind, gaps in the stamp keys and truncated control data are counted
// in Stats.
package kernelpath
