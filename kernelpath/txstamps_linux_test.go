package kernelpath

import (
	"slices"
	"testing"
	"time"

	"github.com/stackgap/stackgap/bench"
	"golang.org/x/sys/unix"
)

// rawKeys reads the error queue directly and returns the OPT_ID keys of the
// stamps by SCM_TSTAMP_* type, waiting up to a second for want stamps in all.
func rawKeys(t *testing.T, c *Conn, want int) map[uint32][]uint32 {
	t.Helper()
	keys := map[uint32][]uint32{}
	for n, end := 0, time.Now().Add(time.Second); n < want && time.Now().Before(end); {
		_, oobn, _, _, errno := c.recvmsg(nil, c.errControl[:], unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT, false)
		if errno == unix.EAGAIN {
			time.Sleep(time.Millisecond)
			continue
		}
		if errno != 0 {
			t.Fatal(errno)
		}
		var ci controlInfo
		if err := parseControl(c.errControl[:oobn], &ci); err != nil || !ci.hasExtErr || !ci.hasStamps {
			t.Fatalf("error queue message without stamp: %+v, %v", ci, err)
		}
		if ci.extErr.Origin == unix.SO_EE_ORIGIN_TIMESTAMPING {
			keys[ci.extErr.Info] = append(keys[ci.extErr.Info], ci.extErr.Data)
			n++
		}
	}
	return keys
}

// TestTCPTimestampKeyIsLastByte records what the kernel uses as the OPT_ID key
// of a TCP TX stamp: the 0-based stream offset of the last byte of the write.
func TestTCPTimestampKeyIsLastByte(t *testing.T) {
	_, sender, _ := openPair(t, Options{Transport: TCP, Timestamping: true}, loopback4)
	sizes := []int{64, 64, 18, 1000}
	var want []uint32
	var offset uint32
	for i, size := range sizes {
		p := make([]byte, size)
		bench.MarshalProbe(p, 7, uint64(i))
		if _, err := sender.Send(p); err != nil {
			t.Fatal(err)
		}
		offset += uint32(size)
		want = append(want, offset-1)
	}
	keys := rawKeys(t, sender, 2*len(sizes))
	for _, info := range []uint32{unix.SCM_TSTAMP_SCHED, unix.SCM_TSTAMP_SND} {
		if got := keys[info]; !slices.Equal(got, want) {
			t.Errorf("TCP keys of SCM_TSTAMP %d: got %v, want the last byte of each write %v", info, got, want)
		}
	}
}

func TestUDPTimestampKeyIsSendCounter(t *testing.T) {
	_, sender, _ := openPair(t, Options{Transport: UDP, Timestamping: true}, loopback4)
	p := make([]byte, 100)
	for i := range 4 {
		bench.MarshalProbe(p, 7, uint64(i))
		if _, err := sender.Send(p); err != nil {
			t.Fatal(err)
		}
	}
	keys := rawKeys(t, sender, 8)
	for _, info := range []uint32{unix.SCM_TSTAMP_SCHED, unix.SCM_TSTAMP_SND} {
		if got, want := keys[info], []uint32{0, 1, 2, 3}; !slices.Equal(got, want) {
			t.Errorf("UDP keys of SCM_TSTAMP %d: got %v, want %v", info, got, want)
		}
	}
}

func TestSendLogLookup(t *testing.T) {
	var l sendLog
	if _, _, ok := l.lookup(0); ok {
		t.Fatal("lookup in an empty log matched")
	}
	for _, size := range []int{10, 20, 5} { // sends 0: bytes 0-9, 1: 10-29, 2: 30-34
		l.record(size)
	}
	tests := []struct {
		key      uint32
		index    uint64
		last, ok bool
	}{
		{9, 0, true, true},
		{0, 0, false, true},
		{29, 1, true, true},
		{15, 1, false, true},
		{34, 2, true, true},
		{35, 0, false, false},
		{1 << 31, 0, false, false},
	}
	for _, tt := range tests {
		index, last, ok := l.lookup(tt.key)
		if index != tt.index || last != tt.last || ok != tt.ok {
			t.Errorf("lookup(%d) = (%d, %v, %v), want (%d, %v, %v)", tt.key, index, last, ok, tt.index, tt.last, tt.ok)
		}
	}
}

func TestSendLogWraps(t *testing.T) {
	// Keys are 32-bit stream offsets: they must still match after 4 GiB.
	var l sendLog
	const size = 60000
	for l.total < 1<<32+3*size {
		l.record(size)
	}
	newest := l.n - 1
	key := uint32(l.total - 1)
	if index, last, ok := l.lookup(key); index != newest || !last || !ok {
		t.Errorf("lookup(%d) after wrapping = (%d, %v, %v), want (%d, true, true)", key, index, last, ok, newest)
	}
	// A send older than the log no longer matches.
	if _, _, ok := l.lookup(uint32(l.starts[(l.n-sendLogSize)%sendLogSize] - 1)); ok {
		t.Error("a send older than the log matched")
	}
}

func TestUnwrapKey(t *testing.T) {
	tests := []struct {
		count uint64
		key   uint32
		full  uint64
		ok    bool
	}{
		{0, 0, 0, false},
		{1, 0, 0, true},
		{5, 3, 3, true},
		{5, 5, 0, false}, // not issued yet
		{1 << 31, 0, 0, true},
		{1<<31 + 2, 0, 0, false}, // more than 2^31 behind
		{1<<32 + 10, 9, 1<<32 + 9, true},
		{1<<32 + 10, 0xffffffff, 1<<32 - 1, true},
		{3<<32 + 1, 0, 3 << 32, true},
		{3<<32 + 1, 0xfffffff0, 3<<32 - 16, true},
	}
	for _, tt := range tests {
		full, ok := unwrapKey(tt.key, tt.count)
		if full != tt.full || ok != tt.ok {
			t.Errorf("after %d issued, key %#x: got (%d, %v), want (%d, %v)", tt.count, tt.key, full, ok, tt.full, tt.ok)
		}
	}
}

func TestStampedLog(t *testing.T) {
	var l stampedLog
	if _, ok := l.ordinalOf(0); ok {
		t.Fatal("lookup in an empty log matched")
	}
	// Every 3rd send stamped, past the log's size and 2^32 sends.
	const first = 1<<32 - 3*stampedLogSize
	for i := uint64(0); i < 2*stampedLogSize; i++ {
		l.record(first + 3*i)
	}
	newest := l.n - 1
	tests := []struct {
		index   uint64
		ordinal uint64
		ok      bool
	}{
		{first + 3*newest, newest, true},
		{first + 3*(newest-1), newest - 1, true},
		{first + 3*(newest-stampedLogSize+1), newest - stampedLogSize + 1, true}, // oldest logged
		{first + 3*(newest-stampedLogSize), 0, false},                            // overwritten
		{first + 3*newest - 1, 0, false},                                         // an unstamped send
		{first + 3*newest + 3, 0, false},                                         // not made yet
	}
	for _, tt := range tests {
		ordinal, ok := l.ordinalOf(tt.index)
		if ordinal != tt.ordinal || ok != tt.ok {
			t.Errorf("ordinalOf(%d) = (%d, %v), want (%d, %v)", tt.index, ordinal, ok, tt.ordinal, tt.ok)
		}
		if !tt.ok {
			continue
		}
		if index, ok := l.indexOf(tt.ordinal); index != tt.index || !ok {
			t.Errorf("indexOf(%d) = (%d, %v), want (%d, true)", tt.ordinal, index, ok, tt.index)
		}
	}
	if _, ok := l.indexOf(newest - stampedLogSize); ok {
		t.Error("indexOf an overwritten ordinal matched")
	}
	l.record(noSend)
	if _, ok := l.indexOf(l.n - 1); ok {
		t.Error("indexOf an ordinal the kernel used up for a failed send matched")
	}
}

// TestPlaceStampKeys maps keys of every kind of numbering to sends, with every
// 2nd send stamped, across the 2^32 wrap of the keys.
func TestPlaceStampKeys(t *testing.T) {
	var sends uint64 = 1<<32 + 6 // sends 1<<32-6 … 1<<32+5 made; the even ones stamped
	newConnAt := func(transport Transport, keyBySend bool) *Conn {
		c := newConn(-1, unix.AF_INET, Options{Transport: transport, Timestamping: true}, true)
		c.keyBySend = keyBySend
		if c.log != nil {
			c.log.n = sends - 12 // as if those sends had been made, with no bytes
		}
		for i := sends - 12; i < sends; i++ {
			if i%2 == 0 {
				c.stamped.record(i)
			}
			if c.log != nil {
				c.log.record(10)
			}
		}
		c.sends = sends
		// The kernel's counter of stamped sends equals c.stamped.n here.
		return c
	}
	type want struct {
		ordinal, index uint64
		partial, ok    bool
	}
	tests := []struct {
		name      string
		transport Transport
		keyBySend bool
		key       uint32
		want      want
	}{
		{"udp key = send index", UDP, true, uint32(sends - 2), want{5, sends - 2, false, true}},
		{"udp key = send index, before the wrap", UDP, true, 0xfffffffa, want{0, sends - 12, false, true}},
		{"udp key of an unstamped send", UDP, true, uint32(sends - 1), want{}},
		{"udp key of a send not made", UDP, true, uint32(sends), want{}},
		{"udp fallback: key = stamped ordinal", UDP, false, 5, want{5, sends - 2, false, true}},
		{"udp fallback: oldest", UDP, false, 0, want{0, sends - 12, false, true}},
		{"udp fallback: ordinal not made", UDP, false, 6, want{}},
		{"tcp last byte of a stamped send", TCP, false, 109, want{5, sends - 2, false, true}},
		{"tcp partial write of a stamped send", TCP, false, 105, want{0, sends - 2, true, true}},
		{"tcp last byte of an unstamped send", TCP, false, 119, want{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newConnAt(tt.transport, tt.keyBySend)
			var got want
			got.ordinal, got.index, got.partial, got.ok = c.placeStamp(tt.key)
			if got != tt.want {
				t.Errorf("placeStamp(%d) = %+v, want %+v", tt.key, got, tt.want)
			}
		})
	}
}

// TestTxStampsCountsUnplaceable feeds TxStamps a stamp whose key matches no
// send: it must be counted, not reported.
func TestTxStampsCountsUnplaceable(t *testing.T) {
	_, sender, _ := openPair(t, Options{Transport: UDP, Timestamping: true}, loopback6)
	p := make([]byte, 64)
	bench.MarshalProbe(p, 1, 0)
	if _, err := sender.Send(p); err != nil {
		t.Fatal(err)
	}
	sender.sends = 0 // forget the send: its stamps can no longer be placed
	rec := newTxRecord()
	deadline := time.Now().Add(time.Second)
	for sender.Stats().TxUnmatched < 2 && time.Now().Before(deadline) {
		if err := sender.TxStamps(rec.report); err != nil {
			t.Fatal(err)
		}
	}
	if got := sender.Stats().TxUnmatched; got != 2 || len(rec.stamps) != 0 {
		t.Errorf("unmatched stamps counted %d, reported %d; want 2 counted, none reported", got, len(rec.stamps))
	}
}

// TestDispatchStamp covers stamp kinds that loopback cannot produce, such as
// hardware stamps, with synthetic error-queue messages.
func TestDispatchStamp(t *testing.T) {
	const sw, hw = 1_795_000_000_000_000_100, 5_000_000_123
	stamp := func(info, key uint32, ts ...int64) controlInfo {
		ci := controlInfo{hasExtErr: true, extErr: unix.SockExtendedErr{
			Errno: uint32(unix.ENOMSG), Origin: unix.SO_EE_ORIGIN_TIMESTAMPING, Info: info, Data: key}}
		if len(ts) > 0 {
			ci.hasStamps = true
			copy(ci.stamps[:], ts)
		}
		return ci
	}
	type reported struct {
		index uint64
		kind  bench.TxStampKind
		ts    int64
	}
	tests := []struct {
		name  string
		tcp   bool
		msg   controlInfo
		want  []reported
		stats Stats
	}{
		{"udp software", false, stamp(unix.SCM_TSTAMP_SND, 1, sw), []reported{{1, bench.TxSoftware, sw}},
			Stats{TxStamps: 1, TxKeyGaps: 1}},
		{"udp hardware alone (OPT_TX_SWHW)", false, stamp(unix.SCM_TSTAMP_SND, 0, 0, 0, hw), []reported{{0, bench.TxHardware, hw}},
			Stats{TxStamps: 1}},
		{"software and hardware together", false, stamp(unix.SCM_TSTAMP_SND, 2, sw, 0, hw),
			[]reported{{2, bench.TxSoftware, sw}, {2, bench.TxHardware, hw}}, Stats{TxStamps: 2, TxKeyGaps: 4}},
		{"sched", false, stamp(unix.SCM_TSTAMP_SCHED, 0, sw), []reported{{0, bench.TxSched, sw}}, Stats{TxStamps: 1}},
		{"ack is not reported", false, stamp(unix.SCM_TSTAMP_ACK, 0, sw), nil, Stats{TxUnknownKind: 1}},
		{"no time", false, stamp(unix.SCM_TSTAMP_SND, 0), nil, Stats{TxUnknownKind: 1}},
		{"zero times", false, stamp(unix.SCM_TSTAMP_SND, 0, 0, 0, 0), nil, Stats{TxUnknownKind: 1}},
		{"udp key of a send not made", false, stamp(unix.SCM_TSTAMP_SND, 3, sw), nil, Stats{TxUnmatched: 1}},
		{"tcp last byte of send 1", true, stamp(unix.SCM_TSTAMP_SND, 29, sw), []reported{{1, bench.TxSoftware, sw}},
			Stats{TxStamps: 1, TxKeyGaps: 1}},
		{"tcp end of a partial write", true, stamp(unix.SCM_TSTAMP_SND, 20, sw), nil, Stats{TxPartialWrite: 1}},
		{"tcp key beyond the stream", true, stamp(unix.SCM_TSTAMP_SND, 100, sw), nil, Stats{TxUnmatched: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := threeStampedSends(tt.tcp)
			var got []reported
			c.dispatchStamp(&tt.msg, func(index uint64, kind bench.TxStampKind, ts int64) {
				got = append(got, reported{index, kind, ts})
			})
			if !slices.Equal(got, tt.want) {
				t.Errorf("reported %v, want %v", got, tt.want)
			}
			if c.stats != tt.stats {
				t.Errorf("unexpected stats (-want +got):\n-%+v\n+%+v", tt.stats, c.stats)
			}
		})
	}
}

// threeStampedSends returns a Conn that made three stamped sends (TCP: of
// 10, 20 and 5 bytes), without a socket.
func threeStampedSends(tcp bool) *Conn {
	c := &Conn{keyBySend: !tcp}
	if tcp {
		c.log = new(sendLog)
	}
	for i, size := range []int{10, 20, 5} {
		if tcp {
			c.log.record(size)
		}
		c.stamped.record(uint64(i))
		c.sends++
	}
	return c
}

func TestLateStampTakesGapBack(t *testing.T) {
	c := threeStampedSends(false)
	report := func(uint64, bench.TxStampKind, int64) {}
	for _, key := range []uint32{0, 2, 1} {
		ci := controlInfo{hasExtErr: true, hasStamps: true, stamps: [3]int64{int64(key) + 1},
			extErr: unix.SockExtendedErr{Origin: unix.SO_EE_ORIGIN_TIMESTAMPING, Info: unix.SCM_TSTAMP_SND, Data: key}}
		c.dispatchStamp(&ci, report)
	}
	if want := (Stats{TxStamps: 3, TxLate: 1}); c.stats != want {
		t.Errorf("unexpected stats (-want +got):\n-%+v\n+%+v", want, c.stats)
	}
}
