package kernelpath

import (
	"fmt"
	"os"

	"github.com/stackgap/stackgap/bench"
	"golang.org/x/sys/unix"
)

// TX stamp keys (SOF_TIMESTAMPING_OPT_ID, reported in sock_extended_err.ee_data).
// Only stamped sends (SendStamped with stamp set) ask the kernel for TX stamps,
// through a SO_TIMESTAMPING control message; the socket itself asks for none.
//
// UDP: each stamped send passes its own key, the Send index modulo 2^32, in a
// SCM_TS_OPT_ID control message (Linux 6.13+; net/ipv4/ip_output.c
// __ip_append_data takes cork->ts_opt_id instead of the socket's counter).
// Kernels that refuse that message (EINVAL) number stamped sends themselves:
// a per-socket counter that starts at 0 when OPT_ID is switched on and
// advances only on sends that asked for stamps (atomic_inc_return of
// sk_tskey, minus one; undone when the send fails before the packet is
// built). The key is then the ordinal of the stamped send modulo 2^32, mapped
// back to the Send index through stampedLog.
//
// TCP: a byte offset in the stream. tcp_tx_timestamp (net/ipv4/tcp.c) stores
// tskey = seq + len - 1 of the last skb of the write, i.e. the sequence number
// of the LAST byte the send call queued, and __skb_complete_tx_timestamp
// (net/core/skbuff.c) subtracts sk_tskey, which sock_set_timestamping
// (net/core/sock.c) sets to write_seq with OPT_ID_TCP. Timestamping is
// switched on right after connect/accept, before any data, so the key is the
// 0-based stream offset of the last byte of a write call, whether or not the
// earlier writes were stamped. Observed on 6.18: probes of 64 bytes give keys
// 63, 127, 191, … (TestTCPTimestampKeyIsLastByte). A probe written in two
// calls gets a stamp per call; only the stamp of the call that wrote the
// probe's last byte is reported.
//
// Counting: stamps of one kind arrive in the order of the stamped sends, so
// txNext[kind] (an ordinal of stamped sends) is both where gaps are detected
// and how TxStamps knows that no stamp is outstanding and skips the system call.

// sendLogSize is how many recent TCP sends can still be matched to a stamp.
const sendLogSize = 1 << 12

// sendLog remembers the stream offsets of recent TCP sends.
type sendLog struct {
	starts [sendLogSize]uint64 // stream offset of send i's first byte, at i % sendLogSize
	n      uint64              // sends recorded
	total  uint64              // bytes sent
}

func (l *sendLog) record(size int) {
	l.starts[l.n%sendLogSize] = l.total
	l.n++
	l.total += uint64(size)
}

// lookup finds the send whose bytes contain the 32-bit stream offset key
// (newest first) and reports whether key is that send's last byte.
func (l *sendLog) lookup(key uint32) (index uint64, last, ok bool) {
	end := l.total
	for i := l.n; i > 0 && l.n-i < sendLogSize; i-- {
		start := l.starts[(i-1)%sendLogSize]
		size := uint32(end - start)
		if key-uint32(start) < size {
			return i - 1, key == uint32(end-1), true
		}
		end = start
	}
	return 0, false, false
}

// stampedLogSize is how many recent stamped sends can still be matched to a stamp.
const stampedLogSize = 1 << 12

// noSend marks a stamped-send ordinal that the kernel used up for a send that
// failed after the packet was built (fallback key numbering only).
const noSend = ^uint64(0)

// stampedLog remembers the Send indexes of recent stamped sends, by ordinal.
type stampedLog struct {
	index [stampedLogSize]uint64 // Send index of stamped send o at o % stampedLogSize
	n     uint64                 // stamped sends recorded: the next ordinal
}

func (l *stampedLog) record(index uint64) {
	l.index[l.n%stampedLogSize] = index
	l.n++
}

// indexOf returns the Send index of stamped send o, if it is still logged.
func (l *stampedLog) indexOf(o uint64) (uint64, bool) {
	if o >= l.n || l.n-o > stampedLogSize {
		return 0, false
	}
	index := l.index[o%stampedLogSize]
	return index, index != noSend
}

// ordinalOf finds the stamped send with Send index idx among the logged ones.
// The logged indexes grow with the ordinal (no noSend entries: those only
// occur with fallback UDP keys, which never look up by index).
func (l *stampedLog) ordinalOf(idx uint64) (uint64, bool) {
	lo := uint64(0)
	if l.n > stampedLogSize {
		lo = l.n - stampedLogSize
	}
	hi := l.n
	for lo < hi {
		mid := lo + (hi-lo)/2
		if l.index[mid%stampedLogSize] < idx {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo < l.n && l.index[lo%stampedLogSize] == idx {
		return lo, true
	}
	return 0, false
}

// unwrapKey maps a 32-bit key, a counter modulo 2^32, to the full counter
// value among the count values issued so far, assuming it is at most 2^31
// behind the newest one.
func unwrapKey(key uint32, count uint64) (uint64, bool) {
	if count == 0 {
		return 0, false
	}
	newest := count - 1
	back := uint32(newest) - key
	if back >= 1<<31 || uint64(back) > newest {
		return 0, false
	}
	return newest - uint64(back), true
}

// placeStamp maps a stamp's key to its stamped send: the ordinal among
// stamped sends and the Send index. ok is false when no stamped send matches;
// partial is set for a TCP stamp that marks the end of a partial write.
func (c *Conn) placeStamp(key uint32) (ordinal, index uint64, partial, ok bool) {
	switch {
	case c.log != nil:
		var last bool
		if index, last, ok = c.log.lookup(key); !ok {
			return 0, 0, false, false
		}
		if !last {
			return 0, index, true, true
		}
	case c.keyBySend:
		if index, ok = unwrapKey(key, c.sends); !ok {
			return 0, 0, false, false
		}
	default:
		if ordinal, ok = unwrapKey(key, c.stamped.n); !ok {
			return 0, 0, false, false
		}
		if index, ok = c.stamped.indexOf(ordinal); !ok {
			return 0, 0, false, false
		}
		return ordinal, index, false, true
	}
	if ordinal, ok = c.stamped.ordinalOf(index); !ok {
		return 0, 0, false, false
	}
	return ordinal, index, false, true
}

// awaitingStamps reports whether a stamped send still waits for a stamp of a
// kind it asked for. A stamp that never comes stops being awaited once a
// later stamped send's stamp of the same kind arrives (it is then a gap).
func (c *Conn) awaitingStamps() bool {
	n := c.stamped.n
	return c.txNext[bench.TxSched] < n || c.txNext[bench.TxSoftware] < n ||
		(c.opts.HardwareTimestamps && c.txNext[bench.TxHardware] < n)
}

// TxStamps reads the socket error queue without blocking and reports each
// transmit stamp with the 0-based index of the Send call it belongs to:
// TX_SCHED as bench.TxSched, the software SND stamp as bench.TxSoftware and
// the hardware SND stamp (raw PHC time) as bench.TxHardware. Stamps it cannot
// place are counted in Stats.
//
// It makes no system call while no stamped send waits for its stamps and no
// ICMP error is known to sit on the queue, and it stops reading once the last
// awaited stamp arrived, so a sampled stamped send costs one read per stamp
// and an unstamped one none. An ICMP error found on the queue (for example
// the peer's port is closed) is returned as a *PeerError; one that stays on
// the queue is still reported by the next Send or Recv through the socket's
// pending error, after which TxStamps removes it from the queue.
func (c *Conn) TxStamps(report func(index uint64, kind bench.TxStampKind, ts int64)) error {
	if !c.errQueue || c.fd < 0 {
		return nil
	}
	var peerErr error
	for c.icmpDup > 0 || c.awaitingStamps() {
		_, oobn, msgFlags, _, errno := c.recvmsg(nil, c.errControl[:], unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT, false)
		c.stats.ErrQueueReads++
		switch errno {
		case 0:
		case unix.EAGAIN:
			// Whatever Send or Recv reported is no longer queued.
			c.icmpDup = 0
			return peerErr
		case unix.EINTR:
			continue
		default:
			return fmt.Errorf("read error queue: %w", os.NewSyscallError("recvmsg", errno))
		}
		if msgFlags&unix.MSG_CTRUNC != 0 {
			c.stats.ControlTruncated++
		}
		ci := &c.control
		if err := parseControl(c.errControl[:oobn], ci); err != nil {
			c.stats.ControlMalformed++
			continue
		}
		if !ci.hasExtErr {
			c.stats.ErrQueueOther++
			continue
		}
		switch ci.extErr.Origin {
		case unix.SO_EE_ORIGIN_TIMESTAMPING:
			c.dispatchStamp(ci, report)
		case unix.SO_EE_ORIGIN_ICMP, unix.SO_EE_ORIGIN_ICMP6, unix.SO_EE_ORIGIN_LOCAL:
			c.stats.ICMPErrors++
			if c.icmpDup > 0 {
				c.icmpDup-- // already returned by Send or Recv
				continue
			}
			if peerErr == nil {
				errno := unix.Errno(ci.extErr.Errno)
				peerErr = fmt.Errorf("error queue: %w", &PeerError{
					Peer:     c.RemoteAddr(),
					Reason:   peerReason(errno),
					Reporter: ci.offender,
					Err:      errno,
				})
			}
		default:
			c.stats.ErrQueueOther++
		}
	}
	return peerErr
}

// dispatchStamp reports one timestamping message from the error queue.
func (c *Conn) dispatchStamp(ci *controlInfo, report func(uint64, bench.TxStampKind, int64)) {
	ordinal, index, partial, ok := c.placeStamp(ci.extErr.Data)
	switch {
	case !ok:
		c.stats.TxUnmatched++
		return
	case partial:
		c.stats.TxPartialWrite++
		return
	case !ci.hasStamps:
		c.stats.TxUnknownKind++
		return
	}
	switch ci.extErr.Info {
	case unix.SCM_TSTAMP_SCHED:
		c.emit(report, ordinal, index, bench.TxSched, ci.stamps[0])
	case unix.SCM_TSTAMP_SND:
		sw, hw := ci.stamps[0], ci.stamps[2]
		if sw == 0 && hw == 0 {
			c.stats.TxUnknownKind++
			return
		}
		if sw != 0 {
			c.emit(report, ordinal, index, bench.TxSoftware, sw)
		}
		if hw != 0 {
			c.emit(report, ordinal, index, bench.TxHardware, hw)
		}
	default:
		c.stats.TxUnknownKind++
	}
}

// emit reports one stamp of stamped send ordinal (Send index) and keeps the
// per-kind gap and lateness counts, which are over stamped sends only.
func (c *Conn) emit(report func(uint64, bench.TxStampKind, int64), ordinal, index uint64, kind bench.TxStampKind, ts int64) {
	if ts == 0 {
		c.stats.TxUnknownKind++
		return
	}
	next := &c.txNext[kind]
	switch {
	case ordinal >= *next:
		c.stats.TxKeyGaps += ordinal - *next
		*next = ordinal + 1
	default:
		c.stats.TxLate++
		if c.stats.TxKeyGaps > 0 {
			c.stats.TxKeyGaps-- // it was counted missing when a later one came first
		}
	}
	c.stats.TxStamps++
	report(index, kind, ts)
}
