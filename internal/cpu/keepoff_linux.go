package cpu

import (
	"errors"
	"io/fs"
	"os"
	"runtime"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// A pinned measuring thread gets its CPU to itself, as far as this process
// goes: while it is pinned, every other thread of the process (the Go
// runtime's monitor, which wakes 100 times a second with a timer interrupt
// and two context switches, the garbage collector's workers, the threads
// that run other goroutines) may run on any CPU the process may use except
// the measuring ones. On a host with a CPU to spare the measuring CPU then
// sees none of them. When the process may use no other CPU (taskset to the
// measuring CPU alone), their affinity stays; what still helps then is their
// timer slack (OtherThreadsTimerSlack), which they get either way.
var reserved reservations

// reservations is the process's pinned measuring threads.
type reservations struct {
	mu sync.Mutex
	// threads maps each pinned measuring thread to its CPU.
	threads map[int]int
	// process is the affinity threads had before the first pin, and what
	// they get back after the last one.
	process unix.CPUSet
	// others is what every other thread gets while threads is not empty:
	// process less the measuring CPUs, or process itself if that leaves
	// none.
	others unix.CPUSet
	// froze: GOMAXPROCS was set to its own value while threads are kept
	// off (see update), and goes back to the runtime's default after.
	froze bool
	// slack is the timer slack threads had before the first pin (the
	// pinning thread's): what the measuring threads keep, and what every
	// thread gets back after the last pin. 0 when it could not be read;
	// then no thread's slack is changed.
	slack int
	// coalesced: the last apply gave every other thread
	// OtherThreadsTimerSlack.
	coalesced bool
}

// allowedMask is the affinity the process may use: the one from before the
// first pin while threads are pinned (the calling thread may be one kept off
// their CPUs), else the calling thread's.
func allowedMask() (unix.CPUSet, error) {
	reserved.mu.Lock()
	defer reserved.mu.Unlock()
	if len(reserved.threads) > 0 {
		return reserved.process, nil
	}
	var set unix.CPUSet
	err := unix.SchedGetaffinity(0, &set)
	return set, err
}

// reserve pins the calling thread to cpu and records it as a measuring
// thread (process: the affinity the threads had before, when it is the
// first), then moves every other thread off the measuring CPUs. Pinning
// under the lock keeps another reservation from moving this thread off its
// CPU before it is recorded.
func reserve(cpu int, process unix.CPUSet) error {
	r := &reserved
	r.mu.Lock()
	defer r.mu.Unlock()
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return err
	}
	if len(r.threads) == 0 {
		r.threads = map[int]int{}
		r.process = process
		r.slack, _ = ownTimerSlack()
	}
	r.threads[unix.Gettid()] = cpu
	if r.slack > 0 {
		// It may have been one of the other threads until now.
		_ = setOwnTimerSlack(r.slack)
	}
	r.update()
	return nil
}

// unreserve ends the calling thread's reservation and gives it the
// affinity of the other threads, or the process's after the last one. It
// reports whether that affinity was set, and thaw: the last reservation
// ended with GOMAXPROCS frozen, and runtime.SetDefaultGOMAXPROCS, called by
// a thread with the process's affinity, gives the runtime its updates back.
func unreserve() (restored, thaw bool) {
	r := &reserved
	r.mu.Lock()
	defer r.mu.Unlock()
	tid := unix.Gettid()
	if _, ok := r.threads[tid]; !ok {
		return true, false
	}
	delete(r.threads, tid)
	r.update()
	back := r.others
	if len(r.threads) == 0 {
		back = r.process
		thaw, r.froze = r.froze, false
	}
	return unix.SchedSetaffinity(0, &back) == nil, thaw
}

// handOver moves the reservation of thread from to the calling thread, after
// the measuring goroutine came back from a yield on it: the calling thread
// gets pinned, from the other threads' affinity. It reports false, and
// changes nothing, when from held no reservation.
func handOver(from int, pinned unix.CPUSet) bool {
	r := &reserved
	r.mu.Lock()
	defer r.mu.Unlock()
	cpu, ok := r.threads[from]
	if !ok {
		return false
	}
	_ = unix.SchedSetaffinity(0, &pinned)
	delete(r.threads, from)
	r.threads[unix.Gettid()] = cpu
	_ = unix.SchedSetaffinity(from, &r.others)
	if r.slack > 0 {
		_ = setOwnTimerSlack(r.slack)
		_ = setTimerSlack(from, OtherThreadsTimerSlack)
	}
	return true
}

// keepOffAgain applies the other threads' affinity again, to threads started
// since, which may have inherited a measuring thread's.
func keepOffAgain() {
	r := &reserved
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.threads) > 0 {
		r.apply(r.others, OtherThreadsTimerSlack)
	}
}

// update recomputes others and applies it, and OtherThreadsTimerSlack, to
// every thread not pinned, or process and the slack from before once no
// thread is. r.mu is held.
func (r *reservations) update() {
	if len(r.threads) == 0 {
		r.apply(r.process, r.slack)
		return
	}
	r.others = r.process
	for _, cpu := range r.threads {
		r.others.Clear(cpu)
	}
	if r.others.Count() == 0 {
		r.others = r.process
	}
	if r.others != r.process && !r.froze && os.Getenv("GOMAXPROCS") == "" {
		// Once a second the runtime's monitor sets GOMAXPROCS to the
		// number of CPUs its own thread may use: kept off the measuring
		// ones, it would take Ps away (stopping the world to do so) in
		// the middle of a measurement. Setting GOMAXPROCS to the value it
		// has stops those updates and costs nothing else.
		runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
		r.froze = true
	}
	r.apply(r.others, OtherThreadsTimerSlack)
}

// apply gives mask, and timer slack slack when r.slack is known, to every
// thread of the process that is not pinned. A thread that ended meanwhile is
// skipped; one whose affinity or slack cannot be set keeps its own (setting
// another thread's slack takes CAP_SYS_NICE): keeping threads off is an
// optimisation, never a reason to fail a measurement. A thread that another
// one started while this ran inherited its parent's affinity and slack, so
// the passes go on until one finds nothing to change. r.mu is held.
func (r *reservations) apply(mask unix.CPUSet, slack int) {
	slacked := map[int]bool{}
	r.coalesced = r.slack > 0 && slack == OtherThreadsTimerSlack
	for range 8 {
		changed := false
		for _, tid := range threadIDs() {
			if _, pinned := r.threads[tid]; pinned {
				continue
			}
			var now unix.CPUSet
			if unix.SchedGetaffinity(tid, &now) == nil && now != mask && unix.SchedSetaffinity(tid, &mask) == nil {
				changed = true
			}
			if r.slack > 0 && !slacked[tid] {
				slacked[tid] = true
				changed = true
				err := setTimerSlack(tid, slack)
				if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ESRCH) {
					r.coalesced = false
				}
			}
		}
		if !changed {
			return
		}
	}
}

// threadCount is how many OS threads the runtime has made and not ended;
// cheap enough for every Yield (it walks the runtime's list of threads).
func threadCount() int {
	n, _ := runtime.ThreadCreateProfile(nil)
	return n
}

// threadIDs lists the process's threads.
func threadIDs() []int {
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil
	}
	tids := make([]int, 0, len(entries))
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids
}

// Exclusive reports whether the process's other threads are kept off the
// measuring CPUs now: false when no thread is pinned, or when the process
// may use no other CPU (then the Go runtime's monitor shares the measuring
// CPU, waking there about 100 times a second while a goroutine runs).
func Exclusive() bool {
	r := &reserved
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.threads) > 0 && r.others != r.process
}

// TimersCoalesced reports whether the process's other threads have
// OtherThreadsTimerSlack now, so that the Go runtime's monitor wakes with the
// scheduler tick rather than with a timer interrupt of its own: false when no
// thread is pinned, or when the process may not set another thread's slack
// (it lacks CAP_SYS_NICE).
func TimersCoalesced() bool {
	r := &reserved
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.threads) > 0 && r.coalesced
}
