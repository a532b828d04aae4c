package cpu

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stackgap/stackgap/internal/testutil"
)

func allowedCPUs(t *testing.T) []int {
	t.Helper()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	cpus, err := usable(&set)
	if err != nil {
		t.Fatal(err)
	}
	if len(cpus) == 0 {
		t.Fatal("no usable cpu")
	}
	return cpus
}

func TestPinEachAllowedCPU(t *testing.T) {
	for _, cpu := range allowedCPUs(t) {
		t.Run(fmt.Sprint(cpu), func(t *testing.T) {
			err := runPinned(cpu, func() error {
				var before unix.CPUSet
				_ = unix.SchedGetaffinity(0, &before)
				runtime.Gosched() // a locked goroutine stays on its thread, which stays on cpu
				if got := Current(); got != cpu || before.Count() != 1 || !before.IsSet(cpu) {
					return fmt.Errorf("pinned to %d: running on %d with mask of %d cpus", cpu, got, before.Count())
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestPinRestoresMask(t *testing.T) {
	allowed := allowedCPUs(t)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // keep the same thread across Pin and restore
		defer runtime.UnlockOSThread()
		restore, err := Pin(allowed[len(allowed)-1])
		if err != nil {
			done <- err
			return
		}
		restore()
		var set unix.CPUSet
		_ = unix.SchedGetaffinity(0, &set)
		got, _ := usable(&set)
		if !slices.Equal(got, allowed) {
			done <- fmt.Errorf("mask after restore: %v, want %v", got, allowed)
			return
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestPinRejectsUnavailableCPU(t *testing.T) {
	allowed := allowedCPUs(t)
	want := fmt.Sprintf("(allowed: %s)", formatList(allowed))
	for _, cpu := range []int{allowed[len(allowed)-1] + 1, 1023, 5000} {
		restore, err := Pin(cpu)
		if err == nil {
			restore()
			t.Fatalf("Pin(%d) succeeded", cpu)
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("cpu %d not available %s", cpu, want)) {
			t.Errorf("Pin(%d): got %q, want it to name the cpu and %s", cpu, err, want)
		}
		if cerr := Check(cpu); cerr == nil || cerr.Error() != err.Error() {
			t.Errorf("Check(%d) = %v, want Pin's error %q", cpu, cerr, err)
		}
	}
	for _, cpu := range append([]int{-1}, allowed...) {
		if err := Check(cpu); err != nil {
			t.Errorf("Check(%d): %v", cpu, err)
		}
	}
}

func TestPinNegativeOnlyLocks(t *testing.T) {
	before := allowedCPUs(t)
	restore, err := Pin(-1)
	if err != nil {
		t.Fatal(err)
	}
	defer restore()
	if after := allowedCPUs(t); !slices.Equal(after, before) {
		t.Errorf("Pin(-1) changed the mask: %v, want %v", after, before)
	}
}

func TestCurrentIsOnline(t *testing.T) {
	if cpu := Current(); !slices.Contains(allowedCPUs(t), cpu) {
		t.Errorf("Current() = %d, not an allowed cpu", cpu)
	}
}

func TestCPUList(t *testing.T) {
	tests := []struct {
		in   string
		cpus []int
		ok   bool
	}{
		{"0", []int{0}, true},
		{"0-1", []int{0, 1}, true},
		{"0-3,5,7-8", []int{0, 1, 2, 3, 5, 7, 8}, true},
		{"", nil, true},
		{"3-1", nil, false},
		{"a", nil, false},
		{"1,", nil, false},
		{"-1", nil, false},
	}
	for _, tt := range tests {
		got, err := parseList(tt.in)
		if (err == nil) != tt.ok || !slices.Equal(got, tt.cpus) {
			t.Errorf("parseList(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.cpus, tt.ok)
		}
		if tt.ok && tt.in != "" {
			if back := formatList(got); back != tt.in {
				t.Errorf("formatList(%v) = %q, want %q", got, back, tt.in)
			}
		}
	}
	if got := formatList(nil); got != "none" {
		t.Errorf("formatList(nil) = %q, want none", got)
	}
}

func TestClaimP(t *testing.T) {
	base := runtime.GOMAXPROCS(0)
	var releases []func()
	for range base + 1 {
		releases = append(releases, ClaimP())
	}
	// One P per measuring thread, and never fewer than the process had.
	if got := runtime.GOMAXPROCS(0); got != base+1 {
		t.Fatalf("GOMAXPROCS %d with %d claims, want %d", got, base+1, base+1)
	}
	releases[0]()
	releases[0]() // idempotent
	if got := runtime.GOMAXPROCS(0); got != base {
		t.Fatalf("GOMAXPROCS %d with %d claims, want %d", got, base, base)
	}
	for _, release := range releases[1:] {
		release()
	}
	if got := runtime.GOMAXPROCS(0); got != base {
		t.Fatalf("GOMAXPROCS %d after release, want %d", got, base)
	}
}

// TestYielderLetsOthersRun runs a busy loop that never blocks on one P, as a
// spinning measurement does: other goroutines run only when it yields, and
// it stays on its pinned thread throughout.
func TestYielderLetsOthersRun(t *testing.T) {
	cpu := allowedCPUs(t)[0]
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var ticks atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				ticks.Add(1)
				runtime.Gosched()
			}
		}
	}()
	err := runPinned(cpu, func() error {
		y := NewYielder(time.Millisecond)
		tid := unix.Gettid()
		if !y.Yield(0) || y.Yield(1) {
			return fmt.Errorf("Yield(0) then Yield(1) within the interval: want true, false")
		}
		start := time.Now()
		before := ticks.Load()
		for time.Since(start) < 50*time.Millisecond {
			y.Yield(time.Now().UnixNano())
		}
		var mask unix.CPUSet
		_ = unix.SchedGetaffinity(0, &mask)
		switch {
		case uint64(ticks.Load()-before) < y.Yields()/2:
			// Without the yields, only sysmon's preemption every 10-20 ms
			// would let the other goroutine run.
			return fmt.Errorf("the other goroutine ran %d times during %d yields", ticks.Load()-before, y.Yields())
		case y.Yields() < 10:
			return fmt.Errorf("%d yields in 50 ms at 1 ms intervals", y.Yields())
		case mask.Count() != 1 || !mask.IsSet(cpu):
			return fmt.Errorf("after yields the thread's mask has %d cpus, want only %d", mask.Count(), cpu)
		case y.Moves() == 0 && unix.Gettid() != tid:
			return fmt.Errorf("thread changed from %d to %d without a counted move", tid, unix.Gettid())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// runPinned runs fn on a new goroutine pinned to cpu (Pin), restores the
// thread afterwards and returns Pin's or fn's error.
func runPinned(cpu int, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		restore, err := Pin(cpu)
		if err != nil {
			done <- err
			return
		}
		err = fn()
		restore() // before the caller looks at the threads
		done <- err
	}()
	return <-done
}

// affinities returns every thread's affinity.
func affinities(t *testing.T) map[int]unix.CPUSet {
	t.Helper()
	masks := map[int]unix.CPUSet{}
	for _, tid := range threadIDs() {
		var set unix.CPUSet
		if unix.SchedGetaffinity(tid, &set) == nil { // a thread may end meanwhile
			masks[tid] = set
		}
	}
	return masks
}

// blockThreads parks n goroutines in blocking reads, so the runtime starts
// threads for them; unblock ends them.
func blockThreads(t *testing.T, n int) (unblock func()) {
	t.Helper()
	var ends []int
	for range n {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		ends = append(ends, p[1])
		go func() {
			var b [1]byte
			unix.Read(p[0], b[:])
			unix.Close(p[0])
		}()
	}
	time.Sleep(20 * time.Millisecond) // the monitor hands their Ps on after 20 µs
	return func() {
		for _, fd := range ends {
			unix.Close(fd)
		}
	}
}

// yieldAfterNewThread checks what a yield does for threads the runtime
// started since the loop's last one, which inherit the measuring thread's
// settings: spoil gives one other thread such settings (a stand-in), reads
// are blocked until the runtime starts a new thread (idle ones are reused),
// and y yields. unblock ends the blocked reads.
func yieldAfterNewThread(t *testing.T, y *Yielder, spoil func(tid int) error) (unblock func(), err error) {
	t.Helper()
	var ends []func()
	unblock = func() {
		for _, end := range ends {
			end()
		}
	}
	for _, tid := range threadIDs() {
		if tid != unix.Gettid() {
			if err := spoil(tid); err != nil {
				return unblock, err
			}
			break
		}
	}
	for before := threadCount(); threadCount() == before; {
		if len(threadIDs()) > 200 {
			return unblock, fmt.Errorf("the runtime started no thread for blocked reads")
		}
		ends = append(ends, blockThreads(t, 4))
	}
	if !y.Yield(time.Now().UnixNano()) {
		return unblock, fmt.Errorf("no yield")
	}
	return unblock, nil
}

// spareCPU skips the test unless the process may use two CPUs; it returns
// the process's affinity and the last CPU in it, the one to measure on.
func spareCPU(t *testing.T) (process unix.CPUSet, measuring int) {
	t.Helper()
	allowed := allowedCPUs(t)
	if len(allowed) < 2 {
		t.Skipf("needs a process that may use two CPUs, has %v", allowed)
	}
	if err := unix.SchedGetaffinity(0, &process); err != nil {
		t.Fatal(err)
	}
	return process, allowed[len(allowed)-1]
}

// TestPinKeepsOtherThreadsOff: while a thread is pinned, every other thread
// of the process runs on the other CPUs, threads started since included once
// the pinned loop yields; afterwards all get the process's affinity back.
// Pinning another thread to the same CPU meanwhile works from a thread kept
// off it.
func TestPinKeepsOtherThreadsOff(t *testing.T) {
	process, measuring := spareCPU(t)
	// A test binary runs with GOMAXPROCS set (by package testing), which
	// stops the runtime's own updates; a command runs with the default.
	runtime.SetDefaultGOMAXPROCS()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	procs := runtime.GOMAXPROCS(0)
	others := process
	others.Clear(measuring)
	defer blockThreads(t, 3)()

	check := func(pinned map[int]bool) error {
		for tid, set := range affinities(t) {
			switch {
			case pinned[tid] && (set.Count() != 1 || !set.IsSet(measuring)):
				return fmt.Errorf("pinned thread %d has %d cpus", tid, set.Count())
			case !pinned[tid] && set != others:
				return fmt.Errorf("thread %d may run on cpu %d (%d cpus) while thread %v measures there", tid, measuring, set.Count(), pinned)
			}
		}
		return nil
	}
	err := runPinned(measuring, func() error {
		me := map[int]bool{unix.Gettid(): true}
		if err := check(me); err != nil {
			return fmt.Errorf("after Pin: %w", err)
		}
		// The runtime's monitor checks once a second whether GOMAXPROCS
		// still matches the CPUs it may use; kept off one, it must not
		// shrink the process's Ps.
		time.Sleep(1100 * time.Millisecond)
		if got := runtime.GOMAXPROCS(0); got != procs {
			return fmt.Errorf("GOMAXPROCS %d while pinned, was %d", got, procs)
		}
		// A thread started while the measuring one ran the scheduler
		// inherits its affinity: stand-in, one thread given it back.
		unblock, err := yieldAfterNewThread(t, NewYielder(time.Nanosecond), func(tid int) error {
			return unix.SchedSetaffinity(tid, &process)
		})
		defer unblock()
		if err != nil {
			return err
		}
		me = map[int]bool{unix.Gettid(): true}
		if err := check(me); err != nil {
			return fmt.Errorf("after new threads and a yield: %w", err)
		}
		second := make(chan error, 1)
		go func() { second <- runPinned(measuring, func() error { return nil }) }()
		if err := <-second; err != nil {
			return fmt.Errorf("second pin from a thread kept off cpu %d: %w", measuring, err)
		}
		return check(me)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := runtime.GOMAXPROCS(0); got != procs {
		t.Errorf("GOMAXPROCS %d after restore, was %d", got, procs)
	}
	for tid, set := range affinities(t) {
		if set != process {
			t.Errorf("after restore, thread %d has %d cpus, want the process's %d", tid, set.Count(), process.Count())
		}
	}
}

// TestConcurrentPins: threads pinning the same CPU at once never move one
// another off it, and all threads end with the process's affinity.
func TestConcurrentPins(t *testing.T) {
	process, measuring := spareCPU(t)
	errs := make(chan error, 4)
	for range cap(errs) {
		go func() {
			var err error
			for i := 0; i < 50 && err == nil; i++ {
				err = runPinned(measuring, func() error {
					for range 3 {
						var set unix.CPUSet
						if err := unix.SchedGetaffinity(0, &set); err != nil {
							return err
						}
						if set.Count() != 1 || !set.IsSet(measuring) {
							return fmt.Errorf("a thread pinned to cpu %d was moved (now %d cpus, cpu %d among them: %v)", measuring, set.Count(), measuring, set.IsSet(measuring))
						}
						runtime.Gosched()
					}
					return nil
				})
			}
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for tid, set := range affinities(t) {
		if set != process {
			t.Errorf("thread %d has %d cpus after every pin ended, want %d", tid, set.Count(), process.Count())
		}
	}
}

// timerSlack reads thread tid's timer slack (CAP_SYS_NICE for another
// thread's).
func timerSlack(tid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/timerslack_ns")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// slacks returns every thread's timer slack.
func slacks(t *testing.T) map[int]int {
	t.Helper()
	m := map[int]int{}
	for _, tid := range threadIDs() {
		if ns, err := timerSlack(tid); err == nil { // a thread may end meanwhile
			m[tid] = ns
		}
	}
	return m
}

// TestPinCoalescesOtherThreadsTimers: while a thread is pinned, every other
// thread has OtherThreadsTimerSlack, threads started since included once the
// pinned loop yields, and the pinned thread keeps the slack threads had;
// afterwards all have that slack back. This needs no spare CPU: it is what
// still helps when the process may use the measuring CPU alone.
func TestPinCoalescesOtherThreadsTimers(t *testing.T) {
	testutil.RequireRoot(t) // another thread's slack takes CAP_SYS_NICE
	before, err := ownTimerSlack()
	if err != nil {
		t.Fatal(err)
	}
	if before == OtherThreadsTimerSlack {
		t.Fatalf("the test's threads already have a slack of %d ns", before)
	}
	measuring := allowedCPUs(t)[0]
	defer blockThreads(t, 3)()
	check := func(me int) error {
		for tid, ns := range slacks(t) {
			switch {
			case tid == me && ns != before:
				return fmt.Errorf("the pinned thread has a timer slack of %d ns, want the %d it had", ns, before)
			case tid != me && ns != OtherThreadsTimerSlack:
				return fmt.Errorf("thread %d has a timer slack of %d ns while thread %d measures, want %d", tid, ns, me, OtherThreadsTimerSlack)
			}
		}
		if !TimersCoalesced() {
			return fmt.Errorf("TimersCoalesced is false while thread %d measures", me)
		}
		return nil
	}
	err = runPinned(measuring, func() error {
		if err := check(unix.Gettid()); err != nil {
			return fmt.Errorf("after Pin: %w", err)
		}
		// A thread started by the measuring one inherits its slack:
		// stand-in, one other thread given it back.
		unblock, err := yieldAfterNewThread(t, NewYielder(time.Nanosecond), func(tid int) error {
			return setTimerSlack(tid, before)
		})
		defer unblock()
		if err != nil {
			return err
		}
		if err := check(unix.Gettid()); err != nil {
			return fmt.Errorf("after new threads and a yield: %w", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if TimersCoalesced() {
		t.Error("TimersCoalesced is true after the pin ended")
	}
	for tid, ns := range slacks(t) {
		if ns != before {
			t.Errorf("after restore, thread %d has a timer slack of %d ns, want %d", tid, ns, before)
		}
	}
}

// TestPinWithoutSysNice: a thread that may not set other threads' timer
// slack (no CAP_SYS_NICE) still pins, and says the timers are not coalesced.
func TestPinWithoutSysNice(t *testing.T) {
	testutil.RequireRoot(t)
	measuring := allowedCPUs(t)[0]
	done := make(chan error, 1)
	go func() {
		// Capabilities are per thread: drop CAP_SYS_NICE from this one's
		// effective set, and let it end with the goroutine (no unlock).
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			done <- err
			return
		}
		data[0].Effective &^= 1 << unix.CAP_SYS_NICE
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			done <- err
			return
		}
		restore, err := Pin(measuring)
		if err != nil {
			done <- fmt.Errorf("pin without CAP_SYS_NICE: %w", err)
			return
		}
		coalesced := TimersCoalesced()
		restore()
		if coalesced {
			err = fmt.Errorf("TimersCoalesced is true without CAP_SYS_NICE")
		}
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
