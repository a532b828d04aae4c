package xdp

import "github.com/stackgap/stackgap/bench"

var _ bench.StampDeclarer = (*udpConn)(nil)

// Stamps declares what an AF_XDP session stamps (bench.StampDeclarer): on
// transmit the completion stamp (copy mode: the kernel's software completion
// time; zero-copy: the NIC's TX timestamp from the TX metadata), on receive
// the XDP program's stamp and, with a device-bound program, the NIC's RX stamp.
// Without ConnSpec.Timestamping it takes no stamps at all: no TX completion
// stamps, and the XDP program's metadata is not read.
func (c *udpConn) Stamps() bench.StampSet { return c.s.stamps() }

func (s *session) stamps() bench.StampSet {
	var set bench.StampSet
	if s.txStamp {
		if s.sock.Mode() == ModeZeroCopy {
			set.Tx = []bench.TxStampKind{bench.TxHardware}
		} else {
			set.Tx = []bench.TxStampKind{bench.TxCompletion}
		}
	}
	if !s.rxStamps {
		return set
	}
	if s.steer.HardwareRX() {
		set.Rx = append(set.Rx, bench.RxHardware)
	}
	set.Rx = append(set.Rx, bench.RxXDP)
	return set
}
