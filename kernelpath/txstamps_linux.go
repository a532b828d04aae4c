package kernelpath

import (
	"fmt"
	"os"

	"github.com/stackgap/stackgap/bench"
	"golang.org/x/sys/unix"
)

// TX stamp keys (SOF_TIMESTAMPING_OPT_ID, reported in sock_extended_err.ee_data):
//
// UDP: a per-socket counter of timestamped sends starting at 0 when OPT_ID is
// switched on (net/ipv4/ip_output.c __ip_append_data: atomic_inc_return of
// sk_tskey, minus one; the increment is undone when the send fails). Every send
// of this package is timestamped, so the key is the Send index modulo 2^32.
//
// TCP: a byte offset in the stream. tcp_tx_timestamp (net/ipv4/tcp.c) stores
// tskey = seq + len - 1 of the last skb of the write, i.e. the sequence number
// of the LAST byte the send call queued, and __skb_complete_tx_timestamp
// (net/core/skbuff.c) subtracts sk_tskey, which sock_set_timestamping
// (net/core/sock.c) sets to write_seq with OPT_ID_TCP. Timestamping is
// switched on right after connect/accept, before any data, so the key is the
// 0-based stream offset of the last byte of a write call. Observed on 6.18:
// probes of 64 bytes give keys 63, 127, 191, … (TestTCPTimestampKeyIsLastByte).
// A probe written in two calls gets a stamp per call; only the stamp of the
// call that wrote the probe's last byte is reported.

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

// datagramIndex maps a UDP key (the send counter modulo 2^32) to the index of
// one of the sends made so far.
func (c *Conn) datagramIndex(key uint32) (uint64, bool) {
	if c.sends == 0 {
		return 0, false
	}
	newest := c.sends - 1
	back := uint32(newest) - key
	if back >= 1<<31 || uint64(back) > newest {
		return 0, false
	}
	return newest - uint64(back), true
}

// TxStamps drains the socket error queue without blocking and reports each
// transmit stamp with the 0-based index of the Send call it belongs to:
// TX_SCHED as bench.TxSched, the software SND stamp as bench.TxSoftware and
// the hardware SND stamp (raw PHC time) as bench.TxHardware. Stamps it cannot
// place are counted in Stats. An ICMP error found on the queue (for example
// the peer's port is closed) is returned as a *PeerError after the queue has
// been drained. It makes no system call when Timestamping is off, except on a
// UDP Conn from Dial, whose queue also carries ICMP errors (IP_RECVERR).
func (c *Conn) TxStamps(report func(index uint64, kind bench.TxStampKind, ts int64)) error {
	if !c.errQueue || c.fd < 0 {
		return nil
	}
	var peerErr error
	for {
		_, oobn, msgFlags, _, errno := c.recvmsg(nil, c.errControl[:], unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT, false)
		switch errno {
		case 0:
		case unix.EAGAIN:
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
}

// dispatchStamp reports one timestamping message from the error queue.
func (c *Conn) dispatchStamp(ci *controlInfo, report func(uint64, bench.TxStampKind, int64)) {
	var index uint64
	var ok bool
	if c.log != nil {
		var last bool
		index, last, ok = c.log.lookup(ci.extErr.Data)
		if ok && !last {
			c.stats.TxPartialWrite++
			return
		}
	} else {
		index, ok = c.datagramIndex(ci.extErr.Data)
	}
	if !ok {
		c.stats.TxUnmatched++
		return
	}
	if !ci.hasStamps {
		c.stats.TxUnknownKind++
		return
	}
	switch ci.extErr.Info {
	case unix.SCM_TSTAMP_SCHED:
		c.emit(report, index, bench.TxSched, ci.stamps[0])
	case unix.SCM_TSTAMP_SND:
		sw, hw := ci.stamps[0], ci.stamps[2]
		if sw == 0 && hw == 0 {
			c.stats.TxUnknownKind++
			return
		}
		if sw != 0 {
			c.emit(report, index, bench.TxSoftware, sw)
		}
		if hw != 0 {
			c.emit(report, index, bench.TxHardware, hw)
		}
	default:
		c.stats.TxUnknownKind++
	}
}

func (c *Conn) emit(report func(uint64, bench.TxStampKind, int64), index uint64, kind bench.TxStampKind, ts int64) {
	if ts == 0 {
		c.stats.TxUnknownKind++
		return
	}
	next := &c.txNext[kind]
	switch {
	case index >= *next:
		c.stats.TxKeyGaps += index - *next
		*next = index + 1
	default:
		c.stats.TxLate++
		if c.stats.TxKeyGaps > 0 {
			c.stats.TxKeyGaps-- // it was counted missing when a later one came first
		}
	}
	c.stats.TxStamps++
	report(index, kind, ts)
}
