package cpu

import (
	"runtime"
	"time"
)

// DefaultYieldInterval is how often a measuring loop gives the scheduler a
// turn. The runtime's monitor (sysmon) preempts a goroutine that has run for
// 10 ms without one, with a signal, and a goroutine locked to its thread
// then hands its P to another thread and waits to be handed it back: four
// context switches on the measuring CPU, in the middle of whatever probe
// was in flight. Yielding before that, at a moment the loop picks, costs a
// fraction of a microsecond and no context switch. But each yield still
// lets the runtime run timers and other goroutines, and on the reflector
// the next probe can arrive meanwhile: yielding every 2 ms left a visibly
// fatter p99 than every 8 ms (UDP spin against sockperf, 4 alternating
// runs: 9.3 vs 8.5 µs, sockperf 8.1 µs). So: as rarely as sysmon allows,
// with room for its 10 ms ticks to drift.
const DefaultYieldInterval = 8 * time.Millisecond

// A Yielder lets a goroutine locked to its (pinned) thread give the Go
// scheduler a turn between probes: it unlocks, yields and locks again, so the
// scheduler runs whatever else is runnable on the same thread and resumes the
// loop there, instead of preempting it at a random moment. Create it on the
// locked thread, after Pin. Not safe for concurrent use. A nil Yielder never
// yields.
type Yielder struct {
	every  int64
	next   int64
	yields uint64
	thread threadState // OS-specific: which thread, its affinity
	moves  uint64
}

// NewYielder returns a Yielder for the calling goroutine's locked thread that
// yields at most once per interval (DefaultYieldInterval when interval <= 0).
func NewYielder(interval time.Duration) *Yielder {
	if interval <= 0 {
		interval = DefaultYieldInterval
	}
	y := &Yielder{every: int64(interval)}
	y.thread = currentThread()
	return y
}

// Yield gives the scheduler a turn when the interval has passed since the
// last one; now is any nanosecond clock reading (the loop's own). It reports
// whether it yielded. If the goroutine comes back on another thread (a
// goroutine that blocked in a system call meanwhile can make the scheduler
// move it), that thread gets the pinned affinity and the old one that of
// the threads Pin keeps off the measuring CPUs; Moves counts it. Threads the
// runtime started since the last yield are kept off those CPUs too.
func (y *Yielder) Yield(now int64) bool {
	if y == nil || now < y.next {
		return false
	}
	y.next = now + y.every
	y.yields++
	runtime.UnlockOSThread()
	runtime.Gosched()
	runtime.LockOSThread()
	if y.thread.moved() {
		y.moves++
	}
	y.thread.keepOff()
	return true
}

// Yields is how many times Yield gave the scheduler a turn.
func (y *Yielder) Yields() uint64 {
	if y == nil {
		return 0
	}
	return y.yields
}

// Moves is how many times the goroutine came back from a yield on another
// OS thread (then re-pinned).
func (y *Yielder) Moves() uint64 {
	if y == nil {
		return 0
	}
	return y.moves
}
