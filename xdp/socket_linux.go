package xdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Bind retries: a queue whose previous socket was just closed stays busy
// until the kernel's deferred teardown finishes (xdp-project/xdp-tutorial#458).
const (
	bindAttempts     = 7
	bindFirstBackoff = 5 * time.Millisecond
)

// txKickAttempts bounds the sendto retries of one kick. Copy mode sends at
// most max_tx_budget (32) frames per call and answers EAGAIN for the rest,
// or when the completion ring is full; a kick retries while frames keep
// leaving the TX ring, and what is left there is sent by the next kick
// (Transmit, or Complete once it has made room in the completion ring).
const txKickAttempts = 16

// spinClockInterval is how many empty RX ring checks WaitReceive makes in
// spin mode between two clock reads: a check costs a few nanoseconds and a
// clock read tens (in a VM), so the deadline is checked every few
// microseconds.
const spinClockInterval = 1024

// Socket is one AF_XDP socket bound to one device queue, with its own UMEM
// and its four rings. It is not safe for concurrent use: the hot-path
// methods are meant for one goroutine locked to its OS thread.
//
// Frame ownership: every UMEM frame is owned by exactly one of the free list,
// the FILL ring (kernel), user space after Receive or AllocFrame, the TX ring
// (kernel) or user space after Complete. User space returns a frame with
// FreeFrame or passes it on with Transmit (a reflector transmits the received
// frame in place); any other transition is reported as a *FrameStateError.
type Socket struct {
	fd     int
	info   Info
	layout frameLayout
	frames frameTable
	umem   []byte
	// reuseUMEM keeps umem for the next Open on Close (Options.ReuseUMEM).
	reuseUMEM bool
	rings     [4][]byte

	fill producerRing[uint64]
	comp consumerRing[uint64]
	rx   consumerRing[Desc]
	tx   producerRing[Desc]

	// prefetchMeta: Receive prefetches the metadata line of the next
	// frame too (Options.RxMetadata).
	prefetchMeta bool

	alwaysKickRx bool // busy polling: every recvfrom runs the busy loop
	// txStalled: the last kick left frames on the TX ring (the kernel made
	// no progress: completion ring full); Complete kicks again once it has
	// made room. Frames Enqueue left there on purpose wait for Kick.
	txStalled bool
	pollFDs   [1]unix.PollFd
	counters  Stats
	closed    bool
}

// Open creates an AF_XDP socket with a new UMEM and binds it to
// opts.Interface queue opts.QueueID, in the calling thread's network
// namespace, with XDP_USE_NEED_WAKEUP. It fills the FILL ring with
// min(FillRingSize, NumFrames/2) frames; the rest are free for AllocFrame.
//
// Receiving also needs an XDP program on the device that redirects the
// queue's frames to this socket through an XSKMAP (the steering layer).
func Open(opts Options) (*Socket, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	link, err := netlink.LinkByName(opts.Interface)
	if err != nil {
		return nil, fmt.Errorf("look up interface %q: %w", opts.Interface, err)
	}
	rxQueues, txQueues, err := queueCounts(opts.Interface)
	if err != nil {
		// No ethtool channels (lo, some virtual devices): the queues allocated.
		rxQueues, txQueues = link.Attrs().NumRxQueues, link.Attrs().NumTxQueues
	}
	if int64(opts.QueueID) >= int64(rxQueues) {
		return nil, fmt.Errorf("invalid queue %d on %s: the device has %d RX queue(s)",
			opts.QueueID, opts.Interface, rxQueues)
	}
	if int64(opts.QueueID) >= int64(txQueues) {
		return nil, fmt.Errorf("invalid queue %d on %s: the device has %d TX queue(s)",
			opts.QueueID, opts.Interface, txQueues)
	}
	info := Info{
		Interface:          opts.Interface,
		Ifindex:            link.Attrs().Index,
		Driver:             driverName(opts.Interface),
		QueueID:            opts.QueueID,
		RxQueues:           rxQueues,
		NumFrames:          opts.NumFrames,
		FrameSize:          opts.FrameSize,
		Headroom:           opts.Headroom,
		FillRingSize:       opts.FillRingSize,
		FillFrames:         opts.FillFrames,
		CompletionRingSize: opts.CompletionRingSize,
		RxRingSize:         opts.RxRingSize,
		TxRingSize:         opts.TxRingSize,
		BusyPoll:           BusyPollOff,
	}

	layout := newFrameLayout(opts.NumFrames, opts.FrameSize, opts.Headroom, 0)
	umem, err := mapUMEM(int(layout.size()), opts.ReuseUMEM)
	if err != nil {
		return nil, err
	}

	var flags []uint16
	switch opts.Mode {
	case ModeAuto:
		flags = []uint16{unix.XDP_ZEROCOPY, unix.XDP_COPY}
	case ModeCopy:
		flags = []uint16{unix.XDP_COPY}
	case ModeZeroCopy:
		flags = []uint16{unix.XDP_ZEROCOPY}
	}
	for _, f := range flags {
		var s *Socket
		s, err = openWithRetry(opts, info, umem, f|unix.XDP_USE_NEED_WAKEUP)
		if err == nil {
			return s, nil
		}
		if f != unix.XDP_ZEROCOPY || errors.Is(err, unix.EBUSY) {
			break
		}
		if errors.Is(err, unix.EOPNOTSUPP) {
			err = &unsupportedError{err: err, msg: fmt.Sprintf("zero-copy not supported by %s driver on %s queue %d",
				orUnknown(info.Driver), opts.Interface, opts.QueueID)}
		}
		info.ZeroCopyNote = err.Error() // auto mode goes on with copy mode
	}
	return nil, errors.Join(err, unmapUMEM(umem, opts.ReuseUMEM))
}

// unsupportedError is a failure caused by a missing feature: it matches
// both ErrNotSupported and the underlying error.
type unsupportedError struct {
	msg string
	err error
}

func (e *unsupportedError) Error() string   { return e.msg + ": " + e.err.Error() }
func (e *unsupportedError) Unwrap() []error { return []error{ErrNotSupported, e.err} }

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// openWithRetry opens and binds a socket, retrying with a fresh socket and
// exponential backoff while the queue is still busy.
func openWithRetry(opts Options, info Info, umem []byte, bindFlags uint16) (*Socket, error) {
	backoff := bindFirstBackoff
	for attempt := 1; ; attempt++ {
		s, err := openOnce(opts, info, umem, bindFlags)
		if err == nil {
			s.info.BindTries = attempt
			return s, nil
		}
		if !errors.Is(err, unix.EBUSY) || attempt == bindAttempts {
			if errors.Is(err, unix.EBUSY) {
				err = fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
			}
			return nil, err
		}
		time.Sleep(backoff)
		backoff *= 2
	}
}

// openOnce creates, configures and binds one socket over umem.
func openOnce(opts Options, info Info, umem []byte, bindFlags uint16) (_ *Socket, err error) {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("create af_xdp socket (needs CAP_NET_RAW): %w", os.NewSyscallError("socket", err))
	}
	s := &Socket{fd: fd, info: info, umem: umem, reuseUMEM: opts.ReuseUMEM, prefetchMeta: opts.RxMetadata}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.closeSocket())
		}
	}()

	txMetaLen, note, unaligned, err := registerUMEM(fd, umem, opts, !opts.NoTxMetadata)
	if err != nil {
		return nil, err
	}
	s.info.TxMetadataLen, s.info.TxMetadataNote, s.info.UnalignedChunks = txMetaLen, note, unaligned
	s.layout = newFrameLayout(opts.NumFrames, opts.FrameSize, opts.Headroom, txMetaLen)
	s.info.FrameCapacity = s.layout.capacity()
	s.frames = newFrameTable(s.layout)

	sizes := []struct {
		name string
		opt  int
		n    uint32
	}{
		{"fill", unix.XDP_UMEM_FILL_RING, opts.FillRingSize},
		{"completion", unix.XDP_UMEM_COMPLETION_RING, opts.CompletionRingSize},
		{"rx", unix.XDP_RX_RING, opts.RxRingSize},
		{"tx", unix.XDP_TX_RING, opts.TxRingSize},
	}
	for _, r := range sizes {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, r.opt, int(r.n)); err != nil {
			return nil, fmt.Errorf("set %s ring size %d: %w", r.name, r.n, os.NewSyscallError("setsockopt", err))
		}
	}
	var off unix.XDPMmapOffsets
	if err := getsockopt(fd, unix.SOL_XDP, unix.XDP_MMAP_OFFSETS, unsafe.Pointer(&off), unsafe.Sizeof(off)); err != nil {
		return nil, fmt.Errorf("get ring mmap offsets: %w", err)
	}
	if s.fill, err = mapProducer[uint64](s, 0, unix.XDP_UMEM_PGOFF_FILL_RING, off.Fr, opts.FillRingSize); err != nil {
		return nil, fmt.Errorf("map fill ring: %w", err)
	}
	if s.comp, err = mapConsumer[uint64](s, 1, unix.XDP_UMEM_PGOFF_COMPLETION_RING, off.Cr, opts.CompletionRingSize); err != nil {
		return nil, fmt.Errorf("map completion ring: %w", err)
	}
	if s.rx, err = mapConsumer[Desc](s, 2, unix.XDP_PGOFF_RX_RING, off.Rx, opts.RxRingSize); err != nil {
		return nil, fmt.Errorf("map rx ring: %w", err)
	}
	if s.tx, err = mapProducer[Desc](s, 3, unix.XDP_PGOFF_TX_RING, off.Tx, opts.TxRingSize); err != nil {
		return nil, fmt.Errorf("map tx ring: %w", err)
	}

	if err := s.setBusyPoll(opts.BusyPoll); err != nil {
		return nil, err
	}

	sa := &unix.SockaddrXDP{Flags: bindFlags, Ifindex: uint32(info.Ifindex), QueueID: opts.QueueID}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, fmt.Errorf("bind af_xdp socket to %s queue %d (flags %#x): %w",
			opts.Interface, opts.QueueID, bindFlags, os.NewSyscallError("bind", err))
	}
	s.info.BindFlags = bindFlags

	xdpOpts, err := unix.GetsockoptInt(fd, unix.SOL_XDP, unix.XDP_OPTIONS)
	if err != nil {
		return nil, fmt.Errorf("get xdp options: %w", os.NewSyscallError("getsockopt", err))
	}
	s.info.XDPOptions = uint32(xdpOpts)
	s.info.Mode = ModeCopy
	if xdpOpts&unix.XDP_OPTIONS_ZEROCOPY != 0 {
		s.info.Mode = ModeZeroCopy
	}
	napiID, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_INCOMING_NAPI_ID)
	if err != nil {
		return nil, fmt.Errorf("get napi id: %w", os.NewSyscallError("getsockopt", err))
	}
	s.info.NAPIID = uint32(napiID)
	if opts.BusyPoll.requested() {
		s.info.BusyPoll = BusyPollInert
		if napiID != 0 {
			s.info.BusyPoll = BusyPollActive
			s.alwaysKickRx = true
		}
	}
	s.pollFDs[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}

	if _, err := s.Refill(int(opts.FillFrames)); err != nil {
		return nil, fmt.Errorf("fill the fill ring: %w", err)
	}
	return s, nil
}

// registerUMEM registers umem with XDP_UMEM_REG: in unaligned-chunk mode
// unless opts.AlignedChunks asks for aligned mode or the kernel refuses the
// flag, and with TX metadata when withMeta is set (see registerChunks).
func registerUMEM(fd int, umem []byte, opts Options, withMeta bool) (txMetaLen uint32, note string, unaligned bool, err error) {
	if !opts.AlignedChunks {
		txMetaLen, note, err = registerChunks(fd, umem, opts, withMeta, unix.XDP_UMEM_UNALIGNED_CHUNK_FLAG)
		if !errors.Is(err, unix.EINVAL) {
			return txMetaLen, note, err == nil, err
		}
	}
	txMetaLen, note, err = registerChunks(fd, umem, opts, withMeta, 0)
	return txMetaLen, note, false, err
}

// registerChunks registers umem with XDP_UMEM_REG and the chunk-mode flags
// chunkFlags, asking for TX metadata when withMeta is set. Kernels 6.8-6.10
// read tx_metadata_len without knowing the XDP_UMEM_TX_METADATA_LEN flag, so
// a refused flag is retried without it
// (Documentation/networking/xsk-tx-metadata.rst); a refused length is
// retried without metadata.
func registerChunks(fd int, umem []byte, opts Options, withMeta bool, chunkFlags uint32) (txMetaLen uint32, note string, err error) {
	reg := unix.XDPUmemReg{
		Addr:     uint64(uintptr(unsafe.Pointer(&umem[0]))),
		Len:      uint64(len(umem)),
		Size:     opts.FrameSize,
		Headroom: opts.Headroom,
		Flags:    chunkFlags,
	}
	set := func() error {
		return setsockopt(fd, unix.SOL_XDP, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg))
	}
	if !withMeta {
		if err := set(); err != nil {
			return 0, "", fmt.Errorf("register umem: %w", err)
		}
		return 0, "disabled", nil
	}
	reg.Flags, reg.Tx_metadata_len = chunkFlags|unix.XDP_UMEM_TX_METADATA_LEN, txMetadataLen
	flagErr := set()
	if flagErr == nil {
		return txMetadataLen, "flag", nil
	}
	if !errors.Is(flagErr, unix.EINVAL) {
		return 0, "", fmt.Errorf("register umem: %w", flagErr)
	}
	reg.Flags = chunkFlags
	if err := set(); err == nil {
		return txMetadataLen, "legacy", nil
	}
	reg.Tx_metadata_len = 0
	if err := set(); err != nil {
		return 0, "", fmt.Errorf("register umem: %w", err)
	}
	return 0, fmt.Sprintf("refused by the kernel (%v)", flagErr), nil
}

func mapProducer[T any](s *Socket, slot int, pgoff int64, o unix.XDPRingOffset, n uint32) (producerRing[T], error) {
	m, err := s.mapRing(slot, pgoff, o, n, unsafe.Sizeof(*new(T)))
	if err != nil {
		return producerRing[T]{}, err
	}
	return newProducerRing(ringAt[T](m, o, n)), nil
}

func mapConsumer[T any](s *Socket, slot int, pgoff int64, o unix.XDPRingOffset, n uint32) (consumerRing[T], error) {
	m, err := s.mapRing(slot, pgoff, o, n, unsafe.Sizeof(*new(T)))
	if err != nil {
		return consumerRing[T]{}, err
	}
	return newConsumerRing(ringAt[T](m, o, n)), nil
}

func (s *Socket) mapRing(slot int, pgoff int64, o unix.XDPRingOffset, n uint32, descSize uintptr) ([]byte, error) {
	m, err := unix.Mmap(s.fd, pgoff, int(o.Desc)+int(n)*int(descSize),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	s.rings[slot] = m
	return m, nil
}

// ringAt locates a ring's indexes and descriptors inside its mapping.
func ringAt[T any](m []byte, o unix.XDPRingOffset, n uint32) ringMemory[T] {
	base := unsafe.Pointer(&m[0])
	return ringMemory[T]{
		producer: (*uint32)(unsafe.Add(base, o.Producer)),
		consumer: (*uint32)(unsafe.Add(base, o.Consumer)),
		flags:    (*uint32)(unsafe.Add(base, o.Flags)),
		descs:    unsafe.Slice((*T)(unsafe.Add(base, o.Desc)), n),
	}
}

func (s *Socket) setBusyPoll(b BusyPoll) error {
	set := func(name string, opt, v int) error {
		if err := unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, opt, v); err != nil {
			return fmt.Errorf("set %s=%d: %w", name, v, os.NewSyscallError("setsockopt", err))
		}
		return nil
	}
	if b.Prefer {
		if err := set("SO_PREFER_BUSY_POLL (needs CAP_NET_ADMIN)", unix.SO_PREFER_BUSY_POLL, 1); err != nil {
			return err
		}
	}
	if b.Timeout > 0 {
		if err := set("SO_BUSY_POLL", unix.SO_BUSY_POLL, int(b.Timeout/time.Microsecond)); err != nil {
			return err
		}
	}
	if b.Budget > 0 {
		if err := set("SO_BUSY_POLL_BUDGET", unix.SO_BUSY_POLL_BUDGET, int(b.Budget)); err != nil {
			return err
		}
	}
	return nil
}

// driverName is the device's ethtool driver name, or "" when unavailable.
func driverName(ifname string) string {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	defer unix.Close(fd)
	info, err := unix.IoctlGetEthtoolDrvinfo(fd, ifname)
	if err != nil {
		return ""
	}
	return unix.ByteSliceToString(info.Driver[:])
}

// queueCounts reads the device's active RX and TX queue counts with
// ETHTOOL_GCHANNELS (rx or tx plus combined channels), in the calling
// thread's network namespace; xsk_bind refuses queues beyond them.
func queueCounts(ifname string) (rx, tx int, err error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, 0, os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	var ch struct {
		cmd                                         uint32
		maxRx, maxTx, maxOther, maxCombined         uint32
		rxCount, txCount, otherCount, combinedCount uint32
	}
	ch.cmd = unix.ETHTOOL_GCHANNELS
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [24 - unsafe.Sizeof(uintptr(0))]byte
	}
	copy(ifr.name[:unix.IFNAMSIZ-1], ifname)
	ifr.data = unsafe.Pointer(&ch)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
		return 0, 0, fmt.Errorf("get channels of %s: %w", ifname, os.NewSyscallError("ioctl", errno))
	}
	return int(ch.rxCount + ch.combinedCount), int(ch.txCount + ch.combinedCount), nil
}

func setsockopt(fd, level, opt int, p unsafe.Pointer, size uintptr) error {
	_, _, errno := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(p), size, 0)
	if errno != 0 {
		return os.NewSyscallError("setsockopt", errno)
	}
	return nil
}

func getsockopt(fd, level, opt int, p unsafe.Pointer, size uintptr) error {
	n := uint32(size)
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(p), uintptr(unsafe.Pointer(&n)), 0)
	if errno != 0 {
		return os.NewSyscallError("getsockopt", errno)
	}
	return nil
}

// FD is the socket's file descriptor, for the steering layer's XSKMAP.
func (s *Socket) FD() int { return s.fd }

// Mode is the data path in use: ModeCopy or ModeZeroCopy.
func (s *Socket) Mode() Mode { return s.info.Mode }

// Info describes the socket's effective configuration.
func (s *Socket) Info() Info { return s.info }

// TxMetadata reports whether the UMEM has the TX metadata area, so that
// Transmit can request TX timestamps.
func (s *Socket) TxMetadata() bool { return s.layout.txMetaLen != 0 }

// Stats reads the kernel's XDP_STATISTICS and adds this socket's wake-up counters.
func (s *Socket) Stats() (Stats, error) {
	var ks unix.XDPStatistics
	if err := getsockopt(s.fd, unix.SOL_XDP, unix.XDP_STATISTICS, unsafe.Pointer(&ks), unsafe.Sizeof(ks)); err != nil {
		return Stats{}, fmt.Errorf("get xdp statistics: %w", err)
	}
	st := s.counters
	st.RxDropped = ks.Rx_dropped
	st.RxInvalidDescs = ks.Rx_invalid_descs
	st.TxInvalidDescs = ks.Tx_invalid_descs
	st.RxRingFull = ks.Rx_ring_full
	st.RxFillRingEmptyDescs = ks.Rx_fill_ring_empty_descs
	st.TxRingEmptyDescs = ks.Tx_ring_empty_descs
	return st, nil
}

// AllocFrame takes a frame off the free list for building a frame to
// transmit. addr is where the frame's data starts (Info.FrameCapacity bytes
// fit); ok is false when no frame is free.
func (s *Socket) AllocFrame() (addr uint64, ok bool) {
	i, ok := s.frames.pop(OwnerAllocated)
	if !ok {
		return 0, false
	}
	return s.layout.frameAddr(i), true
}

// FreeFrame returns a frame user space owns (received, allocated or
// completed; any address inside its chunk) to the free list.
func (s *Socket) FreeFrame(addr uint64) error { return s.frames.release(addr) }

// FreeFrames is the number of frames on the free list.
func (s *Socket) FreeFrames() int { return s.frames.freeCount() }

// Frame is the UMEM memory of the frame at addr: length bytes, with capacity
// up to the end of the chunk. It is nil when the range leaves the chunk.
func (s *Socket) Frame(addr uint64, length int) []byte {
	end := (addr | uint64(s.layout.chunkSize-1)) + 1
	if addr >= s.layout.size() || length < 0 || addr+uint64(length) > end {
		return nil
	}
	return s.umem[addr : addr+uint64(length) : end]
}

// MetadataBefore is the n bytes just before the frame at addr, where an XDP
// program's bpf_xdp_adjust_meta metadata ends up. The kernel neither clears
// this area nor says how long the metadata is, so check a magic value. It is
// nil when the n bytes are not inside the frame's chunk.
func (s *Socket) MetadataBefore(addr uint64, n int) []byte {
	if addr >= s.layout.size() || n < 0 || addr&uint64(s.layout.chunkSize-1) < uint64(n) {
		return nil
	}
	return s.umem[addr-uint64(n) : addr : addr]
}

// Refill moves up to max frames (all that fit when max < 0) from the free
// list to the FILL ring and returns how many it moved.
func (s *Socket) Refill(max int) (int, error) {
	want := s.frames.freeCount()
	if max >= 0 && max < want {
		want = max
	}
	start, got := s.fill.reserve(uint32(want))
	for k := range got {
		i, _ := s.frames.pop(OwnerFill)
		*s.fill.slot(start + k) = s.layout.chunkAddr(i)
	}
	if got == 0 {
		return 0, nil
	}
	s.fill.submit(got)
	if s.fill.needsWakeup() {
		if err := s.kickRx(); err != nil {
			return int(got), err
		}
	}
	return int(got), nil
}

// Receive takes up to len(out) received frames off the RX ring into out and
// returns how many. It does not block or allocate. The frames belong to the
// caller until FreeFrame or Transmit; read them with Frame(d.Addr, d.Len):
// d.Addr is the frame data's UMEM address in either chunk mode.
// The next frame already known to wait is prefetched into the cache.
func (s *Socket) Receive(out []Desc) (int, error) {
	start, got := s.rx.peek(uint32(len(out)))
	if got == 0 {
		return 0, nil
	}
	var err error
	for k := range got {
		d := *s.rx.slot(start + k)
		d.Addr = rxDataAddr(d.Addr)
		out[k] = d
		if _, merr := s.frames.move("receive", d.Addr, ownersOf(OwnerFill), OwnerReceived); merr != nil && err == nil {
			err = merr
		}
	}
	s.rx.release(got)
	s.prefetchNextRx()
	return int(got), err
}

// Transmit puts frames on the TX ring (Addr and Len of each; Options are set
// here) and kicks the kernel when it asks for a wake-up. Each frame must be
// owned by the caller (received, allocated or completed) and lie inside its
// chunk after the TX metadata area. With timestamp set, each frame asks for a
// TX completion timestamp (XDP_TXMD_FLAGS_TIMESTAMP), returned by Complete.
// It returns how many frames were queued: fewer than len(frames) when the TX
// ring is full or a frame is invalid (then with an error). Queued frames are
// owned by the kernel until Complete returns them.
func (s *Socket) Transmit(frames []Desc, timestamp bool) (int, error) {
	n, err := s.Enqueue(frames, timestamp)
	if n > 0 {
		if kerr := s.kickTx(); kerr != nil && err == nil {
			err = kerr
		}
	}
	return n, err
}

// Enqueue is Transmit without the kick: the frames wait on the TX ring until
// the next Transmit or Kick sends them all with one system call. A caller
// that knows more frames follow at once (more are waiting on the RX ring)
// saves a system call per frame this way.
func (s *Socket) Enqueue(frames []Desc, timestamp bool) (int, error) {
	if timestamp && s.layout.txMetaLen == 0 {
		return 0, ErrNoTxMetadata
	}
	start, got := s.tx.reserve(uint32(len(frames)))
	var n uint32
	var err error
	for ; n < got; n++ {
		d := frames[n]
		if err = s.checkTransmit(d); err != nil {
			break
		}
		var i uint32
		if i, err = s.frames.move("transmit", d.Addr, userOwned, OwnerTransmit); err != nil {
			break
		}
		var options uint32
		if timestamp {
			meta := s.umem[d.Addr-txMetadataLen : d.Addr]
			binary.NativeEndian.PutUint64(meta[txMetadataFlagsOffset:], txMetadataTimestampFlag)
			clear(meta[txMetadataTimestampOffset:])
			options = txMetadataDescOption
		}
		s.frames.stamped[i] = timestamp
		*s.tx.slot(start + n) = Desc{Addr: d.Addr, Len: d.Len, Options: options}
	}
	s.tx.cancel(got - n)
	if n == 0 {
		return 0, err
	}
	s.tx.submit(n)
	return int(n), err
}

// Kick sends the frames Enqueue left on the TX ring (nothing when there are
// none).
func (s *Socket) Kick() error {
	if s.tx.outstanding() == 0 {
		return nil
	}
	return s.kickTx()
}

// TxStalled reports whether the last kick left frames on the TX ring
// because the kernel could not progress (its completion ring was full):
// Complete, which makes room, kicks them again.
func (s *Socket) TxStalled() bool { return s.txStalled }

// RxAvailable reports whether received frames wait on the RX ring. It does
// not take them.
func (s *Socket) RxAvailable() bool { return s.rx.available(1) > 0 }

// prefetchNextRx starts loading the first cache line of the next frame known
// to wait on the RX ring, without taking it, so that it is in this CPU's
// cache when taken. In copy mode the frame was just written by the CPU that
// ran the XDP program: its first read would otherwise stall on that other
// CPU's cache (a forwarding engine's receive burst prefetches the same way).
// It reads no ring index: only frames already known to wait are prefetched.
func (s *Socket) prefetchNextRx() {
	if s.rx.cachedProd == s.rx.peeked {
		return
	}
	addr := rxDataAddr(s.rx.slot(s.rx.peeked).Addr)
	if addr >= s.layout.size() {
		return
	}
	prefetch(unsafe.Pointer(&s.umem[addr]))
	if s.prefetchMeta && addr&uint64(s.layout.chunkSize-1) > 0 {
		// The XDP program's metadata ends right before the frame.
		prefetch(unsafe.Pointer(&s.umem[addr-1]))
	}
}

// prefetchFrame starts loading the first cache line of the frame at addr.
func (s *Socket) prefetchFrame(addr uint64) {
	if addr < s.layout.size() {
		prefetch(unsafe.Pointer(&s.umem[addr]))
	}
}

func (s *Socket) checkTransmit(d Desc) error {
	offset := d.Addr & uint64(s.layout.chunkSize-1)
	if d.Addr >= s.layout.size() || d.Len == 0 || offset < uint64(s.layout.txMetaLen) ||
		offset+uint64(d.Len) > uint64(s.layout.chunkSize) {
		return fmt.Errorf("transmit frame %#x length %d: must be non-empty, inside one %d-byte chunk, at least %d bytes past its start",
			d.Addr, d.Len, s.layout.chunkSize, s.layout.txMetaLen)
	}
	return nil
}

// Complete drains up to len(out) entries from the completion ring into out
// and returns how many. Each frame is owned by the caller again: free it or
// transmit it again. When frames are still waiting in the TX ring and the
// kernel wants a wake-up, it kicks TX again.
func (s *Socket) Complete(out []Completion) (int, error) {
	start, got := s.comp.peek(uint32(len(out)))
	var err error
	for k := range got {
		addr := *s.comp.slot(start + k)
		c := Completion{Addr: addr}
		i, merr := s.frames.move("complete", addr, ownersOf(OwnerTransmit), OwnerCompleted)
		if merr != nil {
			if err == nil {
				err = merr
			}
		} else if s.frames.stamped[i] {
			c.Timestamp = binary.NativeEndian.Uint64(s.umem[addr-txMetadataLen+txMetadataTimestampOffset:])
			c.Stamped = true
			s.frames.stamped[i] = false
		}
		out[k] = c
	}
	if got > 0 {
		s.comp.release(got)
	}
	if s.txStalled && s.tx.outstanding() > 0 && s.tx.needsWakeup() {
		if kerr := s.kickTx(); kerr != nil && err == nil {
			err = kerr
		}
	}
	return int(got), err
}

// kickTx wakes the kernel's TX path with sendto(MSG_DONTWAIT) when the TX
// ring asks for it, retrying EAGAIN and EBUSY a bounded number of times.
// Kicks never block, so they are raw system calls: no scheduler bookkeeping
// around a call that sits inside every measured round trip.
func (s *Socket) kickTx() error {
	if !s.tx.needsWakeup() {
		return nil
	}
	pending := s.tx.outstanding()
	s.txStalled = false
	for range txKickAttempts {
		s.counters.TxKicks++
		_, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			return nil
		case unix.EAGAIN, unix.EBUSY, unix.EINTR:
			s.counters.TxKickRetries++
			// Retry while the kernel makes progress (the per-call budget);
			// with none (completion ring full) only Complete can help.
			left := s.tx.outstanding()
			if left == 0 {
				return nil
			}
			if left == pending && errno != unix.EINTR {
				s.txStalled = true
				return nil
			}
			pending = left
		default:
			return fmt.Errorf("kick tx: %w", os.NewSyscallError("sendto", errno))
		}
	}
	s.txStalled = s.tx.outstanding() > 0
	return nil
}

// kickRx wakes the kernel's RX path (FILL ring) with recvfrom(MSG_DONTWAIT).
func (s *Socket) kickRx() error {
	s.counters.RxKicks++
	_, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	switch errno {
	case 0, unix.EAGAIN, unix.EBUSY, unix.EINTR:
		return nil
	}
	return fmt.Errorf("kick rx: %w", os.NewSyscallError("recvfrom", errno))
}

// WaitReceive waits until the RX ring holds at least one frame and returns
// how many it holds, or 0 when timeout passes first (a negative timeout
// waits forever). WaitPoll sleeps in ppoll(POLLIN); WaitSpin re-reads the
// ring without sleeping. Both wake the FILL side with recvfrom when the
// kernel asks (or on every round when busy polling is active).
func (s *Socket) WaitReceive(strategy WaitStrategy, timeout time.Duration) (int, error) {
	if n := s.rx.available(1); n > 0 {
		return int(n), nil
	}
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	return s.WaitReceiveUntil(strategy, deadline)
}

// WaitReceiveUntil is WaitReceive with an absolute deadline (the zero Time
// waits forever). It reads no clock before the first look at the RX ring, and
// while spinning only every few hundred turns.
func (s *Socket) WaitReceiveUntil(strategy WaitStrategy, deadline time.Time) (int, error) {
	if n := s.rx.available(1); n > 0 {
		return int(n), nil
	}
	switch strategy {
	case WaitSpin:
		return s.spin(deadline)
	case WaitPoll:
		return s.poll(deadline)
	}
	return 0, fmt.Errorf("invalid wait strategy %q: want poll or spin", strategy)
}

func (s *Socket) spin(deadline time.Time) (int, error) {
	for i := 1; ; i++ {
		if s.alwaysKickRx || s.fill.needsWakeup() {
			if err := s.kickRx(); err != nil {
				return 0, err
			}
		}
		if n := s.rx.available(1); n > 0 {
			return int(n), nil
		}
		if i%spinClockInterval == 0 && !deadline.IsZero() && time.Until(deadline) <= 0 {
			return 0, nil
		}
	}
}

func (s *Socket) poll(deadline time.Time) (int, error) {
	for {
		if s.alwaysKickRx || s.fill.needsWakeup() {
			if err := s.kickRx(); err != nil {
				return 0, err
			}
		}
		var ts *unix.Timespec
		var t unix.Timespec
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left < 0 {
				left = 0
			}
			t = unix.NsecToTimespec(int64(left))
			ts = &t
		}
		s.counters.Polls++
		s.pollFDs[0].Revents = 0
		_, err := unix.Ppoll(s.pollFDs[:], ts, nil)
		if err != nil && err != unix.EINTR {
			return 0, fmt.Errorf("wait for rx: %w", os.NewSyscallError("ppoll", err))
		}
		if n := s.rx.available(1); n > 0 {
			return int(n), nil
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return 0, nil
		}
	}
}

// Close unmaps the rings and the UMEM and closes the socket; the Socket must
// not be used afterwards. Closing the
// socket also makes the kernel drop it from every XSKMAP it is in, but the
// steering layer should delete its XSKMAP entry first, so that no frame is
// redirected to a closing socket. Close is idempotent.
func (s *Socket) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	// The socket is closed, so the kernel no longer uses the memory.
	err := errors.Join(s.closeSocket(), unmapUMEM(s.umem, s.reuseUMEM))
	s.umem = nil
	return err
}

// closeSocket unmaps the rings and closes the fd, leaving the UMEM mapped.
func (s *Socket) closeSocket() error {
	var errs []error
	for i, m := range s.rings {
		if m == nil {
			continue
		}
		if err := unix.Munmap(m); err != nil {
			errs = append(errs, fmt.Errorf("unmap ring: %w", os.NewSyscallError("munmap", err)))
		}
		s.rings[i] = nil
	}
	s.fill, s.comp, s.rx, s.tx = producerRing[uint64]{}, consumerRing[uint64]{}, consumerRing[Desc]{}, producerRing[Desc]{}
	if err := unix.Close(s.fd); err != nil {
		errs = append(errs, fmt.Errorf("close af_xdp socket: %w", os.NewSyscallError("close", err)))
	}
	return errors.Join(errs...)
}
