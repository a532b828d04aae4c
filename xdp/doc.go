// Package xdp is the AF_XDP bypass path: AF_XDP sockets with their UMEM and
// rings (this file's siblings socket*, ring*, umem*, stats*), the XDP
// steering program that redirects the probe flow to them (steer*), the
// frame codec (package frame), and the engine's Path over them (path*: UDP,
// and TCP through the userspace endpoint of package utcp).
//
// The socket layer is built directly on golang.org/x/sys/unix. A Socket owns
// one UMEM (an anonymous, page-aligned mapping of NumFrames chunks) and the
// four rings the kernel shares with it:
//
//   - FILL (user → kernel): empty frames the kernel may receive into;
//   - RX (kernel → user): received frames;
//   - TX (user → kernel): frames to send;
//   - COMPLETION (kernel → user): sent frames, handed back.
//
// Ring indexes are read and written only with sync/atomic, pairing with the
// kernel's acquire loads and release stores; like libxdp, each side caches
// the peer's index and touches the shared cache line once per batch. The
// socket always binds with XDP_USE_NEED_WAKEUP and makes a system call only
// when the kernel sets XDP_RING_NEED_WAKEUP (in copy mode the TX side always
// does, because copy-mode transmission runs inside sendto).
//
// Every frame has exactly one owner at a time (see FrameOwner): the free
// list, the FILL ring, user space after Receive/AllocFrame/Complete, or the
// TX ring. The socket checks every hand-over and never gives out a frame
// that is still in use. A reflector can transmit a received frame in place:
//
//	Receive → edit Frame(d.Addr, …) → Transmit → Complete → FreeFrame → Refill
//
// Enqueue is Transmit without the kick: frames queued with it leave with the
// next Transmit or Kick, one sendto for the batch (RxAvailable tells whether
// more received frames wait, so a reflector knows a batch is forming). A
// kick the kernel cannot progress on (completion ring full) leaves TxStalled
// set, and Complete kicks again once it has made room.
//
// UMEM chunk layout: one frame per chunk in either chunk mode (unaligned by
// default, see Options.AlignedChunks); the kernel writes received data at
// 256 (XDP_PACKET_HEADROOM) + Headroom bytes into a chunk, and AllocFrame
// hands out the same offset. Receive decodes unaligned-mode RX addresses
// (offset in the top 16 bits), so every address this package hands out is
// the frame data's UMEM offset. The 24 bytes before a frame hold, on transmit,
// the TX metadata (struct xsk_tx_metadata: the timestamp request and the
// completion timestamp) and, on receive, the end of the XDP program's
// metadata (MetadataBefore).
//
// Hot-path methods (Receive, Refill, Transmit, Enqueue, Kick, Complete,
// WaitReceive, AllocFrame, FreeFrame, Frame, MetadataBefore) do not allocate. A Socket is
// not safe for concurrent use.
//
// Steering is not this layer's job: the caller attaches an XDP program that
// redirects the queue's frames into an XSKMAP holding FD(), and deletes that
// entry before Close (the kernel also drops a closed socket from its maps).
package xdp
