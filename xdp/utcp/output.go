package utcp

// Output runs the timers due at now and emits, through emit, every segment
// that is due: RST replies, the SYN or SYN-ACK, data (new and
// retransmitted), FIN and ACKs. A segment counts as sent only when emit
// returns nil; on an error Output stops and returns it, and the next call
// tries again. See Segment for how long an emitted segment's slices live.
func (e *Endpoint) Output(now int64, emit func(Segment) error) error {
	for e.nrst > 0 {
		if err := e.sendRST(emit, now, e.rsts[0], false); err != nil {
			return err
		}
		copy(e.rsts[:], e.rsts[1:e.nrst])
		e.nrst--
	}
	if e.abortPending {
		if err := e.sendRST(emit, now, e.abort, e.tsOK); err != nil {
			return err
		}
		e.abortPending = false
	}
	if e.state == StateClosed || e.state == StateListen {
		return nil
	}
	e.runTimers(now)
	switch e.state {
	case StateClosed:
		return nil
	case StateSynSent:
		if e.sndNxt == e.iss {
			return e.send(emit, now, flagSYN, e.iss, nil)
		}
		return nil
	case StateSynReceived:
		if e.sndNxt == e.iss {
			if err := e.send(emit, now, flagSYN|flagACK, e.iss, nil); err != nil {
				return err
			}
		}
	default:
		if e.handshakeAck {
			if err := e.send(emit, now, flagACK, e.sndNxt, nil); err != nil {
				return err
			}
			e.handshakeAck = false
		}
		if err := e.sendData(emit, now); err != nil {
			return err
		}
	}
	if e.ackNow {
		return e.send(emit, now, flagACK, e.sndNxt, nil)
	}
	return nil
}

// runTimers handles the timers that expired at now.
func (e *Endpoint) runTimers(now int64) {
	if e.timeWaitAt != 0 && now >= e.timeWaitAt {
		e.close(nil)
		return
	}
	if e.finWait2At != 0 && now >= e.finWait2At {
		e.close(nil)
		return
	}
	if e.rtoAt != 0 && now >= e.rtoAt {
		e.rtoAt = 0
		e.stats.Timeouts++
		e.timeouts++
		limit := dataRetries
		if e.state == StateSynSent || e.state == StateSynReceived {
			limit = synRetries
		}
		if e.timeouts > limit {
			e.close(ErrTimeout)
			return
		}
		e.rto = min(2*e.rto, int64(maxRTO))
		e.rewind()
	}
	if e.persistAt != 0 && now >= e.persistAt {
		e.persistAt = 0
		e.probeOne = true
		e.stats.WindowProbes++
	}
	if e.delackAt != 0 && now >= e.delackAt {
		e.delackAt = 0
		if e.pingpong {
			// The answer missed the timer: not interactive after all.
			e.pingpong = false
			e.ato = int64(e.cfg.DelayedAck)
		} else {
			e.ato = min(2*e.ato, e.rto)
		}
		e.ackNow = true
		e.delackFired = true
	}
}

// sendData emits the queued data the peer's window allows, then the FIN.
func (e *Endpoint) sendData(emit func(Segment) error, now int64) error {
	for {
		dataEnd := e.sndUna + uint32(len(e.sndBuf))
		if e.finQueued {
			dataEnd = e.finSeq
		}
		if seqLT(e.sndNxt, dataEnd) {
			wndEnd := e.sndUna + e.sndWnd
			n := min(dataEnd-e.sndNxt, e.sndMSS)
			switch {
			case seqLT(e.sndNxt, wndEnd):
				n = min(n, wndEnd-e.sndNxt)
			case e.probeOne && e.sndNxt == e.sndUna:
				n = 1
			default:
				if e.sndNxt == e.sndUna && e.rtoAt == 0 && e.persistAt == 0 {
					e.persistAt = now + e.rto
				}
				return nil
			}
			e.probeOne = false
			off := e.sndNxt - e.sndUna
			flags := uint8(flagACK)
			if e.sndNxt+n == dataEnd {
				flags |= flagPSH
				if e.finQueued {
					flags |= flagFIN
				}
			}
			if err := e.send(emit, now, flags, e.sndNxt, e.sndBuf[off:off+n]); err != nil {
				return err
			}
			continue
		}
		if e.finQueued && e.sndNxt == e.finSeq {
			if err := e.send(emit, now, flagFIN|flagACK, e.sndNxt, nil); err != nil {
				return err
			}
			continue
		}
		return nil
	}
}

// synWindow is the window of a SYN or SYN-ACK: the receive buffer up to
// 65535, rounded down to a multiple of the MSS the peer will send (Linux
// tcp_select_initial_window: 64240 in a SYN and 65160 in a SYN-ACK with
// timestamps, for MSS 1460).
func (e *Endpoint) synWindow() uint32 {
	w := min(uint32(cap(e.rcvBuf)), 0xffff)
	mss := uint32(e.cfg.MSS)
	if e.state != StateSynSent && e.tsOK { // SYN-ACK: the peer's TS option is known
		mss -= timestampOptLen
	}
	if w > mss {
		w -= w % mss
	}
	return w
}

// window returns the window field to advertise and the window in bytes:
// the free receive buffer, rounded down to the scale unit, but never moving
// the right edge left (Linux tcp_select_window).
func (e *Endpoint) window() (field uint16, bytes uint32) {
	unit := uint32(1) << e.rcvScale
	win := e.freeSpace() &^ (unit - 1)
	if seqGT(e.rcvRight, e.rcvNxt) {
		if cur := e.rcvRight - e.rcvNxt; win < cur {
			win = (cur + unit - 1) &^ (unit - 1)
		}
	}
	win = min(win, uint32(0xffff)<<e.rcvScale)
	return uint16(win >> e.rcvScale), win
}

// send emits one segment of the connection and commits its effects.
func (e *Endpoint) send(emit func(Segment) error, now int64, flags uint8, seq uint32, payload []byte) error {
	seg := Segment{Src: e.local, Dst: e.remote, Seq: seq, Flags: flags, Payload: payload}
	var wnd uint32
	if flags&flagSYN != 0 {
		wnd = e.synWindow()
		seg.Window = uint16(wnd)
		o := synOptions{mss: e.cfg.MSS, tsVal: e.tsNow(now)}
		if e.state == StateSynSent {
			o.timestamps, o.sack, o.winScale = !e.cfg.NoTimestamps, !e.cfg.NoSACKPermitted, !e.cfg.NoWindowScale
		} else {
			o.timestamps, o.sack, o.winScale, o.tsEcr = e.tsOK, e.sackOK, e.wsOK, e.tsRecent
		}
		o.windowScale = e.cfg.WindowScale
		seg.Options = e.opt[:writeSYNOptions(e.opt[:], o)]
	} else {
		seg.Window, wnd = e.window()
		if e.tsOK {
			seg.Options = e.opt[:writeTimestampOption(e.opt[:], e.tsNow(now), e.tsRecent)]
		}
	}
	if flags&flagACK != 0 {
		seg.Ack = e.rcvNxt
	}
	if err := emit(seg); err != nil {
		return err
	}
	e.stats.SegmentsSent++
	if flags&flagACK != 0 {
		if e.rcvNxt != e.lastAck && e.quick > 0 {
			if e.quick--; e.quick == 0 {
				e.ato = int64(e.cfg.DelayedAck)
			}
		}
		e.lastAck = e.rcvNxt
		e.rcvRight = e.rcvNxt + wnd
		if e.dupAckPending {
			e.stats.DupAcksSent++
			e.dupAckPending = false
		}
		if e.delackFired {
			e.stats.DelayedAcks++
			e.delackFired = false
		}
		e.ackNow, e.delackAt = false, 0
	}
	segLen := seg.seqLen()
	switch {
	case len(payload) > 0:
		e.stats.DataSegmentsSent++
		if e.ato != 0 && now-e.lastRecv < e.ato {
			e.pingpong = true // an answer within ato: interactive traffic
		}
	case flags == flagACK:
		e.stats.PureAcksSent++
	}
	if segLen == 0 {
		return nil
	}
	end := seq + segLen
	if seqLT(seq, e.sndMax) {
		e.stats.Retransmits++
	} else if !e.timing {
		e.timing, e.timedSeq, e.timedAt = true, end, now
	}
	if dataEnd := seq + uint32(len(payload)); seqGT(dataEnd, e.sndMax) {
		e.stats.BytesSent += uint64(dataEnd - max32seq(seq, e.sndMax))
	}
	e.sndNxt = end
	if seqGT(end, e.sndMax) {
		e.sndMax = end
	}
	if e.rtoAt == 0 {
		e.rtoAt = now + e.rto
	}
	return nil
}

// max32seq is the later of two sequence numbers.
func max32seq(a, b uint32) uint32 {
	if seqGT(a, b) {
		return a
	}
	return b
}

// sendRST emits a RST; withTS adds the timestamp option (an active reset of
// a connection that negotiated timestamps, like Linux).
func (e *Endpoint) sendRST(emit func(Segment) error, now int64, r rstReply, withTS bool) error {
	seg := Segment{Src: e.local, Dst: r.dst, Seq: r.seq, Ack: r.ack, Flags: r.flags}
	if withTS {
		seg.Options = e.opt[:writeTimestampOption(e.opt[:], e.tsNow(now), e.tsRecent)]
	}
	if err := emit(seg); err != nil {
		return err
	}
	e.stats.SegmentsSent++
	e.stats.RSTsSent++
	return nil
}
