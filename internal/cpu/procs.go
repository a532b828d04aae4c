package cpu

import (
	"runtime"
	"sync"
)

// A measuring thread makes its system calls without handing its P (the Go
// scheduler's right to run Go code) back, and it keeps that P between probes:
// the rest of the program gets its turns when the thread yields (Yielder).
// So the process needs one P per measuring thread and no more: an idle P
// makes the scheduler wake a spare thread at every yield, and that thread
// competes for the measuring CPU when the process is confined to it
// (taskset). GOMAXPROCS is process-global, hence this process-global count.
var procs struct {
	mu     sync.Mutex
	base   int // GOMAXPROCS before the first claim
	claims int
}

// ClaimP makes sure GOMAXPROCS leaves a P for one more measuring thread: it
// becomes max(the GOMAXPROCS the process started with, the number of
// measuring threads). release gives the claim back. Changing GOMAXPROCS
// briefly stops the world, so call it when a phase starts and ends, not per
// probe.
func ClaimP() (release func()) {
	procs.mu.Lock()
	if procs.claims == 0 {
		procs.base = runtime.GOMAXPROCS(0)
	}
	procs.claims++
	setProcs()
	procs.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			procs.mu.Lock()
			procs.claims--
			setProcs()
			procs.mu.Unlock()
		})
	}
}

// setProcs applies the claims; procs.mu is held.
func setProcs() {
	if want := max(procs.base, procs.claims); runtime.GOMAXPROCS(0) != want {
		runtime.GOMAXPROCS(want)
	}
}

// claimsReleased reports whether no ClaimP claim is live.
func claimsReleased() bool {
	procs.mu.Lock()
	defer procs.mu.Unlock()
	return procs.claims == 0
}
