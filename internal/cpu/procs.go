package cpu

import (
	"runtime"
	"sync"
)

// A measuring thread makes its receive system calls without handing its P
// (the Go scheduler's right to run Go code) back, so the scheduler's monitor
// does not wake and preempt it around every blocking receive. While it waits
// in the kernel that P is unusable by other goroutines, so each measuring
// thread adds one P for the rest of the program: GOMAXPROCS is
// process-global, hence this process-global count.
var extraProcs struct {
	mu sync.Mutex
	n  int
}

// ReserveP raises GOMAXPROCS by one for a measuring thread; release lowers it
// again. Changing GOMAXPROCS briefly stops the world, so call it when a phase
// starts and ends, not per probe.
func ReserveP() (release func()) {
	extraProcs.mu.Lock()
	extraProcs.n++
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1)
	extraProcs.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			extraProcs.mu.Lock()
			extraProcs.n--
			runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0)-1, 1))
			extraProcs.mu.Unlock()
		})
	}
}
