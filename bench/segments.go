package bench

import (
	"time"

	"github.com/stackgap/stackgap/results"
)

// A segment is the time between two neighbouring stamps of a probe's path on
// one host. Its histogram is named after its two boundaries, e.g.
// "tx.user_to_sched" or "rx.xdp_to_user".

// txBoundary names a TX stamp in histogram names; 0 is the user-space stamp.
func txBoundary(k TxStampKind) string {
	switch k {
	case 0:
		return "user"
	case TxSched:
		return "sched"
	case TxSoftware:
		return "driver"
	case TxCompletion:
		return "completion"
	case TxHardware:
		return "wire"
	}
	return "unknown"
}

func txSource(k TxStampKind) string {
	switch k {
	case 0:
		return results.SourceUser
	case TxHardware:
		return results.SourceHW
	}
	return results.SourceSW
}

// rxBoundary names an RX stamp in histogram names; 0 is the user-space stamp.
func rxBoundary(k RxStampKind) string {
	switch k {
	case 0:
		return "user"
	case RxHardware:
		return "wire"
	case RxXDP:
		return "xdp"
	case RxSoftware:
		return "stack"
	}
	return "unknown"
}

func rxSource(k RxStampKind) string {
	switch k {
	case 0:
		return results.SourceUser
	case RxHardware:
		return results.SourceHW
	case RxXDP:
		return results.SourceBPF
	}
	return results.SourceSW
}

// segmentSource is the source of a segment's values: the stamp source other
// than user space, or "mixed" when two different non-user sources meet.
func segmentSource(a, b string) string {
	switch {
	case a == b:
		return a
	case a == results.SourceUser:
		return b
	case b == results.SourceUser:
		return a
	}
	return results.SourceMixed
}

var txLayers = map[[2]TxStampKind]string{
	{0, TxSched}:               "syscall → socket → protocol → device layer (TX)",
	{TxSched, TxSoftware}:      "qdisc/device layer → driver (TX)",
	{TxSoftware, TxHardware}:   "driver → NIC → wire (TX)",
	{TxSched, TxHardware}:      "qdisc/device layer → driver → NIC → wire (TX)",
	{0, TxSoftware}:            "syscall → socket → protocol → device layer → driver (TX)",
	{0, TxCompletion}:          "AF_XDP TX ring → kernel copy-mode transmit → completion (software completion stamp, not a wire time)",
	{0, TxHardware}:            "user → NIC → wire (TX)",
	{TxCompletion, TxHardware}: "completion → wire (TX)",
}

var rxLayers = map[[2]RxStampKind]string{
	{RxHardware, RxXDP}:      "wire → NIC → driver XDP hook (RX)",
	{RxHardware, RxSoftware}: "wire → NIC → driver → device layer (RX)",
	{RxXDP, 0}:               "XDP redirect → AF_XDP socket → user (RX)",
	{RxSoftware, 0}:          "device layer → protocol → socket → user (RX)",
	{RxXDP, RxSoftware}:      "XDP hook → device layer (RX)",
	{RxHardware, 0}:          "wire → user (RX)",
}

// txChain is a host's TX segments: the user stamp, then the declared kinds.
type txChain struct {
	kinds  []TxStampKind // kinds[0] == 0, the user stamp
	series []*results.Series
}

func newTxChain(host string, declared []TxStampKind, start time.Time) txChain {
	c := txChain{kinds: append([]TxStampKind{0}, declared...)}
	for i := 1; i < len(c.kinds); i++ {
		a, b := c.kinds[i-1], c.kinds[i]
		c.series = append(c.series, results.NewSeries("tx."+txBoundary(a)+"_to_"+txBoundary(b), host,
			segmentSource(txSource(a), txSource(b)), txLayers[[2]TxStampKind{a, b}], start))
	}
	return c
}

// rxChain is a host's RX segments: the declared kinds, then the user stamp.
type rxChain struct {
	kinds  []RxStampKind // last is 0, the user stamp
	series []*results.Series
}

func newRxChain(host string, declared []RxStampKind, start time.Time) rxChain {
	c := rxChain{kinds: append(append([]RxStampKind(nil), declared...), 0)}
	for i := 1; i < len(c.kinds); i++ {
		a, b := c.kinds[i-1], c.kinds[i]
		c.series = append(c.series, results.NewSeries("rx."+rxBoundary(a)+"_to_"+rxBoundary(b), host,
			segmentSource(rxSource(a), rxSource(b)), rxLayers[[2]RxStampKind{a, b}], start))
	}
	return c
}

// record records one measured probe's RX segments, counting absent declared
// stamps and out-of-order pairs in missing.
func (c *rxChain) record(rx *RxStamps, missing map[string]uint64) {
	prev := int64(0)
	for i, k := range c.kinds {
		ts := rx.User
		if k != 0 {
			ts = rx.of(k)
		}
		if ts == 0 {
			missing[k.String()]++
			prev = 0
			continue
		}
		if i > 0 && prev != 0 {
			if ts < prev {
				missing["out_of_order"]++
			} else {
				c.series[i-1].Record(ts - prev)
			}
		}
		prev = ts
	}
}

// first returns the earliest declared RX stamp present, or 0.
func (c *rxChain) first(rx *RxStamps) int64 {
	for _, k := range c.kinds[:len(c.kinds)-1] {
		if ts := rx.of(k); ts != 0 {
			return ts
		}
	}
	return 0
}
