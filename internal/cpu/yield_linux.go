package cpu

import (
	"os"

	"golang.org/x/sys/unix"
)

// threadState is the locked thread a Yielder belongs to and the affinity it
// was pinned with.
type threadState struct {
	tid     int
	pinned  unix.CPUSet // the thread's affinity when the Yielder was made
	process unix.CPUSet // the main thread's: what an abandoned thread gets back
	ok      bool        // both masks were read
	threads int         // threadCount when last checked
}

func currentThread() threadState {
	t := threadState{tid: unix.Gettid(), threads: threadCount()}
	t.ok = unix.SchedGetaffinity(0, &t.pinned) == nil && unix.SchedGetaffinity(os.Getpid(), &t.process) == nil
	return t
}

// moved reports whether the goroutine now runs on another thread than
// before; if so it moves the pinning over, and the old thread joins the
// threads kept off the measuring CPUs (or gets the process's affinity back
// when the thread was not pinned with Pin).
func (t *threadState) moved() bool {
	tid := unix.Gettid()
	if tid == t.tid {
		return false
	}
	if !handOver(t.tid, t.pinned) && t.ok {
		_ = unix.SchedSetaffinity(0, &t.pinned)
		// The old thread may have exited; nothing to undo then.
		_ = unix.SchedSetaffinity(t.tid, &t.process)
	}
	t.tid = tid
	return true
}

// keepOff keeps threads the runtime started since the last call off the
// measuring CPUs: one started while a measuring thread ran the scheduler
// inherited that thread's affinity.
func (t *threadState) keepOff() {
	if n := threadCount(); n != t.threads {
		t.threads = n
		keepOffAgain()
	}
}
