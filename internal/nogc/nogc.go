// Package nogc keeps Go's garbage collector from running while a
// measurement is in progress.
//
// A measuring loop owns its CPU: in a benchmark each process is confined to
// one CPU (taskset) and the loop spins on it. A collection cycle needs that
// CPU too: its stop-the-world phases preempt the loop, and its mark work
// runs on the loop's P. Rotating a second's interval histograms allocates a
// few hundred kilobytes each (hdrhistogram-go copies the whole counts array
// to export it), and with the small heaps of these processes that started a
// cycle about once a second in every phase, on both hosts. The C tools we
// compare against have no collector, so for the length of a measurement
// neither do we: Hold turns it off, and a memory limit (Headroom above what
// the process used when the first Hold began) remains as the backstop that
// lets it run if a long measurement allocates that much.
package nogc

import (
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// Headroom is how much more memory the process may use while collection is
// held off before the collector runs anyway. A phase allocates about 220 KB
// per histogram per second it rotates, so a stamped sender phase (six
// histograms) reaches it after about three minutes, and a longer phase
// collects about that often.
const Headroom = 256 << 20

// The collector's settings are process-global, and so is this count: the
// reflector runs sessions side by side, and collection resumes when the last
// one ends.
var held struct {
	mu      sync.Mutex
	holds   int
	percent int   // GOGC before the first Hold
	limit   int64 // memory limit before the first Hold
}

// Hold turns garbage collection off until every Hold has been released; the
// first Hold waits for a collection cycle in progress to finish, so call it
// before measuring, not per probe. Collection still runs if the process
// grows by Headroom (or reaches a lower memory limit it already had).
// release restores the settings of before the first Hold and returns how
// many collection cycles the process completed since this Hold began: more
// than 0 when Headroom was reached (or, process-wide, another Hold's
// measurement reached it). Calling it more than once has no further effect
// and returns 0.
func Hold() (release func() (cycles uint64)) {
	held.mu.Lock()
	if held.holds == 0 {
		held.percent = debug.SetGCPercent(-1)
		held.limit = debug.SetMemoryLimit(-1)
		debug.SetMemoryLimit(min(held.limit, inUse()+Headroom))
	}
	held.holds++
	held.mu.Unlock()
	start := completedCycles()
	var once sync.Once
	return func() (cycles uint64) {
		once.Do(func() {
			cycles = completedCycles() - start
			held.mu.Lock()
			held.holds--
			if held.holds == 0 {
				debug.SetMemoryLimit(held.limit)
				debug.SetGCPercent(held.percent)
			}
			held.mu.Unlock()
		})
		return cycles
	}
}

// inUse is the memory the runtime counts against its memory limit: all it
// has mapped less the heap it has returned to the operating system.
func inUse() int64 {
	s := []metrics.Sample{
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 || s[1].Value.Kind() != metrics.KindUint64 {
		return 0 // not reported by this runtime: the limit becomes Headroom
	}
	return int64(s[0].Value.Uint64() - s[1].Value.Uint64())
}

// completedCycles is the number of garbage collection cycles the process has
// completed.
func completedCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
