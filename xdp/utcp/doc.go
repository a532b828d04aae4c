// Package utcp is a minimal TCP endpoint for stackgap's AF_XDP path: a pure,
// I/O-free state machine that turns received segments and application bytes
// into the segments to send, so that probe traffic on the bypass path is real
// TCP with the same sizes and option layout as the kernel path's segments.
//
// An Endpoint is one connection, opened actively (NewClient) or passively
// (NewServer: the first SYN to the local port, from any remote). The caller
// owns all I/O and the clock: it passes every received segment to Input,
// application bytes to Send, and calls Output after each Input, Send, Read,
// Close or Abort and whenever NextTimer is due; Output emits every segment
// that is due. Times are int64 nanoseconds of any monotonic clock. FromPacket
// and BuildFrame convert between frame.Packet/frame.BuildTCP and Segment.
// Nothing on the data path allocates; an Endpoint is not safe for concurrent use.
//
// # What goes on the wire (Linux 6.x defaults)
//
// SYN and SYN-ACK carry MSS, SACK-permitted, timestamps and window scale in
// Linux's order and padding (tcp_options_write), 20 option bytes:
//
//	02 04 mm mm  04 02 08 0a  TSval(4)  TSecr(4)  01 03 03 ws
//
// A SYN-ACK carries only the options the SYN offered, laid out the same way
// (NOP,NOP,SACK-permitted when timestamps are off; NOP,NOP,TS when SACK is off).
// The SYN window is min(RecvWindow, 65535) rounded down to a multiple of the
// MSS (64240 for MSS 1460), unscaled. Once timestamps are negotiated every
// other segment carries NOP,NOP,TS (12 bytes, a 32-byte TCP header), and
// data segments hold at most min(peer MSS, MSS) − 12 bytes (1448 for 1460),
// as the kernel's mss_cache does. TSval is a millisecond clock plus a random
// per-connection offset (Linux tcp_clock_ms + ts_off); TSecr echoes TS.Recent
// (RFC 7323, updated when SEG.SEQ ≤ the last ACK sent). Segments are sent at
// once (TCP_NODELAY, as Go's net package sets it): the kernel path must also
// run with Nagle off for the two paths to send the same segments.
//
// The endpoint offers SACK-permitted only to match the kernel's SYN size; it
// never sends SACK blocks and ignores received ones. On loss the kernel would
// add NOP,NOP,SACK with one to three blocks (2+8n bytes, next to the 12-byte
// TS option: 24, 32 or 40 option bytes) to its duplicate ACKs, and a D-SACK
// block for duplicate data. A Linux sender that negotiated SACK but gets dup
// ACKs without SACK blocks recovers by RTO rather than by fast retransmit.
//
// # ACK policy (Linux tcp_input.c/tcp_output.c, net.ipv4.tcp_pingpong_thresh=1)
//
//   - Quick-ACK mode: the first data received (and data after an idle period
//     longer than the RTO) sets a budget of min(RecvWindow/(2·536), 16)
//     immediate ACKs (tcp_incr_quickack), spent by ACKs that acknowledge new
//     data; it is used only outside ping-pong mode.
//   - Ping-pong mode: sending data less than the delayed-ACK timeout (ato)
//     after the last data arrived marks the connection interactive
//     (tcp_event_data_sent). From then on received data is not ACKed at once:
//     the ACK rides on the application's answer if it comes before the timer.
//   - The delayed-ACK timer fires after min(ato, max(SRTT, DelayedAck), 200 ms):
//     ato starts at DelayedAck (40 ms = TCP_ATO_MIN) and adapts to the
//     inter-arrival time like tcp_event_data_recv. When it fires in ping-pong
//     mode the endpoint leaves ping-pong mode (the answer was late) and resets
//     ato; otherwise it doubles ato up to the RTO (tcp_delack_timer_handler).
//   - Immediate ACKs: more than one full-sized segment unacknowledged, a FIN,
//     out-of-order, duplicate or unacceptable segments (a duplicate ACK; they
//     also re-enter quick-ACK mode and leave ping-pong mode as in Linux), a
//     window update after Read frees space, and challenge ACKs (RFC 5961).
//
// So in request/response traffic with a fast application the steady state is
// one data segment per direction with no pure ACKs, as between two kernels:
// only the first exchange is quick-ACKed. With a slow application (answer
// later than ~40 ms) a pure ACK precedes every answer.
//
// # Timers
//
// Retransmission follows RFC 6298 with samples from the send time of one timed
// segment at a time (never a retransmitted one, Karn): initial RTO InitialRTO
// (1 s, TCP_TIMEOUT_INIT), RTO = SRTT + 4·RTTVAR clamped to [MinRTO, 120 s]
// (MinRTO 200 ms like TCP_RTO_MIN; Linux itself computes SRTT + max(4·RTTVAR,
// 200 ms), so its RTO on a LAN is ≈ 200 ms + SRTT), doubled on every timeout.
// A timeout or a third duplicate ACK resends go-back-N from the first
// unacknowledged byte. The connection fails with ErrTimeout after 6 SYN
// (tcp_syn_retries) or 15 data (tcp_retries2) timeouts in a row. A zero
// window is probed with one byte at RTO intervals. There is no congestion
// control: a probe flow has at most one probe in flight, and every send
// respects the peer's advertised (scaled) window.
//
// # Teardown
//
// Close sends FIN after the queued data (FIN_WAIT_1 → FIN_WAIT_2 or CLOSING
// → TIME_WAIT; CLOSE_WAIT → LAST_ACK → CLOSED). TIME_WAIT lasts Config.TimeWait
// (1 s by default instead of 2·MSL: the flow's port is reserved by the
// caller and a new connection uses a new ISN; a negative value skips it).
// FIN_WAIT_2 gives up after 60 s (tcp_fin_timeout). Abort sends RST.
// Segments for no connection (another remote, a closed endpoint, an ACK to a
// listening server) and unacceptable ACKs in SYN states are answered with RST
// as RFC 793 prescribes; an ACK of unsent data in a synchronized state is
// answered with an ACK and dropped (RFC 793, Linux). A RST is accepted when its
// sequence number is exactly RCV.NXT, and answered with a challenge ACK when
// merely inside the window (RFC 5961). Simultaneous open is not supported.
package utcp
