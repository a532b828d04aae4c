package utcp

// Input processes one received segment at time now. Segments to another
// local address or port return ErrNotLocal and are otherwise ignored; every
// other segment is handled (possibly dropped and counted, or answered by the
// next Output) and Input returns nil.
func (e *Endpoint) Input(seg Segment, now int64) error {
	seg.Src, seg.Dst = unmapAddrPort(seg.Src), unmapAddrPort(seg.Dst)
	if seg.Dst != e.local {
		return ErrNotLocal
	}
	e.stats.SegmentsReceived++
	switch {
	case e.state == StateListen:
		e.inputListen(&seg, now)
	case e.state == StateClosed || seg.Src != e.remote:
		e.replyRST(&seg)
	case e.state == StateSynSent:
		e.inputSynSent(&seg, now)
	default:
		e.inputSynchronized(&seg, now)
	}
	return nil
}

// replyRST queues the RST owed to a segment that belongs to no connection
// (RFC 9293 3.10.7.1): never for a RST.
func (e *Endpoint) replyRST(seg *Segment) {
	if seg.Flags&flagRST != 0 {
		return
	}
	if e.nrst == len(e.rsts) {
		e.stats.RSTsSuppressed++
		return
	}
	r := rstReply{dst: seg.Src, flags: flagRST}
	if seg.Flags&flagACK != 0 {
		r.seq = seg.Ack
	} else {
		r.ack, r.flags = seg.Seq+seg.seqLen(), flagRST|flagACK
	}
	e.rsts[e.nrst] = r
	e.nrst++
}

func (e *Endpoint) inputListen(seg *Segment, now int64) {
	switch f := seg.Flags; {
	case f&flagRST != 0:
		return
	case f&flagACK != 0:
		e.replyRST(seg)
		return
	case f&flagSYN == 0 || f&flagFIN != 0:
		return
	}
	e.remote = seg.Src
	e.newISN()
	e.irs, e.rcvNxt = seg.Seq, seg.Seq+1
	e.lastAck = e.rcvNxt
	e.negotiate(parseOptions(seg.Options))
	e.rcvRight = e.rcvNxt + e.synWindow()
	e.sndWnd = uint32(seg.Window) // never scaled in a SYN
	e.sndWL1, e.sndWL2 = seg.Seq, e.iss
	e.lastRecv = now
	e.state = StateSynReceived
}

// negotiate applies the options of the peer's SYN or SYN-ACK.
func (e *Endpoint) negotiate(o options) {
	e.tsOK = !e.cfg.NoTimestamps && o.hasTimestamps
	if e.tsOK {
		e.tsRecent = o.tsVal
	}
	e.sackOK = !e.cfg.NoSACKPermitted && o.sackPermitted
	e.wsOK = !e.cfg.NoWindowScale && o.hasWindowScale
	if e.wsOK {
		e.sndScale, e.rcvScale = o.windowScale, e.cfg.WindowScale
	}
	peerMSS := uint32(defaultPeerMSS)
	if o.hasMSS && o.mss > 0 {
		peerMSS = uint32(o.mss)
	}
	e.sndMSS = min(peerMSS, uint32(e.cfg.MSS))
	if e.tsOK {
		e.sndMSS -= timestampOptLen
	}
	e.sndMSS = max(e.sndMSS, 8)
}

func (e *Endpoint) inputSynSent(seg *Segment, now int64) {
	f := seg.Flags
	if f&flagACK != 0 && (seqLE(seg.Ack, e.iss) || seqGT(seg.Ack, e.sndMax)) {
		e.stats.Unacceptable++
		e.replyRST(seg)
		return
	}
	if f&flagRST != 0 {
		if f&flagACK != 0 {
			e.stats.RSTsReceived++
			e.close(ErrRefused)
		}
		return
	}
	if f&flagSYN == 0 || f&flagACK == 0 {
		return // simultaneous open is not supported
	}
	e.irs, e.rcvNxt = seg.Seq, seg.Seq+1
	e.lastAck = e.rcvNxt
	e.negotiate(parseOptions(seg.Options))
	e.rcvRight = e.rcvNxt + e.synWindow()
	e.sndWnd = uint32(seg.Window)
	e.sndWL1, e.sndWL2 = seg.Seq, seg.Ack
	e.ackAdvance(seg.Ack, now)
	e.state = StateEstablished
	e.lastRecv = now
	// Like connect(2) followed by write(2): the handshake's ACK goes out on
	// its own, before any queued data.
	e.handshakeAck = true
}

func (e *Endpoint) inputSynchronized(seg *Segment, now int64) {
	f := seg.Flags
	segLen := seg.seqLen()
	// The peer retransmitted its SYN: our SYN-ACK was lost.
	if e.state == StateSynReceived && f&(flagSYN|flagACK|flagRST) == flagSYN && seg.Seq == e.irs {
		e.sndNxt = e.iss
		return
	}
	o := parseOptions(seg.Options)
	if e.tsOK && o.hasTimestamps && f&flagRST == 0 && seqLT(o.tsVal, e.tsRecent) {
		e.stats.PAWSDropped++
		e.dupAck(false)
		return
	}
	if !e.acceptable(seg.Seq, segLen) {
		if f&flagRST != 0 {
			return
		}
		e.stats.Unacceptable++
		old := segLen > 0 && seqLE(seg.Seq+segLen, e.rcvNxt)
		if old && len(seg.Payload) > 0 {
			e.stats.DuplicatesDropped++
		}
		if e.state == StateTimeWait && f&flagFIN != 0 && e.timeWaitAt != 0 {
			e.timeWaitAt = now + int64(e.cfg.TimeWait)
		}
		e.dupAck(old)
		return
	}
	if f&flagRST != 0 {
		if seg.Seq != e.rcvNxt {
			e.stats.ChallengeAcks++
			e.ackNow = true
			return
		}
		e.stats.RSTsReceived++
		if e.state == StateSynReceived && e.server {
			e.relisten()
			return
		}
		e.close(ErrReset)
		return
	}
	if f&flagSYN != 0 {
		e.stats.ChallengeAcks++
		e.ackNow = true
		return
	}
	if f&flagACK == 0 {
		return
	}
	if e.state == StateSynReceived {
		if !seqGT(seg.Ack, e.sndUna) || seqGT(seg.Ack, e.sndMax) {
			e.stats.Unacceptable++
			e.replyRST(seg)
			return
		}
		e.state = StateEstablished
		e.sndWnd = uint32(seg.Window) << e.sndScale
		e.sndWL1, e.sndWL2 = seg.Seq, seg.Ack
	}
	if !e.processAck(seg, now) {
		return
	}
	if e.state == StateClosed || e.state == StateListen {
		return // our FIN was acknowledged in LAST_ACK
	}
	if e.tsOK && o.hasTimestamps && seqLE(seg.Seq, e.lastAck) {
		e.tsRecent = o.tsVal
	}
	if len(seg.Payload) > 0 {
		e.receiveData(seg, now)
	}
	if f&flagFIN != 0 && !e.finReceived && seg.Seq+uint32(len(seg.Payload)) == e.rcvNxt {
		e.receiveFIN(now)
	}
}

// acceptable is the RFC 9293 3.10.7.4 sequence test against the window last
// advertised.
func (e *Endpoint) acceptable(seq, segLen uint32) bool {
	wnd := uint32(0)
	if seqGT(e.rcvRight, e.rcvNxt) {
		wnd = e.rcvRight - e.rcvNxt
	}
	inWindow := func(s uint32) bool { return seqGE(s, e.rcvNxt) && seqLT(s, e.rcvNxt+wnd) }
	switch {
	case segLen == 0 && wnd == 0:
		return seq == e.rcvNxt
	case segLen == 0:
		return inWindow(seq)
	case wnd == 0:
		return false
	}
	return inWindow(seq) || inWindow(seq+segLen-1)
}

// relisten returns a server whose handshake was reset to LISTEN.
func (e *Endpoint) relisten() {
	fresh := newEndpoint(e.cfg)
	fresh.server = true
	fresh.state = StateListen
	fresh.stats = e.stats
	fresh.sndBuf = append(fresh.sndBuf, e.sndBuf...)
	fresh.rsts, fresh.nrst = e.rsts, e.nrst
	*e = *fresh
}

// processAck handles the ACK field of an acceptable segment in a
// synchronized state. It returns false when the segment must be dropped.
func (e *Endpoint) processAck(seg *Segment, now int64) bool {
	ack := seg.Ack
	wnd := uint32(seg.Window) << e.sndScale
	switch {
	case seqGT(ack, e.sndMax):
		e.stats.AcksOfUnsent++
		e.ackNow = true
		return false
	case seqGT(ack, e.sndUna):
		e.ackAdvance(ack, now)
	case ack == e.sndUna && len(seg.Payload) == 0 && seg.Flags&(flagSYN|flagFIN) == 0 &&
		wnd == e.sndWnd && e.sndMax != e.sndUna:
		e.stats.DupAcksReceived++
		e.dupAcks++
		if e.dupAcks == 3 {
			e.stats.FastRetransmits++
			e.rewind()
		}
	}
	if seqGE(ack, e.sndUna) && (seqLT(e.sndWL1, seg.Seq) || (e.sndWL1 == seg.Seq && seqLE(e.sndWL2, ack))) {
		e.sndWnd, e.sndWL1, e.sndWL2 = wnd, seg.Seq, ack
		if wnd > 0 {
			e.persistAt = 0
		}
	}
	return true
}

// ackAdvance takes newly acknowledged bytes (SYN, data, FIN) off the send queue.
func (e *Endpoint) ackAdvance(ack uint32, now int64) {
	acked := ack - e.sndUna
	if e.sndUna == e.iss {
		acked-- // our SYN
	}
	data := min(int(acked), len(e.sndBuf))
	rest := copy(e.sndBuf, e.sndBuf[data:])
	e.sndBuf = e.sndBuf[:rest]
	e.sndUna = ack
	if seqLT(e.sndNxt, ack) {
		e.sndNxt = ack
	}
	e.dupAcks, e.timeouts = 0, 0
	if e.timing && seqGE(ack, e.timedSeq) {
		e.timing = false
		e.sampleRTT(now - e.timedAt)
	}
	e.rto = e.baseRTO()
	if e.sndUna == e.sndMax {
		e.rtoAt = 0
	} else {
		e.rtoAt = now + e.rto
	}
	if e.finQueued && ack == e.finSeq+1 {
		switch e.state {
		case StateFinWait1:
			e.state = StateFinWait2
			e.finWait2At = now + int64(finWait2Timeout)
		case StateClosing:
			e.enterTimeWait(now)
		case StateLastAck:
			e.close(nil)
		}
	}
}

// rewind resends go-back-N from the first unacknowledged byte.
func (e *Endpoint) rewind() {
	e.sndNxt = e.sndUna
	e.timing = false
	e.dupAcks = 0
}

func (e *Endpoint) enterTimeWait(now int64) {
	e.rtoAt, e.persistAt, e.finWait2At = 0, 0, 0
	if e.cfg.TimeWait < 0 {
		e.close(nil)
		return
	}
	e.state = StateTimeWait
	e.timeWaitAt = now + int64(e.cfg.TimeWait)
}

// receiveData delivers the in-order part of an acceptable segment's payload.
func (e *Endpoint) receiveData(seg *Segment, now int64) {
	if e.state != StateEstablished && e.state != StateFinWait1 && e.state != StateFinWait2 {
		return // after the peer's FIN
	}
	if seqGT(seg.Seq, e.rcvNxt) {
		e.stats.OutOfOrderDropped++
		e.dupAck(true)
		return
	}
	data := seg.Payload
	skip := e.rcvNxt - seg.Seq
	if uint64(skip) >= uint64(len(data)) {
		e.stats.DuplicatesDropped++
		e.dupAck(true)
		return
	}
	data = data[skip:]
	if free := int(e.freeSpace()); len(data) > free {
		e.stats.TrimmedBytes += uint64(len(data) - free)
		data = data[:free]
		e.ackNow = true
	}
	if len(data) == 0 {
		return
	}
	e.rcvBuf = append(e.rcvBuf, data...)
	e.rcvNxt += uint32(len(data))
	e.stats.BytesDelivered += uint64(len(data))
	if n := uint32(len(seg.Payload)); n > e.rcvMSS {
		e.rcvMSS = min(n, uint32(e.cfg.MSS))
	}
	e.dataReceived(now)
}

// dataReceived applies the ACK policy to new in-order data (Linux
// tcp_event_data_recv and __tcp_ack_snd_check).
func (e *Endpoint) dataReceived(now int64) {
	atoMin := int64(e.cfg.DelayedAck)
	if e.ato == 0 {
		e.ato = atoMin
		e.incrQuickAck()
	} else {
		switch m := now - e.lastRecv; {
		case m <= atoMin/2:
			e.ato = e.ato/2 + atoMin/2
		case m < e.ato:
			e.ato = min(e.ato/2+m, e.rto)
		case m > e.rto:
			e.incrQuickAck()
		}
	}
	e.lastRecv = now
	if e.rcvNxt-e.lastAck > e.rcvMSS || (e.quick > 0 && !e.pingpong) {
		e.ackNow = true
		return
	}
	if e.delackAt == 0 {
		limit := max(e.srtt, atoMin)
		limit = min(limit, int64(maxDelayedAck))
		e.delackAt = now + min(e.ato, limit)
	}
}

// incrQuickAck grants the quick-ACK budget (Linux tcp_incr_quickack with
// the initial rcv_mss estimate of 536 bytes).
func (e *Endpoint) incrQuickAck() {
	q := int(uint32(cap(e.rcvBuf)) / (2 * defaultPeerMSS))
	q = min(max(q, 2), maxQuickAcks)
	e.quick = max(e.quick, q)
}

// dupAck schedules an immediate duplicate ACK; for duplicate or
// out-of-order data it also re-enters quick-ACK mode (Linux
// tcp_enter_quickack_mode).
func (e *Endpoint) dupAck(quick bool) {
	e.ackNow = true
	e.dupAckPending = true
	if quick {
		e.incrQuickAck()
		e.pingpong = false
		e.ato = int64(e.cfg.DelayedAck)
	}
}

// receiveFIN consumes the peer's FIN.
func (e *Endpoint) receiveFIN(now int64) {
	e.finReceived = true
	e.rcvNxt++
	e.ackNow = true
	switch e.state {
	case StateEstablished:
		e.state = StateCloseWait
	case StateFinWait1:
		if e.sndUna == e.finSeq+1 {
			e.enterTimeWait(now)
		} else {
			e.state = StateClosing
		}
	case StateFinWait2:
		e.enterTimeWait(now)
	}
}
