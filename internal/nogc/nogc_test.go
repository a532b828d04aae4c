package nogc

import (
	"runtime"
	"runtime/debug"
	"testing"
)

// sink keeps the compiler from dropping the allocations.
var sink []byte

// churn allocates n bytes of garbage in chunks the size a histogram export takes.
func churn(n int) {
	const chunk = 256 << 10
	for i := 0; i < n; i += chunk {
		sink = make([]byte, chunk)
	}
	sink = nil
}

func collections() uint32 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.NumGC
}

// gcPercent reads GOGC without changing it.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

func TestHoldStopsCollection(t *testing.T) {
	runtime.GC()
	before := collections()
	churn(64 << 20)
	if collections() == before {
		t.Fatal("64 MB of garbage caused no collection without a Hold: the test cannot tell")
	}

	percent, limit := gcPercent(), debug.SetMemoryLimit(-1)
	release := Hold()
	before = collections()
	churn(64 << 20)
	if n := collections() - before; n != 0 {
		t.Errorf("%d collections while held, want 0", n)
	}
	if p := gcPercent(); p != -1 {
		t.Errorf("GOGC while held = %d, want -1 (off)", p)
	}
	if l := debug.SetMemoryLimit(-1); l >= limit || l <= Headroom {
		t.Errorf("memory limit while held = %d, want above Headroom (%d) and below the previous %d", l, Headroom, limit)
	}
	release()
	release() // a second call changes nothing
	if p, l := gcPercent(), debug.SetMemoryLimit(-1); p != percent || l != limit {
		t.Errorf("after release GOGC = %d, limit = %d; want %d and %d as before", p, l, percent, limit)
	}
}

func TestNestedHolds(t *testing.T) {
	percent := gcPercent()
	first := Hold()
	second := Hold()
	first()
	if p := gcPercent(); p != -1 {
		t.Errorf("GOGC with one Hold left = %d, want -1 (off)", p)
	}
	second()
	if p := gcPercent(); p != percent {
		t.Errorf("GOGC after the last release = %d, want %d as before", p, percent)
	}
}

func TestHeadroomStillCollects(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates more than Headroom")
	}
	release := Hold()
	defer release()
	before := collections()
	churn(2 * Headroom)
	if collections() == before {
		t.Errorf("no collection after %d MB of garbage while held: the memory limit did not act", 2*Headroom>>20)
	}
}
