package benchcmp

import (
	"strings"
	"testing"
	"time"
)

func TestPlacementGate(t *testing.T) {
	var g placementGate
	if !g.near(300 * time.Nanosecond) {
		t.Error("the first measurement is the lowest seen, so near")
	}
	if g.threshold() != 600*time.Nanosecond {
		t.Errorf("threshold %v after 300 ns, want 600 ns", g.threshold())
	}
	if !g.near(400 * time.Nanosecond) {
		t.Error("400 ns after 300 ns: within 2 times the lowest, want near")
	}
	// A far placement seen first stops counting as near once a near one has been seen.
	if !g.near(130 * time.Nanosecond) {
		t.Error("130 ns after 300 ns: want near")
	}
	if g.threshold() != 260*time.Nanosecond {
		t.Errorf("threshold %v, want 2 × 130 ns", g.threshold())
	}
	if g.near(270 * time.Nanosecond) {
		t.Error("270 ns after 130 ns: want far")
	}
	if !g.near(250 * time.Nanosecond) {
		t.Error("250 ns after 130 ns: want near")
	}
	if g.lowest != 130*time.Nanosecond || g.highest != 400*time.Nanosecond || g.samples != 5 {
		t.Errorf("gate %+v, want lowest 130 ns, highest 400 ns, 5 samples", g)
	}
}

func TestWritePlacement(t *testing.T) {
	ns := func(n int) time.Duration { return time.Duration(n) }
	ps := []Placement{
		{Tool: "sockperf", Before: ns(130), After: ns(135), NearBefore: true, NearAfter: true},
		{Tool: "stackgap plain", Before: ns(128), After: ns(340), Waited: 3 * time.Second, NearBefore: true},
		{Tool: "sockperf", Before: ns(350), After: ns(360), Waited: 10 * time.Second},
		{Tool: "sockperf", Before: ns(140), After: ns(131), Waited: 200 * time.Millisecond, NearBefore: true, NearAfter: true},
	}
	var b strings.Builder
	if err := WritePlacement(&b, ps, ns(195)); err != nil {
		t.Fatal(err)
	}
	out := squeeze(b.String())
	for _, want := range []string{
		"near ≤ 195ns",
		"sockperf 3 2 2 140 ns 135 ns 200ms 10s",
		"stackgap plain 1 1 0 128 ns 340 ns 3s 3s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("placement table lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	if err := WritePlacement(&b, nil, ns(195)); err != nil || b.Len() != 0 {
		t.Errorf("no runs printed %q (%v), want nothing", b.String(), err)
	}
}
