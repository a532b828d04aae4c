package bench

import (
	"reflect"
	"testing"
	"time"
)

func TestChainNames(t *testing.T) {
	start := time.Unix(0, 0)
	tests := []struct {
		set    StampSet
		tx, rx []string
	}{
		{StampSet{}, nil, nil},
		{StampSet{Tx: []TxStampKind{TxSched, TxSoftware}, Rx: []RxStampKind{RxSoftware}},
			[]string{"tx.user_to_sched/sw", "tx.sched_to_driver/sw"}, []string{"rx.stack_to_user/sw"}},
		{StampSet{Tx: []TxStampKind{TxCompletion}, Rx: []RxStampKind{RxHardware, RxXDP}},
			[]string{"tx.user_to_completion/sw"}, []string{"rx.wire_to_xdp/mixed", "rx.xdp_to_user/bpf"}},
		{StampSet{Tx: []TxStampKind{TxSched, TxSoftware, TxHardware}},
			[]string{"tx.user_to_sched/sw", "tx.sched_to_driver/sw", "tx.driver_to_wire/mixed"}, nil},
	}
	for _, tt := range tests {
		var tx, rx []string
		for _, s := range newTxChain("sender", tt.set.Tx, start).series {
			tx = append(tx, s.Name+"/"+s.Source)
			if s.Layer == "" {
				t.Errorf("%s has no layer description", s.Name)
			}
		}
		for _, s := range newRxChain("sender", tt.set.Rx, start).series {
			rx = append(rx, s.Name+"/"+s.Source)
			if s.Layer == "" {
				t.Errorf("%s has no layer description", s.Name)
			}
		}
		if !reflect.DeepEqual(tx, tt.tx) || !reflect.DeepEqual(rx, tt.rx) {
			t.Errorf("%+v: tx %v rx %v, want %v %v", tt.set, tx, rx, tt.tx, tt.rx)
		}
	}
}

func TestRxChainRecord(t *testing.T) {
	c := newRxChain("sender", []RxStampKind{RxHardware, RxXDP}, time.Unix(0, 0))
	missing := map[string]uint64{}
	c.record(&RxStamps{Hardware: 100, XDPHook: 150, User: 400}, missing)
	c.record(&RxStamps{XDPHook: 150, User: 300}, missing)                // no hardware stamp
	c.record(&RxStamps{Hardware: 200, XDPHook: 150, User: 300}, missing) // out of order
	if got := []uint64{c.series[0].Count(), c.series[1].Count()}; !reflect.DeepEqual(got, []uint64{1, 3}) {
		t.Fatalf("counts %v", got)
	}
	if missing["rx_hardware"] != 1 || missing["out_of_order"] != 1 {
		t.Fatalf("missing %v", missing)
	}
	if got := c.first(&RxStamps{XDPHook: 7, User: 9}); got != 7 {
		t.Fatalf("first = %d", got)
	}
}

func TestTxRing(t *testing.T) {
	chain := newTxChain("sender", []TxStampKind{TxSched, TxSoftware}, time.Unix(0, 0))
	missing := map[string]uint64{}
	r := newTxRing(chain, missing)
	r.sent(0, 100, true)
	r.stamp(0, TxSched, 150)
	r.stamp(0, TxSoftware, 170)
	if !r.complete(0) {
		t.Fatal("send 0 not complete")
	}
	r.sent(1, 200, true) // TX_SOFTWARE never comes
	r.stamp(1, TxSched, 210)
	r.sent(2, 300, false) // warm-up: never recorded
	r.flush()
	r.stamp(1, TxSoftware, 220) // after the slot was final
	if chain.series[0].Count() != 2 || chain.series[1].Count() != 1 {
		t.Fatalf("counts %d %d", chain.series[0].Count(), chain.series[1].Count())
	}
	if missing["tx_software"] != 1 || missing["late_tx_software"] != 1 {
		t.Fatalf("missing %v", missing)
	}
}
