package results

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestComputeGaps(t *testing.T) {
	start := time.Unix(1700000000, 0)
	r := &Result{Phases: []Phase{
		{Index: 0, Path: "kernel", Transport: "udp", Family: "ipv4"},
		{Index: 1, Path: "xdp", Transport: "udp", Family: "ipv4"},
		{Index: 2, Path: "kernel", Transport: "udp", Family: "ipv4"},
		{Index: 3, Path: "xdp", Transport: "udp", Family: "ipv4"},
		{Index: 4, Path: "kernel", Transport: "tcp", Family: "ipv4"}, // no xdp counterpart
	}}
	rtt := func(values ...int64) []*Series {
		s := NewSeries("rtt", HostSender, SourceUser, "", start)
		other := NewSeries("rx.stack_to_user", HostSender, SourceSW, "", start)
		for _, v := range values {
			s.Record(v)
			other.Record(v)
		}
		return []*Series{s, other}
	}
	series := map[int][]*Series{
		0: rtt(10000, 10000), 2: rtt(30000, 30000), // kernel: 10 and 30 µs → p50 10 µs, max 30 µs
		1: rtt(4000, 4000), 3: rtt(6000, 6000), // xdp: 4 and 6 µs
		4: rtt(50000),
	}
	gaps, err := ComputeGaps(r, series, "kernel")
	if err != nil {
		t.Fatal(err)
	}
	if len(gaps) != 1 {
		t.Fatalf("got %d gaps, want 1: %+v", len(gaps), gaps)
	}
	g := gaps[0]
	if g.Series != "sender.rtt" || g.OtherPath != "xdp" || g.Base.Count != 4 || g.Other.Count != 4 {
		t.Fatalf("unexpected gap %+v", g)
	}
	near := func(got, want int64) bool { return got >= want-want/500 && got <= want+want/500 }
	if !near(g.Base.P50, 10000) || !near(g.Other.P50, 4000) || !near(g.Diff.P50, g.Base.P50-g.Other.P50) || !near(g.Diff.Max, 24000) {
		t.Fatalf("unexpected percentiles %+v", g)
	}
	r.Gaps = gaps
	var buf bytes.Buffer
	PrintTable(&buf, r)
	if !strings.Contains(buf.String(), "gap kernel − xdp per percentile") || !strings.Contains(buf.String(), "udp ipv4") {
		t.Fatalf("table lacks the gap section:\n%s", buf.String())
	}
}
