package benchcmp

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// CacheLineRoundTrip bounces one cache line between a thread on cpuA and one on cpuB for about d
// and returns the mean time for the line to go there and back: 50–75 ns when the two CPUs share
// an L3 cache on the test VMs, 330–430 ns when they do not. Both threads are locked and pinned
// for the measurement and get their CPU set back after it. They are not left to end with their
// goroutines: a child process started from a thread with a parent-death signal gets that
// signal when the thread ends, and the harness's reflector was killed that way. It needs
// GOMAXPROCS ≥ 2, as both threads spin at once.
func CacheLineRoundTrip(cpuA, cpuB int, d time.Duration) (time.Duration, error) {
	if runtime.GOMAXPROCS(0) < 2 {
		return 0, errors.New("cache-line round trip: needs GOMAXPROCS of at least 2")
	}
	var line struct {
		_ [64]byte
		v atomic.Uint64 // odd: cpuA's turn is over, cpuB's has come
		_ [56]byte
	}
	var stop atomic.Bool
	ready := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		unpin, err := pinThread(cpuB)
		if err != nil {
			ready <- err
			return
		}
		defer unpin()
		ready <- nil
		for !stop.Load() {
			if v := line.v.Load(); v&1 == 1 {
				line.v.Store(v + 1)
			}
		}
	}()
	if err := <-ready; err != nil {
		<-done
		return 0, err
	}
	type result struct {
		rt  time.Duration
		err error
	}
	out := make(chan result, 1)
	go func() {
		defer stop.Store(true)
		unpin, err := pinThread(cpuA)
		if err != nil {
			out <- result{err: err}
			return
		}
		defer unpin()
		start := time.Now()
		n := 0
		for {
			for range 64 {
				v := line.v.Add(1)
				for spins := 0; line.v.Load() == v; spins++ {
					if spins == 1<<30 {
						out <- result{err: fmt.Errorf("cache-line round trip: CPU %d never answered", cpuB)}
						return
					}
				}
			}
			n += 64
			if el := time.Since(start); el >= d {
				out <- result{rt: el / time.Duration(n)}
				return
			}
		}
	}()
	r := <-out
	<-done
	return r.rt, r.err
}

// pinThread locks the calling goroutine to its thread and moves the thread to cpu. unpin gives
// the thread its CPU set back and unlocks it; a thread whose set cannot be given back stays
// locked and ends with its goroutine.
func pinThread(cpu int) (unpin func(), err error) {
	runtime.LockOSThread()
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("read a thread's CPU set: %w", err)
	}
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("pin a thread to CPU %d: %w", cpu, err)
	}
	return func() {
		if unix.SchedSetaffinity(0, &old) == nil {
			runtime.UnlockOSThread()
		}
	}, nil
}
